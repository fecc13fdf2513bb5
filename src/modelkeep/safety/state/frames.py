"""Proofs for the pandas (and pyarrow-backed) objects a model may hold.

pandas trusts its own internals: a frame's blocks say which columns they hold
(``mgr_locs``) and its Cython code writes and reads through those positions without bounds
checks; a ``Categorical``'s codes index its categories unchecked; a pyarrow string array's
offsets point into its data buffer. A file sets all of these, and BUILD, SETITEM and the
classes' own ``__setstate__`` let it change them after pandas or pyarrow last looked. So each
proof here runs on the *final* object and reads only raw attributes (never a pandas method
that indexes blocks or arrays it has not checked):

* ``DataFrame``/``Series``: only the attributes pandas sets (``_typ`` and ``_metadata``
  equal to the class's, since pandas dispatches on them), ``_flags`` a ``Flags`` bound to
  this object, a name that is plain data, and the manager below;
* the block manager: axes that are indexes of checked lengths; each block of a known
  kind with values of the expected type, dtype and shape (as many rows as the index, as many
  columns as its placement), placements in bounds that together are exactly a permutation
  of the columns; the manager's derived position arrays are dropped, to be rebuilt from the
  proven placements;
* ``Index``/``RangeIndex``: 1-D data of a plain dtype (or a proven string array), a range of
  bounded length;
* ``Categorical``: integer codes in ``[-1, len(categories))``; ``CategoricalDtype``:
  categories a proven index, ``ordered`` a bool;
* ``StringArray``, ``DatetimeArray``: backing arrays of the right dtype (strings or the
  missing value; ``datetime64`` as its dtype says);
* ``ArrowStringArray``: a pyarrow string or large-string array, validated in full
  (``validate(full=True)`` checks every offset against the data buffer before reading it,
  and refuses instead of crashing), again on the final object: the buffers may be views of a
  ``bytearray`` the file changed after the unpickler's own validation;
* ``pandas.NA`` is the singleton itself; a ``Timestamp`` is naive (pandas' own
  ``_unpickle_timestamp`` made it, and its class takes no BUILD).

A block manager's own ``__setstate__`` is never reached: both walls refuse a BUILD on one
(``special.NEVER_BUILT``), since it follows placements unchecked while still loading.

Every ``_cache`` is emptied (pandas recomputes it from the proven state; a file could fill
it with lies). Objects in object-dtype cells and indexes are handed back to the walk
(cells of plain data are checked in place), and, because the tree walk cannot see inside
blocks, registered with ``walk.detached`` for tree validation, one mapping per array.
Proofs are keyed by pandas 3 class names; other pandas objects (DatetimeIndex, time zones,
nullable masked arrays, MultiIndex ...) have no proof and are refused.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelkeep.safety.state.checks import describe
from modelkeep.safety.state.walk import _ATOMS, Proof, Slot, Walk, qualified

__all__ = ["FRAME_PROOFS", "MAX_AXIS", "MAX_COLUMNS"]

#: The longest axis (rows of an index, columns of a frame) a file may describe: a
#: ``RangeIndex`` stores only its ends, so its length is not bounded by the file's size.
MAX_AXIS = 1 << 40

#: The most columns a frame may have: its placements are checked by materialising one
#: position per column, and an empty block of a billion columns costs the file nothing.
MAX_COLUMNS = 10_000_000

Child = tuple[object, str, Slot | None]

FRAME = "pandas.DataFrame"
SERIES = "pandas.Series"
INDEX = "pandas.Index"
RANGE_INDEX = "pandas.RangeIndex"
CATEGORICAL = "pandas.Categorical"
CATEGORICAL_DTYPE = "pandas.CategoricalDtype"
STRING_DTYPE = "pandas.StringDtype"
STRING_ARRAY = "pandas.arrays.StringArray"
DATETIME_ARRAY = "pandas.arrays.DatetimeArray"
ARROW_STRING_ARRAY = "pandas.arrays.ArrowStringArray"
BLOCK_MANAGER = "pandas.core.internals.managers.BlockManager"
SINGLE_BLOCK_MANAGER = "pandas.core.internals.managers.SingleBlockManager"
NA_TYPE = "pandas.api.typing.NAType"
TIMESTAMP = "pandas.Timestamp"

#: numpy dtype kinds a block or an index may hold as a plain ndarray.
_PLAIN_KINDS = "biufcO"


@dataclass(frozen=True)
class _Types:
    """The classes the proofs compare exact types against (pandas is loaded already)."""

    frame: Any
    series: Any
    index: Any
    range_index: Any
    categorical: Any
    categorical_dtype: Any
    string_dtype: Any
    string_array: Any
    datetime_array: Any
    arrow_string_array: Any
    block_manager: Any
    single_block_manager: Any
    numpy_block: Any
    extension_block: Any
    datetime_block: Any
    placement: Any
    references: Any
    flags: Any
    chunked_array: Any
    timestamp: Any
    na: Any


class _Absent:
    """Stands for pyarrow's ChunkedArray when pyarrow is not installed: nothing is one."""


