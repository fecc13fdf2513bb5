"""The registry's folder lock: registrations share it, garbage collection takes it alone.

A registration copies a bundle into the store before its index row exists; for that
moment the folder is unreferenced, and ``gc()`` must not mistake it for crash debris. Each
registration therefore holds the lock shared from its first copied byte to its commit, and
``gc()`` holds it exclusively. The kernel releases a ``flock`` when its holder dies, even by
SIGKILL, so a crashed registration never blocks collection of what it left.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOCKS_AVAILABLE", "exclusive", "shared"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Whether this platform has ``flock``; without it ``gc()`` only removes old debris.
LOCKS_AVAILABLE = fcntl is not None


@contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def shared(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock shared (many holders at once)."""
    with _locked(path, fcntl.LOCK_SH if fcntl is not None else 0):
        yield


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock alone, waiting for shared holders to finish."""
    with _locked(path, fcntl.LOCK_EX if fcntl is not None else 0):
        yield
