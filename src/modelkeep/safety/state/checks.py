"""Small predicates the state proofs share: array kinds, shapes, and the message they give."""

from __future__ import annotations

import collections
import functools
import types
from typing import Any

import numpy as np

__all__ = [
    "REFERENCES",
    "array_problem",
    "describe",
    "finite_number",
    "int_value",
    "kind_of",
    "kind_words",
    "reference_values",
]


def describe(value: object) -> str:
    """A short account of what a value is, for messages: ``float64 array of shape (3, 2)``."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    if isinstance(value, bool | int | float | str) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(value).__name__


def array_problem(
    value: object,
    *,
    kinds: str,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    dtype: Any = None,
    contiguous: bool = False,
    finite: bool = False,
) -> str | None:
    """Why ``value`` is not a plain ndarray with those properties, or None.

    ``kinds`` are numpy dtype kind letters (``"f"``, ``"iu"``); ``shape`` may hold None for
    a dimension of any length; ``dtype`` demands an exact dtype.
    """
    if type(value) is not np.ndarray:
        return f"expected a numpy array, got {describe(value)}"
    if dtype is not None and value.dtype != np.dtype(dtype):
        return f"expected dtype {np.dtype(dtype)}, got {describe(value)}"
    if value.dtype.kind not in kinds:
        return f"expected a numeric array (kind {kinds!r}), got {describe(value)}"
    if ndim is not None and value.ndim != ndim:
        return f"expected a {ndim}-D array, got {describe(value)}"
    if shape is not None and (
        value.ndim != len(shape)
        or any(
            want is not None and want != got for want, got in zip(shape, value.shape, strict=True)
        )
    ):
        wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        return f"expected shape {wanted}, got {describe(value)}"
    if contiguous and not value.flags.c_contiguous:
        return f"expected a C-contiguous array, got {describe(value)} in another layout"
    if finite and value.dtype.kind in "fc" and not np.isfinite(value).all():
        return f"expected finite values, got {describe(value)} with NaN or infinity"
    return None


def int_value(value: object) -> int | None:
    """``value`` as an int when it is an integer (not a bool), else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    return None


def finite_number(value: object) -> bool:
    """Whether ``value`` is a real, finite number (not a bool)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return False
    return bool(np.isfinite(value))


# -- coarse kinds of values, shared with scripts/generate_state_table.py

#: The references shape relations are stated against: integers every fit of a class sets.
REFERENCES = ("n_features_in_", "classes_", "n_outputs_")

#: Array dtype kinds grouped as a benign model's data varies them: signed or unsigned
#: integers, str or bytes.
_ARRAY_GROUPS = {"u": "i", "S": "U"}

_CALLABLES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    np.ufunc,
    functools.partial,
    type(np.mean),  # numpy's array-function dispatchers
)

_TYPE_KINDS: dict[type, str] = {type(None): "None", np.ndarray: "array"}
_ARRAY_KINDS: dict[tuple[str, int], str] = {}


def _classify(cls: type) -> str:
    """The coarse kind of an instance of ``cls`` that is not an ndarray."""
    for bases, kind in (
        ((bool, np.bool_), "bool"),
        ((int, np.integer), "int"),
        ((float, np.floating), "float"),
        ((complex, np.complexfloating), "complex"),
        ((str, np.str_), "str"),
        ((bytes, np.bytes_), "bytes"),
    ):
        if issubclass(cls, bases):
            return kind
    exact = {
        tuple: "tuple",
        list: "list",
        dict: "dict",
        collections.OrderedDict: "dict",
        collections.defaultdict: "dict",
        set: "set",
        frozenset: "set",
    }
    if cls in exact:
        return exact[cls]
    if issubclass(cls, np.dtype):
        return "dtype"
    if issubclass(cls, type):
        return "type"
    if issubclass(cls, _CALLABLES):
        return "callable"
    if issubclass(cls, np.generic):
        return "scalar"
    if (getattr(cls, "__module__", None) or "").startswith("scipy.sparse"):
        return "sparse"
    return "instance"  # proven as itself by the walk


def kind_of(value: object) -> str:
    """The coarse kind of ``value`` the state tables record: ``None``, ``bool``, ``int``,
    ``float``, ``str``, ``tuple``, ``list``, ``dict``, ``set``, ``dtype``, ``type``,
    ``callable``, ``sparse``, ``instance`` ..., or ``array:`` + dtype kind + ndim for an
    ndarray (``array:f2``; unsigned counts as ``i``, bytes as ``U``)."""
    cls = type(value)
    if cls is np.ndarray:
        key = (value.dtype.kind, value.ndim)  # type: ignore[attr-defined]
        kind = _ARRAY_KINDS.get(key)
        if kind is None:
            kind = f"array:{_ARRAY_GROUPS.get(key[0], key[0])}{key[1]}"
            if len(_ARRAY_KINDS) < 256:
                _ARRAY_KINDS[key] = kind
        return kind
    kind = _TYPE_KINDS.get(cls)
    if kind is None:
        kind = _classify(cls)
        if len(_TYPE_KINDS) < 4096:
            _TYPE_KINDS[cls] = kind
    return kind


_ARRAY_WORDS = {
    "b": "boolean",
    "i": "integer",
    "f": "float",
    "c": "complex",
    "U": "string",
    "O": "object",
    "M": "datetime",
    "m": "timedelta",
    "V": "structured",
}


def kind_words(kind: str) -> str:
    """A kind as a message says it: ``array:f2`` is ``a 2-D float array``."""
    if kind.startswith("array:"):
        return f"a {kind[7:]}-D {_ARRAY_WORDS.get(kind[6], kind[6])} array"
    words = {"None": "None", "int": "an int", "instance": "an object", "sparse": "a sparse matrix"}
    return words.get(kind, f"a {kind}")


def reference_values(state: dict[str, Any]) -> dict[str, int]:
    """The references of :data:`REFERENCES` an estimator's state holds, as ints:
    ``n_features_in_``, ``len(classes_)`` of a 1-D ``classes_`` array, ``n_outputs_``."""
    found: dict[str, int] = {}
    for name in ("n_features_in_", "n_outputs_"):
        number = int_value(state.get(name))
        if number is not None:
            found[name] = number
    classes = state.get("classes_")
    if type(classes) is np.ndarray and classes.ndim == 1:
        found["classes_"] = len(classes)
    return found
