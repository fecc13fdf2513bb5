"""The wire protocol between the caller and its sandboxed worker: data only.

A message is a 4-byte big-endian header length, a UTF-8 JSON header, then the raw bytes
of each array the header lists under ``"buffers"`` (``dtype`` and ``shape``). Nothing is
ever unpickled or evaluated: the caller parses JSON and builds numpy arrays from bytes,
with the dtype drawn from :data:`DTYPES` (numbers, booleans, datetimes) and the byte count
checked against the shape before a byte is read. Text travels as JSON lists. Sizes are
capped (:data:`MAX_HEADER`, ``max_bytes``) so a worker cannot make the caller allocate
without bound.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DTYPES",
    "MAX_CONTAINERS",
    "MAX_HEADER",
    "ProtocolError",
    "column_values",
    "decode_column",
    "encode",
    "read_message",
    "write_message",
]

#: The array dtypes either side accepts (numpy ``dtype.str``): fixed-size plain data only.
DTYPES = frozenset(
    {
        "|b1",
        "|i1",
        "<i2",
        "<i4",
        "<i8",
        "|u1",
        "<u2",
        "<u4",
        "<u8",
        "<f2",
        "<f4",
        "<f8",
        *(f"<{kind}8[{unit}]" for kind in "Mm" for unit in ("s", "ms", "us", "ns")),
    }
)
#: The largest JSON header accepted (text outputs travel in it).
MAX_HEADER = 256 * 1024**2
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """A message that breaks the protocol (too big, not JSON, a dtype not allowed ...), or
    a pipe that closed or timed out; ``timeout`` tells which."""

    def __init__(
        self, problem: str, *, timeout: bool = False, closed: bool = False, limit: str = ""
    ) -> None:
        self.problem = problem
        self.timeout = timeout
        self.closed = closed
        self.limit = limit
        super().__init__(problem)


#: How often a reader waiting for a reply calls its ``watch`` (seconds).
WATCH_EVERY = 0.5


def encode(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """One message: ``header`` (JSON-able) with ``arrays`` after it, described in it."""
    buffers = []
    described = []
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        dtype = contiguous.dtype.newbyteorder("<") if contiguous.dtype.byteorder == ">" else None
        if dtype is not None:
            contiguous = contiguous.astype(dtype)
        if contiguous.dtype.str not in DTYPES:
            raise ProtocolError(f"dtype {contiguous.dtype.str} cannot be sent")
        described.append({"dtype": contiguous.dtype.str, "shape": list(contiguous.shape)})
        buffers.append(contiguous.tobytes())
    text = json.dumps({**header, "buffers": described}).encode()
    return b"".join([_LENGTH.pack(len(text)), text, *buffers])


def write_message(fd: int, data: bytes, *, deadline: float | None = None) -> None:
    """All of ``data`` to ``fd``, waiting for the pipe at most until ``deadline``."""
    view = memoryview(data)
    while view:
        _wait(fd, write=True, deadline=deadline)
        try:
            sent = os.write(fd, view[: 1 << 20])
        except BrokenPipeError as exc:
            raise ProtocolError("the pipe closed", closed=True) from exc
        view = view[sent:]


#: The most JSON objects and arrays one header may open: a list of values is one, a
#: header of a million empty objects would cost the reader gigabytes.
MAX_CONTAINERS = 100_000


def read_message(
    fd: int,
    *,
    max_bytes: int,
    deadline: float | None = None,
    max_header: int = MAX_HEADER,
    watch: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One message from ``fd``: its header and arrays, every size and dtype checked.

    The header is at most ``max_header`` bytes and :data:`MAX_CONTAINERS` objects and
    arrays (counted on the bytes before parsing: no deep nesting, no explosion of small
    objects); the arrays at most ``max_bytes`` together, each read straight into the one
    buffer numpy uses. ``watch`` is called while it waits for the first byte.
    """
    (length,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size, deadline, watch))
    if length > max_header:
        raise ProtocolError(f"a header of {length} bytes, over the {max_header} allowed")
    text = _read_exact(fd, length, deadline)
    containers = text.count(b"{") + text.count(b"[")
    if containers > MAX_CONTAINERS:
        raise ProtocolError(
            f"a header of {containers} objects and arrays, over the {MAX_CONTAINERS} allowed"
        )
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"a header that is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("a header that is not a JSON object")
    described = header.pop("buffers", [])
    if not isinstance(described, list):
        raise ProtocolError("buffers: expected a list")
    plans = []
    total = 0
    for item in described:
        dtype, shape = _plan(item)
        size = dtype.itemsize * math.prod(shape)
        total += size
        if total > max_bytes:
            raise ProtocolError(f"arrays of more than {max_bytes} bytes")
        plans.append((dtype, shape, size))
    arrays = []
    for dtype, shape, size in plans:
        data = _read_into(fd, size, deadline)
        arrays.append(np.frombuffer(data, dtype=dtype).reshape(shape))
    return header, arrays


