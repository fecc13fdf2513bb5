"""Files made only of allowlisted names that ask for more memory, stack or C recursion than
their size justifies: each is refused with a modelkeep error, quickly, by the scan and by
the restricted unpickler alone (the second wall), and nothing crashes when what was built
is freed.

Every hostile load runs in a child process limited to 3 GB of address space and a few
seconds (``_CHILD``), so a regression fails its test instead of ending the test run; the
child exits 0 only after printing a modelkeep error (or the second wall's refusal) and
freeing everything. What ``test_resource_abuse`` covers (length fields, nesting, marks, the
memo) is not repeated here.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

import modelkeep
from modelkeep.errors import CorruptPickleError, InvalidChoiceError

# ----------------------------------------------------------------------- the child

_CHILD = textwrap.dedent(
    """
    import faulthandler, gc, io, json, resource, signal, sys
    faulthandler.enable()
    limit = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.alarm(int(sys.argv[3]))
    import modelkeep
    from modelkeep.errors import ModelkeepError
    from modelkeep.safety.pickle_scan import scan_pickle
    from modelkeep.safety.policy import TrustPolicy
    from modelkeep.safety.unpickler import Refusal, RestrictedUnpickler

    path, mode = sys.argv[1], sys.argv[2]
    outcome = {}
    if mode in ("load", "all"):
        try:
            modelkeep.safe_load(path)
            outcome["load"] = "loaded"
        except ModelkeepError as exc:
            outcome["load"] = f"{type(exc).__name__}: {exc}"
        gc.collect()
    if mode in ("scan", "all"):
        report = modelkeep.scan(path)
        problems = [i.problem for i in report.issues] + [e.problem for e in report.errors]
        outcome["scan"] = problems if problems else "safe"
        del report
        gc.collect()
    if mode in ("alone", "all"):
        # The second wall alone: the scan's array regions, its verdict ignored.
        data = open(path, "rb").read()
        unpickler = RestrictedUnpickler(
            data, io.BytesIO(data), policy=TrustPolicy(), artifact="t.pkl",
            regions=scan_pickle(data).regions, joblib=True,
        )
        try:
            unpickler.load()
            outcome["alone"] = "loaded"
        except (ModelkeepError, Refusal) as exc:
            outcome["alone"] = f"{type(exc).__name__}: {exc}"
        del unpickler
        gc.collect()
    print(json.dumps(outcome), flush=True)
    """
)


def _run(path: Path, mode: str = "all", seconds: int = 20) -> dict[str, object]:
    """The outcome of each wall on ``path``, from a child process that must exit cleanly."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), mode, str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        env=env,
    )
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-4000:])
    outcome: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def _write(tmp_path: Path, data: bytes, name: str = "hostile.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------- building blocks


def g(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def long1(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _body(value: object) -> bytes:
    """How pickle writes ``value`` (protocol 2, no memo), without PROTO and STOP."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


_OBJECT_DTYPE = _body(np.dtype(object))
_EMPTY_ARRAY = (
    g("numpy._core.multiarray", "_reconstruct") + g("numpy", "ndarray") + b"K\x00\x85C\x01b\x87R"
)


HUGE = 3_000_000_000

# ----------------------------------------------------------------------- 1. allocations

ALLOCATIONS = [
    (
        "newobj-bytes",
        b"\x80\x04" + g("builtins", "bytes") + long1(HUGE) + b"\x85\x81.",
        "NEWOBJ passes (int) to builtins.bytes.__new__; pickle writes it without arguments",
        "NEWOBJ passes (int) to bytes.__new__; pickle writes it without arguments",
    ),
    (
        "newobj-ex-bytes",
        b"\x80\x04" + g("builtins", "bytes") + long1(HUGE) + b"\x85}\x92.",
        "NEWOBJ_EX passes (int) to builtins.bytes.__new__",
        "NEWOBJ_EX passes (int) to bytes.__new__",
    ),
    (
        "obj-bytes",
        b"\x80\x02(" + g("builtins", "bytes") + long1(HUGE) + b"o.",
        "builtins.bytes() given (int); pickle passes nothing, bytes, or a string and 'latin-1'",
        "builtins.bytes() given (int); pickle passes nothing, bytes, or a string and 'latin-1'",
    ),
    (
        "inst-bytearray",
        b"(" + long1(HUGE) + b"ibuiltins\nbytearray\n.",
        "builtins.bytearray() given (int); pickle passes nothing, bytes, or a string",
        "builtins.bytearray() given (int); pickle passes nothing, bytes, or a string",
    ),
    (
        "newobj-ndarray-shape",
        b"\x80\x04" + g("numpy", "ndarray") + long1(HUGE) + b"\x85\x85\x81.",
        "NEWOBJ passes (tuple) to numpy.ndarray.__new__",
        "NEWOBJ passes (tuple) to ndarray.__new__",
    ),
    (
        "newobj-masked-array-of-range",
        b"\x80\x04"
        + g("numpy.ma", "MaskedArray")
        + g("builtins", "range")
        + long1(400_000_000)
        + b"\x85R\x85\x81.",
        "NEWOBJ passes (an instance of builtins.range) to numpy.ma.MaskedArray.__new__",
        "NEWOBJ passes (range) to MaskedArray.__new__",
    ),
    (
        "frozenset-of-range",
        b"\x80\x02"
        + g("builtins", "frozenset")
        + g("builtins", "range")
        + long1(HUGE)
        + b"\x85R\x85R.",
        "builtins.frozenset() given a range, which it could expand to any size",
        "builtins.frozenset() given a range, which it could expand to any size",
    ),
    (
        "set-of-range-unpacked",
        b"\x80\x02" + g("builtins", "set") + g("builtins", "range") + long1(HUGE) + b"\x85RR.",
        "REDUCE calls builtins.set with an instance of builtins.range as its arguments, not a "
        "tuple; they would be expanded, whatever their length",
        "builtins.set() given range arguments; pickle passes a tuple",
    ),
    (
        "new-index-of-range",
        b"\x80\x02"
        + g("pandas.core.indexes.base", "_new_Index")
        + g("pandas", "Index")
        + b"}"
        + text("data")
        + g("builtins", "range")
        + long1(400_000_000)
        + b"\x85Rs\x86R.",
        "pandas.core.indexes.base._new_Index() given a range, which it could expand",
        "pandas.core.indexes.base._new_Index() given a range, which it could expand",
    ),
    (
        "scalar-without-value",
        b"\x80\x02"
        + g("numpy._core.multiarray", "scalar")
        + g("numpy", "dtype")
        + text("V2000000000")
        + b"\x89\x88\x87R\x85R.",
        "numpy._core.multiarray.scalar() given (a numpy dtype); pickle passes a dtype and the "
        "value's bytes",
        "numpy._core.multiarray.scalar() given (VoidDType); pickle passes a dtype and the "
        "value's bytes",
    ),
    (
        "tree-n-outputs",
        b"\x80\x02"
        + g("sklearn.tree._tree", "Tree")
        + b"K\x05"
        + _body(np.array([2], dtype=np.intp))
        + long1(1 << 40)
        + b"\x87R.",
        "sklearn.tree._tree.Tree() given (int, an instance of numpy.ndarray, int); pickle "
        "passes an n_outputs that a file of",
        "sklearn.tree._tree.Tree() given (int, ndarray, int); pickle passes an n_outputs that "
        "a file of",
    ),
    (
        "reconstructor-of-a-size",
        b"\x80\x02"
        + g("copyreg", "_reconstructor")
        + g("builtins", "bytearray")
        + b"q\x00h\x00"
        + long1(HUGE)
        + b"\x87R.",
        "copyreg._reconstructor() given (builtins.bytearray, builtins.bytearray, int); pickle "
        "passes a class, the builtin type it derives from, and None or that type's data",
        "copyreg._reconstructor() given (type, type, int); pickle passes a class, the builtin "
        "type it derives from, and None or that type's data",
    ),
    (
        "arrow-array-without-buffers",
        b"\x80\x02"
        + g("pyarrow.lib", "_restore_array")
        + b"("
        + g("pyarrow.lib", "type_for_alias")
        + text("null")
        + b"\x85R"
        + long1(10**12)
        + long1(10**12)
        + b"K\x00]Na]Nt\x85R.",  # (type, length, nulls, offset, [None], [], None)
        "pyarrow.lib._restore_array() given (tuple); pickle passes an array length that a file of",
        "pyarrow.lib._restore_array() given (tuple); pickle passes an array length that a file of",
    ),
    (
        "zero-width-array-of-a-trillion-rows",
        b"\x80\x02"
        + _EMPTY_ARRAY
        + b"(K\x01"
        + long1(10**12)
        + b"K\x00\x86"
        + _body(np.dtype("f8"))
        + b"\x89C\x00tb.",
        "an array of shape (1000000000000, 0) in a file of",
        "an array of shape (1000000000000, 0) in a file of",
    ),
]


@pytest.mark.parametrize(
    ("data", "scanned", "alone"), [c[1:] for c in ALLOCATIONS], ids=[c[0] for c in ALLOCATIONS]
)
def test_allocations_the_file_sizes_are_refused(
    data: bytes, scanned: str, alone: str, tmp_path: Path
) -> None:
    outcome = _run(_write(tmp_path, data))
    assert outcome["load"].startswith("UnsafePickleError: "), outcome  # type: ignore[union-attr]
    assert scanned in outcome["load"], outcome  # type: ignore[operator]
    assert any(scanned in problem for problem in outcome["scan"]), outcome  # type: ignore[union-attr]
    assert outcome["alone"].startswith("Refusal: "), outcome  # type: ignore[union-attr]
    assert alone in outcome["alone"], outcome  # type: ignore[operator]


# ----------------------------------------------------------------------- 2. the stack


def test_the_stack_is_bounded_across_mark_segments(tmp_path: Path) -> None:
    # A million DUPs per segment, three segments: within the old per-segment cap.
    data = b"\x80\x02" + (b"(N" + b"2" * 999_990) * 3 + b"."
    outcome = _run(_write(tmp_path, data))
    expected = (
        "more than 1,000,000 items on the stack, all MARK segments together (modelkeep's limit)"
    )
    assert outcome["load"] == (
        f"CorruptPickleError: Artifact {str(tmp_path / 'hostile.pkl')!r}: byte 1000004: "
        f"DUP: {expected}. Expected a complete, well-formed pickle stream; the file is "
        "truncated, corrupt or crafted, and modelkeep did not load it. Restore the file from "
        "a copy or save the model again."
    )
    assert outcome["scan"] == [f"DUP: {expected}"]
    assert outcome["alone"] == f"Refusal: byte 1000005: {expected}"


# ----------------------------------------------------------------------- 3. decompression


def _zlib_bomb(size: int) -> bytes:
    """zlib data inflating to ``size`` zero bytes, made a chunk at a time."""
    compressor = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + compressor.flush()


def test_max_inflated_bytes_caps_what_a_file_inflates_to(tmp_path: Path) -> None:
    path = _write(tmp_path, _zlib_bomb(8 << 20), "bomb.joblib")
    problem = (
        "zlib data inflates to more than 1,048,576 bytes, the limit max_inflated_bytes sets "
        "against decompression bombs; if you trust the file and it is this large, pass a "
        "larger max_inflated_bytes="
    )
    with pytest.raises(
        CorruptPickleError, match=re.escape(f"Artifact {str(path)!r}: byte 0: {problem}.")
    ):
        modelkeep.safe_load(path, max_inflated_bytes=1 << 20)
    report = modelkeep.scan(path, max_inflated_bytes=1 << 20)
    assert [e.problem for e in report.errors] == [problem]
    # Raised, the same bytes inflate (to zeros, which are no pickle stream).
    with pytest.raises(CorruptPickleError, match="not a pickle opcode"):
        modelkeep.safe_load(path, max_inflated_bytes=16 << 20)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1GB", None], ids=repr)
def test_max_inflated_bytes_must_be_a_whole_number_of_bytes(value: object, tmp_path: Path) -> None:
    path = _write(tmp_path, pickle.dumps([1]))
    message = re.escape(
        "max_inflated_bytes: expected one of 'a whole number of bytes above 0, such as "
        f"4 << 30', got {str(value)!r}."
    )
    for call in (modelkeep.safe_load, modelkeep.scan):
        with pytest.raises(InvalidChoiceError, match=message):
            call(path, max_inflated_bytes=value)  # type: ignore[operator]


def test_the_default_cap_refuses_a_bomb_beyond_one_gibibyte(tmp_path: Path) -> None:
    path = _write(tmp_path, _zlib_bomb((1 << 30) + (64 << 20)), "bomb.joblib")
    assert path.stat().st_size < 2 << 20
    outcome = _run(path, "load", seconds=60)
    assert outcome["load"].startswith(  # type: ignore[union-attr]
        f"CorruptPickleError: Artifact {str(path)!r}: byte 0: zlib data inflates to more than "
        "1,073,741,824 bytes, the limit max_inflated_bytes sets"
    )


# ----------------------------------------------------------------------- 4. deep chains

DEPTH = 400_000


def h(index: int) -> bytes:
    return b"h" + bytes([index])


def q(index: int) -> bytes:
    return b"q" + bytes([index])


def _partials_top_down() -> bytes:
    """A partial whose function is a partial whose function is ..., outer ones first: each
    made as pickle writes a partial (REDUCE of the function), then a BUILD points it at the
    next one. The memo holds only the root and the newest."""
    out = [b"\x80\x02", g("functools", "partial"), q(0), g("builtins", "int"), q(1)]
    out.append(h(0) + h(1) + b"\x85R" + q(3))  # the root, left at the bottom of the stack
    step = b"(" + h(0) + h(1) + b"\x85R" + q(2) + b")NNtb0" + h(2)
    out.append(step * DEPTH)
    out.append(b"0.")
    return b"".join(out)


def _partials_bottom_up() -> bytes:
    """partial(partial(...)): a partial with a __dict__ is not flattened by the next one."""
    state = b"(" + h(1) + b")N}" + text("a") + b"K\x01stb"
    out = [b"\x80\x02", g("functools", "partial"), q(0), g("builtins", "int"), q(1)]
    out.append(h(0) + h(1) + b"\x85R" + state)
    out.append((q(2) + b"0" + h(0) + h(2) + b"\x85R" + state) * DEPTH)
    out.append(b".")
    return b"".join(out)


def _array_parts() -> bytes:
    """Memo 0: _reconstruct, 1: its arguments, 2: the object dtype, 3: the shape (1,)."""
    return (
        g("numpy._core.multiarray", "_reconstruct")
        + q(0)
        + g("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87"
        + q(1)
        + b"0"
        + _OBJECT_DTYPE
        + q(2)
        + b"0K\x01\x85"
        + q(3)
        + b"0"
    )


def _holding(item: bytes) -> bytes:
    """The BUILD state of a one-object array holding ``item``."""
    return b"(K\x01" + h(3) + h(2) + b"\x89]" + item + b"atb"


def _arrays_bottom_up() -> bytes:
    """Object arrays each holding the previous one, inner ones built first."""
    out = [b"\x80\x02", _array_parts(), h(0) + h(1) + b"R" + _holding(b"N") + q(4) + b"0"]
    out.append((h(0) + h(1) + b"R" + _holding(h(4)) + q(4) + b"0") * DEPTH)
    out.append(h(4) + b".")
    return b"".join(out)


def _arrays_top_down() -> bytes:
    """Object arrays each holding the next one, outer ones built first (each takes its child
    while the child is still an empty placeholder); the memo holds only the newest."""
    out = [b"\x80\x02", _array_parts(), h(0) + h(1) + b"R" + q(4)]  # the root stays below
    step = h(4) + h(0) + h(1) + b"R" + q(4) + b"0" + _holding(h(4)) + b"0"
    out.append(step * DEPTH)
    out.append(b".")
    return b"".join(out)


def _slices() -> bytes:
    """slice(slice(slice(...))), built bottom-up on the stack."""
    out = [b"\x80\x02", g("builtins", "slice"), q(0), b"N", q(1), b"0"]
    out.append((h(0) + h(1) + b"\x85R" + q(1) + b"0") * DEPTH)
    out.append(h(1) + b".")
    return b"".join(out)


_PARTIAL_OF_PARTIAL = (
    "BUILD makes a functools.partial call another partial; pickle never writes one "
    "(partial() flattens them), and a chain of them overflows the C stack when it is freed"
)
_NESTED_200 = "containers nested more than 200 levels deep (modelkeep's limit)"


def _nested(depth: int) -> str:
    return (
        f"object arrays nested {depth:,} deep in one another (modelkeep's limit is 64); numpy "
        "frees them recursively, and a chain this deep overflows the C stack"
    )


# (id, builder, what safe_load and scan say, what the second wall alone says)
CHAINS = [
    ("partials-top-down", _partials_top_down, _PARTIAL_OF_PARTIAL, _PARTIAL_OF_PARTIAL),
    (
        "partials-bottom-up",
        _partials_bottom_up,
        _NESTED_200,
        "functools.partial() given (partial); pickle passes only the function, never a partial",
    ),
    ("object-arrays-bottom-up", _arrays_bottom_up, _NESTED_200, _nested(65)),
    # The scan counts the last placeholder, never built, as an array too.
    ("object-arrays-top-down", _arrays_top_down, _nested(DEPTH + 1), _nested(DEPTH)),
    (
        "slices",
        _slices,
        _NESTED_200,
        "builtins.slice() given (slice); pickle passes integers or None (a slice of objects "
        "is freed without a recursion limit)",
    ),
]


@pytest.mark.parametrize(
    ("build", "scanned", "alone"), [c[1:] for c in CHAINS], ids=[c[0] for c in CHAINS]
)
def test_deep_chains_freed_recursively_are_refused(
    build: object, scanned: str, alone: str, tmp_path: Path
) -> None:
    data = build()  # type: ignore[operator]
    assert len(data) < 20_000_000
    outcome = _run(_write(tmp_path, data), seconds=120)
    assert outcome["load"].split(":")[0] in ("CorruptPickleError", "UnsafePickleError")
    assert scanned in outcome["load"], outcome  # type: ignore[operator]
    assert any(scanned in p for p in outcome["scan"]), outcome  # type: ignore[union-attr]
    assert outcome["alone"].startswith("Refusal: "), outcome  # type: ignore[union-attr]
    assert alone in outcome["alone"], outcome  # type: ignore[operator]


def test_a_shallow_object_array_nesting_loads(tmp_path: Path) -> None:
    inner = np.empty(1, dtype=object)
    inner[0] = np.arange(3)
    value = np.empty(1, dtype=object)
    value[0] = inner
    for protocol in (2, 5):
        path = _write(tmp_path, pickle.dumps(value, protocol=protocol))
        loaded = modelkeep.safe_load(path)
        np.testing.assert_array_equal(loaded[0][0], np.arange(3))


# ----------------------------------------------------------------------- 5. raw errors

_FUZZ = textwrap.dedent(
    """
    import collections, functools, io, json, pickle, random, resource, signal, sys, time
    import warnings
    limit = 3 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.alarm(200)
    warnings.simplefilter("ignore")
    import joblib, numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import KBinsDiscretizer
    import modelkeep
    from modelkeep.errors import ModelkeepError

    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    value = {
        "lr": LogisticRegression().fit(X, y),
        "bins": KBinsDiscretizer(n_bins=3, encode="ordinal").fit(X),
        "objects": np.array([np.arange(2), None], dtype=object),
        "misc": [range(3), frozenset({1}), slice(1, 2), b"ab", bytearray(b"c"), 2**70],
        "partial": functools.partial(int, base=2),
        "rng": np.random.default_rng(1),
    }
    seeds = [pickle.dumps(value, protocol=p) for p in (0, 2, 4, 5)]
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    seeds.append(buffer.getvalue())
    # Opcodes that make an allowed name do something else with what is on the stack.
    swaps = [b"R", b"\\x81", b"\\x92", b"b", b"o", b"2", b"0", b"(", b"t", b"\\x85", b"]"]
    rng = random.Random(int(sys.argv[2]))
    outcomes = collections.Counter()
    started = time.monotonic()
    path = sys.argv[1]
    for attempt in range(int(sys.argv[3])):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(2, len(data))
            kind = rng.random()
            if kind < 0.4:
                data[pos] = rng.choice(swaps)[0]
            elif kind < 0.7:
                data[pos] = rng.randrange(256)
            elif kind < 0.85:
                data[pos:pos] = rng.choice(swaps)
            else:
                del data[pos : pos + rng.randint(1, 8)]
        with open(path, "wb") as stream:
            stream.write(data)
        for call in (modelkeep.safe_load, modelkeep.scan):
            try:
                call(path)
                outcomes["ok"] += 1
            except ModelkeepError as exc:
                outcomes[type(exc).__name__] += 1
    print(json.dumps({"outcomes": outcomes, "seconds": time.monotonic() - started}))
    """
)


def test_mutated_files_give_only_modelkeep_errors(tmp_path: Path) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _FUZZ, str(tmp_path / "mutated.pkl"), "20261129", "300"],
        capture_output=True,
        text=True,
        timeout=260,
        env=env,
    )
    assert done.returncode == 0, (done.returncode, done.stdout[-2000:], done.stderr[-4000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert sum(result["outcomes"].values()) == 600
    assert {"ok", "CorruptPickleError", "UnsafePickleError"} <= set(result["outcomes"])
