"""Real pickle and joblib files, every protocol and compression: the scan reads them to the
end, safe_load rebuilds exactly what was saved, and odd files get exact errors."""

from __future__ import annotations

import io
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

import modelkeep
from modelkeep.errors import CorruptPickleError, UnsafePickleError


def _arrays() -> dict[str, Any]:
    structured = np.zeros(3, dtype=[("left", "<i8"), ("threshold", "<f8"), ("flag", "u1")])
    structured["left"] = [1, -1, -1]
    return {
        "float": np.linspace(0.0, 1.0, 7),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "objects": np.array(["a", None, 1.5, ("t", 2)], dtype=object),
        "empty": np.zeros((0, 3)),
        "scalar_array": np.array(3.25),
        "structured": structured,
        "datetimes": np.array(["2026-01-01", "NaT"], dtype="datetime64[ns]"),
        "text": np.array(["ab", "cde"]),
        "raw": np.array([b"x", b"yz"]),
        "complex": np.array([1 + 2j, 3 - 1j], dtype=np.complex64),
        "half": np.array([0.5, 1.5], dtype=np.float16),
        "bools": np.array([True, False]),
        "numpy_scalar": np.float32(2.5),
        "sparse": scipy.sparse.csr_matrix(np.eye(3)),
        "frame": pd.DataFrame({"x": [1.0, 2.0], "c": pd.Categorical(["u", "v"])}),
        "random_state": np.random.RandomState(7),
        "dtype": np.float32,
    }


def _equal(a: Any, b: Any) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _equal(a[key], b[key])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.flags.f_contiguous == b.flags.f_contiguous
        if a.dtype.kind in "fcmM":
            np.testing.assert_array_equal(a, b)
        else:
            assert a.tolist() == b.tolist()
        assert b.flags.writeable
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif scipy.sparse.issparse(a):
        assert (a != b).nnz == 0
    elif isinstance(a, np.random.RandomState):
        assert a.randint(1000, size=5).tolist() == b.randint(1000, size=5).tolist()
    else:
        assert a == b


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("how", ["pickle", "joblib", "zlib", "gzip", "bz2", "lzma", "xz"])
def test_every_protocol_and_compression(protocol: int, how: str, tmp_path: Path) -> None:
    value = _arrays()
    # The reference is what the plain loaders make of the same (our own, benign) file.
    if how == "pickle":
        path = tmp_path / "v.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        kind = "pickle"
        expected = pickle.loads(path.read_bytes())
    else:
        path = tmp_path / "v.joblib"
        joblib.dump(value, path, compress=0 if how == "joblib" else (how, 3), protocol=protocol)
        kind = "joblib" if how == "joblib" else f"joblib ({how})"
        expected = joblib.load(path)
    # pandas objects have a state proof (safety.state.frames): the frame loads untrusted,
    # and scan says its state is proven.
    report = modelkeep.scan(path)
    assert (report.kind, report.safe, report.errors, report.issues) == (kind, True, (), ())
    assert report.state == "proven"
    _equal(expected, modelkeep.safe_load(path))


def test_joblib_without_alignment_padding(tmp_path: Path) -> None:
    """joblib writes no padding byte when its file cannot tell its position (and before 1.2)."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: Any) -> int:
            self.data += bytes(chunk)
            return len(chunk)

    sink = Unseekable()
    joblib.dump({"w": np.arange(10.0), "o": np.array([None], dtype=object)}, sink)
    path = tmp_path / "unaligned.joblib"
    path.write_bytes(bytes(sink.data))
    assert b"numpy_array_alignment_bytes" in path.read_bytes()
    loaded = modelkeep.safe_load(path)
    assert loaded["w"].tolist() == list(np.arange(10.0))


def test_benign_data_after_stop_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.pkl"
    first = pickle.dumps([1, 2], protocol=4)
    path.write_bytes(first + pickle.dumps([3], protocol=4))
    report = modelkeep.scan(path)
    assert report.untrusted == ()
    with pytest.raises(
        UnsafePickleError,
        match=re.escape(
            f"Artifact {str(path)!r}: expected only what a saved model's pickle does, got 1 "
            f"unsafe construct(s): byte {len(first)}: 17 byte(s) of data after the stream's "
            "STOP; a reader that calls load() again would run them. The file was crafted or "
            "damaged; modelkeep did not load it."
        ),
    ):
        modelkeep.safe_load(path)


def test_a_skops_file_is_not_a_pickle(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    path = tmp_path / "m.skops"
    sio.dump(DecisionTreeClassifier(max_depth=2).fit([[0.0], [1.0]], [0, 1]), path)
    report = modelkeep.scan(path)
    assert report.kind == "skops"
    assert {(r.name, r.trusted) for r in report.references} >= {
        ("sklearn.tree._classes.DecisionTreeClassifier", True),
        ("sklearn.tree._tree.Tree", True),
    }
    with pytest.raises(
        CorruptPickleError,
        match=re.escape(
            f"Artifact {str(path)!r}: byte 0: a zip archive, not a pickle stream (a .skops file? "
            "it loads inside a bundle). Expected a complete, well-formed pickle stream"
        ),
    ):
        modelkeep.safe_load(path)


def test_legacy_numpy_names_load_without_warnings(tmp_path: Path) -> None:
    """Files from numpy 1.x name numpy.core.*; they resolve to numpy._core.*, silently."""
    data = pickle.dumps(np.arange(3.0), protocol=2)
    legacy = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert legacy != data
    path = tmp_path / "legacy.pkl"
    path.write_bytes(legacy)
    assert modelkeep.safe_load(path).tolist() == [0.0, 1.0, 2.0]
    # numpy 1.x, protocol 5: _frombuffer(bytearray, dtype, shape, order), named numpy.core.
    buffer = (
        b"\x80\x05cnumpy.core.numeric\n_frombuffer\n("
        + b"\x96"
        + struct.pack("<Q", 24)
        + np.arange(3.0).tobytes()
        + b"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R"
        + b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"K\x03\x85X\x01\x00\x00\x00CtR."
    )
    path.write_bytes(buffer)
    assert modelkeep.safe_load(path).tolist() == [0.0, 1.0, 2.0]