def _read_into(fd: int, size: int, deadline: float | None) -> bytearray:
    """``size`` bytes from ``fd`` into one buffer (no chunks joined, no second copy)."""
    data = bytearray(size)
    view = memoryview(data)
    filled = 0
    while filled < size:
        _wait(fd, write=False, deadline=deadline)
        count = os.readv(fd, [view[filled : filled + (1 << 20)]])
        if not count:
            raise ProtocolError("the pipe closed", closed=True)
        filled += count
    return data


def _plan(item: object) -> tuple[np.dtype[Any], tuple[int, ...]]:
    if not isinstance(item, dict):
        raise ProtocolError("a buffer description that is not an object")
    text = item.get("dtype")
    shape = item.get("shape")
    if not isinstance(text, str) or text not in DTYPES:
        raise ProtocolError(f"dtype {text!r}: expected one of the plain numeric dtypes")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(type(n) is int and 0 <= n < 2**40 for n in shape)
    ):
        raise ProtocolError(f"shape {shape!r}: expected up to 8 whole numbers")
    return np.dtype(text), tuple(shape)


def _wait(
    fd: int, *, write: bool, deadline: float | None, watch: Callable[[], None] | None = None
) -> None:
    """Until ``fd`` is ready or ``deadline``; ``watch`` is called every :data:`WATCH_EVERY`
    seconds meanwhile (it raises ProtocolError to stop waiting)."""
    if deadline is None:
        return
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError("no answer in time", timeout=True)
        step = remaining if watch is None else min(remaining, WATCH_EVERY)
        ready = select.select([], [fd], [], step) if write else select.select([fd], [], [], step)
        if any(ready):
            return
        if watch is not None:
            watch()


def _read_exact(
    fd: int, size: int, deadline: float | None, watch: Callable[[], None] | None = None
) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        _wait(fd, write=False, deadline=deadline, watch=watch)
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("the pipe closed", closed=True)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ---- columns ---------------------------------------------------------------------------------


def column_values(values: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    """A column for the wire: ``({"kind": "array"}, array)`` for plain numeric data, or
    ``({"kind": "list", "values": [...]}, None)`` for anything else (text, categories,
    missing values as null)."""
    array = np.asarray(values)
    if array.dtype.str in DTYPES or array.dtype.newbyteorder("<").str in DTYPES:
        return {"kind": "array"}, array
    return {"kind": "list", "values": [_plain(v) for v in array.tolist()]}, None


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, np.generic):
        return _plain(value.item())
    # pandas' NA, NaT and the like: missing.
    try:
        if value != value:
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def decode_column(description: dict[str, Any], arrays: list[np.ndarray]) -> Any:
    """The column :func:`column_values` described (arrays consumed in order)."""
    if description.get("kind") == "array":
        if not arrays:
            raise ProtocolError("a column array is missing")
        return arrays.pop(0)
    values = description.get("values")
    if not isinstance(values, list):
        raise ProtocolError("a column's values: expected a list")
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
