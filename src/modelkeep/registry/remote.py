"""An artifact store (``backends.ArtifactStore``) on any fsspec file system: S3-compatible
object storage for a team registry (``s3://bucket/prefix``, through s3fs), or a local
folder.

Layout under the store's URL::

    blobs/<sha256>          every file of every bundle, content-addressed (shared)
    bundles/<id>.json       a published bundle: its files (path, size, SHA-256) and the
                            SHA-256 of its manifest; written last, so it names only
                            complete, verified blobs
    records/<id>.json       its registration record (``journal.py``'s format)

Publishing uploads each file of the staged (local, verified) copy as a blob, streamed,
then reads it back, streamed, and compares its size and SHA-256 before the listing is
written: a listing never names a blob that is missing or differs. The index row that makes
a version visible is written after that (``api.py``), so no reader ever sees a version
whose artifacts are incomplete. An object store's PUT replaces a whole object, so records
are never half-written and there are no temporary files.

Reading goes through a local cache keyed by the manifest's SHA-256 (``cache.py``): a
download is hashed as it is written and checked before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from modelkeep.errors import ArtifactStoreError, ModelkeepError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry import journal
from modelkeep.registry.artifacts import BundleFolders, remove_tree
from modelkeep.registry.cache import BundleCache, Listing
from modelkeep.registry.journal import RecordState
from modelkeep.registry.records import VersionRecord

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
        with self._fs.open(key, "rb") as reader:
            return json.loads(reader.read())

    def _parent(self, key: str) -> None:
        """Make the folder of ``key`` on a file system that has folders (objects need none)."""
        protocol = self._fs.protocol
        if "file" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,)):
            self._fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)

    def _write_json(self, key: str, data: Any) -> None:
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True).encode()
        self._parent(key)
        self._fs.pipe_file(key, payload)

    def _hash_remote(self, key: str) -> tuple[int, str]:
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
        remove_tree(staged)
        return folder

    def _upload_blob(self, path: Path, size: int, sha: str) -> None:
        key = self._key("blobs", sha)
        if self._fs.exists(key) and self._hash_remote(key) == (size, sha):
            return  # content-addressed: the same bytes are already there, verified
        self._parent(key)
        # Streamed: parts of _PART bytes (a local file system ignores these options).
        self._fs.put_file(str(path), key, chunksize=_PART, max_concurrency=1)
        got = self._hash_remote(key)
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
            data = self._read_json(self._key("bundles", folder + _SUFFIX))
        return Listing.from_json(data, folder, self.url)

    def path(self, folder: str) -> Path:
        """The bundle ``folder``, downloaded into (or found in) the cache and verified."""
        listing = self.listing(folder)
        with self._io(f"downloading bundle {folder}"):
            return self.cache.fetch(listing, self._open_blob)

    def modified(self, folder: str) -> float | None:
        """When the listing of ``folder`` was written (POSIX time); None if it has none."""
        with self._io(f"reading bundle {folder}"):
            try:
                info = self._fs.info(self._key("bundles", folder + _SUFFIX))
            except FileNotFoundError:
                return None
        stamp = info.get("LastModified", info.get("mtime", info.get("created")))
        if hasattr(stamp, "timestamp"):
            return float(stamp.timestamp())
        return float(stamp) if isinstance(stamp, (int, float)) else None

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
                except (OSError, ValueError):
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


def _hash_local(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