@functools.cache
def _types() -> _Types:
    # Imported on first use: a proof runs only on a graph that holds pandas objects. The
    # modules are typed Any here: pandas' internals and pyarrow ship no usable stubs.
    pd: Any = importlib.import_module("pandas")
    internals: Any = importlib.import_module("pandas._libs.internals")
    blocks: Any = importlib.import_module("pandas.core.internals.blocks")
    managers: Any = importlib.import_module("pandas.core.internals.managers")
    chunked: Any = _Absent
    if importlib.util.find_spec("pyarrow") is not None:
        chunked = importlib.import_module("pyarrow").ChunkedArray
    return _Types(
        frame=pd.DataFrame,
        series=pd.Series,
        index=pd.Index,
        range_index=pd.RangeIndex,
        categorical=pd.Categorical,
        categorical_dtype=pd.CategoricalDtype,
        string_dtype=pd.StringDtype,
        string_array=pd.arrays.StringArray,
        datetime_array=pd.arrays.DatetimeArray,
        arrow_string_array=pd.arrays.ArrowStringArray,
        block_manager=managers.BlockManager,
        single_block_manager=managers.SingleBlockManager,
        numpy_block=blocks.NumpyBlock,
        extension_block=blocks.ExtensionBlock,
        datetime_block=blocks.DatetimeLikeBlock,
        placement=internals.BlockPlacement,
        references=internals.BlockValuesRefs,
        flags=pd.Flags,
        chunked_array=chunked,
        timestamp=pd.Timestamp,
        na=importlib.import_module("pandas._libs.missing").NA,
    )


# -- shared pieces


def _state(walk: Walk, obj: Any, node: int, allowed: frozenset[str]) -> dict[str, Any]:
    """The instance dictionary, refused when it holds a name pandas never sets there; its
    ``_cache`` is emptied (pandas recomputes what it needs from the proven state)."""
    state = getattr(obj, "__dict__", None)
    if type(state) is not dict:
        raise walk.refuse(node, "a pandas object without its attribute dictionary")
    for key in state:
        if key not in allowed:
            raise walk.refuse(
                node,
                f"attribute {key!r}: expected only {', '.join(sorted(allowed)) or 'none'} on a "
                f"{qualified(type(obj))}, got one pandas never sets",
            )
    if "_readonly" in state and type(state["_readonly"]) is not bool:
        raise walk.refuse(node, f"_readonly: expected a bool, got {describe(state['_readonly'])}")
    cache = state.get("_cache")
    if cache is not None:
        if type(cache) is not dict:
            raise walk.refuse(node, f"_cache: expected a dict, got {describe(cache)}")
        cache.clear()
    return state


