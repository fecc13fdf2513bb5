"""``modelkeep.load(source)``: a bundle path, or a registry reference.

The dispatch lives here, above both layers, so the bundle layer never imports the
registry (DESIGN.md: dependencies flow registry -> bundle). :func:`resolve_source` is the
one rule deciding "path or reference", for the library and for every command of the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep import _bundle as bundle
from modelkeep.errors import BundleNotFoundError, UnknownReferenceError
from modelkeep.registry.refs import Reference, is_reference, parse_reference

if TYPE_CHECKING:
    from modelkeep._bundle import Check
    from modelkeep._model import Model
    from modelkeep.registry.records import ModelVersion
    from modelkeep.sandbox import Limits

__all__ = ["Registered", "load", "locate", "resolve_source", "verify"]


def resolve_source(text: str | os.PathLike[str]) -> Path | Reference:
    """Whether ``text`` names a bundle directory or a registry reference.

    A path that exists always wins (a directory named ``churn`` beside you is that
    directory). Otherwise a string that parses as a reference (``churn``, ``churn:3``,
    ``churn@production``) is a :class:`~modelkeep.registry.refs.Reference`; anything else
    is a path, which the caller reports as missing.

    Example:
        >>> resolve_source("churn@production")
        Reference(name='churn', version=None, alias='production')
    """
    if isinstance(text, str) and not os.path.lexists(text) and is_reference(text):
        return parse_reference(text)
    return Path(text)


@dataclass(frozen=True)
class Registered:
    """A reference resolved in the default registry: its stored bundle and index entry."""

    path: Path
    version: ModelVersion


def locate(reference: Reference) -> Registered:
    """The stored bundle of ``reference`` in the default registry (``$MODELKEEP_HOME``).

    Raises:
        BundleNotFoundError: a bare name that names no registered model (it may have been
            meant as a path: the message says both were tried).
        UnknownReferenceError: ``"name:N"`` or ``"name@alias"`` names nothing registered.
    """
    from modelkeep.registry import Registry

    registry = Registry()
    try:
        version = registry.get(str(reference))
    except UnknownReferenceError as exc:
        if reference.version is not None or reference.alias is not None:
            raise
        raise BundleNotFoundError(
            str(reference), f"no such directory, and no model of that name in {registry}"
        ) from exc
    finally:
        registry.close()
    return Registered(version.path, version)


def load(source: str | os.PathLike[str], **options: Any) -> Model:
    """Load a verified model from a bundle directory or from the default registry.

    ``source`` is a bundle directory, or a registry reference: ``"churn"`` (the latest
    version), ``"churn:3"``, ``"churn@production"``, as :func:`resolve_source` decides. A
    reference is resolved through ``modelkeep.Registry()`` (``$MODELKEEP_HOME`` or
    ``~/.modelkeep``), and its stored manifest must still have the SHA-256 recorded when it
    was registered. Either way the bundle goes through every check of
    :func:`modelkeep._bundle.load`, with ``options`` (``format``, ``env``, ``trusted``,
    ``atol`` ...) passed on unchanged.

    With ``isolate=True`` all of it runs in a sandboxed worker process
    (:mod:`modelkeep.sandbox`), and so does every later prediction: the caller gets an
    :class:`~modelkeep.sandbox.IsolatedModel` with the same methods. ``limits`` (a
    :class:`modelkeep.sandbox.Limits`) bounds the worker's memory, CPU time, open files,
    file size and wall-clock time per call.

    Raises:
        BundleNotFoundError: no such directory, and no such model in the registry.
        UnknownReferenceError: ``"name:N"`` or ``"name@alias"`` names nothing registered.
        and every error of :func:`modelkeep._bundle.load`.

    Example:
        >>> model = modelkeep.load("churn@production")
    """
    # isolate= and limits= are taken from **options (not named parameters) so that
    # callers forwarding a dict of load options keep type-checking.
    isolate = options.pop("isolate", False)
    limits = options.pop("limits", None)
    if isolate is not False or limits is not None:
        return _load_isolated(source, isolate=isolate, limits=limits, options=options)
    found = resolve_source(source)
    if isinstance(found, Reference):
        registered = locate(found)
        return bundle.load(
            registered.path, manifest_sha256=registered.version.manifest_sha256, **options
        )
    return bundle.load(source, **options)


def _load_isolated(
    source: str | os.PathLike[str],
    *,
    isolate: object,
    limits: Limits | None,
    options: dict[str, Any],
) -> Model:
    """load(isolate=True): the reference is resolved here, everything else in the worker."""
    from modelkeep import sandbox
    from modelkeep.errors import InvalidArgumentError

    if isolate is not True:
        raise InvalidArgumentError(
            "isolate",
            "True or False" if limits is None else "True when limits= is given",
            repr(isolate),
        )
    found = resolve_source(source)
    if isinstance(found, Reference):
        registered = locate(found)
        options = {**options, "manifest_sha256": registered.version.manifest_sha256}
        return sandbox.load(registered.path, limits=limits, **options)
    return sandbox.load(found, limits=limits, **options)


def verify(source: str | os.PathLike[str], **options: Any) -> list[Check]:
    """:func:`modelkeep._bundle.verify` of a bundle directory or a registry reference.

    A reference's stored manifest is also checked against the SHA-256 recorded when the
    version was registered.
    """
    found = resolve_source(source)
    if isinstance(found, Reference):
        registered = locate(found)
        return bundle.verify(
            registered.path, manifest_sha256=registered.version.manifest_sha256, **options
        )
    return bundle.verify(source, **options)
