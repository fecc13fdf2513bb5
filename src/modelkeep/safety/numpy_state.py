"""numpy dtypes from a file, accepted only in the shapes numpy itself writes.

A dtype is pickled as ``numpy.dtype(obj, align, copy)`` followed by a BUILD whose state
``dtype.__setstate__`` applies without checking it: numpy 2.4 crashes the interpreter on a
state of the wrong shape (``(3, "<", None, -1, -1, 0)``), and a structured dtype whose
fields run past its itemsize would let array code read out of bounds. So both the scanner
(which evaluates dtypes to find joblib's array data) and the restricted unpickler call
:func:`dtype_arguments_problem` and :func:`dtype_state_problem` before numpy sees anything,
and :func:`dtype_problem` on the result.

The accepted shapes are those of ``numpy.dtype.__reduce__`` (numpy 1.x and 2.x): arguments
``(str, bool, bool)``; state version 3, ``(3, byteorder, subarray, names, fields, elsize,
alignment, flags)``, or version 4 with a ninth item, the metadata (a dict, or for datetimes
``(metadata, (unit, num, den, events))``).

Arrays likewise: ``ndarray.__setstate__`` reads an object array's items from a list without
checking its length against the shape (numpy 2.4 crashes on a short one), so an array's
state must be ``(1, shape, dtype, fortran, data)`` with exactly one item per element (raw
bytes of exactly the right size otherwise), and arrays are only made empty first, as
``numpy._core.multiarray._reconstruct(cls, (0,), b"b")`` (no allocation a file can size).
Given the file's length as ``limit``, no dimension and no element count may exceed it: an
array of itemsize 0, or with a zero dimension, would otherwise have any length at no cost,
and code that copies or converts it would allocate that much.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = [
    "array_data_problem",
    "array_state_problem",
    "dtype_arguments_problem",
    "dtype_problem",
    "dtype_state_problem",
    "masked_state_problem",
    "reconstruct_problem",
    "size_problem",
]

_BYTEORDERS = ("<", ">", "|", "=")
_ALIGNED_STRUCT = 0x80  # NPY_ALIGNED_STRUCT in a dtype's flags
# (kind, state) -> verdict: a model holds many arrays of a few dtypes.
_CHECKED: dict[tuple[Any, ...], str | None] = {}
_CACHE_SIZE = 4096
_TYPE_STRING = re.compile(r"[A-Za-z?][0-9]{0,10}")


def dtype_arguments_problem(args: tuple[Any, ...]) -> str | None:
    """Why ``numpy.dtype(*args)`` is not how numpy pickles a dtype, or None.

    The type string is a kind and a size (``"f8"``, ``"U5"``, ``"V16"``, ``"M8"``): numpy's
    parser of longer strings (shapes, comma lists) is not reached.
    """
    if not 1 <= len(args) <= 3 or type(args[0]) is not str:
        return f"numpy.dtype called with {_shape(args)}, not (str, bool, bool)"
    if not _TYPE_STRING.fullmatch(args[0]):
        return f"numpy.dtype called with {args[0][:40]!r}, not a kind and a size"
    if any(type(flag) is not bool for flag in args[1:]):
        return f"numpy.dtype called with {_shape(args)}, not (str, bool, bool)"
    return None


def dtype_state_problem(kind: str, state: Any) -> str | None:
    """Why ``state`` is not the state numpy writes for a dtype made by
    ``numpy.dtype(kind, False, True)``, or None when it is.

    The dtype the state describes is first built with numpy's public constructor (which
    validates its input), and numpy's own ``__reduce__`` of it must give back exactly
    ``kind`` and ``state``. So ``__setstate__``, which checks nothing, only ever sees a state
    numpy wrote itself for a dtype its constructor accepted.
    """
    key = _cache_key(kind, state)
    if key is not None and key in _CHECKED:
        return _CHECKED[key]
    problem = _checked_state(kind, state)
    if key is not None:
        if len(_CHECKED) >= _CACHE_SIZE:  # a file full of distinct states: start over
            _CHECKED.clear()
        _CHECKED[key] = problem
    return problem


def _cache_key(kind: str, state: Any) -> tuple[Any, ...] | None:
    """A hashable stand-in for ``(kind, state)`` (fields as sorted items), or None."""
    if type(state) is not tuple or len(state) != 8 or type(state[4]) not in (dict, type(None)):
        return None
    try:
        fields = None if state[4] is None else tuple(sorted(state[4].items()))
        key = (kind, *state[:4], fields, *state[5:])
        hash(key)
    except TypeError:  # unorderable or unhashable parts: checked every time instead
        return None
    return key


def _checked_state(kind: str, state: Any) -> str | None:
    problem = _state_form_problem(state)
    if problem is not None:
        return problem
    try:
        expected = _described(kind, state)
        reduced: Any = expected.__reduce__()
        same = reduced[1][0] == kind and bool(reduced[2] == state)
    except Exception as exc:  # the constructor refusing the description, in any of its ways
        return f"a dtype state numpy's constructor refuses ({type(exc).__name__}: {exc})"
    if not same:
        return f"a dtype state other than the one numpy writes for {expected}"
    return None


def _described(kind: str, state: tuple[Any, ...]) -> np.dtype[Any]:
    """The dtype ``state`` describes, made by numpy's public constructor (never setstate)."""
    _, byteorder, subarray, names, fields, elsize, _, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    meta, unit = (metadata, None) if not isinstance(metadata, tuple) else metadata
    made: np.dtype[Any]
    if subarray is not None:
        made = np.dtype((subarray[0], subarray[1]))
    elif names is not None:
        titles = [fields[n][2] if len(fields[n]) > 2 else None for n in names]
        spec: dict[str, Any] = {
            "names": list(names),
            "formats": [fields[n][0] for n in names],
            "offsets": [fields[n][1] for n in names],
            "itemsize": elsize,
        }
        if any(t is not None for t in titles):
            spec["titles"] = titles
        made = np.dtype(spec, align=bool(flags & _ALIGNED_STRUCT))  # type: ignore[call-overload]
    else:
        text = kind
        if unit is not None:
            code, num = unit[0].decode("ascii"), unit[1]
            text = f"{kind}[{'' if num == 1 else num}{code}]"
        made = np.dtype(text)
        if byteorder in "<>" and made.byteorder != "|":
            made = made.newbyteorder(byteorder)
    if meta is not None:
        made = np.dtype(made, metadata=meta)
    return made