def _plain_array(
    walk: Walk, value: object, node: int, what: str, *, ndim: int, kinds: str = _PLAIN_KINDS
) -> np.ndarray[Any, Any]:
    if type(value) is not np.ndarray:
        raise walk.refuse(node, f"{what}: expected a numpy array, got {describe(value)}")
    if value.ndim != ndim:
        raise walk.refuse(node, f"{what}: expected a {ndim}-D array, got {describe(value)}")
    if value.dtype.names is not None or value.dtype.kind not in kinds:
        raise walk.refuse(
            node, f"{what}: expected an array of kind {kinds!r}, got {describe(value)}"
        )
    return value


class _Label(str):
    """A dict key shown as its own text, so that the tree walk's paths read ``.iloc[1, 3]``."""

    def __repr__(self) -> str:
        return str.__str__(self)


def _object_cells(
    walk: Walk,
    values: np.ndarray[Any, Any],
    node: int,
    prefix: str,
    label: Any,
    slot: Slot,
) -> list[Child]:
    """Children for the items of an object array that can hold anything to check, each
    labelled ``prefix[label(flat_position)]``. Those that could hold a tree are registered
    once, as one mapping, for tree validation (which cannot reach into pandas)."""
    t = _types()
    children: list[Child] = []
    hidden: dict[_Label, object] = {}
    for position, item in enumerate(values.ravel(order="C")):
        kind = type(item)
        if kind in _ATOMS:
            continue
        if kind is t.timestamp:  # common in object columns; checked here, without the walk
            _timestamp(walk, item, node)
            continue
        if (kind is tuple or kind is list) and all(type(part) in _ATOMS for part in item):
            continue  # plain data: nothing in it for the walk or the tree walk
        text = label(position)
        children.append((item, f"{prefix}[{text}]", slot))
        hidden[_Label(text)] = item
    if hidden:
        walk.detached.append((hidden, node, prefix))
    return children


def _plain_name(walk: Walk, obj: Any, node: int, state: dict[str, Any], key: str) -> None:
    if key in state:
        walk.check_key(state[key], node)  # a name is hashable plain data, as a dict key is


def _axis_length(walk: Walk, index: object, node: int, what: str) -> int:
    """The length of an index from its raw data (its own proof checks the rest)."""
    t = _types()
    kind = type(index)
    state = getattr(index, "__dict__", None)
    if type(state) is not dict:
        raise walk.refuse(node, f"{what}: expected a pandas Index, got {describe(index)}")
    if kind is t.range_index:
        return _range_length(walk, state.get("_range"), node, what)
    if kind is not t.index:
        raise walk.refuse(
            node, f"{what}: expected a pandas Index or RangeIndex, got {qualified(kind)}"
        )
    return _data_length(walk, state.get("_data"), node, f"{what}._data")


def _range_length(walk: Walk, value: object, node: int, what: str) -> int:
    if type(value) is not range:
        raise walk.refuse(node, f"{what}: expected a range, got {describe(value)}")
    bounds = (value.start, value.stop, value.step)
    if any(abs(b) >= 1 << 63 for b in bounds):
        raise walk.refuse(node, f"{what}: expected int64 bounds, got {value!r}")
    try:
        length = len(value)
    except OverflowError:
        length = MAX_AXIS + 1
    if length > MAX_AXIS:
        raise walk.refuse(node, f"{what}: expected at most {MAX_AXIS:,} entries, got {value!r}")
    return length


def _data_length(walk: Walk, data: object, node: int, what: str) -> int:
    """The length of 1-D index or column data (ndarray or extension array), raw."""
    t = _types()
    kind = type(data)
    if kind is np.ndarray:
        return int(_plain_array(walk, data, node, what, ndim=1).shape[0])
    if kind in (t.string_array, t.categorical, t.datetime_array):
        backing = _plain_array(
            walk, getattr(data, "_ndarray", None), node, what, ndim=1, kinds="biufcOM"
        )
        return int(backing.shape[0])
    if kind is t.arrow_string_array:
        state = getattr(data, "__dict__", None) or {}
        chunked: Any = state.get("_pa_array")
        if type(chunked) is not t.chunked_array:
            raise walk.refuse(
                node, f"{what}: expected a pyarrow ChunkedArray, got {describe(chunked)}"
            )
        return len(chunked)
    raise walk.refuse(node, f"{what}: expected an array pandas keeps, got {qualified(kind)}")


