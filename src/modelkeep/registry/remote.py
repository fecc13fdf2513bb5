"""An artifact store (``backends.ArtifactStore``) on any fsspec file system: S3-compatible
object storage for a team registry (``s3://bucket/prefix``, through s3fs), or a local
folder.

Layout under the store's URL::

    blobs/<sha256>          every file of every bundle, content-addressed (shared)
    bundles/<id>.json       a published bundle: its files (path, size, SHA-256) and the
                            SHA-256 of its manifest; written last, so it names only
                            complete, verified blobs
    records/<id>.json       its registration record (``journal.py``'s format)
    aliases/<id>.json       one alias move (``AliasEvent.to_dict()``), keyed by its log id

Publishing uploads each file of the staged (local, verified) copy as a blob, streamed,
then reads it back, streamed, and compares its size and SHA-256 before the listing is
written: a listing never names a blob that is missing or differs. The index row that makes
a version visible is written after that (``api.py``), so no reader ever sees a version
whose artifacts are incomplete. An object store's PUT replaces a whole object, so records
are never half-written and there are no temporary files.

Reading goes through a local cache keyed by the manifest's SHA-256 (``cache.py``): a
download is hashed as it is written and checked before it is used. ``check()`` does not:
it hashes the objects themselves (:meth:`ObjectArtifacts.problem`), streamed.

Alias moves. A team registry's index logs every move in its ``alias_log`` table; each move
is also written here, as ``aliases/<id>.json``, inside the move's transaction before it
commits (as the local registry appends to ``alias-log.jsonl``), so ``rebuild()`` restores
aliases and their history when the index is lost. A later write of the same id replaces
the object (the index's row is the truth; ``gc()`` rewrites an object that differs from
it). Where SQLite gives a rolled-back id again, so that the local log's orphan line is
superseded by the next move, a PostgreSQL sequence never does: the object of a move whose
commit failed keeps an id no committed move has. ``gc()`` removes such an object once the
index holds a higher id and the object is older than ``GRACE_S`` (no transaction still
open could commit it); until then ``rebuild()`` would replay it, and ``check()`` would
then report the alias chain broken.

Unreferenced blobs. Blobs are shared by every bundle holding the same bytes, so a blob is
removed (``gc()``) only when no listing names it, every listing could be read, and it is
older than ``GRACE_S``. A registration that finds its blob already stored relies on it
without uploading; so that such a blob is never taken for an old unreferenced one, a
registration uploads it again when it is older than ``REFRESH_S`` (its modification time
then restarts), which leaves a registration ``GRACE_S - REFRESH_S`` to write its listing.
No lock spans machines and an S3 delete has no condition on the object's time, so both
sides look again: ``gc()`` reads the listings again and each blob's time again just before
removing it, and a registration, once its listing names its blobs, checks that each is
still there and uploads any that is not (tests/registry/test_registry_team_attacks.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from modelkeep.errors import ArtifactStoreError, IntegrityError, ListingError, ModelkeepError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry import journal
from modelkeep.registry.artifacts import BundleFolders, remove_tree
from modelkeep.registry.cache import BundleCache, Listing
from modelkeep.registry.journal import RecordState
from modelkeep.registry.records import ProblemKind, VersionRecord

__all__ = ["ArtifactStoreError", "ObjectArtifacts", "is_url"]

_CHUNK = 1024 * 1024
# Transfers with the store move in bounded pieces, so memory stays flat whatever a file's
# size: a read fetches _BLOCK bytes per request; an upload sends _PART-byte parts one at a
# time (a file under two parts goes in one PUT). s3fs's defaults (one PUT of the whole file
# below 100 MiB, else 50 MiB parts read ten at a time) hold a whole model in memory.
# tests/registry/test_registry_streaming.py measures it.
_BLOCK = 4 * 1024 * 1024
_PART = 8 * 1024 * 1024
_LISTING_FORMAT = 1
_SUFFIX = ".json"
#: How old an unindexed listing, an unreferenced blob or an orphan alias object must be
#: before ``gc()`` removes it: locks cover one machine, and a registration on another may
#: still commit anything younger.
GRACE_S = 3600.0
#: A stored blob older than this is uploaded again by a registration that needs it, so
#: that ``gc()`` never takes it for an unreferenced one (see the module's docstring).
REFRESH_S = 600.0


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``scheme://...``) rather than a local path."""
    head, sep, _ = text.partition("://")
    return bool(sep) and head.replace("+", "").isalnum()


