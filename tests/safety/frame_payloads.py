"""Hostile pandas files against the frame proofs, built only from allowlisted globals: real
frames pickled after their internals are changed, and streams where a later BUILD or
SETITEM changes an object after pandas (or the unpickler) last checked it.

Nothing here unpickles anything; ``test_state_frames`` loads each file in the confined
child of ``hostile_state_payloads``.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hostile_state_payloads import Reduce, fitted_tree
from pandas._libs.internals import BlockPlacement


def frame(rows: int = 4) -> pd.DataFrame:
    """Three float columns (one block) and an object column, on a string index."""
    values = np.arange(rows * 3, dtype=float).reshape(rows, 3)
    out = pd.DataFrame(values, columns=["a", "b", "c"], index=[f"r{i}" for i in range(rows)])
    out["o"] = pd.Series(["x"] * rows, index=out.index, dtype=object)
    return out


def _float_block(df: pd.DataFrame) -> Any:
    return next(b for b in df._mgr.blocks if b.values.dtype == float)


def _dumps(obj: object, protocol: int = 5, override: Any = None) -> tuple[bytes, dict[int, int]]:
    """``obj`` pickled without frames (so opcodes can be appended), and its memo as
    ``id(object) -> memo index``."""

    class Recorder(pickle.Pickler):
        def reducer_override(self, value: Any) -> Any:
            return NotImplemented if override is None else override(value)

    out = io.BytesIO()
    pickler = Recorder(out, protocol=protocol)
    pickler.dump(obj)
    memo = {key: index for key, (index, _) in pickler.memo.copy().items()}
    raw = out.getvalue()
    ops = list(pickletools.genops(raw))
    ends = [pos for _, _, pos in ops[1:]] + [len(raw)]
    kept = [raw[pos:end] for (op, _, pos), end in zip(ops, ends, strict=True) if op.name != "FRAME"]
    return b"".join(kept), memo


def _get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET


def _body(obj: object) -> bytes:
    """``obj`` pickled (protocol 5, so builtins keep their names) without memo, PROTO,
    FRAME or STOP: a fragment to splice into a stream."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.fast = True  # no PUT/GET: fragments can be joined without memo clashes
    pickler.dump(obj)
    raw = out.getvalue()
    ops = list(pickletools.genops(raw))
    ends = [pos for _, _, pos in ops[1:]] + [len(raw)]
    skip = {"PROTO", "FRAME", "STOP"}
    return b"".join(
        raw[pos:end] for (op, _, pos), end in zip(ops, ends, strict=True) if op.name not in skip
    )


def after(
    root: object,
    changes: list[tuple[object, object]],
    *,
    setitems: list[tuple[object, int, int]] = (),  # type: ignore[assignment]
    override: Any = None,
) -> bytes:
    """``root`` pickled whole, then each ``(target, state)`` applied by one more BUILD and
    each ``(target, key, value)`` by a SETITEM, after the root is complete."""
    raw, memo = _dumps(root, override=override)
    assert raw.endswith(b".")
    out = [raw[:-1]]
    for target, state in changes:
        out += [_get(memo[id(target)]), _body(state), b"b0"]  # BUILD, POP
    for target, key, value in setitems:
        out += [_get(memo[id(target)]), _body(key), _body(value), b"s0"]  # SETITEM, POP
    out.append(b".")
    return b"".join(out)


# -- block placements


def placement(positions: list[int]) -> Callable[[], bytes]:
    """The float block claims ``positions`` as its columns (pickled as pandas writes it)."""

    def build() -> bytes:
        df = frame()
        _float_block(df).mgr_locs = BlockPlacement(np.array(positions, dtype=np.intp))
        return pickle.dumps({"frame": df}, protocol=5)

    return build


def placement_rebuilt() -> bytes:
    """A sound frame; then a second BUILD on its float block moves it past the columns."""
    df = frame()
    block = _float_block(df)
    return after({"frame": df}, [(block, (np.array([0, 1, 9_999_999]), block.values, 2))])


def manager_rebuilt(values: Any, positions: Any) -> Callable[[], bytes]:
    """A sound three-column frame; then a BUILD on its BlockManager (pandas' own
    ``__setstate__``) gives it one block of ``values`` at ``positions``."""

    def build() -> bytes:
        df = pd.DataFrame(np.zeros((4, 3)), columns=["a", "b", "c"])
        manager = df._mgr
        blocks = [{"values": values, "mgr_locs": positions}]
        state = ([], [], [], {"0.14.1": {"axes": list(manager.axes), "blocks": blocks}})
        return after({"frame": df}, [(manager, state)])

    return build


def index_shrunk() -> bytes:
    """A sound frame; then a BUILD on its index leaves it two rows, under four-row blocks."""
    df = frame()
    return after({"frame": df}, [(df.index, {"_data": np.array(["r0", "r1"], dtype=object)})])


def series_typ_rebuilt() -> bytes:
    """A Series told by a second BUILD that it is a DataFrame (pandas dispatches on _typ)."""
    s = pd.Series([1.0, 2.0])
    return after({"series": s}, [(s, {"_typ": "dataframe", "_mgr": s._mgr})])


# -- categoricals, ranges, strings