# -- frames and series


_FRAME_STATE = frozenset({"_mgr", "_attrs", "_flags", "_typ", "_metadata"})
_SERIES_STATE = _FRAME_STATE | {"_name"}


def _ndframe(walk: Walk, obj: Any, node: int, allowed: frozenset[str]) -> dict[str, Any]:
    state = _state(walk, obj, node, allowed)
    cls = type(obj)
    for key in ("_typ", "_metadata"):
        if key in state and not _same_plain(state[key], getattr(cls, key)):
            raise walk.refuse(
                node,
                f"{key}: expected {getattr(cls, key)!r} (pandas dispatches on it), got "
                f"{describe(state[key])}",
            )
    flags = state.get("_flags")
    if type(flags) is not _types().flags:
        raise walk.refuse(node, f"_flags: expected pandas Flags, got {describe(flags)}")
    fields = getattr(flags, "__dict__", None)
    if (
        type(fields) is not dict
        or set(fields) != {"_allows_duplicate_labels", "_obj"}
        or type(fields["_allows_duplicate_labels"]) is not bool
        or type(fields["_obj"]) is not weakref.ref
        or fields["_obj"]() is not obj
    ):
        raise walk.refuse(node, "_flags: expected the Flags pandas makes for this object")
    attrs = state.get("_attrs")
    if type(attrs) is not dict:
        raise walk.refuse(node, f"_attrs: expected a dict, got {describe(attrs)}")
    return state


def _same_plain(value: object, expected: object) -> bool:
    """``value == expected`` for a string or a list of strings, without calling a method of
    anything else the file put there."""
    if type(value) is str:
        return value == expected
    return type(value) is list and all(type(item) is str for item in value) and value == expected


def _frame(walk: Walk, obj: Any, node: int) -> list[Child]:
    t = _types()
    state = _ndframe(walk, obj, node, _FRAME_STATE)
    manager: Any = state.get("_mgr")
    if type(manager) is not t.block_manager:
        raise walk.refuse(node, f"_mgr: expected a BlockManager, got {describe(manager)}")
    _state(walk, manager, node, frozenset())
    axes = manager.axes
    if type(axes) is not list or len(axes) != 2:
        raise walk.refuse(
            node, f"_mgr.axes: expected the columns and the index, got {describe(axes)}"
        )
    n_columns = _axis_length(walk, axes[0], node, ".columns")
    n_rows = _axis_length(walk, axes[1], node, ".index")
    if n_columns > MAX_COLUMNS:
        raise walk.refuse(
            node, f".columns: expected at most {MAX_COLUMNS:,} columns, got {n_columns:,}"
        )
    children: list[Child] = [
        (state["_attrs"], ".attrs", None),
        (axes[0], ".columns", None),
        (axes[1], ".index", None),
    ]
    children.extend(_blocks(walk, manager, node, n_columns, n_rows))
    _forget_positions(manager)
    return children


