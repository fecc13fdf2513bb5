"""The registry's folder lock: writers share it; gc, check and rebuild take it alone.

A registration copies a bundle into the store before its index row exists; for that
moment the folder is unreferenced, and ``gc()`` must not mistake it for crash debris. Each
write (a registration from its first copied byte to its commit, an alias move, a delete)
therefore holds the lock shared, and ``gc()``, ``check()`` and ``rebuild()`` hold it
exclusively. The kernel releases a ``flock`` when its holder dies, even by SIGKILL, so a
crashed registration never blocks collection of what it left.

A holder that is alive but stopped (SIGSTOP, a debugger) keeps the lock, so nobody waits
forever: a wait ends after ``timeout`` seconds with :class:`RegistryLockedError`, naming
the holders. Each holder appends ``pid role`` to the lock file once it holds the lock; the
waiter names the recorded processes still alive. The file is cleared by whoever holds the
lock alone (an exclusive holder on entry, the last shared holder on leaving), so it lists
at most the holders since the lock was last free.

Read-only use: where the lock file cannot be opened for writing (a read-only mount), an
existing lock file is locked through a read-only descriptor and nothing is recorded; with
no lock file there is nobody to wait for.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from modelkeep.errors import RegistryLockedError

__all__ = ["LOCKS_AVAILABLE", "exclusive", "holders", "shared"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Whether this platform has ``flock``; without it ``gc()`` only removes old debris.
LOCKS_AVAILABLE = fcntl is not None

_POLL_S = 0.05


def _open(path: Path) -> tuple[int | None, bool]:
    """A descriptor on the lock file and whether it is writable (None: no file to lock)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), True
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY), False
    except FileNotFoundError:
        return None, False


@contextmanager
def _locked(
    path: Path, operation: int, *, role: str, timeout: float, registry: str
) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd, writable = _open(path)
    if fd is None:
        yield
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RegistryLockedError(
                        registry, role, str(path), holders(path), timeout
                    ) from None
                time.sleep(_POLL_S)
        if writable:
            if operation == fcntl.LOCK_EX:
                os.ftruncate(fd, 0)
            _record(path, role)
        try:
            yield
        finally:
            if writable:
                # Whoever holds the lock alone clears the list: an exclusive holder, or the
                # last shared holder out (the upgrade fails while another one holds it).
                with suppress(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _record(path: Path, role: str) -> None:
    # O_APPEND: concurrent shared holders each add one whole line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{os.getpid()} {role}\n".encode())
    finally:
        os.close(fd)


def holders(path: Path) -> list[str]:
    """The processes the lock file records as holders that are still alive, oldest first."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in lines:
        pid_text, _, role = line.partition(" ")
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        entry = f"process {int(pid_text)} ({role or 'unknown'})"
        if _alive(int(pid_text)) and entry not in found:
            found.append(entry)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


@contextmanager
def shared(path: Path, *, role: str, timeout: float, registry: str) -> Iterator[None]:
    """Hold ``path``'s lock shared (many holders at once), waiting at most ``timeout`` s."""
    lock = fcntl.LOCK_SH if fcntl is not None else 0
    with _locked(path, lock, role=role, timeout=timeout, registry=registry):
        yield


@contextmanager
def exclusive(path: Path, *, role: str, timeout: float, registry: str) -> Iterator[None]:
    """Hold ``path``'s lock alone, waiting at most ``timeout`` s for the holders to finish."""
    lock = fcntl.LOCK_EX if fcntl is not None else 0
    with _locked(path, lock, role=role, timeout=timeout, registry=registry):
        yield
