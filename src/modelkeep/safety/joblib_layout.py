"""joblib's file layout, as data: compression by magic bytes, and where array bytes lie.

``joblib.dump`` writes one pickle stream in which every numpy array is replaced by a
``joblib.numpy_pickle.NumpyArrayWrapper`` object (shape, order, dtype, alignment) whose
BUILD opcode is followed, outside the pickle grammar, by the array itself:

* numeric arrays: one byte giving a padding length, that many padding bytes (joblib >= 1.2
  aligns array data to 16 bytes; older files have no padding byte), then ``nbytes`` of raw
  data in the wrapper's order;
* arrays of Python objects: a complete nested pickle stream, ending with its own STOP.

The whole file may be compressed (zlib, gzip, bz2, lzma, xz), recognised by its first bytes
as joblib does. Both the static scanner and the restricted loader use the functions here,
so they agree on where every array starts and ends.
"""

from __future__ import annotations

import bz2
import lzma
import math
import sys
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "LayoutError",
    "WrapperSpec",
    "decompress",
    "detect_compression",
    "native_byte_order",
    "numeric_data",
    "wrapper_spec",
]

#: A compressed file is inflated to at most this many bytes unless the caller passes a
#: larger ``max_inflated_bytes=`` (a decompression bomb stops here with an error instead of
#: exhausting memory). 1 GiB: a joblib file of a 300-tree forest inflates to 60 MB.
MAX_DECOMPRESSED_BYTES = 1 << 30

# joblib's own prefixes (joblib/compressor.py), checked in this order.
_MAGIC: tuple[tuple[str, bytes], ...] = (
    ("zlib", b"\x78"),
    ("gzip", b"\x1f\x8b"),
    ("bz2", b"BZ"),
    ("xz", b"\xfd7zXZ"),
    ("lzma", b"]\x00\x00"),
    ("lz4", b"\x04\x22\x4d\x18"),
)
_ZFILE_PREFIX = b"ZF"  # joblib < 0.10 kept arrays in companion files

_CHUNK = 1 << 24


class LayoutError(Exception):
    """The bytes do not follow joblib's layout; ``problem`` says how."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def detect_compression(data: bytes | bytearray | memoryview) -> str | None:
    """The compression joblib would detect from the first bytes, or None for a raw stream.

    Raises:
        LayoutError: for formats modelkeep does not read (lz4, joblib < 0.10 files).
    """
    head = bytes(data[:8])
    if head.startswith(_ZFILE_PREFIX):
        raise LayoutError(
            "a joblib < 0.10 file, which keeps its arrays in companion files; load it with "
            "that joblib in a sandbox and save it again"
        )
    for name, magic in _MAGIC:
        if head.startswith(magic):
            if name == "lz4":
                raise LayoutError("lz4 compression, which modelkeep does not read")
            return name
    return None


def decompress(
    data: bytes | bytearray | memoryview, method: str, *, limit: int = MAX_DECOMPRESSED_BYTES
) -> bytearray:
    """Inflate a whole compressed file, refusing to produce more than ``limit`` bytes.

    Concatenated members (as gzip allows) are read one after the other.

    Raises:
        LayoutError: truncated or corrupt data, or more than ``limit`` bytes.
    """
    out = bytearray()
    remaining: bytes | bytearray | memoryview = data
    while True:
        decompressor: Any
        if method in ("zlib", "gzip"):
            decompressor = zlib.decompressobj(15 if method == "zlib" else 31)
        elif method == "bz2":
            decompressor = bz2.BZ2Decompressor()
        elif method in ("lzma", "xz"):
            decompressor = lzma.LZMADecompressor(lzma.FORMAT_AUTO)
        else:  # pragma: no cover - callers pass names from detect_compression
            raise LayoutError(f"unknown compression {method!r}")
        try:
            remaining = _inflate_member(decompressor, remaining, out, limit, method)
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
            raise LayoutError(f"{method} data is corrupt ({exc})") from exc
        if not bytes(remaining).strip(b"\x00"):
            return out


def _inflate_member(
    decompressor: Any, data: bytes | bytearray | memoryview, out: bytearray, limit: int, method: str
) -> bytes | bytearray | memoryview:
    """Inflate one member into ``out``; return the bytes after it."""
    is_zlib = isinstance(decompressor, type(zlib.decompressobj()))
    pending = data
    while True:
        room = limit - len(out) + 1  # one byte more than allowed reveals an overflow
        chunk = decompressor.decompress(pending, min(room, _CHUNK))
        out += chunk
        if len(out) > limit:
            raise LayoutError(
                f"{method} data inflates to more than {limit:,} bytes, the limit "
                "max_inflated_bytes sets against decompression bombs; if you trust the file "
                "and it is this large, pass a larger max_inflated_bytes="
            )
        if decompressor.eof:
            return bytes(decompressor.unused_data)
        if is_zlib:
            pending = decompressor.unconsumed_tail
            if not pending and not chunk:
                raise LayoutError(f"{method} data is truncated (the stream has no end)")
        else:
            pending = b""
            if decompressor.needs_input:
                raise LayoutError(f"{method} data is truncated (the stream has no end)")


@dataclass(frozen=True)
class WrapperSpec:
    """What a NumpyArrayWrapper says about the array that follows it."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    order: str
    alignment: int | None

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def is_object(self) -> bool:
        return bool(self.dtype.hasobject)