def _series(walk: Walk, obj: Any, node: int) -> list[Child]:
    t = _types()
    state = _ndframe(walk, obj, node, _SERIES_STATE)
    _plain_name(walk, obj, node, state, "_name")
    manager = state.get("_mgr")
    if type(manager) is not t.single_block_manager:
        raise walk.refuse(node, f"_mgr: expected a SingleBlockManager, got {describe(manager)}")
    fields = _state(walk, manager, node, frozenset({"axes", "blocks", "_cache"}))
    axes, blocks = fields.get("axes"), fields.get("blocks")
    if type(axes) is not list or len(axes) != 1:
        raise walk.refuse(node, f"_mgr.axes: expected the index alone, got {describe(axes)}")
    if type(blocks) is not tuple or len(blocks) != 1:
        raise walk.refuse(node, f"_mgr.blocks: expected one block, got {describe(blocks)}")
    n_rows = _axis_length(walk, axes[0], node, ".index")
    block = blocks[0]
    _block_kind(walk, block, node, ".iloc")
    if block.ndim != 1:
        raise walk.refuse(node, f"the block: expected 1 dimension, got {block.ndim}")
    _state(walk, block, node, frozenset({"_cache"}))
    values: Any = block.values
    slot = (SERIES, "values")
    children: list[Child] = [(state["_attrs"], ".attrs", None), (axes[0], ".index", None)]
    # The values are real memory: their length is checked before the placement, whose
    # positions are materialised, can be sized by the (free) length of a RangeIndex.
    if type(values) is np.ndarray:
        _plain_array(walk, values, node, ".values", ndim=1)
        if values.shape[0] != n_rows:
            raise walk.refuse(node, f".values: expected {n_rows} rows, got {describe(values)}")
        if values.dtype.kind == "O":
            children.extend(_object_cells(walk, values, node, ".iloc", str, slot))
    else:
        length = _data_length(walk, values, node, ".array")
        if length != n_rows:
            raise walk.refuse(node, f".array: expected {n_rows} rows, got {length}")
        children.append((values, ".array", slot))
    positions = _placement(walk, block, node, n_rows, ".iloc")
    if positions.shape[0] != n_rows or (n_rows and not (positions == np.arange(n_rows)).all()):
        raise walk.refuse(node, f"the block: expected to cover rows 0 to {n_rows - 1} in order")
    return children


def _block_kind(walk: Walk, block: Any, node: int, where: str) -> None:
    """A block of a kind pandas makes, holding the kind of values that kind is made for
    (pandas picks its code paths by the block's class and trusts the values to match)."""
    t = _types()
    holds = {
        t.numpy_block: (np.ndarray,),
        t.extension_block: (t.categorical, t.arrow_string_array, t.string_array),
        t.datetime_block: (t.datetime_array,),
    }.get(type(block))
    if holds is None:
        raise walk.refuse(node, f"{where}: expected a pandas block, got {describe(block)}")
    if type(block.values) not in holds:
        raise walk.refuse(
            node,
            f"{where}: expected a {type(block).__name__} to hold "
            f"{' or '.join(k.__name__ for k in holds)}, got {describe(block.values)}",
        )


def _placement(walk: Walk, block: Any, node: int, bound: int, where: str) -> np.ndarray[Any, Any]:
    """The block's positions as an intp array, each checked to lie in ``[0, bound)`` before
    anything is allocated from them."""
    locs: Any = block._mgr_locs
    if type(locs) is not _types().placement:
        raise walk.refuse(node, f"{where}: expected a BlockPlacement, got {describe(locs)}")
    indexer = locs.indexer  # the stored slice or array, as the file left it
    if type(indexer) is slice:
        start, stop, step = indexer.start, indexer.stop, indexer.step
        if stop is None and type(step) is int and step < 0:
            stop = -1  # pandas' canonical form of a descending slice down to 0
        if not all(type(v) is int for v in (start, stop, step)) or step == 0:
            raise walk.refuse(node, f"{where}: expected a bounded slice, got {indexer!r}")
        span = range(start, stop, step)
        if len(span) > bound or (
            len(span) and not 0 <= min(span[0], span[-1]) <= max(span[0], span[-1]) < bound
        ):
            raise walk.refuse(node, f"{where}: expected positions in [0, {bound}), got {indexer!r}")
        return np.arange(start, stop, step, dtype=np.intp)
    positions = _plain_array(walk, indexer, node, f"{where} positions", ndim=1, kinds="iu")
    if positions.shape[0] and (positions.min() < 0 or positions.max() >= bound):
        raise walk.refuse(
            node,
            f"{where}: expected positions in [0, {bound}), got {int(positions.min())} to "
            f"{int(positions.max())}",
        )
    return positions