def _state_form_problem(state: Any) -> str | None:
    """Why ``state`` does not even have the form of a dtype state, or None."""
    if type(state) is not tuple or len(state) not in (8, 9):
        return f"a dtype state of {_shape(state)}, not numpy's 8 or 9 items"
    version, byteorder, subarray, names, fields, elsize, alignment, flags = state[:8]
    if (version, len(state)) not in ((3, 8), (4, 9)):
        return f"dtype state version {version!r} with {len(state)} items"
    if byteorder not in _BYTEORDERS:
        return f"dtype byte order {byteorder!r}"
    if not all(type(n) is int for n in (elsize, alignment, flags)):
        return "dtype sizes that are not integers"
    if subarray is not None and not (
        type(subarray) is tuple
        and len(subarray) == 2
        and isinstance(subarray[0], np.dtype)
        and _int_tuple(subarray[1])
    ):
        return "a dtype subarray that is not (dtype, shape)"
    if (names is None) != (fields is None):
        return "dtype names and fields given without each other"
    if names is not None:
        if type(names) is not tuple or not all(type(n) is str for n in names):
            return "dtype field names that are not strings"
        if type(fields) is not dict or not set(names) <= set(fields):
            return "dtype fields that do not cover its names"
        for entry in fields.values():
            if not (
                type(entry) is tuple
                and len(entry) in (2, 3)
                and isinstance(entry[0], np.dtype)
                and type(entry[1]) is int
                and entry[1] >= 0
            ):
                return "a dtype field that is not (dtype, offset[, title])"
    if len(state) == 9 and not _metadata(state[8]):
        return "dtype metadata of an unknown form"
    return None


def dtype_problem(dtype: np.dtype[Any]) -> str | None:
    """Why a dtype after BUILD differs from the one numpy's public constructor makes of the
    same description, or None.

    The constructor checks what ``__setstate__`` does not (every field inside the itemsize,
    offsets aligned in an aligned struct), and computes the flags itself: a float64 flagged
    as holding objects would make numpy treat array data as object pointers. Flags, itemsize
    and alignment must equal the rebuilt dtype's.
    """
    try:
        rebuilt = _rebuilt(dtype)
    except (TypeError, ValueError, KeyError) as exc:
        return f"a dtype numpy's constructor refuses ({exc})"
    if (dtype.flags, dtype.itemsize, dtype.alignment) != (
        rebuilt.flags,
        rebuilt.itemsize,
        rebuilt.alignment,
    ) or dtype != rebuilt:
        return (
            f"a dtype whose flags, itemsize or alignment ({dtype.flags}, {dtype.itemsize}, "
            f"{dtype.alignment}) are not those of {rebuilt} ({rebuilt.flags}, "
            f"{rebuilt.itemsize}, {rebuilt.alignment})"
        )
    return None