def wrapper_spec(attributes: dict[str, Any], *, limit: int | None = None) -> WrapperSpec:
    """Validate a wrapper's attributes (after BUILD) as joblib's reader would use them.

    ``limit``, the length of the file: no dimension or element count may exceed it (an
    array of itemsize 0, or with a zero dimension, has any length without data).

    Raises:
        LayoutError: an attribute joblib needs is missing or of the wrong kind, or the
            shape is longer than the file.
    """
    shape = attributes.get("shape")
    if not isinstance(shape, tuple) or not all(
        type(n) is int and n >= 0
        for n in shape  # bool is not a dimension
    ):
        raise LayoutError(f"shape expected a tuple of integers >= 0, got {shape!r}")
    dtype = attributes.get("dtype")
    if not isinstance(dtype, np.dtype):
        raise LayoutError(f"dtype expected a numpy dtype, got {type(dtype).__name__}")
    order = attributes.get("order")
    if order not in ("C", "F"):
        raise LayoutError(f"order expected 'C' or 'F', got {order!r}")
    alignment = attributes.get("numpy_array_alignment_bytes")
    if alignment is not None and (type(alignment) is not int or not 0 < alignment <= 4096):
        raise LayoutError(f"alignment expected an integer in [1, 4096], got {alignment!r}")
    if limit is not None and (math.prod(shape) > limit or any(n > limit for n in shape)):
        raise LayoutError(
            f"shape {shape} in a file of {limit:,} bytes; no array has more elements, or a "
            "longer dimension, than its file has bytes"
        )
    return WrapperSpec(shape=shape, dtype=dtype, order=order, alignment=alignment)


def numeric_data(spec: WrapperSpec, data: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Where the raw bytes of a numeric array start and how many there are.

    ``pos`` is the first byte after the wrapper's BUILD opcode; ``end`` the end of the data.

    Raises:
        LayoutError: the padding or the array runs past ``end``.
    """
    start = pos
    if spec.alignment is not None:
        if start >= end:
            raise LayoutError("the padding byte before the array data is missing")
        start += 1 + data[start]
    nbytes = spec.count * spec.dtype.itemsize
    if start > end or nbytes > end - start:
        raise LayoutError(
            f"array of shape {spec.shape} and dtype {spec.dtype} needs {nbytes:,} bytes, "
            f"only {max(end - start, 0):,} remain"
        )
    return start, nbytes


def native_byte_order(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The array in this machine's byte order, values unchanged (as joblib.load does)."""
    dtype = array.dtype
    other = ">" if sys.byteorder == "little" else "<"
    fields = dtype.fields
    mismatch = dtype.byteorder == other or (
        dtype.byteorder == "|"
        and bool(fields)
        and all(f[0].byteorder == other for f in (fields or {}).values())
    )
    if mismatch:
        swapped: np.ndarray[Any, Any] = array.byteswap().view(dtype.newbyteorder("="))
        return swapped
    return array