def _blocks(walk: Walk, manager: Any, node: int, n_columns: int, n_rows: int) -> Iterator[Child]:
    blocks = manager.blocks
    if type(blocks) is not tuple:
        raise walk.refuse(node, f"_mgr.blocks: expected a tuple, got {describe(blocks)}")
    t = _types()
    seen = np.zeros(n_columns, dtype=np.intp)
    covered = 0
    children: list[Child] = []
    slot = (FRAME, "values")
    for number, block in enumerate(blocks):
        where = f"block {number}"
        _block_kind(walk, block, node, where)
        if block.ndim != 2:
            raise walk.refuse(node, f"{where}: expected 2 dimensions, got {block.ndim}")
        _state(walk, block, node, frozenset({"_cache"}))
        positions = _placement(walk, block, node, n_columns, where)
        covered += positions.shape[0]
        if covered > n_columns:
            raise walk.refuse(node, f"{where}: its columns overlap another block's")
        np.add.at(seen, positions, 1)
        values: Any = block.values
        if type(block) is t.numpy_block:
            _plain_array(walk, values, node, f"{where} values", ndim=2)
            shape = (positions.shape[0], n_rows)
            if values.shape != shape:
                raise walk.refuse(
                    node, f"{where} values: expected shape {shape}, got {describe(values)}"
                )
            if values.dtype.kind == "O":
                columns = positions

                def label(flat: int, columns: Any = columns) -> str:
                    within, row = divmod(flat, n_rows)  # values are (columns, rows)
                    return f"{row}, {int(columns[within])}"

                children.extend(_object_cells(walk, values, node, ".iloc", label, slot))
            continue
        if positions.shape[0] != 1:
            raise walk.refuse(
                node, f"{where}: expected one column of extension values, got {positions.shape[0]}"
            )
        column = int(positions[0])
        if type(block) is t.datetime_block:
            if type(values) is not t.datetime_array:
                raise walk.refuse(
                    node, f"{where}: expected a DatetimeArray, got {describe(values)}"
                )
            backing = _plain_array(
                walk, values._ndarray, node, f"{where} values", ndim=2, kinds="M"
            )
            if backing.shape != (1, n_rows):
                raise walk.refuse(
                    node, f"{where} values: expected shape (1, {n_rows}), got {describe(backing)}"
                )
        else:
            if type(values) not in (t.categorical, t.arrow_string_array, t.string_array):
                raise walk.refuse(
                    node, f"{where}: expected a Categorical or string array, got {describe(values)}"
                )
            length = _data_length(walk, values, node, f"{where} values")
            if length != n_rows:
                raise walk.refuse(node, f"{where} values: expected {n_rows} rows, got {length}")
        children.append((values, f".iloc[:, {column}]", slot))
    if covered != n_columns or (n_columns and not (seen == 1).all()):
        raise walk.refuse(
            node,
            f"_mgr.blocks: expected the blocks to hold each of the {n_columns} columns once, "
            f"got {covered} placements",
        )
    yield from children


def _forget_positions(manager: Any) -> None:
    """Drop what pandas derived from the placements; it rebuilds them from proven ones."""
    manager._blknos = None
    manager._blklocs = None
    manager._known_consolidated = False
    manager._is_consolidated = False


# -- indexes


_INDEX_STATE = frozenset({"_data", "_name", "_cache", "_id", "_references"})


def _index_common(walk: Walk, obj: Any, node: int, state: dict[str, Any]) -> None:
    _plain_name(walk, obj, node, state, "_name")
    if "_id" in state and state["_id"] is not None and type(state["_id"]) is not object:
        raise walk.refuse(node, f"_id: expected a plain object, got {describe(state['_id'])}")
    refs = state.get("_references")
    if refs is not None and type(refs) is not _types().references:
        raise walk.refuse(
            node, f"_references: expected pandas' reference tracker, got {describe(refs)}"
        )