def categorical_codes(code: int) -> Callable[[], bytes]:
    """A Categorical column whose codes point past its two categories."""

    def build() -> bytes:
        df = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
        df._mgr.blocks[0].values._ndarray[1] = code
        return pickle.dumps({"frame": df}, protocol=5)

    return build


def categorical_codes_rebuilt() -> bytes:
    """A sound Categorical column; then a BUILD swaps in codes past its two categories."""
    df = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
    cat = df._mgr.blocks[0].values
    bad = (cat.dtype, np.array([0, 1, 7], dtype=np.int8))
    return after({"frame": df}, [(cat, bad)])


def range_index(**state: Any) -> Callable[[], bytes]:
    """A Series whose RangeIndex a later BUILD gives another range."""

    def build() -> bytes:
        s = pd.Series([1.0, 2.0, 3.0])
        return after({"series": s}, [(s.index, state)])

    return build


def range_index_step_zero() -> bytes:
    from pandas.core.indexes.base import _new_Index

    return pickle.dumps(
        Reduce(_new_Index, (pd.RangeIndex, {"start": 0, "stop": 5, "step": 0})), protocol=5
    )


def range_index_huge() -> bytes:
    from pandas.core.indexes.base import _new_Index

    return pickle.dumps(
        {"columns": Reduce(_new_Index, (pd.RangeIndex, {"start": 0, "stop": 1 << 62}))},
        protocol=5,
    )


def _strings() -> tuple[pd.DataFrame, Any, bytearray]:
    """A frame with a str column whose pyarrow offsets live in a bytearray the file owns."""
    df = pd.DataFrame({"s": ["a", "bb", "ccc"]})  # its column index is a 1-string array
    array = df._mgr.blocks[0].values._pa_array.chunk(0)
    offsets = bytearray(array.buffers()[1].to_pybytes())
    return df, array, offsets


def _arrow_override(array: Any, offsets: bytearray, data: bytes) -> Any:
    from pyarrow.lib import _restore_array

    def swap(value: Any) -> Any:
        if isinstance(value, pa.Array) and len(value) == len(array):  # the column, not "s"
            buffers = [None, Reduce(pa.py_buffer, (offsets,)), Reduce(pa.py_buffer, (data,))]
            return (_restore_array, ((array.type, len(array), 0, 0, buffers, [], None),))
        return NotImplemented

    return swap


def arrow_offsets(bad: bool) -> Callable[[], bytes]:
    """Offsets past the data buffer from the start (the unpickler's own check), or set by a
    SETITEM on their bytearray after that check passed."""

    def build() -> bytes:
        df, array, offsets = _strings()
        data = array.buffers()[2].to_pybytes()
        if bad:
            offsets[24] = 200  # the last offset: 200, past the 6 data bytes
            return _dumps({"frame": df}, override=_arrow_override(array, offsets, data))[0]
        return after(
            {"frame": df},
            [],
            setitems=[(offsets, 24, 200)],
            override=_arrow_override(array, offsets, data),
        )

    return build


# -- objects hidden in cells


def _bad_tree_model() -> Any:
    from hostile_state_payloads import _bad_tree

    dt = fitted_tree()
    dt.__dict__["tree_"] = _bad_tree(dt.tree_)
    return dt


def tree_in_series() -> bytes:
    return pickle.dumps({"s": pd.Series([0, _bad_tree_model()], dtype=object)}, protocol=5)


def tree_in_frame() -> bytes:
    df = frame()
    df.iloc[2, 3] = _bad_tree_model()
    return pickle.dumps([df], protocol=5)


def callable_in_frame() -> bytes:
    df = frame()
    df.iloc[1, 3] = np.mean
    return pickle.dumps({"frame": df}, protocol=5)


def manager_alone() -> bytes:
    return pickle.dumps({"m": frame()._mgr}, protocol=5)


def tree_in_column_index() -> bytes:
    """A malformed tree as a column label: the frame's axes live in its block manager,
    where the tree walk does not look."""
    df = pd.DataFrame(np.zeros((2, 2)))
    df.columns = pd.Index(["a", _bad_tree_model()], dtype=object)
    return pickle.dumps({"frame": df}, protocol=5)


def string_array_holds(value: object) -> Callable[[], bytes]:
    """A string[python] column whose object array holds ``value`` instead of a string."""

    def build() -> bytes:
        s = pd.Series(["a", "b"], dtype="string[python]")
        s.array._ndarray[1] = value
        return pickle.dumps({"series": s}, protocol=5)

    return build


def empty_columns(count: int) -> bytes:
    """A frame of ``count`` columns and no rows: one empty block placed on all of them, which
    costs the file a few bytes whatever ``count`` is."""
    from pandas._libs.internals import _unpickle_block
    from pandas.core.indexes.base import _new_Index
    from pandas.core.internals.managers import BlockManager

    block = Reduce(_unpickle_block, (np.zeros((count, 0)), slice(0, count, 1), 2))
    columns = Reduce(_new_Index, (pd.RangeIndex, {"start": 0, "stop": count}))
    rows = Reduce(_new_Index, (pd.RangeIndex, {"start": 0, "stop": 0}))
    manager = Reduce(BlockManager, ((block,), [columns, rows]))
    df = pd.DataFrame()

    def swap(value: Any) -> Any:
        return manager.__reduce__() if value is df._mgr else NotImplemented

    return _dumps({"frame": df}, override=swap)[0]
