"""Reading a bundle's files: through directory descriptors, never following a link.

Every reader of a bundle opens it here: load and verify, scan, signing and verifying
signatures, convert, the registry's register, check and copies, inspect. Opening a bundle
walks all of it first and refuses anything that is not a regular file or a directory
(:class:`~modelkeep.errors.BundleLayoutError`), wherever it is: a symlinked ``artifacts/``
would otherwise let a bundle load, hash, sign or copy files from outside itself. Each file
is then opened one path component at a time, relative to the descriptor of the directory
above it, with ``O_NOFOLLOW``: a link planted after the walk is refused too, not followed.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelkeep.errors import (
    BundleLayoutError,
    BundleNotFoundError,
    IntegrityError,
    ManifestError,
    SignatureError,
)
from modelkeep.integrity import check_artifact
from modelkeep.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Artifact,
    Manifest,
    check_manifest_size,
    parse_manifest,
)

__all__ = ["SIGNATURE_NAME", "BundleReader", "Replaced", "open_bundle"]

SIGNATURE_NAME = "model.sig"

# O_NONBLOCK: opening a FIFO planted after the walk must not hang; it is refused instead.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY


class Replaced(Exception):
    """The bundle being read was replaced by a concurrent save(overwrite=True)."""


class BundleReader:
    """Reads files of one bundle directory through a directory descriptor.

    Holding the directory open pins the bundle being read: if ``save(overwrite=True)``
    swaps a new bundle into the path meanwhile, this reader still sees the old files,
    never a mix of the two. ``files`` and ``directories`` are everything the bundle holds,
    as sorted POSIX paths relative to it.

    Raises:
        BundleNotFoundError: no directory at ``path``.
        BundleLayoutError: the bundle holds a symlink or a special file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_bytes: bytes | None = None  # as read, once manifest() has read them
        try:
            # The bundle's own path may be a link (the caller chose it); nothing inside may.
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as exc:
            raise BundleNotFoundError(str(path)) from exc
        except NotADirectoryError as exc:
            raise BundleNotFoundError(str(path), "it is a file, not a directory") from exc
        self.files: list[str] = []
        self.directories: list[str] = []
        try:
            self._walk(self._fd, "")
        except BaseException:
            os.close(self._fd)
            raise

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        os.close(self._fd)

    def replaced(self) -> bool:
        """Whether the path now names another directory than the one being read."""
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except OSError:
            return True

    def _walk(self, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as listing:
            entries = sorted((entry.name, entry.stat(follow_symlinks=False)) for entry in listing)
        for name, status in entries:
            relative = prefix + name
            if stat.S_ISREG(status.st_mode):
                self.files.append(relative)
            elif stat.S_ISDIR(status.st_mode):
                self.directories.append(relative)
                sub = self._open_at(name, dir_fd, relative, _DIRECTORY_FLAGS)
                try:
                    self._walk(sub, relative + "/")
                finally:
                    os.close(sub)
            else:
                raise BundleLayoutError(str(self.path), relative, _kind(status.st_mode))

    def open(self, relative: str) -> BinaryIO:
        """Open the regular file at ``relative`` (``/``-separated), following no link.

        Raises:
            FileNotFoundError: no such file.
            BundleLayoutError: a component is a symlink or a special file.
        """
        parts = relative.split("/")
        dir_fd = self._fd
        opened: list[int] = []
        try:
            for depth, part in enumerate(parts[:-1]):
                shown = "/".join(parts[: depth + 1])
                dir_fd = self._open_at(part, dir_fd, shown, _DIRECTORY_FLAGS)
                opened.append(dir_fd)
            fd = self._open_at(parts[-1], dir_fd, relative, _FILE_FLAGS)
        finally:
            for fd_open in opened:
                os.close(fd_open)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise BundleLayoutError(str(self.path), relative, _kind(mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def _open_at(self, name: str, dir_fd: int, relative: str, flags: int) -> int:
        try:
            return os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
                raise
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except OSError:
                raise exc from None
            if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
                raise  # a file where a directory was expected: the caller words it
            raise BundleLayoutError(str(self.path), relative, _kind(mode)) from exc

    def manifest(self) -> Manifest:
        """Read and parse ``modelkeep.json``; keep its bytes in ``manifest_bytes``."""
        source = str(self.path / MANIFEST_NAME)
        try:
            with self.open(MANIFEST_NAME) as stream:
                data = stream.read(MAX_MANIFEST_BYTES + 1)  # never a huge file whole
            check_manifest_size(len(data), source)
            # Kept: a signature check binds the signature to these exact bytes.
            self.manifest_bytes = data
            text = data.decode("utf-8")
        except FileNotFoundError as exc:
            if self.replaced():
                raise Replaced from exc
            raise BundleNotFoundError(str(self.path), f"{MANIFEST_NAME} is missing") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(source, f"cannot be read ({exc})") from exc
        return parse_manifest(text, source)

    def signature(self) -> bytes | None:
        """The bytes of ``model.sig``, or None when the bundle has none."""
        try:
            with self.open(SIGNATURE_NAME) as stream:
                return stream.read()
        except FileNotFoundError:
            if self.replaced():
                raise Replaced from None
            return None
        except OSError as exc:  # e.g. EISDIR: a directory planted as model.sig
            raise SignatureError(
                str(self.path),
                f"expected {SIGNATURE_NAME} to be a regular file, got {exc.strerror}",
                kind="malformed",
            ) from exc

    def read(self, relative: str) -> bytes:
        """The whole content of the regular file at ``relative``."""
        with self.open(relative) as stream:
            return stream.read()

    def read_artifact(self, artifact: Artifact) -> bytes:
        """The artifact's bytes, after checking them against the manifest."""
        with self._open_artifact(artifact) as stream:
            data = stream.read()
        check_artifact(artifact, io.BytesIO(data))
        return data

    def check_artifact(self, artifact: Artifact) -> None:
        with self._open_artifact(artifact) as stream:
            check_artifact(artifact, stream)

    def _open_artifact(self, artifact: Artifact) -> BinaryIO:
        try:
            return self.open(artifact.path)
        except FileNotFoundError as exc:
            if self.replaced():
                raise Replaced from exc
            raise IntegrityError(artifact.path, "file", "present", "missing") from exc
        except OSError as exc:  # e.g. EISDIR: a directory where the file should be
            raise IntegrityError(artifact.path, "file", "a regular file", str(exc)) from exc


@contextmanager
def open_bundle(path: str | os.PathLike[str]) -> Iterator[BundleReader]:
    """A :class:`BundleReader` on ``path``, closed on exit, for readers that do not retry.

    Raises:
        BundleNotFoundError: no directory at ``path``, or it was replaced while being read.
        BundleLayoutError: the bundle holds a symlink or a special file.
    """
    reader = BundleReader(Path(path))
    try:
        yield reader
    except Replaced as exc:
        raise BundleNotFoundError(str(path), "it was replaced while being read") from exc
    finally:
        reader.close()


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a regular file nor a directory"
