"""The restricted unpickler on its own (no scan in front of it), and the scan on the same
streams: each construct is refused by both walls, and nothing outside them changes."""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse
import sklearn.pipeline
import sklearn.utils.validation

import modelkeep
from modelkeep.errors import (
    NeverTrustedError,
    UnsafePickleError,
    UntrustedTypesError,
)
from modelkeep.safety.pickle_scan import scan_pickle
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.unpickler import Refusal, RestrictedUnpickler


def restricted(data: bytes, *, trusted: list[str] | None = None, joblib: bool = True) -> Any:
    """The second wall alone: regions from the scan, but its verdict ignored."""
    regions = scan_pickle(data).regions
    unpickler = RestrictedUnpickler(
        data,
        io.BytesIO(data),
        policy=TrustPolicy(trusted),
        artifact="t.pkl",
        regions=regions,
        joblib=joblib,
    )
    return unpickler.load()


def g(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def write(tmp_path: Path, data: bytes, name: str = "t.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_find_class_refuses_untrusted_names(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = pickle.dumps(_Run(os.system, f"touch {marker}"), protocol=4)
    with pytest.raises(
        UntrustedTypesError,
        match=re.escape(
            "Artifact 't.pkl' references 1 untrusted type(s): posix.system. modelkeep did not "
            "load it. If you know where this file came from and trust these exact types, pass "
            "them as trusted=[...]."
        ),
    ):
        restricted(data)
    assert not marker.exists()


def test_a_dotted_name_needs_its_exact_pair(tmp_path: Path) -> None:
    # numpy._core.multiarray._reconstruct is allowed; the same object reached by walking
    # attributes from "numpy" is not.
    name = b"_core.multiarray._reconstruct"
    data = b"\x80\x04\x8c\x05numpy\x8c" + bytes([len(name)]) + name + b"\x93."
    with pytest.raises(UntrustedTypesError, match=re.escape("numpy._core.multiarray._reconstruct")):
        restricted(data)
    assert modelkeep.scan(write(tmp_path, data)).untrusted == (
        "numpy._core.multiarray._reconstruct",
    )
    assert restricted(data, trusted=["numpy:_core.multiarray._reconstruct"]) is not None


class _Run:
    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def test_build_on_a_trusted_class_is_refused(tmp_path: Path) -> None:
    before = dict(vars(sklearn.pipeline.Pipeline))
    data = (
        b"\x80\x02"
        + g("sklearn.pipeline", "Pipeline")
        + b"}"
        + text("predict")
        + g("numpy", "mean")
        + b"sb."
    )
    with pytest.raises(Refusal, match=re.escape("BUILD on <class 'sklearn.pipeline.Pipeline'>")):
        restricted(data)
    path = write(tmp_path, data)
    assert [i.problem for i in modelkeep.scan(path).issues] == [
        "BUILD sets state on sklearn.pipeline.Pipeline itself (a class, function or module), "
        "not on an instance; it would change it for the whole process"
    ]
    with pytest.raises(
        UnsafePickleError,
        match=re.escape(
            f"Artifact {str(path)!r}: expected only what a saved model's pickle does, got 1 "
            "unsafe construct(s): byte 55: BUILD sets state on sklearn.pipeline.Pipeline "
            "itself (a class, function or module), not on an instance; it would change it for "
            "the whole process. The file was crafted or damaged; modelkeep did not load it. "
            "Do not use it; save the model again from its source."
        ),
    ):
        modelkeep.safe_load(path)
    assert dict(vars(sklearn.pipeline.Pipeline)) == before


def test_build_on_an_allowed_function_is_refused() -> None:
    before = dict(vars(sklearn.utils.validation.check_array))
    data = (
        b"\x80\x02"
        + g("sklearn.utils.validation", "check_array")
        + b"}"
        + text("smuggled")
        + b"K\x01sb."
    )
    with pytest.raises(Refusal, match=r"BUILD on <function check_array at 0x[0-9a-f]+> itself"):
        restricted(data)
    assert dict(vars(sklearn.utils.validation.check_array)) == before
    assert (
        scan_pickle(data)
        .findings[0]
        .problem.startswith("BUILD sets state on sklearn.utils.validation.check_array itself")
    )


def test_state_cannot_set_dunder_attributes() -> None:
    # An allowed instance (of a class without __setstate__), whose BUILD tries to swap its
    # class for another allowed one.
    data = (
        b"\x80\x02"
        + g("sklearn._loss.link", "LogitLink")
        + b")\x81"
        + b"N}"
        + text("__class__")
        + g("sklearn.pipeline", "Pipeline")
        + b"s\x86b."
    )
    with pytest.raises(
        Refusal, match=re.escape("BUILD state sets '__class__'; only plain attribute names")
    ):
        restricted(data)


def test_calling_a_computed_value_is_refused(tmp_path: Path) -> None:
    # partial(numpy.mean) is built from allowed names, then called: a callable computed
    # while loading, which no saved model's pickle does.
    data = (
        b"\x80\x02" + g("functools", "partial") + g("numpy", "mean") + b"\x85R" + b"]K\x01a\x85R."
    )
    with pytest.raises(Refusal, match=re.escape("REDUCE on 'partial', a value computed while")):
        restricted(data)
    path = write(tmp_path, data)
    report = modelkeep.scan(path)
    assert report.untrusted == ()
    assert [i.problem for i in report.issues] == [
        "REDUCE calls an instance of functools.partial, not a global reference: the callable "
        "would be computed while loading"
    ]
    with pytest.raises(UnsafePickleError, match=re.escape("1 unsafe construct(s): byte ")):
        modelkeep.safe_load(path)


def test_an_allowed_class_is_not_callable_with_arguments(tmp_path: Path) -> None:
    # Booster is rebuilt from its saved state; Booster(model_file=...) would read a file.
    data = b"\x80\x02" + g("xgboost.core", "Booster") + b"NN" + text(str(tmp_path)) + b"\x87R."
    with pytest.raises(UntrustedTypesError, match=re.escape("type(s): xgboost.core.Booster.")):
        restricted(data)
    path = write(tmp_path, data)
    (ref,) = modelkeep.scan(path).references
    assert (ref.name, ref.trusted, ref.verdict) == ("xgboost.core.Booster", False, "untrusted call")


def test_ext_codes_never_use_copyregs_cache(tmp_path: Path) -> None:
    """A previous unrestricted load may have cached code -> object; it is not consulted."""
    code = 0x7FFF0001
    copyreg.add_extension("posix", "system", code)
    copyreg._extension_cache[code] = os.system  # type: ignore[attr-defined]
    try:
        data = b"\x80\x02\x84" + struct.pack("<i", code) + text(f"touch {tmp_path}/m") + b"\x85R."
        with pytest.raises(UntrustedTypesError, match=re.escape("type(s): posix.system.")):
            restricted(data)
    finally:
        copyreg.remove_extension("posix", "system", code)
    assert not (tmp_path / "m").exists()


def test_numpys_shared_dtypes_cannot_be_changed() -> None:
    # numpy.dtype("f8", False, False) is numpy's own float64 instance.
    data = (
        b"\x80\x02"
        + g("numpy", "dtype")
        + text("f8")
        + b"\x89\x89\x87R"
        + b"(K\x03"
        + text(">")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb."
    )
    with pytest.raises(Refusal, match="BUILD on a numpy dtype that numpy shares process-wide"):
        restricted(data)
    assert [f.problem for f in scan_pickle(data).findings] == [
        "BUILD sets state on a numpy dtype that numpy shares process-wide; numpy pickles its "
        "dtypes as copies"
    ]
    assert np.dtype("f8").byteorder == "="


def test_bytes_of_a_size_is_refused() -> None:
    data = b"\x80\x02" + g("builtins", "bytes") + b"J\x00\x00\x00\x40\x85R."
    expected = (
        "builtins.bytes() given (int); pickle passes nothing, bytes, or a string and 'latin-1' "
        "(a size would allocate that many bytes)"
    )
    with pytest.raises(Refusal, match=re.escape(expected)):
        restricted(data)
    assert [f.problem for f in scan_pickle(data).findings] == [expected]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"\x80\x02" + g("_codecs", "encode") + text("x") + text("hex_codec") + b"\x86R.",
            "_codecs.encode with encoding 'hex_codec'; pickle only uses 'latin1'",
        ),
        (
            b"\x80\x02"
            + g("copyreg", "_reconstructor")
            + g("collections", "OrderedDict")
            + g("collections", "OrderedDict")
            + b"N\x87R.",
            "copyreg._reconstructor with base <class 'collections.OrderedDict'>; pickle only "
            "uses builtin types",
        ),
    ],
    ids=["codecs-other-encoding", "reconstructor-with-a-constructor"],
)
def test_stand_ins_accept_only_what_pickle_writes(data: bytes, problem: str) -> None:
    with pytest.raises(Refusal, match=re.escape(problem)):
        restricted(data)