def _index(walk: Walk, obj: Any, node: int) -> list[Child]:
    state = _state(walk, obj, node, _INDEX_STATE)
    _index_common(walk, obj, node, state)
    data = state.get("_data")
    _data_length(walk, data, node, "._data")
    t = _types()
    if type(data) is np.ndarray:
        if data.dtype.kind == "O":
            return _object_cells(walk, data, node, "", str, (INDEX, "values"))
        return []
    if type(data) not in (t.arrow_string_array, t.string_array):
        raise walk.refuse(node, f"._data: expected an array of strings, got {describe(data)}")
    return [(data, ".array", (INDEX, "values"))]


def _range_index(walk: Walk, obj: Any, node: int) -> list[Child]:
    state = _state(walk, obj, node, _INDEX_STATE - {"_data"} | {"_range"})
    _index_common(walk, obj, node, state)
    _range_length(walk, state.get("_range"), node, "._range")
    return []


# -- extension arrays and dtypes


_BACKED_STATE = frozenset({"_cache", "_readonly"})


def _backed(walk: Walk, obj: Any, node: int, allowed: frozenset[str]) -> tuple[Any, Any]:
    _state(walk, obj, node, allowed)
    return obj._ndarray, obj._dtype


def _categorical(walk: Walk, obj: Any, node: int) -> list[Child]:
    codes, dtype = _backed(walk, obj, node, _BACKED_STATE)
    codes = _plain_array(walk, codes, node, "codes", ndim=1, kinds="i")
    if type(dtype) is not _types().categorical_dtype:
        raise walk.refuse(node, f"dtype: expected a CategoricalDtype, got {describe(dtype)}")
    categories = _dtype_categories(walk, dtype, node)
    count = _axis_length(walk, categories, node, ".categories")
    if codes.shape[0] and (int(codes.min()) < -1 or int(codes.max()) >= count):
        raise walk.refuse(
            node,
            f"codes: expected values in [-1, {count}) (one per category, -1 for missing), got "
            f"{int(codes.min())} to {int(codes.max())}",
        )
    return [(dtype, ".dtype", None)]


def _dtype_categories(walk: Walk, dtype: Any, node: int) -> Any:
    fields = getattr(dtype, "__dict__", None)
    if type(fields) is not dict or set(fields) != {"_categories", "_ordered"}:
        raise walk.refuse(node, "dtype: expected a CategoricalDtype's categories and order")
    return fields["_categories"]


def _categorical_dtype(walk: Walk, obj: Any, node: int) -> list[Child]:
    categories = _dtype_categories(walk, obj, node)
    if type(obj.__dict__["_ordered"]) is not bool:
        raise walk.refuse(
            node, f"ordered: expected a bool, got {describe(obj.__dict__['_ordered'])}"
        )
    if categories is None:  # a dtype that names no categories yet (CategoricalDtype())
        return []
    _axis_length(walk, categories, node, ".categories")
    return [(categories, ".categories", None)]


def _string_dtype(walk: Walk, obj: Any, node: int) -> list[Child]:
    state = _state(walk, obj, node, frozenset({"_storage", "_na_value"}))
    if state.get("_storage") not in ("python", "pyarrow"):
        raise walk.refuse(
            node, f"storage: expected 'python' or 'pyarrow', got {describe(state.get('_storage'))}"
        )
    na = state.get("_na_value")
    if na is not _types().na and not (type(na) is float and math.isnan(na)):
        raise walk.refuse(node, f"na_value: expected pandas.NA or NaN, got {describe(na)}")
    return []


def _string_dtype_of(walk: Walk, dtype: object, node: int, storage: str) -> None:
    if type(dtype) is not _types().string_dtype or dtype.__dict__.get("_storage") != storage:
        raise walk.refuse(
            node, f"dtype: expected a StringDtype stored in {storage}, got {describe(dtype)}"
        )


