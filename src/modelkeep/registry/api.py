"""The registry: versions, aliases, lineage and diffs over a folder of immutable bundles.

Registering, in order (the order is what makes a crash harmless):

1. copy the bundle into ``staging/`` and fsync it;
2. verify the copy as ``load()`` does (hashes, safe deserialization, golden replay): what
   is checked is exactly what is stored, whatever happens to the source meanwhile;
3. make it read-only and rename it into ``bundles/`` (a complete folder, not yet visible);
4. in one write transaction, take the name's next version number and insert the row.

A process killed before 4 commits leaves only an unreferenced folder, which ``gc()``
removes; the row, the only thing that makes a version visible, is written last. Steps 1-4
hold the registry lock shared, so ``gc()`` (which holds it alone) never takes an
in-flight copy for debris.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep._reader import SIGNATURE_NAME, open_bundle
from modelkeep.errors import (
    BundleLayoutError,
    BundleRejectedError,
    IntegrityError,
    InvalidChoiceError,
    InvalidReferenceError,
    ManifestError,
    MissingDependencyError,
    ModelkeepError,
    UnknownReferenceError,
)
from modelkeep.manifest import MANIFEST_NAME, Manifest, parse_manifest
from modelkeep.registry import locks
from modelkeep.registry.artifacts import BundleFolders, copy_bundle, remove_tree
from modelkeep.registry.diff import diff_manifests
from modelkeep.registry.records import AliasEvent, ModelVersion, Problem
from modelkeep.registry.refs import check_alias, check_name, parse_reference

if TYPE_CHECKING:
    from modelkeep.model import Model
    from modelkeep.registry.store import Store

__all__ = ["HOME_VARIABLE", "INDEX_NAME", "Registry", "default_root"]

#: The environment variable naming the default registry's folder.
HOME_VARIABLE = "MODELKEEP_HOME"
INDEX_NAME = "registry.db"
_LOCK_NAME = "registry.lock"
_ENV_MODES = ("warn", "strict", "ignore")
# Without flock (Windows) gc() cannot tell an in-flight copy from debris; it waits this
# long before removing one.
_UNLOCKED_GRACE_S = 3600.0


def default_root() -> Path:
    """``$MODELKEEP_HOME``, or ``~/.modelkeep`` when it is not set."""
    home = os.environ.get(HOME_VARIABLE)
    return Path(home).expanduser() if home else Path("~/.modelkeep").expanduser()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


class Registry:
    """Registered model versions, their aliases and the log of every alias move.

    Args:
        root: the registry's folder; default ``$MODELKEEP_HOME`` or ``~/.modelkeep``. It is
            created on the first write; reading an absent registry finds it empty.

    References name versions everywhere: ``"churn"`` (the latest version), ``"churn:3"``
    (version 3), ``"churn@production"`` (the version the alias points to).

    Example:
        >>> registry = modelkeep.Registry()
        >>> v = registry.register("churn_model")
        >>> registry.set_alias("churn", "production", v.version, reason="beats v1 on f1")
        >>> model = registry.load("churn@production")
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = (Path(root).expanduser() if root is not None else default_root()).absolute()
        self._folders = BundleFolders(self.root)
        self._lock = self.root / _LOCK_NAME
        self._store: Store | None = None

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the index's database engine (the registry stays usable; it reopens)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def exists(self) -> bool:
        """Whether this registry has an index yet (anything was ever registered)."""
        return (self.root / INDEX_NAME).is_file()

    def _open(self, *, create: bool) -> Store | None:
        if self._store is None:
            if not create and not self.exists:
                return None
            from modelkeep.registry.store import Store

            self.root.mkdir(parents=True, exist_ok=True)
            self._store = Store(f"sqlite:///{self.root / INDEX_NAME}", location=str(self.root))
        return self._store

    def _writer(self) -> Store:
        store = self._open(create=True)
        if store is None:  # pragma: no cover - create=True always opens
            raise RuntimeError("unreachable")
        return store

    # --------------------------------------------------------------------------- register

    def register(
        self,
        bundle_path: str | os.PathLike[str],
        name: str | None = None,
        *,
        registered_by: str | None = None,
        parent: str | None = None,
        env: str = "warn",
        trusted: Sequence[str] | None = None,
        **load_options: Any,
    ) -> ModelVersion:
        """Verify a bundle, store an immutable copy and index it as the next version.

        Args:
            bundle_path: the bundle directory (as written by :func:`modelkeep.save`).
            name: the name to register under; default the manifest's name.
            registered_by: who registers it; default the OS user.
            parent: a reference to the version this one was derived from (recorded as
                ``name:version``); default the manifest's ``lineage.parent``.
            env, trusted, load_options: passed to :func:`modelkeep.bundle.load` for the
                verification. ``env="warn"`` (default): environment differences warn and
                the golden replay decides, since it shows whether predictions reproduce
                here; ``"strict"`` refuses any difference.

        Returns:
            The new :class:`ModelVersion`; versions of one name are numbered 1, 2, 3 ...
            and a number is never given twice, even after a delete.

        Raises:
            BundleNotFoundError: no bundle at ``bundle_path``.
            BundleLayoutError: the bundle holds a symlink or special file anywhere.
            BundleRejectedError: the bundle fails verification (hashes, trust, golden
                samples ...); nothing is added.
            InvalidReferenceError: an invalid name (pass ``name=``).
            UnknownReferenceError: ``parent`` names no registered version.
            RegistryError: the index cannot be written.
        """
        if env not in _ENV_MODES:
            raise InvalidChoiceError(str(env), _ENV_MODES, "env")
        if name is not None:
            check_name(name)
        by = registered_by if registered_by is not None else _os_user()
        parent_ref = self.get(parent).ref if parent is not None else None
        source = Path(bundle_path).absolute()
        store = self._writer()
        with locks.shared(self._lock):
            staged = self._folders.stage(source)
            folder: str | None = None
            try:
                manifest_bytes = (staged / MANIFEST_NAME).read_bytes()
                manifest = _parse(manifest_bytes, source)
                model_name = check_name(name if name is not None else manifest.name)
                _verify(staged, source, env=env, trusted=trusted, options=load_options)
                row = _index_row(manifest, manifest_bytes, source, by, parent_ref)
                folder = self._folders.publish(staged)
                row["folder"] = folder
                version = store.add_version(model_name, row)
            except BaseException:
                if folder is None:
                    remove_tree(staged)
                else:
                    self._discard_unindexed(folder)
                raise
        return self.get(f"{model_name}:{version}")

    def _discard_unindexed(self, folder: str) -> None:
        # The insert failed, or so it seemed: remove the folder only if no row names it.
        try:
            if folder not in self._writer().folders():
                self._folders.remove(folder)
        except (ModelkeepError, OSError):
            pass  # left for gc(), which checks the index before removing anything

    def convert(
        self,
        ref: str,
        *,
        to: str = "onnx",
        validation: Any = None,
        force: bool = False,
        trusted: Sequence[str] | None = None,
        registered_by: str | None = None,
    ) -> ModelVersion:
        """Convert a registered version and register the result as a new version.

        Stored versions are immutable: the bundle is copied to a scratch folder, converted
        there with :func:`modelkeep.conversion.convert` (parity check included), and the
        result registered under the same name with ``ref``'s version as its parent.

        Raises:
            UnknownReferenceError, InvalidReferenceError: ``ref`` names nothing registered.
            and every error of :func:`modelkeep.conversion.convert` and :meth:`register`;
            nothing is registered when any is raised.
        """
        import tempfile

        from modelkeep.conversion import convert

        source = self.get(ref)
        with tempfile.TemporaryDirectory(prefix="modelkeep-convert-") as scratch:
            work = Path(scratch) / source.name
            _copy_bundle(source.path, work)
            convert(work, to=to, validation=validation, force=force, trusted=trusted)
            return self.register(
                work,
                name=source.name,
                parent=source.ref,
                registered_by=registered_by,
                trusted=trusted,
            )

    # ------------------------------------------------------------------------------- read

    def get(self, ref: str) -> ModelVersion:
        """The version a reference names.

        Raises:
            InvalidReferenceError: ``ref`` does not parse.
            UnknownReferenceError: no such name, version or alias.
        """
        parsed = parse_reference(ref)
        store = self._open(create=False)
        if store is None:
            raise UnknownReferenceError(
                ref, kind="name", name=parsed.name, registry=str(self.root), known=[]
            )
        row = store.resolve(parsed, ref)
        return ModelVersion.from_row(row, self._folders.path(row["folder"]))

    def path(self, ref: str) -> Path:
        """The stored bundle directory of the version ``ref`` names (read-only)."""
        return self.get(ref).path

    def load(self, ref: str, **options: Any) -> Model:
        """Resolve ``ref`` and load its bundle with every check of :func:`modelkeep.load`.

        ``options`` are those of :func:`modelkeep.bundle.load` (``env``, ``trusted`` ...).
        """
        from modelkeep import bundle

        return bundle.load(self.get(ref).path, **options)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version of ``name`` (or of every name), by name then version number."""
        store = self._open(create=False)
        if store is None:
            return []
        rows = store.versions(check_name(name) if name is not None else None)
        return [ModelVersion.from_row(r, self._folders.path(r["folder"])) for r in rows]

    def models(self) -> list[ModelVersion]:
        """The latest version of each name."""
        store = self._open(create=False)
        if store is None:
            return []
        rows = store.versions(latest_only=True)
        return [ModelVersion.from_row(r, self._folders.path(r["folder"])) for r in rows]

    def names(self) -> list[str]:
        """Every name with at least one version."""
        store = self._open(create=False)
        return [] if store is None else store.names()

    # ---------------------------------------------------------------------------- aliases

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> AliasEvent | None:
        """Point ``name@alias`` at ``version``; log the move (from, to, when, by, reason).

        Returns the logged move, or None when the alias already pointed there (nothing is
        logged then). The read of the old value, the move and the log entry are one
        transaction, so concurrent moves never leave the log out of step with the alias.

        Raises:
            InvalidReferenceError: an invalid name or alias.
            UnknownReferenceError: no such name or version.
        """
        check_name(name)
        check_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidChoiceError(repr(version), ["a version number >= 1"], "version")
        entry = self._writer().set_alias(
            name, alias, version, by=by if by is not None else _os_user(), reason=reason
        )
        return AliasEvent(**entry) if entry is not None else None

    def delete_alias(
        self, name: str, alias: str, *, reason: str | None = None, by: str | None = None
    ) -> AliasEvent:
        """Remove ``name@alias``; the removal is logged like a move (to None).

        Raises:
            UnknownReferenceError: no such name or alias.
        """
        check_name(name)
        check_alias(alias)
        store = self._open(create=False)
        if store is None:
            raise UnknownReferenceError(
                f"{name}@{alias}", kind="name", name=name, registry=str(self.root), known=[]
            )
        by = by if by is not None else _os_user()
        entry = store.set_alias(name, alias, None, by=by, reason=reason)
        if entry is None:  # pragma: no cover - the store raises for an absent alias
            raise RuntimeError("unreachable")
        return AliasEvent(**entry)

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version for ``name``."""
        store = self._open(create=False)
        return {} if store is None else store.aliases(check_name(name))

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every alias move for ``name`` (or one of its aliases), oldest first.

        Raises:
            UnknownReferenceError: the registry never held ``name``.
        """
        check_name(name)
        if alias is not None:
            check_alias(alias)
        store = self._open(create=False)
        events = [] if store is None else store.history(name, alias)
        if not events and name not in self.names():
            raise UnknownReferenceError(
                name, kind="name", name=name, registry=str(self.root), known=self.names()
            )
        return [AliasEvent(**e) for e in events]

    # ----------------------------------------------------------------------------- delete

    def delete(self, ref: str) -> ModelVersion:
        """Delete one version (``name:version``); its number is never given again.

        Raises:
            InvalidReferenceError: ``ref`` is not of the form ``name:version``.
            VersionInUseError: an alias points to the version.
            UnknownReferenceError: no such version.
        """
        parsed = parse_reference(ref)
        if parsed.version is None:
            raise InvalidReferenceError(
                ref,
                "delete needs the exact version",
                expected="NAME:VERSION, e.g. 'churn:3'",
            )
        version = self.get(ref)
        folder = self._writer().delete_version(parsed.name, parsed.version, ref)
        with suppress(OSError):  # unreferenced now: if this fails, gc() removes it
            self._folders.remove(folder)
        return version

    # ------------------------------------------------------------------------- diff, card

    def diff(self, ref_a: str, ref_b: str) -> dict[str, Any]:
        """What changed from ``ref_a`` to ``ref_b``, as JSON-serializable data.

        See :func:`modelkeep.registry.diff.diff_manifests` for the sections; ``a`` and
        ``b`` name the two exact versions compared.
        """
        a, b = self.get(ref_a), self.get(ref_b)
        result = diff_manifests(a.manifest(), b.manifest())
        return {"a": a.ref, "b": b.ref, **result}

    def card(self, ref: str, *, html: bool = False) -> str:
        """A model card for the version ``ref`` names: Markdown, or a standalone HTML page."""
        from modelkeep.registry.card import build_card, to_html, to_markdown

        version = self.get(ref)
        title, sections = build_card(version.manifest(), version, self.history(version.name))
        return to_html(title, sections) if html else to_markdown(title, sections)

    # -------------------------------------------------------------------- check and gc

    def check(self) -> list[Problem]:
        """Re-verify every stored bundle and the index; report problems, fix none.

        Checks the index (database integrity, version counters, aliases, the alias log
        against the aliases), that each indexed folder exists with its manifest and every
        artifact unchanged (size and SHA-256), and that no unreferenced folder lies in the
        store (crash debris: ``gc()`` removes it). An empty list means all is well.
        """
        store = self._open(create=False)
        problems = [Problem(*p) for p in store.consistency()] if store is not None else []
        # Alone with the folders for a moment: in-flight registrations finish first, so
        # their copies are not reported as debris.
        with locks.exclusive(self._lock) if self.root.is_dir() else nullcontext():
            indexed = store.folders() if store is not None else {}
            published = self._folders.published()
            staged = self._folders.staged()
        for folder, (ref, expected) in sorted(indexed.items(), key=lambda item: item[1]):
            problem = self._check_folder(folder, ref, expected)
            if (
                problem is not None
                and problem.kind == "missing_folder"
                and store is not None
                and folder not in store.folders()
            ):
                continue  # deleted since the snapshot: not a problem
            if problem is not None:
                problems.append(problem)
        for folder in published:
            if folder not in indexed:
                problems.append(Problem("unreferenced", f"bundles/{folder}", _DEBRIS))
        for entry in staged:
            problems.append(Problem("unreferenced", f"staging/{entry}", _DEBRIS))
        return problems

    def _check_folder(self, folder: str, ref: str, expected: str) -> Problem | None:
        path = self._folders.path(folder)
        if not path.is_dir():
            return Problem("missing_folder", ref, f"bundles/{folder} does not exist")
        try:
            with open_bundle(path) as reader:
                try:
                    data = reader.read(MANIFEST_NAME)
                except OSError as exc:
                    return Problem(
                        "manifest_changed", ref, f"{MANIFEST_NAME} cannot be read: {exc}"
                    )
                if hashlib.sha256(data).hexdigest() != expected:
                    return Problem(
                        "manifest_changed", ref, f"{MANIFEST_NAME} sha256 differs from the index"
                    )
                for artifact in _parse(data, path).artifacts:
                    reader.check_artifact(artifact)
        except (BundleRejectedError, IntegrityError, BundleLayoutError) as exc:
            return Problem("artifact_changed", ref, str(exc))
        return None

    def gc(self) -> list[str]:
        """Remove folders no index row references (left by crashed registrations).

        Waits for in-flight registrations, then removes every unreferenced folder in
        ``bundles/`` and everything in ``staging/``. Returns the removed paths, relative to
        the registry root. Never touches an indexed version.
        """
        if not self.root.is_dir():
            return []
        removed: list[str] = []
        with locks.exclusive(self._lock):
            store = self._open(create=False)
            indexed = store.folders() if store is not None else {}
            for folder in self._folders.published():
                if folder not in indexed and _old_enough(self._folders.path(folder)):
                    self._folders.remove(folder)
                    removed.append(f"bundles/{folder}")
            for entry in self._folders.staged():
                if _old_enough(self._folders.staging / entry):
                    remove_tree(self._folders.staging / entry)
                    removed.append(f"staging/{entry}")
        return removed


_DEBRIS = "not in the index (left by an interrupted registration); gc() removes it"


def _old_enough(path: Path) -> bool:
    if locks.LOCKS_AVAILABLE:
        return True  # gc() holds the lock alone: nothing is in flight
    try:  # pragma: no cover - Windows
        return time.time() - path.stat().st_mtime > _UNLOCKED_GRACE_S
    except OSError:  # pragma: no cover
        return False


def _parse(data: bytes, source: Path) -> Manifest:
    where = str(source / MANIFEST_NAME)
    try:
        return parse_manifest(data.decode("utf-8"), where)
    except UnicodeDecodeError as exc:
        raise BundleRejectedError(str(source), ManifestError(where, f"not UTF-8 ({exc})")) from exc
    except ManifestError as exc:
        raise BundleRejectedError(str(source), exc) from exc


def _verify(
    staged: Path, source: Path, *, env: str, trusted: Sequence[str] | None, options: Any
) -> None:
    from modelkeep import bundle

    try:
        bundle.load(staged, env=env, trusted=trusted, **options)  # type: ignore[arg-type]
    except MissingDependencyError:
        raise
    except ModelkeepError as exc:
        raise BundleRejectedError(str(source), exc) from exc


def schema_hash(manifest: Manifest) -> str:
    """Hash of the input contract: feature names, order and logical types."""
    contract = [[f.name, f.dtype] for f in manifest.features]
    return "sha256:" + hashlib.sha256(json.dumps(contract).encode()).hexdigest()


def _index_row(
    manifest: Manifest, manifest_bytes: bytes, source: Path, by: str, parent: str | None
) -> dict[str, Any]:
    env = manifest.environment
    labels = manifest.target.labels
    return {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "created_at": manifest.created_at.isoformat(),
        "registered_at": _now(),
        "registered_by": by,
        "task": manifest.task,
        "model_type": manifest.model_type,
        "metrics": dict(manifest.metrics),
        "data_version": manifest.data.data_version,
        "data_fingerprint": manifest.data.fingerprint,
        "schema_hash": schema_hash(manifest),
        "label_map": [[e.value, e.label] for e in labels] if labels else None,
        "environment": {
            "python": f"{env.python_implementation} {env.python_version}",
            "platform": env.platform,
            "packages": dict(env.packages),
        },
        "formats": [
            {
                "format": a.format,
                "path": a.path,
                "size": a.size,
                "sha256": a.sha256,
                "parity": a.details.get("parity"),
            }
            for a in manifest.artifacts
        ],
        "parent": parent if parent is not None else manifest.lineage.parent,
        "git_commit": manifest.lineage.git_commit,
        "tags": list(manifest.tags),
        "description": manifest.description,
        "source": str(source),
    }


def _now() -> str:
    from modelkeep.registry.store import utc_now

    return utc_now()


def _copy_bundle(source: Path, target: Path) -> None:
    """A writable copy of a stored (read-only) bundle, without its signature.

    The copy is about to change, so a signature over the original could not hold for it.
    """
    with open_bundle(source) as reader:
        target.mkdir(parents=True)
        copy_bundle(reader, target, leave_out={SIGNATURE_NAME})