def _filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system for ``url`` and the path inside it."""
    from modelkeep._optional import require

    fsspec = require("s3", "fsspec", feature="An artifact store on fsspec", packages="fsspec")
    options: dict[str, Any] = {}
    if url.startswith(("s3://", "s3a://")):
        require("s3", "s3fs", feature="An artifact store on S3", packages="s3fs")
        client: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            client["endpoint_url"] = endpoint
        options = {
            "client_kwargs": client,
            # Fail within seconds when the server is gone rather than retry for minutes.
            "config_kwargs": {
                "connect_timeout": 5,
                "read_timeout": 30,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
            # A fresh instance per store: cached instances hold an event loop that a
            # forked process must not share.
            "skip_instance_cache": True,
            # No listings cache: other processes and machines write to the store, and
            # s3fs answers "no such file" for a key missing from a listing it cached.
            "use_listings_cache": False,
        }
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, str(path).rstrip("/")


class ObjectArtifacts:
    """Registered bundles as content-addressed blobs on an fsspec file system.

    Args:
        url: the store, e.g. ``s3://bucket/prefix`` (endpoint and credentials from the
            standard AWS variables) or a local folder.
        local: a local folder for staging copies and the download cache (the registry's
            root: ``staging/``, ``cache/``).
        full_check: re-hash every file of a cached bundle on each use, not only the
            manifest (sizes are always checked).
    """

    def __init__(self, url: str, local: Path, *, full_check: bool = False) -> None:
        self.url = url.rstrip("/")
        self._client: tuple[Any, str] | None = None
        self._local = BundleFolders(local)
        self.cache = BundleCache(local / "cache", full_check=full_check)

    def __repr__(self) -> str:
        return f"ObjectArtifacts({self.url!r})"

    # ------------------------------------------------------------------------- helpers

    def _connect(self) -> tuple[Any, str]:
        """The file system and base path, made on first use (importing s3fs is slow)."""
        if self._client is None:
            self._client = _filesystem(self.url)
        return self._client

    @property
    def _fs(self) -> Any:
        return self._connect()[0]

    @property
    def _base(self) -> str:
        return self._connect()[1]

    def _key(self, *parts: str) -> str:
        return "/".join([self._base, *parts])

    @contextmanager
    def _io(self, operation: str) -> Iterator[None]:
        """Third-party errors of the file system become :class:`ArtifactStoreError`."""
        try:
            yield
        except ModelkeepError:
            raise
        except Exception as exc:
            raise ArtifactStoreError(
                self.url, operation, f"{type(exc).__name__}: {exc}", exc
            ) from exc

    def _read_json(self, key: str) -> Any:
        data = self._fs.cat_file(key)  # one GET (open() would HEAD first)
        try:
            return json.loads(data)
        except RecursionError as exc:  # nested deeper than the parser's stack: not ours
            raise ValueError(f"{key}: JSON nested too deeply") from exc

    def _parent(self, key: str) -> None:
        """Make the folder of ``key`` on a file system that has folders (objects need none)."""
        protocol = self._fs.protocol
        if "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,)):
            self._fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)

    def _write_json(self, key: str, data: Any) -> None:
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True).encode()
        self._parent(key)
        self._fs.pipe_file(key, payload)

    def _hash_remote(self, key: str, expected_size: int | None = None) -> tuple[int, str]:
        """The size and SHA-256 of the object ``key``, read streamed; an object known to
        be at most one block (``expected_size``) in a single GET."""
        if expected_size is not None and 0 < expected_size <= _BLOCK:
            # At most one block more than expected, however large the object has become.
            data = self._fs.cat_file(key, start=0, end=_BLOCK + 1)
            if len(data) == expected_size:
                return len(data), hashlib.sha256(data).hexdigest()
            # Not the size expected: read it all, streamed, to report its true size.
        digest = hashlib.sha256()
        size = 0
        with self._fs.open(key, "rb", block_size=_BLOCK) as reader:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    # ------------------------------------------------------------------------- writing

    def stage(self, source: Path) -> Path:
        """A verified-to-be-safe local copy of ``source`` (see ``BundleFolders.stage``)."""
        return self._local.stage(source)

    def publish(self, staged: Path) -> str:
        """Upload every file of ``staged`` as a blob, verify each read back, then write
        the bundle's listing; return its folder id. The local copy is removed."""
        folder = staged.name
        files: dict[str, dict[str, Any]] = {}
        with self._io(f"uploading bundle {folder}"):
            for path in sorted(p for p in staged.rglob("*") if p.is_file()):
                relative = path.relative_to(staged).as_posix()
                size, sha = _hash_local(path)
                files[relative] = {"size": size, "sha256": sha}
                self._upload_blob(path, size, sha)
            manifest = files.get(MANIFEST_NAME)
            listing = {
                "listing_format": _LISTING_FORMAT,
                "folder": folder,
                "manifest_sha256": manifest["sha256"] if manifest else None,
                "files": files,
            }
            self._write_json(self._key("bundles", folder + _SUFFIX), listing)
            # gc() on another machine may have removed a blob between its last look at
            # its age and this listing (no lock spans machines): now that the listing
            # names them, none can be removed again, so any missing is uploaded again.
            for relative, entry in files.items():
                if self.blob_modified(entry["sha256"]) is None:
                    self._upload_blob(staged / relative, entry["size"], entry["sha256"])
        remove_tree(staged)
        return folder

    def _upload_blob(self, path: Path, size: int, sha: str) -> None:
        key = self._key("blobs", sha)
        stamp = self.blob_modified(sha)
        fresh = stamp is not None and time.time() - stamp < REFRESH_S
        if fresh and self._hash_remote(key, size) == (size, sha):
            return  # content-addressed: the same bytes are already there, verified
        self._parent(key)
        # Streamed: parts of _PART bytes (a local file system ignores these options).
        self._fs.put_file(str(path), key, chunksize=_PART, max_concurrency=1)
        got = self._hash_remote(key, size)
        if got != (size, sha):
            raise ArtifactStoreError(
                self.url,
                f"uploading {path.name}",
                f"read back {got[0]} bytes with sha256 {got[1][:12]}..., expected {size} "
                f"bytes with sha256 {sha[:12]}...",
            )

    def remove(self, folder: str) -> None:
        """Delete a published bundle's listing (its blobs may be shared; they stay)."""
        with self._io(f"removing bundle {folder}"):
            key = self._key("bundles", folder + _SUFFIX)
            if self._fs.exists(key):
                self._fs.rm_file(key)

    def staging_path(self, entry: str) -> Path:
        return self._local.staging_path(entry)

    def remove_staged(self, entry: str) -> None:
        self._local.remove_staged(entry)

    def staged(self) -> list[str]:
        return self._local.staged()

    # ------------------------------------------------------------------------- reading

    def listing(self, folder: str) -> Listing:
        """The published listing of ``folder``."""
        with self._io(f"reading bundle {folder}"):
            try:
                data = self._read_json(self._key("bundles", folder + _SUFFIX))
            except ValueError as exc:
                raise ListingError(self.url, folder, f"it is not JSON ({exc})") from exc
        return Listing.from_json(data, folder, self.url)

    def path(self, folder: str, *, full_check: bool | None = None) -> Path:
        """The bundle ``folder``, downloaded into (or found in) the cache and verified;
        ``full_check`` overrides the cache's setting (every file's SHA-256 on a hit)."""
        listing = self.listing(folder)
        with self._io(f"downloading bundle {folder}"):
            return self.cache.fetch(listing, self._open_blob, full_check=full_check)

    def modified(self, folder: str) -> float | None:
        """When the listing of ``folder`` was written (POSIX time); None if it has none."""
        with self._io(f"reading bundle {folder}"):
            try:
                info = self._fs.info(self._key("bundles", folder + _SUFFIX))
            except FileNotFoundError:
                return None
        return _stamp(info)

    def _open_blob(self, sha: str) -> Any:
        return self._fs.open(self._key("blobs", sha), "rb", block_size=_BLOCK)

    def published(self) -> list[str]:
        with self._io("listing bundles"):
            return sorted(
                PurePosixPath(key).name[: -len(_SUFFIX)]
                for key in self._list("bundles")
                if key.endswith(_SUFFIX)
            )

    def _list(self, kind: str) -> list[str]:
        # s3fs keeps listings for the life of the instance: other machines write too.
        self._fs.invalidate_cache(self._key(kind))
        try:
            return [str(k) for k in self._fs.ls(self._key(kind), detail=False)]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------------------- records

    def write_record(
        self,
        folder: str,
        *,
        state: RecordState,
        name: str,
        version: int,
        record: VersionRecord,
    ) -> None:
        data = journal.make_record(
            folder, state=state, name=name, version=version, row=record.to_row()
        )
        with self._io(f"writing the record of {name}:{version}"):
            self._write_json(self._key("records", folder + _SUFFIX), data)

    def read_records(self) -> dict[str, journal.Record]:
        found: dict[str, journal.Record] = {}
        with self._io("reading registration records"):
            for key in self._list("records"):
                entry = PurePosixPath(key).name
                if not entry.endswith(_SUFFIX):
                    continue
                folder = entry[: -len(_SUFFIX)]
                try:
                    data = self._read_json(key)
                except (FileNotFoundError, ValueError):
                    # Gone since it was listed, or not a record. Any other failure to read
                    # one stops the caller: rebuild() would leave its version out.
                    continue
                record = journal.parse_record(data, folder)
                if record is not None:
                    found[folder] = record
        return found

    def remove_record(self, name: str) -> None:
        with self._io(f"removing record {name}"):
            key = self._key("records", name)
            if self._fs.exists(key):
                self._fs.rm_file(key)

    def leftovers(self) -> list[str]:
        return []  # an object PUT is whole: no temporary records

    # ---------------------------------------------------------------------- alias moves

    def write_alias_move(self, entry: Mapping[str, Any]) -> None:
        """Write one alias move (with its id) as ``aliases/<id>.json``, replacing any."""
        with self._io(f"writing alias move {entry['id']}"):
            self._write_json(self._key("aliases", f"{int(entry['id'])}{_SUFFIX}"), dict(entry))

    def read_alias_moves(self) -> list[dict[str, Any]]:
        """Every stored alias move, by id; unreadable objects are skipped."""
        found: dict[int, dict[str, Any]] = {}
        with self._io("reading alias moves"):
            for key in self._list("aliases"):
                try:
                    data = self._read_json(key)
                except (FileNotFoundError, ValueError):  # as in read_records
                    continue
                if isinstance(data, dict) and isinstance(data.get("id"), int):
                    found[data["id"]] = data
        return [found[key] for key in sorted(found)]

    def alias_ages(self) -> dict[int, float | None]:
        """Alias move id -> when its object was written (POSIX time)."""
        with self._io("listing alias moves"):
            return {
                int(name[: -len(_SUFFIX)]): stamp
                for name, stamp in self._ages("aliases").items()
                if name.endswith(_SUFFIX) and name[: -len(_SUFFIX)].isdigit()
            }

    def remove_alias_move(self, move_id: int) -> None:
        with self._io(f"removing alias move {move_id}"):
            key = self._key("aliases", f"{move_id}{_SUFFIX}")
            if self._fs.exists(key):
                self._fs.rm_file(key)

    # ---------------------------------------------------------------- checks and blobs

    def blob_modified(self, sha: str) -> float | None:
        """When the blob ``sha`` was written (POSIX time); None if there is none."""
        key = self._key("blobs", sha)
        with self._io(f"reading blob {sha}"):
            self._fs.invalidate_cache(key)
            try:
                return _stamp(self._fs.info(key))
            except FileNotFoundError:
                return None

    def blobs(self) -> dict[str, float | None]:
        """Every stored blob's SHA-256 -> when it was written (POSIX time)."""
        with self._io("listing blobs"):
            return self._ages("blobs")

    def referenced(self) -> set[str] | None:
        """The SHA-256 of every blob some listing names; None when a listing cannot be
        read (then nobody can prove a blob unreferenced)."""
        named: set[str] = set()
        for folder in self.published():
            try:
                listing = self.listing(folder)
            except (ArtifactStoreError, ListingError):
                return None
            named.update(entry.sha256 for entry in listing.files.values())
        return named

    def remove_blob(self, sha: str) -> None:
        with self._io(f"removing blob {sha}"):
            key = self._key("blobs", sha)
            if self._fs.exists(key):
                self._fs.rm_file(key)

    def problem(self, folder: str, manifest_sha256: str) -> tuple[ProblemKind, str] | None:
        """What is wrong with the stored bundle ``folder`` whose manifest the index
        recorded as ``manifest_sha256``, found by hashing the objects themselves (streamed),
        never the download cache; None when nothing is."""
        from modelkeep._reader import manifest_from_bytes

        key = self._key("bundles", folder + _SUFFIX)
        with self._io(f"checking bundle {folder}"):
            self._fs.invalidate_cache(self._key("bundles"))
            if not self._fs.exists(key):
                return "missing_folder", f"bundles/{folder}{_SUFFIX} does not exist"
        try:
            listing = self.listing(folder)
        except (ArtifactStoreError, ListingError) as exc:
            return "missing_folder", f"bundles/{folder}{_SUFFIX} cannot be read: {exc}"
        manifest = listing.files[MANIFEST_NAME]
        if listing.manifest_sha256 != manifest_sha256:
            return "manifest_changed", f"{MANIFEST_NAME} sha256 differs from the index"
        with self._io(f"checking bundle {folder}"):
            try:
                data = self._fs.cat_file(self._key("blobs", manifest.sha256))
            except FileNotFoundError:
                return "manifest_changed", f"{MANIFEST_NAME} cannot be read: its blob is missing"
        if hashlib.sha256(data).hexdigest() != manifest_sha256:
            return "manifest_changed", f"{MANIFEST_NAME} sha256 differs from the index"
        try:
            artifacts = manifest_from_bytes(data, f"{self.url}/{folder}/{MANIFEST_NAME}").artifacts
        except ModelkeepError as exc:
            return "manifest_changed", str(exc)
        for artifact in artifacts:
            entry = listing.files.get(artifact.path)
            if entry is None:
                return "artifact_changed", f"{artifact.path} is not in the bundle's listing"
            with self._io(f"checking bundle {folder}"):
                try:
                    size, sha = self._hash_remote(self._key("blobs", entry.sha256), entry.size)
                except FileNotFoundError:
                    return "artifact_changed", f"{artifact.path}: its blob is missing"
            if size != artifact.size:
                return "artifact_changed", str(
                    IntegrityError(artifact.path, "size", artifact.size, size)
                )
            if sha != artifact.sha256:
                return "artifact_changed", str(
                    IntegrityError(artifact.path, "sha256", artifact.sha256, sha)
                )
        return None

    def _ages(self, kind: str) -> dict[str, float | None]:
        self._fs.invalidate_cache(self._key(kind))
        try:
            entries = self._fs.ls(self._key(kind), detail=True)
        except FileNotFoundError:
            return {}
        return {
            PurePosixPath(str(entry["name"])).name: _stamp(entry)
            for entry in entries
            if entry.get("type") != "directory"
        }


def _stamp(info: Mapping[str, Any]) -> float | None:
    """When an object was written (POSIX time), from fsspec's ``info``."""
    stamp = info.get("LastModified", info.get("mtime", info.get("created")))
    if hasattr(stamp, "timestamp"):
        return float(stamp.timestamp())
    return float(stamp) if isinstance(stamp, (int, float)) else None


def _hash_local(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