def test_sparse_matrices_are_checked(tmp_path: Path) -> None:
    matrix = scipy.sparse.csr_matrix(np.eye(3))
    matrix.indices[0] = 999  # a column far outside the 3 columns
    path = write(tmp_path, pickle.dumps({"m": matrix}, protocol=5))
    # Every name is allowed; only the restricted load (which scan now runs) sees the state.
    assert modelkeep.scan(path, state=False).untrusted == ()
    report = modelkeep.scan(path)
    assert (report.safe, report.state) == (False, "refused")
    with pytest.raises(
        UnsafePickleError, match=re.escape("a csr_matrix whose index arrays are invalid")
    ):
        modelkeep.safe_load(path)
    valid = scipy.sparse.csr_matrix(np.eye(3))
    loaded = modelkeep.safe_load(write(tmp_path, pickle.dumps(valid, protocol=2), "ok.pkl"))
    assert (loaded != valid).nnz == 0


def test_the_loader_refuses_a_layout_the_scan_did_not_find() -> None:
    buffer = io.BytesIO()
    joblib.dump({"w": np.arange(5.0)}, buffer)
    data = buffer.getvalue()
    unpickler = RestrictedUnpickler(
        data, io.BytesIO(data), policy=TrustPolicy(), artifact="t", regions={}, joblib=True
    )
    with pytest.raises(Refusal, match="a joblib array wrapper where the scan found none"):
        unpickler.load()


