"""Files built to exhaust memory or the stack: each gives a clear error, with bounded memory."""

from __future__ import annotations

import re
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

import modelkeep
from modelkeep.errors import CorruptPickleError
from modelkeep.safety.joblib_layout import LayoutError, decompress

EXABYTES = 2**62

CASES = [
    (
        "binbytes8-exabytes",
        b"\x80\x04\x8e" + struct.pack("<Q", EXABYTES) + b"abc",
        2,
        "BINBYTES8: declares a bytes object of 4,611,686,018,427,387,904 bytes, only 3 remain",
    ),
    (
        "bytearray8-exabytes",
        b"\x80\x05\x96" + struct.pack("<Q", EXABYTES) + b"abc",
        2,
        "BYTEARRAY8: declares a bytearray of 4,611,686,018,427,387,904 bytes, only 3 remain",
    ),
    (
        "binunicode8-beyond-maxsize",
        b"\x80\x04\x8d" + struct.pack("<Q", 2**64 - 1) + b"abc",
        2,
        "BINUNICODE8: declares a string of 18,446,744,073,709,551,615 bytes, only 3 remain",
    ),
    (
        "frame-exabytes",
        b"\x80\x04\x95" + struct.pack("<Q", EXABYTES) + b"N.",
        2,
        "FRAME: declares a frame of 4,611,686,018,427,387,904 bytes, only 2 remain",
    ),
    (
        "long4-gigabytes",
        b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b"ab",
        2,
        "LONG4: declares an integer of 2,147,483,647 bytes, only 2 remain",
    ),
    (
        "nested-tuples",
        b"\x80\x02N" + b"\x85" * 1_000_000 + b".",
        203,
        "TUPLE1: containers nested more than 200 levels deep (modelkeep's limit)",
    ),
    (
        "nested-lists",
        b"\x80\x02" + b"]" * 250 + b"a" * 249 + b".",
        451,
        "APPEND: containers nested more than 200 levels deep (modelkeep's limit)",
    ),
    (
        "marks",
        b"(" * 1_000_000 + b".",
        1000,
        "MARK: more than 1,000 open MARKs (modelkeep's limit)",
    ),
    (
        "memo-index-never-stored",
        b"\x80\x04\x8c\x01a\x94h\x05.",
        6,
        "BINGET: memo index 5 was never stored",
    ),
    (
        "memo-text-index-never-stored",
        b"g7\n.",
        0,
        "GET: memo index 7 was never stored",
    ),
]


@pytest.mark.parametrize(
    ("data", "offset", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_clear_error_with_bounded_memory(
    data: bytes, offset: int, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / "abuse.pkl"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        report = modelkeep.scan(path)
        with pytest.raises(
            CorruptPickleError,
            match=re.escape(
                f"Artifact {str(path)!r}: byte {offset}: {problem}. Expected a complete, "
                "well-formed pickle stream; the file is truncated, corrupt or crafted, and "
                "modelkeep did not load it. Restore the file from a copy or save the model again."
            ),
        ) as info:
            modelkeep.safe_load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(e.offset, e.problem) for e in report.errors] == [(offset, problem)]
    assert (info.value.offset, info.value.problem) == (offset, problem)
    # The file itself is read into memory (up to 1 MB here), twice at most: nothing more.
    assert peak < 2 * len(data) + 4_000_000


def test_decompression_bomb_stops_at_the_cap() -> None:
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(
            LayoutError,
            match=re.escape(
                "zlib data inflates to more than 1,048,576 bytes, the limit max_inflated_bytes "
                "sets against decompression bombs; if you trust the file and it is this large, "
                "pass a larger max_inflated_bytes="
            ),
        ):
            decompress(bomb, "zlib", limit=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "xz"])
def test_truncated_compressed_file_is_a_clear_error(method: str, tmp_path: Path) -> None:
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump({"a": list(range(1000))}, buffer, compress=(method, 3))
    path = tmp_path / f"cut.{method}.joblib"
    path.write_bytes(buffer.getvalue()[:-40])
    with pytest.raises(
        CorruptPickleError,
        match=re.escape(
            f"Artifact {str(path)!r}: byte 0: {method} data is truncated (the stream has no end). "
            "Expected a complete, well-formed joblib stream"
        ),
    ):
        modelkeep.safe_load(path)
