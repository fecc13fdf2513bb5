"""The models a server holds: one :class:`ServedModel` per served name, swapped atomically.

A request takes the :class:`ServedModel` it will use once, at its start (``table.get``), and
keeps that reference to the end: a swap replaces the table's entry, never the object a
request holds, so in-flight requests finish on the model they started with.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelkeep._load import locate, resolve_source
from modelkeep._model import Model
from modelkeep.errors import InvalidArgumentError, UnknownModelError
from modelkeep.manifest import dump_manifest
from modelkeep.registry.refs import Reference

__all__ = ["ModelTable", "ServedModel", "UnknownModelError", "load_bundle", "load_served"]


@dataclass(frozen=True)
class ServedModel:
    """One loaded and fully verified model, as the server serves it.

    ``name`` is the served name (the registry model name, or the bundle's manifest name),
    ``version`` the registry version (or the manifest's version for a bundle path), as a
    string; ``manifest_hash`` the SHA-256 of the bundle's ``modelkeep.json``; ``ref`` what
    the user passed on the command line (a path or ``"name@alias"``).
    """

    name: str
    version: str
    manifest_hash: str
    ref: str
    model: Model

    @property
    def is_alias(self) -> bool:
        """Whether ``ref`` is a registry alias (``name@alias``), which a watcher follows."""
        found = resolve_source(self.ref)
        return isinstance(found, Reference) and found.alias is not None


def load_bundle(path: str | os.PathLike[str], **options: Any) -> Model:
    """A bundle directory through every check of the load sequence; with ``isolate=True``
    (and optional ``limits``) in a sandboxed worker (:func:`modelkeep.sandbox.load`), where
    every later prediction runs too.
    """
    isolate = options.pop("isolate", False)
    limits = options.pop("limits", None)
    if isolate:
        from modelkeep import sandbox

        return sandbox.load(path, limits=limits, **options)
    from modelkeep import _bundle

    return _bundle.load(path, **options)


def load_served(ref: str, **options: Any) -> ServedModel:
    """Load ``ref`` (a bundle path or a registry reference) through every check of
    :func:`modelkeep.load` and describe it as served.

    ``options`` (``format``, ``env``, ``trusted`` ...) go to the load unchanged;
    ``isolate=True`` loads it in a sandboxed worker (:func:`load_bundle`).

    Raises:
        every error of :func:`modelkeep.load`.
    """
    found = resolve_source(ref)
    if isinstance(found, Reference):
        registered = locate(found)
        recorded = registered.version.manifest_sha256
        model = load_bundle(registered.path, manifest_sha256=recorded, **options)
        return ServedModel(
            name=registered.version.name,
            version=str(registered.version.version),
            manifest_hash=recorded,
            ref=ref,
            model=model,
        )
    model = load_bundle(found, **options)
    # The manifest is written as canonical JSON, so this is the SHA-256 of modelkeep.json's
    # bytes as loaded (hashing the file again could read a bundle swapped since the load).
    digest = hashlib.sha256(dump_manifest(model.manifest).encode("utf-8")).hexdigest()
    return ServedModel(
        name=model.manifest.name,
        version=str(model.manifest.version),
        manifest_hash=digest,
        ref=os.fspath(ref) if isinstance(ref, Path) else ref,
        model=model,
    )


class ModelTable:
    """The served models by name; :meth:`swap` replaces one atomically.

    Reads take no lock (a dict lookup is atomic); writers serialize on one lock.
    """

    def __init__(self, models: list[ServedModel] | None = None) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ServedModel] = {}
        for served in models or []:
            if served.name in self._models:
                first = self._models[served.name].ref
                raise InvalidArgumentError(
                    "REF",
                    "each model served under its own name",
                    f"two models named {served.name!r} ({first!r} and {served.ref!r})",
                    "A server serves one version per name; to serve several versions, run "
                    "one server each, or register them under different names.",
                )
            self._models[served.name] = served

    def get(self, name: str) -> ServedModel:
        """The model served as ``name``.

        Raises:
            UnknownModelError: no model is served under that name.
        """
        served = self._models.get(name)
        if served is None:
            raise UnknownModelError(name, self.names())
        return served

    def names(self) -> list[str]:
        """The served names, sorted."""
        return sorted(self._models)

    def all(self) -> list[ServedModel]:
        """Every served model, sorted by name."""
        models = dict(self._models)
        return [models[name] for name in sorted(models)]

    def swap(self, served: ServedModel) -> ServedModel | None:
        """Serve ``served`` under its name from now on; return the model it replaced."""
        with self._lock:
            old = self._models.get(served.name)
            models = dict(self._models)
            models[served.name] = served
            self._models = models
        return old

    def __len__(self) -> int:
        return len(self._models)
