"""Small predicates the state proofs share: array kinds, shapes, and the message they give."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["array_problem", "describe", "finite_number", "int_value"]


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
