"""The file layer under every bundle: no-follow opens, walks and copies, durable writes.

Everything that reads, writes or copies a bundle's files does it here, once:

- :func:`open_nofollow`, :func:`walk` and :func:`copy_tree` never follow a link below the
  directory they are given and refuse anything that is not a regular file or a directory
  (:class:`~modelkeep.errors.BundleLayoutError`): a link could make a reader read, hash,
  sign or copy a file from outside the bundle, and a FIFO could hang it;
- :func:`write_file` writes a whole file or nothing (a temporary file, fsynced, renamed);
- :func:`atomic_directory` builds a directory beside its target and moves it into place in
  one rename (an exchange when replacing), so a reader sees the old tree or the new one;
- :func:`save_lock` queues the writers of one path;
- :func:`sha256_stream` is the one SHA-256 of a file's bytes.

This module imports nothing of modelkeep but its errors.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelkeep.errors import (
    BundleExistsError,
    BundleLayoutError,
    BundleNotFoundError,
    BundleWriteError,
)

__all__ = [
    "STAGING_GRACE_SECONDS",
    "atomic_directory",
    "copy_tree",
    "fsync",
    "fsync_dir",
    "kind_of",
    "open_at",
    "open_nofollow",
    "save_lock",
    "sha256_stream",
    "walk",
    "write_file",
]

# The one spelling of "never follow a link". O_NONBLOCK: opening a FIFO planted after a
# walk must not hang; it is refused instead.
_NOFOLLOW = os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK
_DIRECTORY_FLAGS = os.O_RDONLY | _NOFOLLOW | os.O_DIRECTORY

_CHUNK = 1 << 20


# ------------------------------------------------------------------------ reading


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, as the refusal names it (``"a symbolic link"`` ...)."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a regular file nor a directory"


def open_at(name: str, dir_fd: int, flags: int, *, root: str, relative: str) -> int:
    """``os.open(name, flags, dir_fd=dir_fd)``; a link or special file is refused.

    Raises:
        BundleLayoutError: ``name`` is a symlink or a special file (``relative`` is what
            the refusal names, under ``root``).
        OSError: anything else, as the OS said it (a file where a directory was expected
            is the caller's to word).
    """
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
            raise
        raise BundleLayoutError(root, relative, kind_of(mode)) from exc


def open_nofollow(
    root: str | os.PathLike[str], relative: str, *, dir_fd: int | None = None
) -> BinaryIO:
    """Open the regular file ``relative`` (``/``-separated) under ``root``, following no link.

    Each component is opened relative to the descriptor of the directory above it, so a
    link planted anywhere below ``root`` is refused, never followed. ``root`` itself may
    be a link (the caller chose it). With ``dir_fd``, an open descriptor of ``root``, the
    file is found from that directory (``root`` then only names it in messages).

    Raises:
        FileNotFoundError: no such file.
        BundleLayoutError: a component is a symlink, or ``relative`` is not a regular file.
        OSError: e.g. ``NotADirectoryError`` for a file where a directory was expected.
    """
    shown = os.fspath(root)
    own = dir_fd is None
    base = os.open(root, os.O_RDONLY | os.O_DIRECTORY) if dir_fd is None else dir_fd
    parts = relative.split("/")
    opened: list[int] = []
    try:
        current = base
        for depth, part in enumerate(parts[:-1]):
            where = "/".join(parts[: depth + 1])
            current = open_at(part, current, _DIRECTORY_FLAGS, root=shown, relative=where)
            opened.append(current)
        fd = open_at(parts[-1], current, _FILE_FLAGS, root=shown, relative=relative)
    finally:
        for descriptor in opened:
            os.close(descriptor)
        if own:
            os.close(base)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise BundleLayoutError(shown, relative, kind_of(mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def walk(dir_fd: int, *, root: str, prefix: str = "") -> tuple[list[str], list[str]]:
    """Every regular file and directory under ``dir_fd``, as sorted ``/``-paths.

    Returns:
        (files, directories), each in walk order (a directory before what it holds).

    Raises:
        BundleLayoutError: a symlink or a special file anywhere below.
    """
    files: list[str] = []
    directories: list[str] = []
    with os.scandir(dir_fd) as listing:
        entries = sorted((entry.name, entry.stat(follow_symlinks=False)) for entry in listing)
    for name, status in entries:
        relative = prefix + name
        if stat.S_ISREG(status.st_mode):
            files.append(relative)
        elif stat.S_ISDIR(status.st_mode):
            directories.append(relative)
            sub = open_at(name, dir_fd, _DIRECTORY_FLAGS, root=root, relative=relative)
            try:
                more_files, more_directories = walk(sub, root=root, prefix=relative + "/")
            finally:
                os.close(sub)
            files += more_files
            directories += more_directories
        else:
            raise BundleLayoutError(root, relative, kind_of(status.st_mode))
    return files, directories


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    """SHA-256 hex digest and byte count of everything left in ``stream``."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def copy_tree(
    source: str | os.PathLike[str],
    target: Path,
    *,
    leave_out: Container[str] = (),
    dir_fd: int | None = None,
) -> None:
    """Copy every directory and regular file under ``source`` into ``target`` (which exists).

    The whole tree is walked first: a symlink or special file anywhere is refused before
    anything is copied, and each file is then opened without following links. Files
    named in ``leave_out`` (``/``-paths) are not copied. Every file and directory written
    is fsynced. With ``dir_fd``, an open descriptor of ``source``, the tree is read from it.

    Raises:
        BundleNotFoundError: no directory at ``source``.
        BundleLayoutError: a symlink or special file anywhere in ``source``.
    """
    shown = os.fspath(source)
    own = dir_fd is None
    if dir_fd is None:
        try:
            dir_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as exc:
            raise BundleNotFoundError(shown) from exc
        except NotADirectoryError as exc:
            raise BundleNotFoundError(shown, "it is a file, not a directory") from exc
    try:
        files, directories = walk(dir_fd, root=shown)
        for directory in directories:
            (target / directory).mkdir()
        for name in files:
            if name in leave_out:
                continue
            with (
                open_nofollow(shown, name, dir_fd=dir_fd) as reader,
                (target / name).open("xb") as writer,
            ):
                shutil.copyfileobj(reader, writer, _CHUNK)
                writer.flush()
                os.fsync(writer.fileno())
    finally:
        if own:
            os.close(dir_fd)
    for directory in reversed(directories):
        fsync_dir(target / directory)
    fsync_dir(target)


