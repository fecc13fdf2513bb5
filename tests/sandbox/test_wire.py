"""The wire protocol is data only, bounded, and fails closed on what it does not expect;
a mechanism the kernel lacks is an error naming it, never a silent skip."""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelkeep.errors import SandboxUnavailableError
from modelkeep.sandbox import _wire
from modelkeep.sandbox._confine import restrict_filesystem


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):  # a test may have closed it
            os.close(fd)


def _send_raw(write: int, header: dict[str, object], payload: bytes = b"") -> None:
    text = json.dumps(header).encode()
    os.write(write, struct.pack(">I", len(text)) + text + payload)


def test_arrays_and_text_round_trip(pipe: tuple[int, int]) -> None:
    read, write = pipe
    numbers = np.arange(6, dtype=np.float64).reshape(2, 3)
    flags = np.array([True, False])
    _wire.write_message(write, _wire.encode({"kind": "x"}, [numbers, flags]))
    header, arrays = _wire.read_message(read, max_bytes=1024)
    assert header == {"kind": "x"}
    np.testing.assert_array_equal(arrays[0], numbers)
    np.testing.assert_array_equal(arrays[1], flags)
    kind, array = _wire.column_values(np.array(["a", None, "b"], dtype=object))
    assert array is None and kind == {"kind": "list", "values": ["a", None, "b"]}
    assert list(_wire.decode_column(kind, [])) == ["a", None, "b"]


def test_object_arrays_are_never_sent() -> None:
    with pytest.raises(_wire.ProtocolError, match=re.escape("dtype |O cannot be sent")):
        _wire.encode({}, [np.array([object()], dtype=object)])


@pytest.mark.parametrize(
    ("buffers", "problem"),
    [
        ([{"dtype": "|O", "shape": [1]}], "dtype '|O': expected one of the plain numeric"),
        ([{"dtype": "<f8", "shape": [-1]}], "shape [-1]: expected up to 8 whole numbers"),
        ([{"dtype": "<f8", "shape": [1000, 1000]}], "arrays of more than 1024 bytes"),
        ("nope", "buffers: expected a list"),
    ],
    ids=["object-dtype", "negative-shape", "too-big", "not-a-list"],
)
def test_a_reply_outside_the_protocol_is_refused_before_reading_its_data(
    pipe: tuple[int, int], buffers: object, problem: str
) -> None:
    read, write = pipe
    _send_raw(write, {"ok": True, "buffers": buffers})
    with pytest.raises(_wire.ProtocolError, match=re.escape(problem)):
        _wire.read_message(read, max_bytes=1024)


def test_a_header_over_the_cap_and_a_closed_pipe(pipe: tuple[int, int]) -> None:
    read, write = pipe
    os.write(write, struct.pack(">I", _wire.MAX_HEADER + 1))
    with pytest.raises(_wire.ProtocolError, match="over the"):
        _wire.read_message(read, max_bytes=0)
    os.close(write)
    with pytest.raises(_wire.ProtocolError, match="the pipe closed") as info:
        _wire.read_message(read, max_bytes=0)
    assert info.value.closed


def test_a_kernel_without_landlock_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailableError) as info:
        restrict_filesystem(tmp_path, abi=0)
    assert info.value.mechanism == "landlock"
    assert str(info.value).startswith(
        "Cannot isolate the model: expected this machine to support landlock, got the kernel "
        "offers no Landlock"
    )


def test_the_worker_environment_holds_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelkeep.sandbox._launcher import KEPT_ENVIRONMENT, _environment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-the-model")
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "registry"))
    env = _environment(tmp_path)
    assert set(env) <= {*KEPT_ENVIRONMENT, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                        "PYTHONNOUSERSITE", "HOME", "TMPDIR",
                        "JOBLIB_MULTIPROCESSING"}  # fmt: skip
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)
    # numpy's thread pool starts after the confinement, not while modelkeep is imported.
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert "not-for-the-model" not in env.values()
