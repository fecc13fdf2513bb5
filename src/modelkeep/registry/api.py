"""The registry: versions, aliases, lineage and diffs over a folder of immutable bundles.

Registering, in order (the order is what makes a crash harmless):

1. copy the bundle into ``staging/`` and fsync it;
2. verify the copy as ``load()`` does (hashes, safe deserialization, golden replay): what
   is checked is exactly what is stored, whatever happens to the source meanwhile;
3. make it read-only and rename it into ``bundles/`` (a complete folder, not yet visible);
4. in one write transaction: take the name's next version number, write the bundle's
   record ``bundles/<id>.json`` (state ``pending``: name, version, the whole index row;
   fsynced), insert the row, commit;
5. rewrite the record as ``committed``.

The row, the only thing that makes a version visible, is committed last but one. Steps
1-5 hold the registry lock shared, so ``gc()`` (which holds it alone) never takes an
in-flight copy for debris. Alias moves and deletes hold it shared too; a move is appended
to ``alias-log.jsonl`` (fsynced) before its transaction commits, and a delete rewrites the
record as ``deleted`` (a tombstone that keeps the number taken) before removing the folder.
See ``journal.py`` for the formats.

The index is therefore never the only copy. ``rebuild()`` writes a new index from the
records and the alias log: versions, aliases and their history come back, and every name's
counter goes past the highest number any record or log line holds, so numbers never
restart. An index that is missing, empty or unreadable while ``bundles/`` holds anything
is :class:`IndexLostError` for every operation but ``rebuild()``: read as empty it would
hide every version, and ``gc()`` would delete them.

``gc()`` removes only what it can prove is debris: ``staging/``, temporary record files,
and unindexed folders younger than ``_CRASH_WINDOW_S`` whose record is missing or still
``pending`` (a registration killed before its commit), plus the folders of deleted
versions (a ``deleted`` record, or a ``committed`` one whose number the index's counter
has passed with no row left: only a delete removes a row). A committed record whose number
the index never gave is a version the index lost: ``check()`` reports it and ``gc()`` keeps
it for ``rebuild()``. An unindexed folder without a record that is older than the window
(a bundle from before records existed) is kept too. ``gc()`` also writes what an older
modelkeep did not: the records of indexed versions and the alias log.

Reading needs no write access: an index in a folder this process cannot write is opened
read-only and immutable (see ``store.py``), and locking uses the existing lock file
read-only. Waits for the lock end after ``lock_timeout`` seconds (``locks.py``).

A team registry (an index on PostgreSQL, bundles in S3: ``remote.py``) keeps the same
rules with the store's own means. Records are ``records/<id>.json`` and each alias move is
an object ``aliases/<id>.json`` written inside its transaction. An index whose tables were
dropped or whose rows were removed while the store holds committed records is
:class:`IndexLostError` (checked only when the index is empty: one small query). Its
``rebuild()`` first writes to the store whatever the index holds and the store lacks, then
replaces every row in one transaction with the tables locked against writers, so nothing
the old index held is lost and readers see the old index or the new one. ``check()``
hashes the objects in S3, never the download cache. Locks cover one machine only, so
``gc()`` removes an unindexed listing, an unreferenced blob or an orphan alias move only
once it is an hour old (``remote.GRACE_S``): a registration on another machine may still
commit anything younger. An index on a server over local bundle folders journals its alias
moves in ``alias-log.jsonl`` as a local registry does.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from modelkeep._fs import fsync_dir
from modelkeep._modes import EnvMode
from modelkeep._reader import SIGNATURE_NAME, manifest_from_bytes, open_bundle
from modelkeep.errors import (
    ArtifactStoreError,
    BundleLayoutError,
    BundleRejectedError,
    IndexLostError,
    IntegrityError,
    InvalidChoiceError,
    InvalidReferenceError,
    ManifestError,
    MissingDependencyError,
    ModelkeepError,
    RegistryIndexError,
    RegistryLocationError,
    RegistryLockedError,
    UnknownReferenceError,
)
from modelkeep.manifest import MANIFEST_NAME, Manifest
from modelkeep.registry import journal, locks
from modelkeep.registry._time import utc_now
from modelkeep.registry.artifacts import BundleFolders
from modelkeep.registry.diff import VersionDiff, diff_manifests
from modelkeep.registry.records import (
    AliasEvent,
    IndexedVersion,
    ModelVersion,
    Problem,
    VersionRecord,
)
from modelkeep.registry.refs import check_alias, check_name, parse_reference
from modelkeep.registry.remote import GRACE_S, ObjectArtifacts, is_url

if TYPE_CHECKING:
    from modelkeep._model import Model
    from modelkeep.registry.backends import ArtifactStore, MetadataStore
    from modelkeep.registry.store import Restoration, SqlStore

__all__ = [
    "ARTIFACTS_URI_VARIABLE",
    "HOME_VARIABLE",
    "INDEX_NAME",
    "REGISTRY_URI_VARIABLE",
    "Registry",
    "default_root",
]

#: The environment variable naming the default registry's folder.
HOME_VARIABLE = "MODELKEEP_HOME"
#: The environment variables naming a team registry's index (a database URL) and artifact
#: store (an fsspec URL such as ``s3://bucket/prefix``); read when ``Registry()`` is given
#: no root.
REGISTRY_URI_VARIABLE = "MODELKEEP_REGISTRY_URI"
ARTIFACTS_URI_VARIABLE = "MODELKEEP_ARTIFACTS_URI"
INDEX_NAME = "registry.db"
_LOCK_NAME = "registry.lock"
_CREATE_LOCK_NAME = "registry.create.lock"
_ENV_MODES = ("warn", "strict", "ignore")
# Without flock (Windows) gc() cannot tell an in-flight copy from debris; it waits this
# long before removing one.
_UNLOCKED_GRACE_S = 3600.0
# An unindexed folder without a committed record is debris only if it is younger than
# this: a crash leaves such a folder moments before gc() or check() next runs, while an
# old one may be a bundle from before records existed, whose row was lost.
_CRASH_WINDOW_S = 24 * 3600.0
#: How long a registry operation waits for the lock by default, in seconds.
LOCK_TIMEOUT_S = 60.0
# Threads reading an object store at once in check(): S3 serves many requests in parallel.
_CHECK_THREADS = 8


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
            created on the first write; reading an absent registry finds it empty. Or a
            database URL (``postgresql+psycopg://user@host/db``): a team registry whose
            index lives there, with ``$MODELKEEP_HOME`` holding only local things (locks,
            staging copies, the download cache). With no root, ``$MODELKEEP_REGISTRY_URI``
            (and ``$MODELKEEP_ARTIFACTS_URI``) name a team registry when set.
        lock_timeout: how long to wait for the registry lock (another process's
            registration, gc or check) before raising :class:`RegistryLockedError`.
        metadata: the index (a :class:`~modelkeep.registry.backends.MetadataStore`);
            default a SQLite file ``registry.db`` in ``root``, created whole on the first
            write. A store given here is used as it is: ``rebuild()`` does not apply to it.
        artifacts: where bundles are stored: an
            :class:`~modelkeep.registry.backends.ArtifactStore`, or an fsspec URL
            (``s3://bucket/prefix``: endpoint and credentials from the standard AWS
            variables) or folder for :class:`~modelkeep.registry.remote.ObjectArtifacts`;
            default folders under ``root`` (``bundles/``, ``staging/``).
        full_check: with a remote artifact store, re-hash every file of a cached bundle
            each time it is used (sizes and the manifest's hash are always checked).

    ``root`` holds the lock files (and the alias log) whatever the stores.

    References name versions everywhere: ``"churn"`` (the latest version), ``"churn:3"``
    (version 3), ``"churn@production"`` (the version the alias points to).

    Example:
        >>> registry = modelkeep.Registry()
        >>> v = registry.register("churn_model")
        >>> registry.set_alias("churn", "production", v.version, reason="beats v1 on f1")
        >>> model = registry.load("churn@production")
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = LOCK_TIMEOUT_S,
        metadata: MetadataStore | None = None,
        artifacts: ArtifactStore | str | os.PathLike[str] | None = None,
        full_check: bool = False,
    ) -> None:
        self._index_url: str | None = None
        if root is None and metadata is None and os.environ.get(REGISTRY_URI_VARIABLE):
            root = os.environ[REGISTRY_URI_VARIABLE]
        if isinstance(root, str) and is_url(root):
            self._index_url = root
            root = None
            if artifacts is None and os.environ.get(ARTIFACTS_URI_VARIABLE):
                artifacts = os.environ[ARTIFACTS_URI_VARIABLE]
        self.root = (Path(root).expanduser() if root is not None else default_root()).absolute()
        self.lock_timeout = lock_timeout
        self._folders: ArtifactStore
        if artifacts is None:
            self._folders = BundleFolders(self.root)
        elif isinstance(artifacts, (str, os.PathLike)):
            self._folders = ObjectArtifacts(os.fspath(artifacts), self.root, full_check=full_check)
        else:
            self._folders = artifacts
        self._remote = isinstance(self._folders, ObjectArtifacts)
        self._lock = self.root / _LOCK_NAME
        self._given = metadata
        self._store: MetadataStore | None = metadata

    @property
    def location(self) -> str:
        """The index's location as error messages name it (a URL without its password)."""
        if self._index_url is not None:
            return _redact(self._index_url)
        return str(self.root)

    @property
    def team(self) -> bool:
        """Whether the index is not the local SQLite file (a database URL or a given
        store): its alias log is the index's own, and locks cover this machine only."""
        return self._index_url is not None or self._given is not None

    def __repr__(self) -> str:
        if self._index_url is not None:
            return f"Registry({self.location!r}, artifacts={self._folders!r})"
        return f"Registry({str(self.root)!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the index's database engine (the registry stays usable; it reopens)."""
        if self._store is not None:
            self._store.close()
            self._store = self._given

    @property
    def exists(self) -> bool:
        """Whether this registry has an index yet (anything was ever registered)."""
        return self.team or (self.root / INDEX_NAME).is_file()

    @overload
    def _open(self, *, create: Literal[True]) -> MetadataStore: ...

    @overload
    def _open(self, *, create: Literal[False]) -> MetadataStore | None: ...

    def _open(self, *, create: bool) -> MetadataStore | None:
        """The index; None only when reading (``create`` false) a registry with none."""
        if self._store is not None:
            if create and self.team:  # the lock files still live in root
                self._require_writable("writing to the registry")
            return self._store
        from modelkeep.registry.store import SqlStore, sqlite_url

        if self._index_url is not None:
            if create:
                self._require_writable("writing to the registry")
            # A server's index cannot be missing, but it can be lost: its tables dropped, or
            # its rows removed. Only then is the store asked what it holds, so the check
            # costs one small query.
            store = SqlStore(
                self._index_url,
                location=self.location,
                create=True,
                before_create=lambda: self._refuse_lost("a database without the registry's tables"),
            )
            if store.is_empty():
                try:
                    self._refuse_lost(
                        "an index without versions or version counters", store.is_empty
                    )
                except BaseException:
                    store.close()
                    raise
            self._store = store
            return self._store

        operation = "writing to the registry" if create else "reading the registry"
        self._check_folder_path(operation)
        index = self.root / INDEX_NAME
        if _size(index) == 0:
            held = self._held()
            # Stat again: a concurrent first registration creates the index before it
            # writes any record, so a record seen here with no index means it was lost.
            if held and _size(index) == 0:
                state = "an empty file" if index.exists() else "no such file"
                raise IndexLostError(str(self.root), state, held)
            if not create and _size(index) == 0:
                return None
        if create:
            self._require_writable(operation)
        read_only = not os.access(self.root, os.W_OK)
        if create and _size(index) == 0:
            self._create_index(index)
        try:
            self._store = SqlStore(
                sqlite_url(str(index), read_only=read_only), location=str(self.root), create=False
            )
        except RegistryIndexError as exc:
            held = self._held()
            if not held:
                raise
            cause = exc.cause if exc.cause is not None else exc
            state = f"an index that cannot be read ({type(cause).__name__}: {cause})"
            raise IndexLostError(str(self.root), state, held, cause) from exc
        return self._store

    def _create_index(self, index: Path) -> None:
        """Create the index once, whole, however many processes register at the same time.

        Each process that finds no index takes the creation lock; the first builds the
        tables in a private file and renames it into place, the others then find it there.
        Nobody ever opens an index whose tables are half made (which would read as a
        damaged index).
        """
        with locks.exclusive(
            self.root / _CREATE_LOCK_NAME,
            role="create index",
            timeout=self.lock_timeout,
            registry=str(self.root),
        ):
            if _size(index) == 0:
                _build_index(self.root, index)

    def _refuse_lost(self, state: str, still_empty: Callable[[], bool] | None = None) -> None:
        """Raise :class:`IndexLostError` if the store holds bundles (a team index found
        in ``state``, empty).

        ``still_empty`` asks the index again once the store was read: a first
        registration on another machine may commit its row, then write its committed
        record, between the index's answer and the store's; a record is committed only
        after its row, so a committed record beside an index still empty means it was
        lost (as the SQLite path stats its file again)."""
        held = self._held()
        if held and (still_empty is None or still_empty()):
            raise IndexLostError(self.location, state, held, on_server=True)

    def _writer(self) -> MetadataStore:
        return self._open(create=True)

    def _held(self) -> int:
        """How many bundles the store holds: records, and folders without one.

        Beside an index on a server, shared by registrations on other machines, a pending
        record or a bundle without a record counts only once older than any registration
        (``GRACE_S``): the first registration into a new team registry holds them before
        its row commits, while the index is still empty.
        """
        records = self._folders.read_records()
        folders = set(records) | set(self._folders.published())
        if self._index_url is None:
            return len(folders)
        return sum(
            1
            for folder in folders
            if (folder in records and records[folder]["state"] != "pending")
            or _older_than_grace(self._stored_at(folder))
        )

    def _stored_at(self, folder: str) -> float | None:
        """When the bundle ``folder`` was stored (POSIX time); None if it is not."""
        if isinstance(self._folders, ObjectArtifacts):
            return self._folders.modified(folder)
        try:
            return self._folders.path(folder).stat().st_mtime
        except OSError:
            return None

    def _check_folder_path(self, operation: str) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise RegistryLocationError(
                str(self.root),
                operation,
                str(self.root),
                "a folder, and it is a file",
                f"Point {HOME_VARIABLE} (or Registry(root=...)) at a folder, or move the "
                "file away.",
            )

    def _require_writable(self, operation: str, cause: OSError | None = None) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            cause = exc
        if cause is not None or not os.access(self.root, os.W_OK):
            raise RegistryLocationError(
                str(self.root),
                operation,
                str(self.root),
                "a folder this process can write, and it is not (a read-only mount or "
                "image layer?)",
                "Reading works as it is; run this where the registry is writable, or as a "
                "user who may write it.",
                cause,
            ) from cause

    @contextmanager
    def _locked(self, role: str, *, alone: bool) -> Iterator[None]:
        """The registry lock, shared (writers) or alone (gc, check, rebuild)."""
        hold = locks.exclusive if alone else locks.shared
        stack = ExitStack()
        try:
            stack.enter_context(
                hold(self._lock, role=role, timeout=self.lock_timeout, registry=str(self.root))
            )
        except RegistryLockedError:
            raise  # a TimeoutError, so an OSError too, but not about the folder
        except OSError as exc:  # the lock file cannot be created: a read-only folder
            self._require_writable(role, exc)
        with stack:
            yield

    # --------------------------------------------------------------------------- register

    def register(
        self,
        bundle_path: str | os.PathLike[str],
        name: str | None = None,
        *,
        registered_by: str | None = None,
        parent: str | None = None,
        env: EnvMode = "warn",
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
            env, trusted, load_options: passed to :func:`modelkeep._bundle.load` for the
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
            RegistryIndexError: the index cannot be written.
        """
        if env not in _ENV_MODES:
            raise InvalidChoiceError(str(env), _ENV_MODES, "env")
        if name is not None:
            check_name(name)
        by = registered_by if registered_by is not None else _os_user()
        parent_ref = self.get(parent).ref if parent is not None else None
        source = Path(bundle_path).absolute()
        store = self._writer()
        with self._locked("register", alone=False):
            staged = self._folders.stage(source)
            folder: str | None = None
            try:
                manifest_bytes = (staged / MANIFEST_NAME).read_bytes()
                manifest = _parse(manifest_bytes, source)
                model_name = check_name(name if name is not None else manifest.name)
                _verify(staged, source, env=env, trusted=trusted, options=load_options)
                folder = self._folders.publish(staged)
                record = _index_record(manifest, manifest_bytes, source, by, parent_ref, folder)
                published = folder

                def record_pending(number: int) -> None:
                    self._record(published, "pending", model_name, number, record)

                version = store.add_version(model_name, record, before_commit=record_pending)
            except BaseException:
                if folder is None:
                    self._folders.remove_staged(staged.name)
                else:
                    self._discard_unindexed(folder)
                raise
            with suppress(OSError):  # left pending: gc() finishes it from the index
                self._record(folder, "committed", model_name, version, record)
        ref = f"{model_name}:{version}"
        try:
            return self.get(ref)
        except ArtifactStoreError:
            # Registered and indexed: only reading it back into the download cache failed
            # (the object store went away after the commit). The version exists; its
            # bundle is fetched on the next get() or load().
            return self._version(store.resolve(parse_reference(ref), ref))

    def _record(
        self,
        folder: str,
        state: journal.RecordState,
        name: str,
        version: int,
        record: VersionRecord,
    ) -> None:
        self._folders.write_record(folder, state=state, name=name, version=version, record=record)

    def _discard_unindexed(self, folder: str) -> None:
        # The insert failed, or so it seemed: remove the folder only if no row names it.
        try:
            if folder not in self._writer().folders():
                self._folders.remove(folder)
                self._folders.remove_record(f"{folder}.json")
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
        there with :func:`modelkeep._conversion.convert` (parity check included), and the
        result registered under the same name with ``ref``'s version as its parent.

        Raises:
            UnknownReferenceError, InvalidReferenceError: ``ref`` names nothing registered.
            and every error of :func:`modelkeep._conversion.convert` and :meth:`register`;
            nothing is registered when any is raised.
        """
        from modelkeep._conversion import convert

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
        return self._version(store.resolve(parsed, ref), fetch=True)

    def _version(self, indexed: IndexedVersion, *, fetch: bool = False) -> ModelVersion:
        """The version with its bundle's local path; from a remote store the bundle is in
        the download cache (keyed by manifest hash) only when ``fetch`` is true."""
        folders = self._folders
        if isinstance(folders, ObjectArtifacts) and not fetch:
            path = folders.cache.entry(indexed.record.manifest_sha256)
        else:
            path = folders.path(indexed.record.folder)
            if isinstance(folders, ObjectArtifacts):
                _check_fetched(path, indexed)
        return ModelVersion.from_record(indexed, path)

    def path(self, ref: str) -> Path:
        """The stored bundle directory of the version ``ref`` names (read-only)."""
        return self.get(ref).path

    def load(self, ref: str, **options: Any) -> Model:
        """Resolve ``ref`` and load its bundle with every check of :func:`modelkeep.load`.

        ``options`` are those of :func:`modelkeep._bundle.load` (``env``, ``trusted`` ...).
        """
        from modelkeep import _bundle as bundle

        version = self.get(ref)
        folders = self._folders
        try:
            return bundle.load(version.path, **options)
        except (IntegrityError, BundleLayoutError):
            if not isinstance(folders, ObjectArtifacts):
                raise
            # A cache hit is checked quickly (sizes, the manifest's hash): an artifact
            # swapped for other bytes of its size shows only now. Check every hash, fetch
            # what differs again, and load that; a second failure is the store's.
            indexed = self._writer().resolve(parse_reference(version.ref), version.ref)
            path = folders.path(indexed.record.folder, full_check=True)
            _check_fetched(path, indexed)
            return bundle.load(path, **options)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version of ``name`` (or of every name), by name then version number."""
        store = self._open(create=False)
        if store is None:
            return []
        found = store.versions(check_name(name) if name is not None else None)
        return [self._version(indexed) for indexed in found]

    def models(self) -> list[ModelVersion]:
        """The latest version of each name."""
        store = self._open(create=False)
        if store is None:
            return []
        return [self._version(indexed) for indexed in store.versions(latest_only=True)]

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
        store = self._writer()
        with self._locked("alias set", alone=False):
            entry = store.set_alias(
                name,
                alias,
                version,
                by=by if by is not None else _os_user(),
                reason=reason,
                before_commit=self._log_move,
            )
        return entry

    def _log_move(self, entry: AliasEvent) -> None:
        """Journal an alias move beside the bundles (``rebuild()`` replays it): an object
        in an object store, a line of ``alias-log.jsonl`` beside bundle folders."""
        if isinstance(self._folders, ObjectArtifacts):
            self._folders.write_alias_move(entry.to_dict())
        else:
            journal.append_alias_move(self.root, entry.to_dict())

    def _logged_moves(self) -> list[dict[str, Any]]:
        """The alias moves journaled beside the bundles, by id."""
        if isinstance(self._folders, ObjectArtifacts):
            return self._folders.read_alias_moves()
        return journal.read_alias_log(self.root)

    def _logged_times(self) -> dict[int, str | None]:
        """Journaled alias move id -> when it was made (None: not read, as in an object
        store, where one listing gives the ids and each move is one object)."""
        if isinstance(self._folders, ObjectArtifacts):
            return dict.fromkeys(self._folders.alias_ages())
        return {e["id"]: e.get("at") for e in journal.read_alias_log(self.root)}

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
        self._require_writable("removing an alias")
        with self._locked("alias rm", alone=False):
            entry = store.set_alias(
                name, alias, None, by=by, reason=reason, before_commit=self._log_move
            )
        if entry is None:  # pragma: no cover - stores raise this themselves
            raise UnknownReferenceError(
                f"{name}@{alias}",
                kind="alias",
                name=name,
                registry=store.location,
                known=sorted(store.aliases(name)),
            )
        return entry

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
        return events

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
        store = self._writer()
        with self._locked("delete", alone=False):
            indexed = store.resolve(parsed, ref)
            folder = store.delete_version(parsed.name, parsed.version, ref)
            with suppress(OSError):  # unreferenced now: if this fails, gc() removes it
                # The tombstone first: it keeps the number taken should the index be lost.
                self._record(folder, "deleted", parsed.name, parsed.version, indexed.record)
                self._folders.remove(folder)
        return version

    # ------------------------------------------------------------------------- diff, card

    def diff(self, ref_a: str, ref_b: str) -> dict[str, Any]:
        """What changed from ``ref_a`` to ``ref_b``, as JSON-serializable data.

        See :func:`modelkeep.registry.diff.diff_manifests` for the sections; ``a`` and
        ``b`` name the two exact versions compared. :meth:`compare` gives the same as
        typed sections.
        """
        return self.compare(ref_a, ref_b).to_dict()

    def compare(self, ref_a: str, ref_b: str) -> VersionDiff:
        """What changed from ``ref_a`` to ``ref_b``, as typed sections (``to_dict()`` is
        :meth:`diff`)."""
        a, b = self.get(ref_a), self.get(ref_b)
        return VersionDiff(
            a.ref,
            b.ref,
            diff_manifests(a.manifest(), b.manifest()),
            (a.schema_version, b.schema_version),
        )

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
        artifact unchanged (size and SHA-256) and its record beside it, that the alias log
        file holds every move the index does, and what lies in the store unindexed: crash
        debris (``gc()`` removes it), versions the index lost (``rebuild()`` restores them),
        folders nobody can account for. An empty list means all is well.

        Raises:
            IndexLostError: the index is missing, empty or unreadable while the store
                holds bundles.
            RegistryLockedError: another process held the lock ``lock_timeout`` seconds.
        """
        store = self._open(create=False)
        problems = store.consistency() if store is not None else []
        if not self.root.is_dir():
            if not self._remote:
                return problems
            self._require_writable("check")  # the lock file lives there
        # Alone with the folders for a moment: in-flight registrations finish first, so
        # their copies are not reported as debris.
        with self._locked("check", alone=True):
            survey = self._survey(store)
            moves = store.history(None) if store is not None else []
            logged = self._logged_times()
        indexed = sorted(survey.indexed.items(), key=lambda item: item[1])
        found = self._check_folders([(folder, ref, sha) for folder, (ref, sha) in indexed])
        for (folder, (ref, _)), problem in zip(indexed, found, strict=True):
            if problem is not None:
                problems.append(problem)
            record = survey.records.get(folder)
            if record is None or record["state"] != "committed":
                problems.append(Problem("record_missing", ref, _NO_RECORD))
        unlogged = [
            e.id for e in moves if e.id not in logged or (not self._remote and logged[e.id] != e.at)
        ]
        if unlogged:
            detail = f"{len(unlogged)} alias move(s) of the index are not in it; gc() writes them"
            where = "aliases/" if self._remote else journal.ALIAS_LOG_NAME
            problems.append(Problem("alias_log_missing", where, detail))
        for folder, verdict in survey.unindexed():
            problems.append(_unindexed_problem(folder, verdict))
        for entry in survey.staged:
            problems.append(Problem("unreferenced", f"staging/{entry}", _DEBRIS))
        for entry in survey.leftovers:
            problems.append(Problem("unreferenced", f"bundles/{entry}", _DEBRIS))
        if isinstance(self._folders, ObjectArtifacts):
            for sha in _unreferenced_blobs(self._folders):
                problems.append(Problem("unreferenced", f"blobs/{sha}", _UNREFERENCED_BLOB))
            for move_id in _orphan_moves(self._folders, moves):
                problems.append(Problem("unreferenced", f"aliases/{move_id}.json", _ORPHAN_MOVE))
        return problems

    def _survey(self, store: MetadataStore | None) -> _Survey:
        return _Survey(
            folders=self._folders,
            indexed=store.folders() if store is not None else {},
            counters=store.counters() if store is not None else {},
            records=self._folders.read_records(),
            published=self._folders.published(),
            staged=self._folders.staged(),
            leftovers=self._folders.leftovers(),
        )

    def _check_folders(self, folders: list[tuple[str, str, str]]) -> list[Problem | None]:
        """:meth:`_check_folder` of each (folder, ref, manifest sha256), in order. An
        object store is read by several threads at once: each check waits mostly on the
        network (several small GETs per version), and a registry holds thousands."""
        if not self._remote or len(folders) < 2:
            return [self._check_folder(*entry) for entry in folders]
        with ThreadPoolExecutor(max_workers=_CHECK_THREADS) as pool:
            return list(pool.map(lambda entry: self._check_folder(*entry), folders))

    def _check_folder(self, folder: str, ref: str, expected: str) -> Problem | None:
        if isinstance(self._folders, ObjectArtifacts):  # the objects, not the cache
            found = self._folders.problem(folder, expected)
            return None if found is None else Problem(found[0], ref, found[1])
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
        """Remove what crashed registrations and interrupted deletes provably left behind.

        Waits for in-flight writes (at most ``lock_timeout`` seconds), then removes
        everything in ``staging/``, temporary record files, unindexed folders younger than
        a day whose record is missing or still pending, and the folders of deleted
        versions. It never removes an indexed version, a version the index lost (a
        committed record the index lacks: see :meth:`rebuild`) or a folder it cannot
        account for. It also writes the records and alias log an older modelkeep did not.
        Returns the removed paths, relative to the registry root.

        Raises:
            IndexLostError: the index is missing, empty or unreadable while the store
                holds bundles (nothing is removed; run :meth:`rebuild`).
            RegistryLocationError: the registry's folder is a file or cannot be written.
            RegistryLockedError: another process held the lock ``lock_timeout`` seconds.
        """
        self._check_folder_path("gc")
        if not self.root.is_dir() and not self._remote:
            return []
        self._require_writable("gc")
        removed: list[str] = []
        with self._locked("gc", alone=True):
            store = self._open(create=False)
            survey = self._survey(store)
            if store is not None:
                self._journal_index(store, survey)
            for folder, verdict in survey.unindexed():
                if verdict.kind == "deleted":
                    if verdict.record is not None and verdict.record["state"] != "deleted":
                        record = verdict.record
                        name, number = record["name"], record["version"]
                        kept = VersionRecord.from_row({**record["row"], "folder": folder})
                        self._record(folder, "deleted", name, number, kept)
                    if verdict.has_folder:
                        self._folders.remove(folder)
                        removed.append(f"bundles/{folder}")
                elif verdict.kind == "debris" and _debris_old_enough(self._folders, folder):
                    if verdict.has_folder:
                        self._folders.remove(folder)
                        removed.append(f"bundles/{folder}")
                    if verdict.record is not None:
                        self._folders.remove_record(f"{folder}.json")
                        where = "records" if self._remote else "bundles"
                        removed.append(f"{where}/{folder}.json")
            for entry in survey.staged:
                if _old_enough(self._folders.staging_path(entry)):
                    self._folders.remove_staged(entry)
                    removed.append(f"staging/{entry}")
            for entry in survey.leftovers:
                self._folders.remove_record(entry)
                removed.append(f"bundles/{entry}")
            if isinstance(self._folders, ObjectArtifacts):
                # After the listings above are gone, so their blobs count as unreferenced.
                for sha in _still_unreferenced(self._folders, _unreferenced_blobs(self._folders)):
                    self._folders.remove_blob(sha)
                    removed.append(f"blobs/{sha}")
                moves = store.history(None) if store is not None else []
                for move_id in _orphan_moves(self._folders, moves):
                    self._folders.remove_alias_move(move_id)
                    removed.append(f"aliases/{move_id}.json")
        return removed

    def _journal_index(self, store: MetadataStore, survey: _Survey) -> None:
        """Write the records and alias log lines the index holds and the store lacks."""
        for indexed in store.versions():
            folder = indexed.record.folder
            record = survey.records.get(folder)
            if folder in survey.published and (record is None or record["state"] != "committed"):
                self._record(folder, "committed", indexed.name, indexed.version, indexed.record)
        moves = store.history(None)
        if isinstance(self._folders, ObjectArtifacts):
            stored = self._folders.alias_ages()  # ids, from one listing
            for move in moves:  # one object a move: write those it lacks
                if move.id not in stored:
                    self._folders.write_alias_move(move.to_dict())
            return
        logged = {e["id"]: e for e in journal.read_alias_log(self.root)}
        if any(logged.get(e.id, {}).get("at") != e.at for e in moves):
            journal.write_alias_log(self.root, [e.to_dict() for e in moves])

    # ---------------------------------------------------------------------- migrate, copy

    def migrate(self) -> tuple[str, str]:
        """Upgrade the index's schema in place (Alembic); return (old, new) versions.

        A SQLite index is upgraded when it is opened for writing anyway; a database
        server's index only by this call (``modelkeep registry migrate``), once for every
        user of it. An index written by a newer modelkeep is refused.

        Raises:
            RegistryIndexError: the index cannot be upgraded, or is newer than this
                modelkeep (the message names both schema versions).
        """
        from modelkeep.registry.store import SqlStore, sqlite_url

        if self._given is not None:
            raise RegistryIndexError(
                self.location,
                "migrating the index",
                ValueError(f"the metadata store {self._given!r} has no schema to migrate"),
            )
        if self._index_url is not None:
            url = self._index_url
        else:
            index = self.root / INDEX_NAME
            if _size(index) == 0:
                return _no_index_yet()
            self._require_writable("migrating the index")
            url = sqlite_url(str(index), read_only=False)
        self.close()
        store = SqlStore.for_migration(url, location=self.location)
        try:
            return store.migrate()
        finally:
            store.close()

    def copy_to(self, target: Registry, *, names: Sequence[str] | None = None) -> list[str]:
        """Copy every version (of ``names``, default all) into ``target``, with the
        aliases and their history; return the references copied, ``name:version``.

        Versions keep their numbers: the target's counter for a name is moved past the
        source's, and gaps left by deleted versions stay gaps. A name the target already
        holds versions of is refused (nothing is copied), so a copy never mixes two
        histories. Each bundle is verified again as it is registered in the target.

        Raises:
            RegistryError: ``target`` already holds a name being copied.
            and every error of :meth:`register`.
        """
        chosen = sorted(names) if names is not None else self.names()
        clashing = sorted(set(chosen) & set(target.names()))
        if clashing:
            raise RegistryIndexError(
                target.location,
                "copying versions",
                ValueError(
                    f"the target already holds {', '.join(map(repr, clashing))}; copy into a "
                    "registry without them (or pass other names)"
                ),
            )
        copied: list[str] = []
        source_store = self._open(create=False)
        if source_store is None:
            return copied
        counters = source_store.counters()
        for name in chosen:
            for version in self.versions(name):
                fetched = self.get(version.ref)
                parent = version.parent
                if parent is not None and parent.partition(":")[0] not in (name, *target.names()):
                    parent = None  # its name is not in the target: lineage stays in the record
                target._register_as(
                    fetched.path, name, version.version, by=version.registered_by, parent=parent
                )
                copied.append(version.ref)
            writer = target._writer()
            writer.raise_counter(name, counters.get(name, 1))
            with target._locked("copy", alone=False):
                moves = source_store.history(name)
                for event in writer.import_aliases(name, source_store.aliases(name), moves):
                    target._log_move(event)
        return copied

    def _register_as(
        self, path: Path, name: str, number: int, *, by: str, parent: str | None
    ) -> None:
        """Register ``path`` as exactly ``name:number`` (a copy keeps its numbers): the
        counter is raised to ``number`` first; a number taken already is an error."""
        store = self._writer()
        store.raise_counter(name, number)
        version = self.register(path, name, registered_by=by, parent=parent, env="ignore")
        if version.version != number:
            raise RegistryIndexError(
                self.location,
                f"copying {name}:{number}",
                ValueError(f"it was registered as {version.ref}: another writer took the number"),
            )

    # ---------------------------------------------------------------------------- rebuild

    def rebuild(self) -> list[ModelVersion]:
        """Write a new index from what the store holds: records and the alias log.

        Every bundle with a committed or pending record comes back as the version its
        record names (a committed record wins over a pending one claiming the same
        number); aliases are replayed from the alias log, their history with them; each
        name's counter goes past the highest number any record (tombstones included) or
        log line holds, so numbers never restart. The index it replaces, if any, is kept
        as ``registry.db.replaced-<UTC time>`` (with its ``-wal``/``-shm`` files).
        Folders without a record (from before records existed) are not indexed; ``check``
        reports them. Returns every version of the new index.

        A team registry's index (a database URL) is rebuilt in place from the records and
        alias move objects in its artifact store: first the versions and moves the index
        holds and the store lacks are written to the store, then every row is replaced in
        one transaction (readers see the old rows or the new ones); no counter goes down.
        A store given as ``metadata=`` is refused: restore it with its own tools.

        Raises:
            RegistryLocationError: the registry's folder is a file or cannot be written.
            RegistryLockedError: another process held the lock ``lock_timeout`` seconds.
        """
        self._check_folder_path("rebuild")
        if self._index_url is not None and self._given is None:
            return self._rebuild_server()
        if self.team:
            raise RegistryIndexError(
                str(self.root),
                "rebuilding the index",
                ValueError(
                    "rebuild() writes the default SQLite index; this registry's metadata "
                    f"store is {self._given or self.location!r}, restore it with its own "
                    "tools"
                ),
            )
        if not self.root.is_dir():
            return []
        self._require_writable("rebuild")
        with self._locked("rebuild", alone=True):
            self.close()
            records = self._folders.read_records()
            moves = journal.read_alias_log(self.root)
            plan = _plan(records, moves, lambda folder: self._folders.path(folder).is_dir())
            rows, counters, pointers, events = plan.restoration
            stamp = utc_now().replace(":", "").replace("+0000", "Z")
            index = self.root / INDEX_NAME
            # Build the new index whole beside the old one, then swap: a reader sees the
            # old index or the new one, never one half restored.
            built = _build_index(
                self.root,
                None,
                lambda store: store.restore(rows, counters, pointers, events),
            )
            for suffix in ("", "-wal", "-shm"):
                old = self.root / f"{INDEX_NAME}{suffix}"
                if old.exists():
                    os.replace(old, self.root / f"{INDEX_NAME}.replaced-{stamp}{suffix}")
            os.replace(built, index)
            fsync_dir(self.root)
            self._commit_records(rows, plan.chosen)
        return self.versions()

    def _commit_records(
        self,
        rows: Sequence[IndexedVersion],
        chosen: Mapping[tuple[str, int], tuple[str, journal.Record]],
    ) -> None:
        """Rewrite as committed the pending records a rebuilt index now holds."""
        for indexed in rows:
            name, version = indexed.name, indexed.version
            if chosen[(name, version)][1]["state"] != "committed":
                self._record(indexed.record.folder, "committed", name, version, indexed.record)

    def _rebuild_server(self) -> list[ModelVersion]:
        """``rebuild()`` of an index on a database server (a team registry).

        There is no file to set aside, so nothing the index holds may be lost: first the
        records and alias moves it holds and the store lacks are written to the store (as
        ``gc()`` does), so the store holds everything; then, in one transaction with the
        tables locked against writers, every row is replaced by what the store holds
        (``SqlStore.replace``). Readers see the old index or the new one. A counter never
        goes down: each is the highest of the old index's, the records' and the alias
        moves'. Tables that were dropped are made again first.
        """
        from modelkeep.registry.store import SqlStore

        url = self._index_url
        if url is None:  # pragma: no cover - the caller checked
            return []
        self._require_writable("rebuild")
        with self._locked("rebuild", alone=True):
            self.close()
            store = SqlStore(url, location=self.location, create=True)
            try:
                if not store.created and not store.is_empty():
                    self._journal_index(store, self._survey(store))
                plans: list[_Plan] = []

                def build(current: Mapping[str, int]) -> Restoration:
                    published = set(self._folders.published())
                    plan = _plan(
                        self._folders.read_records(),
                        self._logged_moves(),
                        published.__contains__,
                    )
                    plans.append(plan)
                    rows, counters, pointers, events = plan.restoration
                    merged = dict(current)
                    for name, number in counters.items():
                        merged[name] = max(number, merged.get(name, 1))
                    return rows, merged, pointers, events

                rows = list(store.replace(build)[0])
            finally:
                store.close()
            self._commit_records(rows, plans[-1].chosen)
        return self.versions()


_DEBRIS = "not in the index (left by an interrupted registration); gc() removes it"
_NO_RECORD = (
    "no committed registration record beside its folder, so rebuild() could not restore "
    "it; gc() writes it"
)


_UNREFERENCED_BLOB = (
    "a blob no bundle listing names, older than an hour (left by an interrupted "
    "registration or a deleted version); gc() removes it"
)
_ORPHAN_MOVE = (
    "an alias move the index does not hold, though it holds a later one (its transaction "
    "rolled back), older than an hour; gc() removes it"
)


@dataclass(frozen=True)
class _Plan:
    """What ``rebuild()`` writes (``restoration``), and the record each row came from."""

    restoration: tuple[
        list[IndexedVersion], dict[str, int], dict[tuple[str, str], int], list[AliasEvent]
    ]
    chosen: dict[tuple[str, int], tuple[str, journal.Record]]


def _plan(
    records: Mapping[str, journal.Record],
    moves: Sequence[Mapping[str, Any]],
    has_folder: Callable[[str], bool],
) -> _Plan:
    """The index the store's records and alias moves describe.

    Every bundle with a committed or pending record (and its folder) comes back as the
    version its record names, a committed record winning over a pending one claiming the
    same number; aliases are replayed from the moves; each name's counter goes past the
    highest number any record (tombstones included) or move holds.
    """
    chosen: dict[tuple[str, int], tuple[str, journal.Record]] = {}
    counters: dict[str, int] = {}
    for folder, record in sorted(records.items()):
        key = (record["name"], record["version"])
        counters[key[0]] = max(counters.get(key[0], 1), key[1] + 1)
        if record["state"] == "deleted" or not has_folder(folder):
            continue
        if key not in chosen or (
            chosen[key][1]["state"] == "pending" and record["state"] == "committed"
        ):
            chosen[key] = (folder, record)
    pointers: dict[tuple[str, str], int] = {}
    for move in moves:
        numbers = [v for v in (move["from_version"], move["to_version"]) if v]
        name = move["name"]
        counters[name] = max([counters.get(name, 1), *(v + 1 for v in numbers)])
        if move["to_version"] is None:
            pointers.pop((name, move["alias"]), None)
        else:
            pointers[(name, move["alias"])] = move["to_version"]
    pointers = {k: v for k, v in pointers.items() if (k[0], v) in chosen}
    rows = _with_schema_versions(
        [
            IndexedVersion(
                name, version, VersionRecord.from_row({**record["row"], "folder": folder})
            )
            for (name, version), (folder, record) in sorted(chosen.items())
        ]
    )
    events = [AliasEvent.from_dict(move) for move in moves]
    return _Plan((rows, counters, pointers, events), chosen)


def _unreferenced_blobs(folders: ObjectArtifacts) -> list[str]:
    """The blobs no listing names that are older than ``GRACE_S``; none when a listing
    cannot be read, since then no blob is provably unreferenced.

    A younger one may be a registration's on another machine, about to be named by its
    listing (or the blob of a version deleted moments ago): not a problem yet, so
    ``check()`` does not report it either. The listings are read before the blobs are
    listed, so a blob uploaded meanwhile is young.
    """
    named = folders.referenced()
    if named is None:
        return []
    return sorted(
        sha
        for sha, stamp in folders.blobs().items()
        if sha not in named and _older_than_grace(stamp)
    )


def _still_unreferenced(folders: ObjectArtifacts, found: list[str]) -> Iterator[str]:
    """Those of the blobs ``found`` unreferenced and old that still are, each checked
    just before it is removed. No machine's lock covers another: since the blobs were
    listed, a registration elsewhere may have named one in its listing (the listings are
    read again) or uploaded it again, which restarts its time (read again per blob)."""
    if not found:
        return
    named = folders.referenced()
    if named is None:
        return
    for sha in found:
        if sha not in named and _older_than_grace(folders.blob_modified(sha)):
            yield sha


def _orphan_moves(folders: ObjectArtifacts, moves: Sequence[AliasEvent]) -> list[int]:
    """Alias move objects whose id the index lacks while it holds a higher one: moves
    whose transaction rolled back (a PostgreSQL sequence never gives their id again).
    Ids above the index's highest are moves an older index lacks: ``rebuild()`` keeps them.
    Only those older than ``GRACE_S``: a younger one's transaction may be open still.
    """
    if not moves:
        return []
    held = {move.id for move in moves}
    top = max(held)
    return sorted(
        move_id
        for move_id, stamp in folders.alias_ages().items()
        if move_id not in held and move_id < top and _older_than_grace(stamp)
    )


def _older_than_grace(stamp: float | None) -> bool:
    return stamp is not None and time.time() - stamp > GRACE_S


_VerdictKind = Literal["debris", "deleted", "lost", "unknown"]


@dataclass(frozen=True)
class _Verdict:
    """What an unindexed folder or record is: ``debris`` (a registration killed before
    its commit), ``deleted`` (a delete cut short), ``lost`` (a committed version the index
    lacks) or ``unknown`` (no record, too old to be a crash's)."""

    kind: _VerdictKind
    record: journal.Record | None
    has_folder: bool


@dataclass(frozen=True)
class _Survey:
    """The store and the index side by side, read while holding the lock alone."""

    folders: ArtifactStore
    indexed: dict[str, tuple[str, str]]
    counters: dict[str, int]
    records: dict[str, journal.Record]
    published: list[str]
    staged: list[str]
    leftovers: list[str]

    def unindexed(self) -> list[tuple[str, _Verdict]]:
        found = []
        for folder in sorted((set(self.published) | set(self.records)) - set(self.indexed)):
            record = self.records.get(folder)
            has_folder = folder in self.published
            kind: _VerdictKind
            if record is not None and record["state"] == "deleted":
                if not has_folder:
                    continue  # a tombstone: what a finished delete leaves
                kind = "deleted"
            elif record is not None and record["state"] == "committed":
                taken = self.counters.get(record["name"], 1) > record["version"]
                kind = "deleted" if taken else "lost"
            elif not has_folder or _folder_young(self.folders, folder):
                kind = "debris"
            else:
                kind = "unknown"
            found.append((folder, _Verdict(kind, record, has_folder)))
        return found


def _unindexed_problem(folder: str, verdict: _Verdict) -> Problem:
    subject = f"bundles/{folder}"
    if verdict.kind == "debris":
        return Problem("unreferenced", subject, _DEBRIS)
    if verdict.kind == "deleted":
        return Problem("unreferenced", subject, "the folder of a deleted version; gc() removes it")
    if verdict.kind == "lost":
        record = verdict.record
        name, number = (record["name"], record["version"]) if record else (None, None)
        return Problem(
            "not_indexed",
            subject,
            f"registered as {name}:{number} but missing from the "
            "index; `modelkeep registry rebuild` restores it (gc() keeps it)",
        )
    return Problem(
        "unknown_folder",
        subject,
        "not in the index and without a committed registration record, yet older than a "
        "crash's leftovers; gc() keeps it: inspect it, then register it again or remove it",
    )


def _build_index(
    root: Path, index: Path | None, fill: Callable[[SqlStore], None] | None = None
) -> Path:
    """Build an index (tables, then ``fill``) in a private file beside the index.

    With ``index``, rename the file onto it (the caller holds the creation lock); return
    the private file's path either way. The file is closed before the rename, so its
    write-ahead log has been checkpointed into it and nothing is left beside it.
    """
    from modelkeep.registry.store import SqlStore, sqlite_url

    partial = root / f".{INDEX_NAME}.{os.getpid()}.new"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    store = SqlStore(sqlite_url(str(partial), read_only=False), location=str(root), create=True)
    try:
        if fill is not None:
            fill(store)
    except BaseException:
        store.close()
        partial.unlink(missing_ok=True)
        raise
    store.close()
    if index is not None:
        os.replace(partial, index)
        fsync_dir(root)
    return partial


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _no_index_yet() -> tuple[str, str]:
    from modelkeep.registry.store import SCHEMA_REVISION

    return SCHEMA_REVISION, SCHEMA_REVISION  # created at the newest version when first used


def _with_schema_versions(rows: list[IndexedVersion]) -> list[IndexedVersion]:
    """``rows`` (by name, then version) with their feature-schema versions counted again."""
    from dataclasses import replace

    from modelkeep.registry.backends import next_schema_version

    counted: list[IndexedVersion] = []
    previous: dict[str, tuple[str, int]] = {}
    for row in rows:
        number = next_schema_version(previous.get(row.name), row.record.schema_hash)
        previous[row.name] = (row.record.schema_hash, number)
        counted.append(replace(row, schema_version=number))
    return counted


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (ValueError, sa.exc.ArgumentError):
        return url.split("@")[-1]


def _check_fetched(path: Path, indexed: IndexedVersion) -> None:
    """The fetched bundle's manifest is the one the index registered (the cache key)."""
    if path.name != indexed.record.manifest_sha256:
        raise IntegrityError(
            f"{indexed.ref}/{MANIFEST_NAME}",
            "sha256",
            indexed.record.manifest_sha256,
            path.name,
        )


def _folder_young(folders: ArtifactStore, folder: str) -> bool:
    if isinstance(folders, ObjectArtifacts):
        modified = folders.modified(folder)
        return modified is None or time.time() - modified < _CRASH_WINDOW_S
    return _young(folders.path(folder))


def _debris_old_enough(folders: ArtifactStore, folder: str) -> bool:
    if isinstance(folders, ObjectArtifacts):
        # Locks are this machine's only: another may be registering into the same store,
        # so a remote folder is debris only once it is older than any registration.
        return _older_than_grace(folders.modified(folder))
    return _old_enough(folders.path(folder))


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < _CRASH_WINDOW_S
    except OSError:
        return True  # gone already: nothing to keep


def _old_enough(path: Path) -> bool:
    if locks.LOCKS_AVAILABLE:
        return True  # gc() holds the lock alone: nothing is in flight
    try:  # pragma: no cover - Windows
        return time.time() - path.stat().st_mtime > _UNLOCKED_GRACE_S
    except OSError:  # pragma: no cover
        return False


def _parse(data: bytes, source: Path) -> Manifest:
    """The manifest's bytes as the one reader parses them; a bad one rejects the bundle."""
    try:
        return manifest_from_bytes(data, str(source / MANIFEST_NAME))
    except ManifestError as exc:
        raise BundleRejectedError(str(source), exc) from exc


def _verify(
    staged: Path, source: Path, *, env: EnvMode, trusted: Sequence[str] | None, options: Any
) -> None:
    from modelkeep import _bundle as bundle

    try:
        bundle.load(staged, env=env, trusted=trusted, **options)
    except MissingDependencyError:
        raise
    except ModelkeepError as exc:
        raise BundleRejectedError(str(source), exc) from exc


def schema_hash(manifest: Manifest) -> str:
    """Hash of the input contract: feature names, order and logical types."""
    contract = [[f.name, f.dtype] for f in manifest.features]
    return "sha256:" + hashlib.sha256(json.dumps(contract).encode()).hexdigest()


def _index_record(
    manifest: Manifest,
    manifest_bytes: bytes,
    source: Path,
    by: str,
    parent: str | None,
    folder: str,
) -> VersionRecord:
    env = manifest.environment
    labels = manifest.target.labels
    return VersionRecord(
        folder=folder,
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        created_at=manifest.created_at.isoformat(),
        registered_at=utc_now(),
        registered_by=by,
        task=manifest.task,
        model_type=manifest.model_type,
        metrics=dict(manifest.metrics),
        data_version=manifest.data.data_version,
        data_fingerprint=manifest.data.fingerprint,
        schema_hash=schema_hash(manifest),
        label_map=[[e.value, e.label] for e in labels] if labels else None,
        environment={
            "python": f"{env.python_implementation} {env.python_version}",
            "platform": env.platform,
            "packages": dict(env.packages),
        },
        formats=[
            {
                "format": a.format,
                "path": a.path,
                "size": a.size,
                "sha256": a.sha256,
                "parity": a.details.get("parity"),
            }
            for a in manifest.artifacts
        ],
        parent=parent if parent is not None else manifest.lineage.parent,
        git_commit=manifest.lineage.git_commit,
        tags=list(manifest.tags),
        description=manifest.description,
        source=str(source),
    )


def _copy_bundle(source: Path, target: Path) -> None:
    """A writable copy of a stored (read-only) bundle, without its signature.

    The copy is about to change, so a signature over the original could not hold for it.
    """
    with open_bundle(source) as reader:
        target.mkdir(parents=True)
        reader.copy_to(target, leave_out={SIGNATURE_NAME})