def _string_array(walk: Walk, obj: Any, node: int) -> list[Child]:
    values, dtype = _backed(walk, obj, node, _BACKED_STATE)
    values = _plain_array(walk, values, node, "values", ndim=1, kinds="O")
    _string_dtype_of(walk, dtype, node, "python")
    na = _types().na
    for position, item in enumerate(values):
        if type(item) is not str and item is not na and not (type(item) is float and item != item):
            raise walk.refuse(
                node,
                f"[{position}]: expected a string or a missing value, got "
                f"{describe(item) if type(item) in _ATOMS else qualified(item)}",
            )
    return [(dtype, ".dtype", None)]


def _datetime_array(walk: Walk, obj: Any, node: int) -> list[Child]:
    state = _state(walk, obj, node, frozenset({"_cache", "_freq", "_readonly"}))
    if state.get("_freq") is not None:
        raise walk.refuse(node, f"freq: expected None, got {describe(state['_freq'])}")
    values = obj._ndarray
    if type(values) is not np.ndarray or values.ndim not in (1, 2) or values.dtype.kind != "M":
        raise walk.refuse(node, f"values: expected a datetime64 array, got {describe(values)}")
    dtype = obj._dtype
    if type(dtype) is not type(values.dtype) or dtype != values.dtype:
        raise walk.refuse(
            node, f"dtype: expected {values.dtype} as its values have, got {describe(dtype)}"
        )
    return []


def _arrow_string_array(walk: Walk, obj: Any, node: int) -> list[Child]:
    pa: Any = importlib.import_module("pyarrow")  # an ArrowStringArray exists only with it

    state = _state(walk, obj, node, frozenset({"_pa_array", "_dtype", "_cache", "_readonly"}))
    _string_dtype_of(walk, state.get("_dtype"), node, "pyarrow")
    chunked: Any = state.get("_pa_array")
    if type(chunked) is not _types().chunked_array:
        raise walk.refuse(
            node, f"_pa_array: expected a pyarrow ChunkedArray, got {describe(chunked)}"
        )
    if chunked.type not in (pa.string(), pa.large_string()):
        raise walk.refuse(node, f"_pa_array: expected strings, got pyarrow type {chunked.type}")
    try:
        chunked.validate(full=True)
    except pa.ArrowException as exc:
        raise walk.refuse(node, f"_pa_array: its buffers are invalid ({exc})") from None
    return []


def _missing(walk: Walk, obj: Any, node: int) -> list[Child]:
    if obj is not _types().na:
        raise walk.refuse(node, "expected pandas.NA itself, got another NAType")
    return []


def _timestamp(walk: Walk, obj: Any, node: int) -> list[Child]:
    """A Timestamp is made by pandas' own checked ``_unpickle_timestamp`` and takes no
    BUILD (its class is not allowed to); only the naive ones a file can describe are kept."""
    if getattr(obj, "__dict__", None):
        raise walk.refuse(node, "a Timestamp with attributes of its own")
    if obj.tzinfo is not None:
        raise walk.refuse(node, f"expected a Timestamp without a time zone, got {obj.tzinfo!r}")
    return []


def _inside(owner: str) -> Proof:
    """Managers are proven whole by the frame or series that holds them."""

    def check(walk: Walk, obj: Any, node: int) -> list[Child]:
        return []

    return Proof(check, frozenset({(owner, "_mgr")}))


#: The pandas proofs, by the exact class name the walk sees.
FRAME_PROOFS: dict[str, Proof] = {
    FRAME: Proof(_frame),
    SERIES: Proof(_series),
    INDEX: Proof(_index),
    RANGE_INDEX: Proof(_range_index),
    CATEGORICAL: Proof(_categorical),
    CATEGORICAL_DTYPE: Proof(_categorical_dtype),
    STRING_DTYPE: Proof(_string_dtype),
    STRING_ARRAY: Proof(_string_array),
    DATETIME_ARRAY: Proof(_datetime_array),
    ARROW_STRING_ARRAY: Proof(_arrow_string_array),
    BLOCK_MANAGER: _inside(FRAME),
    SINGLE_BLOCK_MANAGER: _inside(SERIES),
    NA_TYPE: Proof(_missing),
    TIMESTAMP: Proof(_timestamp),
}