def _rebuilt(dtype: np.dtype[Any]) -> np.dtype[Any]:
    names = dtype.names
    fields: dict[str, tuple[Any, ...]] = dict(dtype.fields or {})
    if names is not None:
        titles = [fields[n][2] if len(fields[n]) > 2 else None for n in names]
        spec: dict[str, Any] = {
            "names": list(names),
            "formats": [fields[n][0] for n in names],
            "offsets": [fields[n][1] for n in names],
            "itemsize": dtype.itemsize,
        }
        if any(t is not None for t in titles):
            spec["titles"] = titles
        made: np.dtype[Any] = np.dtype(spec, align=dtype.isalignedstruct)  # type: ignore[call-overload]
        return made
    if dtype.subdtype is not None:
        sub: np.dtype[Any] = np.dtype(dtype.subdtype)
        return sub
    plain: np.dtype[Any] = np.dtype(dtype.str)
    return plain


def reconstruct_problem(shape: Any, dtype: Any) -> str | None:
    """Why ``_reconstruct(cls, shape, dtype)`` (or ``_mareconstruct``'s base) is not numpy's
    empty placeholder ``((0,), b"b")``, or None."""
    if shape == (0,) and dtype in (b"b", "b"):
        return None
    return f"an array reconstructed as shape {shape!r}, dtype {dtype!r}; numpy writes (0,), 'b'"


def array_state_problem(state: Any, *, limit: int | None = None) -> str | None:
    """Why ``state`` is not an ndarray state numpy writes (for a file of ``limit`` bytes),
    or None."""
    if type(state) is not tuple or len(state) != 5 or state[0] != 1:
        return f"an array state of {_shape(state)}, not numpy's (1, shape, dtype, fortran, data)"
    _, shape, dtype, fortran, data = state
    if not _int_tuple(shape) or not isinstance(dtype, np.dtype) or type(fortran) is not bool:
        return f"an array state of {_shape(state)}, not numpy's (1, shape, dtype, fortran, data)"
    if type(data) is list:
        problem = array_data_problem(shape, dtype, "list", len(data), limit=limit)
        if problem is None and dtype.names is not None:
            width = len(dtype.names)
            if not all(type(item) is tuple and len(item) == width for item in data):
                return "a structured object array whose items are not one tuple per element"
        return problem
    if isinstance(data, bytes | bytearray):
        return array_data_problem(shape, dtype, "bytes", len(data), limit=limit)
    return array_data_problem(shape, dtype, type(data).__name__, 0, limit=limit)


def array_data_problem(
    shape: tuple[int, ...], dtype: np.dtype[Any], kind: str, size: int, *, limit: int | None = None
) -> str | None:
    """Why an array's data (a ``"list"`` of ``size`` items or ``"bytes"`` of ``size`` bytes)
    does not fill ``shape`` of ``dtype`` exactly, or has more elements or a longer dimension
    than a file of ``limit`` bytes holds, or None."""
    count = 1
    for n in shape:
        count *= n
    if limit is not None:
        problem = size_problem(shape, count, limit)
        if problem is not None:
            return problem
    if dtype.hasobject:
        if kind != "list" or size != count:
            got = f"{size} item(s)" if kind == "list" else kind
            return f"an object array of {count} element(s) given {got}"
        return None
    if kind != "bytes" or size != count * dtype.itemsize:
        got = f"{size}" if kind == "bytes" else kind
        return f"an array of {count * dtype.itemsize} byte(s) given {got}"
    return None


def size_problem(shape: tuple[int, ...], count: int, limit: int) -> str | None:
    """Why an array of ``shape`` (``count`` elements) is longer than a file of ``limit``
    bytes can describe, or None."""
    if count > limit or any(n > limit for n in shape):
        return (
            f"an array of shape {shape} in a file of {limit:,} bytes; no array has more "
            "elements, or a longer dimension, than its file has bytes"
        )
    return None


def masked_state_problem(state: Any, *, limit: int | None = None) -> str | None:
    """Why ``state`` is not a MaskedArray state numpy writes, or None."""
    if type(state) is not tuple or len(state) != 7:
        return f"a masked array state of {_shape(state)}, not numpy's 7 items"
    problem = array_state_problem(state[:5], limit=limit)
    if problem is None and not isinstance(state[5], bytes | bytearray | list):
        problem = "a masked array mask that is not bytes"
    return problem


def _int_tuple(value: Any) -> bool:
    return type(value) is tuple and all(type(n) is int and n >= 0 for n in value)


def _metadata(value: Any) -> bool:
    if value is None or type(value) is dict:
        return True
    if type(value) is not tuple or len(value) != 2:
        return False
    meta, unit = value
    return (
        (meta is None or type(meta) is dict)
        and type(unit) is tuple
        and len(unit) == 4
        and type(unit[0]) is bytes
        and all(type(n) is int for n in unit[1:])
    )


def _shape(value: Any) -> str:
    if type(value) is tuple:
        return "(" + ", ".join(type(v).__name__ for v in value) + ")"
    return type(value).__name__
