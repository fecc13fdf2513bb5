"""The local cache of bundles downloaded from a remote artifact store (``remote.py``).

Layout under ``<registry root>/cache/``::

    <manifest sha256>/      one complete, verified bundle (read-only)
    .partial-<random>/      a download in progress (removed when it fails)

An entry is keyed by its manifest's SHA-256, and the manifest names the SHA-256 of every
artifact, so an entry's key pins all of its bytes. A download is hashed as it streams to
disk (never held whole in memory) and compared with the listing before the folder is
renamed into place; a concurrent download of the same bundle simply loses the rename.

A hit is checked before it is used: every file's size and the manifest's SHA-256 always,
every file's SHA-256 too with ``full_check``; a symbolic link anywhere in it fails it. An
entry that fails is removed and fetched again (an entry that is itself a link is unlinked,
never followed), so a damaged or tampered cache heals instead of being trusted. An
artifact swapped for other bytes of its size passes the quick check: ``Registry.load``
then finds it by its hash and fetches the entry again with every hash checked.
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from modelkeep.errors import IntegrityError, ListingError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry.artifacts import remove_tree

__all__ = ["BundleCache", "Listing"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str


@dataclass(frozen=True)
class Listing:
    """A published bundle: its folder id, manifest hash and files (relative path -> entry)."""

    folder: str
    manifest_sha256: str
    files: Mapping[str, FileEntry]

    @classmethod
    def from_json(cls, data: Any, folder: str, store: str) -> Listing:
        """The listing in parsed JSON ``data``; :class:`ListingError` when it is not one.

        Paths are checked here: relative, forward slashes, no ``..``, so no download can
        write outside its cache entry.
        """
        if not isinstance(data, dict) or data.get("listing_format") != 1:
            raise ListingError(store, folder, "listing_format expected 1")
        manifest = data.get("manifest_sha256")
        raw = data.get("files")
        if not isinstance(manifest, str) or not _is_sha(manifest) or not isinstance(raw, dict):
            raise ListingError(store, folder, "manifest_sha256 and files expected")
        files: dict[str, FileEntry] = {}
        for name, entry in raw.items():
            path = PurePosixPath(name)
            if (
                not isinstance(name, str)
                or path.is_absolute()
                or ".." in path.parts
                or "\\" in name
                or not path.parts
                or path.as_posix() != name  # "a/./b", "a//b", "./a", "a/": one path, one name
            ):
                raise ListingError(
                    store, folder, f"file path {name!r} is not a plain relative path"
                )
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("size"), int)
                or isinstance(entry.get("size"), bool)
                or entry["size"] < 0
                or not _is_sha(entry.get("sha256"))
            ):
                raise ListingError(store, folder, f"file {name!r} lacks a size or sha256")
            files[name] = FileEntry(entry["size"], entry["sha256"])
        if files.get(MANIFEST_NAME, FileEntry(0, "")).sha256 != manifest:
            raise ListingError(store, folder, "the manifest file is not the manifest it names")
        return cls(folder, manifest, files)


def _is_sha(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


class BundleCache:
    """Verified local copies of remote bundles, keyed by manifest SHA-256."""

    def __init__(self, root: Path, *, full_check: bool = False) -> None:
        self.root = root
        self.full_check = full_check

    def entry(self, manifest_sha256: str) -> Path:
        """Where the bundle with this manifest hash is (or will be) cached."""
        return self.root / manifest_sha256

    def fetch(
        self,
        listing: Listing,
        open_blob: Callable[[str], BinaryIO],
        *,
        full_check: bool | None = None,
    ) -> Path:
        """The cached bundle of ``listing``: checked when present, else downloaded.
        ``full_check`` overrides the cache's own setting for this call."""
        target = self.entry(listing.manifest_sha256)
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            # Not an entry this cache made: removed (never followed), then fetched again.
            target.unlink(missing_ok=True)
        elif target.is_dir():
            if self.problem(listing, target, full_check=full_check) is None:
                return target
            with suppress(FileNotFoundError):  # another process may remove it too
                remove_tree(target)  # damaged or tampered with: fetch it again
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / f".partial-{uuid.uuid4().hex}"
        try:
            for name, entry in sorted(listing.files.items()):
                _download(open_blob, name, entry, partial / name)
            _make_read_only(partial)
            try:
                os.rename(partial, target)
            except OSError:
                if not target.is_dir():  # not a concurrent download that won the rename
                    raise
        finally:
            remove_tree(partial)
        return target

    def problem(
        self, listing: Listing, target: Path, *, full_check: bool | None = None
    ) -> str | None:
        """What is wrong with the cache entry ``target`` (None: nothing)."""
        full = self.full_check if full_check is None else full_check
        for directory, folders, files in os.walk(target):
            for name in (*folders, *files):
                if os.path.islink(os.path.join(directory, name)):
                    inside = Path(directory, name).relative_to(target).as_posix()
                    return f"{inside} is a symbolic link"  # a link could point anywhere
        for name, entry in listing.files.items():
            path = target / name
            try:
                status = path.lstat()
            except OSError:
                return f"{name} is missing"
            if not stat.S_ISREG(status.st_mode):
                return f"{name} is not a regular file"  # a link could point anywhere
            if status.st_size != entry.size:
                return f"{name} has {status.st_size} bytes, expected {entry.size}"
            if (full or name == MANIFEST_NAME) and _sha_file(path) != entry.sha256:
                return f"{name} sha256 differs"
        return None


def _download(
    open_blob: Callable[[str], BinaryIO], name: str, entry: FileEntry, path: Path
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open_blob(entry.sha256) as reader, path.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    if size != entry.size:
        raise IntegrityError(name, "downloaded size", entry.size, size)
    if digest.hexdigest() != entry.sha256:
        raise IntegrityError(name, "downloaded sha256", entry.sha256, digest.hexdigest())


def _sha_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _make_read_only(root: Path) -> None:
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            os.chmod(os.path.join(directory, name), 0o444)
        os.chmod(directory, 0o555)