def test_trusted_extends_the_allowlist_for_one_call(tmp_path: Path) -> None:
    import collections

    path = write(tmp_path, pickle.dumps(collections.Counter("abca"), protocol=4))
    with pytest.raises(UntrustedTypesError, match=re.escape("type(s): collections.Counter.")):
        modelkeep.safe_load(path)
    assert modelkeep.safe_load(path, trusted=["collections.Counter"]) == {"a": 2, "b": 1, "c": 1}
    with pytest.raises(UntrustedTypesError):
        modelkeep.safe_load(path)


def test_never_trusted_names_stay_refused(tmp_path: Path) -> None:
    path = write(tmp_path, pickle.dumps([1], protocol=4))
    with pytest.raises(
        NeverTrustedError,
        match=re.escape(
            "trusted: expected names of classes and functions that only build data, got "
            "'builtins.eval', 'os.system', which can never be trusted: such a name lets a file "
            "import, evaluate, open files, spawn processes, reach the network or fetch "
            "attributes by name, so loading it could run any code. Remove it from trusted=; "
            "no saved model needs it."
        ),
    ) as info:
        modelkeep.safe_load(path, trusted=["os.system", "builtins.eval"])
    assert info.value.names == ("builtins.eval", "os.system")


@pytest.mark.parametrize(
    ("data", "problem", "finding"),
    [
        (
            b"\x80\x02"
            + g("numpy.random._pickle", "__randomstate_ctor")
            + b"J\x00\x00\x00\x40"
            + g("builtins", "bytes")
            + b"\x86R.",
            "numpy.random._pickle.__randomstate_ctor asked to call <class 'bytes'>",
            "numpy.random._pickle.__randomstate_ctor asked to call builtins.bytes; numpy "
            "pickles only its own bit-generator constructor there",
        ),
        (
            b"\x80\x02"
            + g("pandas.core.indexes.base", "_new_Index")
            + g("builtins", "bytes")
            + b"}"
            + text("source")
            + b"J\x00\x00\x00\x40s\x86R.",
            "pandas _new_Index given <class 'bytes'>, not a pandas Index class",
            "pandas _new_Index given builtins.bytes, not a pandas Index",
        ),
        (
            b"\x80\x02"
            + g("numpy.random._pickle", "__bit_generator_ctor")
            + g("pandas", "DataFrame")
            + b"\x85R.",
            "a bit generator constructor given <class 'pandas.DataFrame'>, not a BitGenerator",
            None,
        ),
    ],
    ids=["randomstate-calls-bytes", "new-index-of-bytes", "bit-generator-of-a-frame"],
)
def test_reconstructors_that_call_their_arguments(
    data: bytes, problem: str, finding: str | None
) -> None:
    """Allowed functions that call or instantiate what they are given accept only what
    numpy and pandas write there: otherwise they would call any allowed name (bytes(2**30))."""
    with pytest.raises(Refusal, match=re.escape(problem)):
        restricted(data)
    findings = [f.problem for f in scan_pickle(data).findings]
    assert findings == ([] if finding is None else [finding])