# ------------------------------------------------------------------------ writing


def fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk; errors are raised."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable, best effort (a missing one, or a file system
    that refuses fsync on directories, is left as it is)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def write_file(
    path: Path, data: bytes, *, mode: int | None = None, exclusive: bool = False
) -> None:
    """Write ``data`` at ``path`` whole or not at all, durably.

    The bytes go to a temporary file beside ``path``, are fsynced, and the file is renamed
    into place: a reader finds the old file (or none) or the new one, never part of it.
    ``mode`` is set exactly (whatever the umask) before the first byte is written;
    ``exclusive`` never replaces an existing ``path`` (it is linked into place, not
    renamed).

    Raises:
        FileExistsError: ``exclusive`` and something is at ``path`` already.
        OSError: the file cannot be written (e.g. its directory does not exist).
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    fd = os.open(temporary, flags, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# A staging directory younger than this is never taken for a dead save's: its owner may
# not have locked it yet (mkdir and flock are two calls).
STAGING_GRACE_SECONDS = 2.0


@contextmanager
def atomic_directory(target: Path, *, replace: bool) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; move it into place on success.

    On any failure the staging directory is removed, so nothing is left behind. Replacing
    swaps the two directories in one rename (Linux ``renameat2(RENAME_EXCHANGE)``), so a
    reader sees the old tree or the new one, never a mix. The staging directory is held by
    a directory ``flock`` while it is written: one nobody holds belongs to a killed
    writer, and the next write to ``target`` removes it.

    Raises:
        BundleExistsError: not ``replace``, and something appeared at ``target`` meanwhile.
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(target)
    staging = parent / f".{target.name}.modelkeep-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    held = _hold_directory(staging)
    try:
        yield staging
        for directory, _, _ in os.walk(staging, topdown=False):
            fsync(Path(directory))
        if replace:
            _swap_into_place(staging, target)
        else:
            try:
                os.rename(staging, target)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise BundleExistsError(str(target)) from exc
                raise
        fsync(parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        if held is not None:
            os.close(held)


def _hold_directory(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path`` (None without fcntl).

    The lock lives as long as the saving process: a staging directory nobody holds
    belongs to a save that was killed.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _remove_dead_staging(target: Path) -> None:
    """Remove the staging directories beside ``target`` left by saves that were killed.

    A save removes its staging directory on any error, but not when its process is
    killed; the next write to the same path removes it, once no process holds its lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: liveness cannot be told
        return
    pattern = re.compile(rf"\.{re.escape(target.name)}\.modelkeep-[0-9a-f]{{12}}")
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, _DIRECTORY_FLAGS)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live save holds it
            if time.time() - os.fstat(fd).st_ctime >= STAGING_GRACE_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


def _swap_into_place(staging: Path, target: Path) -> None:
    try:
        if _rename_exchange(staging, target):
            return  # staging now holds the old tree; the caller removes it
    except FileNotFoundError:  # nothing to replace (removed meanwhile): a plain move
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.modelkeep-old-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(target, old)
    except FileNotFoundError:
        os.rename(staging, target)
        return
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False where the OS cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


# ------------------------------------------------------------------------ locking

_LOCK_SUFFIX = ".modelkeep-lock"


@contextmanager
def save_lock(target: Path, given: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.modelkeep-lock`` beside ``target``.

    A concurrent save of the same path waits for this one, then sees its bundle: versions
    stay distinct and a first save never races another. The lock file is removed on
    release; a waiter that then holds the lock of a removed file tries again on the new
    one, so two writers never hold "the" lock at once. Where ``fcntl`` is missing
    (Windows) saves are not serialized. ``given`` is the path as the caller wrote it, for
    messages.

    Raises:
        BundleWriteError: no bundle can be written at ``target`` (a parent is a file, no
            permission ...).
    """
    parent = _writable_parent(target, given)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_path = parent / f".{target.name}{_LOCK_SUFFIX}"
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            raise _write_error(given, exc, parent) from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            held = os.fstat(fd)
            current = os.stat(lock_path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(fd)  # the previous holder removed this file: lock the new one
    try:
        yield
    finally:
        os.unlink(lock_path)  # still locked: a waiter on this file sees it gone, retries
        os.close(fd)


def _writable_parent(target: Path, given: str | os.PathLike[str]) -> Path:
    """``target``'s parent, created if needed; a path no bundle can be written at raises."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(given, exc, parent) from exc
    return parent


def _write_error(given: str | os.PathLike[str], exc: OSError, parent: Path) -> BundleWriteError:
    path = os.fspath(given)
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return BundleWriteError(
            path,
            f"{str(blocker)!r} is a file, not a directory",
            "Choose a path whose parent folders are directories (or can be created).",
        )
    if isinstance(exc, PermissionError):
        where = blocker if blocker is not None else parent
        return BundleWriteError(
            path,
            f"no permission to write in {str(where)!r}",
            "Choose a folder you can write to, or change its permissions.",
        )
    return BundleWriteError(path, exc.strerror or str(exc), "Check the path and the disk.")
