"""Reading a bundle's files: through directory descriptors, never following a link.

Every reader of a bundle opens it here: load and verify, scan, signing and verifying
signatures, convert, the registry's register, check and copies, inspect. Opening a bundle
walks all of it first and refuses anything that is not a regular file or a directory
(:class:`~modelkeep.errors.BundleLayoutError`), wherever it is: a symlinked ``artifacts/``
would otherwise let a bundle load, hash, sign or copy files from outside itself. Each file
is then opened one path component at a time, relative to the descriptor of the directory
above it, with ``O_NOFOLLOW``: a link planted after the walk is refused too, not followed.
The walk and the opens are ``_fs.py``'s; this module adds what a bundle is: its manifest
(read and parsed here only, for every reader, with one error policy), its artifacts
(checked against the manifest) and its signature.
"""

from __future__ import annotations

import io
import os
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelkeep._fs import copy_tree, open_nofollow, walk
from modelkeep._integrity import check_artifact
from modelkeep.errors import (
    BundleNotFoundError,
    IntegrityError,
    ManifestError,
    SignatureError,
)
from modelkeep.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Artifact,
    Manifest,
    check_manifest_size,
    parse_manifest,
)

__all__ = [
    "SIGNATURE_NAME",
    "BundleReader",
    "Replaced",
    "manifest_from_bytes",
    "open_bundle",
    "read_manifest",
]

SIGNATURE_NAME = "model.sig"


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
        try:
            self.files, self.directories = walk(self._fd, root=str(path))
        except FileNotFoundError as exc:
            # An entry vanished while it was listed: a concurrent overwrite removing the
            # old tree. Read again (Replaced) when the path now names another directory.
            replaced = self.replaced()
            os.close(self._fd)
            if replaced:
                raise Replaced from exc
            raise BundleNotFoundError(str(path), "its files vanished while it was read") from exc
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

    def open(self, relative: str) -> BinaryIO:
        """Open the regular file at ``relative`` (``/``-separated), following no link.

        Raises:
            FileNotFoundError: no such file.
            BundleLayoutError: a component is a symlink or a special file.
        """
        return open_nofollow(self.path, relative, dir_fd=self._fd)

    def copy_to(self, target: Path, *, leave_out: Container[str] = ()) -> None:
        """Copy the bundle, as this reader pins it, into ``target`` (an existing directory).

        Files named in ``leave_out`` are not copied; everything written is fsynced.
        """
        copy_tree(self.path, target, leave_out=leave_out, dir_fd=self._fd)

    def manifest(self) -> Manifest:
        """Read and parse ``modelkeep.json``; keep its bytes in ``manifest_bytes``."""
        source = str(self.path / MANIFEST_NAME)
        try:
            with self.open(MANIFEST_NAME) as stream:
                data = stream.read(MAX_MANIFEST_BYTES + 1)  # never a huge file whole
        except FileNotFoundError as exc:
            if self.replaced():
                raise Replaced from exc
            raise BundleNotFoundError(str(self.path), f"{MANIFEST_NAME} is missing") from exc
        except OSError as exc:
            raise ManifestError(source, f"cannot be read ({exc})") from exc
        check_manifest_size(len(data), source)
        # Kept: a signature check binds the signature to these exact bytes.
        self.manifest_bytes = data
        return manifest_from_bytes(data, source)

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
        with self.open_artifact(artifact) as stream:
            data = stream.read()
        check_artifact(artifact, io.BytesIO(data))
        return data

    def check_artifact(self, artifact: Artifact) -> None:
        """Raise :class:`IntegrityError` unless the artifact's file is the recorded bytes."""
        with self.open_artifact(artifact) as stream:
            check_artifact(artifact, stream)

    def open_artifact(self, artifact: Artifact) -> BinaryIO:
        """The artifact's file, opened as it is (unchecked), following no link.

        Raises:
            IntegrityError: the file is missing, or is not a regular file.
            BundleLayoutError: a symlink or special file on its path.
            Replaced: it is missing because the bundle was replaced meanwhile.
        """
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
    try:
        reader = BundleReader(Path(path))
    except Replaced as exc:
        raise BundleNotFoundError(str(path), "it was replaced while being read") from exc
    try:
        yield reader
    except Replaced as exc:
        raise BundleNotFoundError(str(path), "it was replaced while being read") from exc
    finally:
        reader.close()


def manifest_from_bytes(data: bytes, source: str) -> Manifest:
    """Parse a manifest's bytes as every reader of a bundle does; ``source`` names it.

    Raises:
        ManifestError: larger than :data:`~modelkeep.manifest.MAX_MANIFEST_BYTES`, not
            UTF-8, not JSON or not a valid manifest.
        UnsupportedFormatVersionError: its format version has no reader.
    """
    check_manifest_size(len(data), source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(source, f"cannot be read ({exc})") from exc
    return parse_manifest(text, source)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read ``path/modelkeep.json``: the one manifest reader, with load's error policy.

    Raises:
        BundleNotFoundError: no bundle directory, or no manifest in it.
        BundleLayoutError: the bundle holds a symlink or special file anywhere.
        ManifestError: the manifest cannot be read or is invalid.
    """
    with open_bundle(path) as reader:
        return reader.manifest()