_CHILD = (
    "import sys, modelkeep\n"
    "try:\n"
    "    modelkeep.safe_load(sys.argv[1])\n"
    "    print('loaded')\n"
    "except modelkeep.ModelkeepError as exc:\n"
    "    print(type(exc).__name__ + ': ' + str(exc))\n"
)

_DTYPE_I8 = b"\x80\x02" + g("numpy", "dtype") + text("i8") + b"\x89\x88\x87R"
_RECONSTRUCT = (
    g("numpy._core.multiarray", "_reconstruct") + g("numpy", "ndarray") + b"K\x00\x85C\x01b\x87R"
)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            _DTYPE_I8 + b"(K\x03" + text("<") + b"NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.",
            "a dtype state of (int, str, NoneType, int, int, int), not numpy's 8 or 9 items",
        ),
        (
            _DTYPE_I8 + b"(K\x03" + text("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb.",
            "a dtype state other than the one numpy writes for int64",
        ),
        (
            b"\x80\x02"
            + _RECONSTRUCT
            + b"(K\x01K?\x85"
            + g("numpy", "dtype")
            + text("O8")
            + b"\x89\x88\x87R(K\x03"
            + text("|")
            + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb\x89]("
            + text("a")
            + b"Ne\x74b.",
            "an object array of 63 element(s) given 2 item(s)",
        ),
        (
            b"\x80\x02"
            + g("numpy._core.multiarray", "_reconstruct")
            + g("numpy", "ndarray")
            + b"J\x00\x00\x00\x40\x85"
            + text("O")
            + b"\x87R.",
            "an array reconstructed as shape (1073741824,), dtype 'O'; numpy writes (0,), 'b'",
        ),
        (
            b"\x80\x02" + g("numpy", "dtype") + text("(2,3)f8") + b"\x85R.",
            "numpy.dtype called with '(2,3)f8', not a kind and a size",
        ),
        (
            b"\x80\x02"
            + g("numpy", "dtype")
            + text("M8")
            + b"\x89\x88\x87R(K\x03"
            + text(">")
            + g("numpy", "dtype")
            + text("i4")
            + b"\x89\x88\x87R(K\x03"
            + text("<")
            + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbM\xe8\x03\x85\x86NNK\x07K\x10K?tb.",
            "a dtype state other than the one numpy writes for ('<i4', (1000,))",
        ),
    ],
    ids=[
        "dtype-state-of-six-items",
        "float64-flagged-as-holding-objects",
        "object-array-with-a-short-list",
        "array-allocation-sized-by-the-file",
        "dtype-string-numpy-would-parse",
        "datetime-dtype-given-a-subarray-state",
    ],
)
def test_numpy_states_that_would_crash_or_corrupt_the_interpreter(
    data: bytes, problem: str, tmp_path: Path
) -> None:
    """Allowed numpy names only, each a state numpy applies unchecked: with numpy 2.4 the
    first, third and last crash a plain unpickler (segmentation fault), the second makes
    numpy treat float data as object pointers. Refused in a child process, so that a regression
    fails this test instead of killing the test run."""
    path = write(tmp_path, data)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=60
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith("UnsafePickleError: ")
    assert problem in child.stdout
    assert [problem in f.problem for f in scan_pickle(data).findings] == [True]
