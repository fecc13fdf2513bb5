"""Validate and coerce prediction input straight into an ONNX model's feeds (numpy only).

The ONNX graph modelkeep writes takes one input per feature, shaped ``(n, 1)``, of the
element type :func:`input_kind` gives the feature: ``int64`` for integer columns,
``double`` for float columns (and integer or boolean columns with missing values), ``bool``
for boolean columns, ``string`` for string and category columns. :func:`to_feeds` turns a
record (dict), a list of records, a dict of columns, a 2-D array or a DataFrame into those
arrays, with the rules and messages of :func:`modelkeep._schema.prepare`: a missing column
or an unconvertible value is a :class:`SchemaError`; unknown columns, unseen categories,
values outside the training range and unexpected missing values warn (or raise with
``strict=True``).

The checks, their order and their messages come from :mod:`modelkeep._inputs` (shared with
``prepare``); this module holds the numpy converters and the ONNX narrowing. No DataFrame
is built and pandas is never imported here: a DataFrame passed in is read
column by column through ``to_numpy()``. What differs from ``prepare``: an integer or
boolean column the training data had complete is an ``int64`` or ``bool`` input, which
cannot hold a missing value, so a missing value there is an error rather than a warning;
a missing string is fed as :data:`MISSING_CATEGORY`, which the graph's encoders read as
scikit-learn reads a missing value (graphs written before that convention: ``""``,
:data:`MISSING_STRING`).

A graph may also accept less than the schema (:class:`Narrowing`, read from its metadata
and recorded in the manifest): a missing value, or an unseen category, in a column where
the original refuses one (a model whose trees do not take NaN, an encoder with
``handle_unknown="error"``) is a :class:`SchemaError` naming the column, strict or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from modelkeep._inputs import (
    ACCEPTED_INPUT,
    array_columns,
    check_strict,
    is_missing,
    list_columns,
    mapping_columns,
    plain_value,
    show_value,
    validate,
    value_error,
)
from modelkeep.errors import InputProblem, SchemaError
from modelkeep.manifest import FeatureSpec

__all__ = [
    "MISSING_CATEGORY",
    "MISSING_STRING",
    "InputKind",
    "InputPlan",
    "Narrowing",
    "input_kind",
    "plan_inputs",
    "to_feeds",
]

InputKind = Literal["double", "int64", "bool", "string"]

#: What a missing value of a string column is fed as to a graph written before
#: :data:`MISSING_CATEGORY` (no ``modelkeep.missing_string`` in its metadata).
MISSING_STRING: Final = ""
#: What a missing value of a string column is fed as: a string no training category is
#: (the conversion refuses a model that has it as one); the graph's encoders map it to
#: the category scikit-learn gives a missing value, or to none.
MISSING_CATEGORY: Final = "\ue000modelkeep:missing\ue000"
#: Keys of the graph metadata that carry a :class:`Narrowing`.
MISSING_STRING_KEY: Final = "modelkeep.missing_string"
REFUSE_MISSING_KEY: Final = "modelkeep.refuse_missing"
REFUSE_UNSEEN_KEY: Final = "modelkeep.refuse_unseen"

_INT64: Final = (-(2**63), 2**63 - 1)
_INTEGER_STORAGES: Final = frozenset(
    {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"}
)


class UnsupportedFeatureError(ValueError):
    """A feature no ONNX input type can carry (``reason`` says why)."""


def input_kind(spec: FeatureSpec) -> InputKind:
    """The ONNX element type of the graph input for ``spec``.

    Raises:
        UnsupportedFeatureError: datetime columns, and category columns whose categories
            are not all strings.
    """
    if spec.dtype == "integer":
        return "int64" if spec.storage in _INTEGER_STORAGES else "double"
    if spec.dtype == "float":
        return "double"
    if spec.dtype == "boolean":
        return "bool" if spec.storage == "bool" else "double"
    if spec.dtype == "string":
        return "string"
    if spec.dtype == "category":
        if all(isinstance(c, str) for c in spec.categories or ()):
            return "string"
        raise UnsupportedFeatureError("a category column whose categories are not all strings")
    raise UnsupportedFeatureError(f"a {spec.dtype} column, which no ONNX input type can carry")


@dataclass(frozen=True)
class Narrowing:
    """How a converted graph's input differs from the schema's rules.

    ``missing_string``: what a missing string is fed as. ``refuse_missing`` and
    ``refuse_unseen``: columns where a missing value, or a category not seen in training,
    is refused (the original refuses it too, or the graph cannot decide as it does).
    """

    missing_string: str = MISSING_STRING
    refuse_missing: tuple[str, ...] = ()
    refuse_unseen: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str]:
        """The graph metadata entries that record this narrowing."""
        import json

        return {
            MISSING_STRING_KEY: self.missing_string,
            REFUSE_MISSING_KEY: json.dumps(list(self.refuse_missing)),
            REFUSE_UNSEEN_KEY: json.dumps(list(self.refuse_unseen)),
        }

    def details(self) -> dict[str, Any]:
        """As recorded in the manifest's ONNX artifact entry."""
        return {
            "missing_string": self.missing_string,
            "refuse_missing": list(self.refuse_missing),
            "refuse_unseen": list(self.refuse_unseen),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> Narrowing:
        """Read from a graph's metadata; a graph without it is an older one (no narrowing)."""
        import json

        def names(key: str) -> tuple[str, ...]:
            raw = metadata.get(key)
            return tuple(str(n) for n in json.loads(raw)) if raw else ()

        return cls(
            missing_string=metadata.get(MISSING_STRING_KEY, MISSING_STRING),
            refuse_missing=names(REFUSE_MISSING_KEY),
            refuse_unseen=names(REFUSE_UNSEEN_KEY),
        )

    @classmethod
    def from_details(cls, details: Mapping[str, Any] | None) -> Narrowing | None:
        """Read from the manifest entry written by :meth:`details` (None if absent)."""
        if not isinstance(details, Mapping):
            return None
        return cls(
            missing_string=str(details.get("missing_string", MISSING_STRING)),
            refuse_missing=tuple(str(n) for n in details.get("refuse_missing", ())),
            refuse_unseen=tuple(str(n) for n in details.get("refuse_unseen", ())),
        )

    def union(self, other: Narrowing | None) -> Narrowing:
        """Both refusals; ``other`` must feed missing strings the same way."""
        if other is None:
            return self
        if other.missing_string != self.missing_string:
            raise ValueError(
                f"the graph feeds a missing string as {self.missing_string!r}, the manifest "
                f"says {other.missing_string!r}"
            )
        return Narrowing(
            self.missing_string,
            tuple(sorted({*self.refuse_missing, *other.refuse_missing})),
            tuple(sorted({*self.refuse_unseen, *other.refuse_unseen})),
        )


@dataclass(frozen=True)
class InputPlan:
    """What :func:`to_feeds` needs of one feature, computed once per model."""

    name: str
    kind: InputKind
    dtype: str  # the logical dtype: integer, float, boolean, string, category
    nullable: bool
    low: float | None
    high: float | None
    categories: frozenset[Any]
    missing_string: str = MISSING_STRING
    refuse_missing: bool = False
    refuse_unseen: bool = False


def plan_inputs(
    features: Sequence[FeatureSpec], narrowing: Narrowing | None = None
) -> list[InputPlan]:
    narrowing = narrowing or Narrowing()
    plans = []
    for spec in features:
        ranged = spec.dtype in ("integer", "float") and spec.min is not None
        plans.append(
            InputPlan(
                name=spec.name,
                kind=input_kind(spec),
                dtype=spec.dtype,
                nullable=spec.nullable,
                low=spec.min if ranged else None,
                high=spec.max if ranged else None,
                categories=frozenset(spec.categories or ()),
                missing_string=narrowing.missing_string,
                refuse_missing=spec.name in narrowing.refuse_missing,
                refuse_unseen=spec.name in narrowing.refuse_unseen,
            )
        )
    return plans


@dataclass
class _Issues:
    missing: list[int] = field(default_factory=list)
    out_of_range: list[tuple[int, Any]] = field(default_factory=list)
    unseen: dict[Any, None] = field(default_factory=dict)


def to_feeds(
    X: object, plans: Sequence[InputPlan], *, strict: bool = False
) -> tuple[dict[str, np.ndarray], int]:
    """Validate ``X`` and return (input name -> ``(n, 1)`` array, number of rows).

    Raises:
        SchemaError: as :func:`modelkeep._schema.prepare` does, plus a missing value in an
            ``int64`` or ``bool`` input.

    Warns:
        SchemaWarning: one per column and kind of unusual input (``strict=False``).
    """
    strict = check_strict(strict)
    if type(X) is dict:
        fast = _clean_record(X, plans)
        if fast is not None:
            return fast, 1
    columns, names, n_rows = _columns(X, plans)
    frame = _is_frame(X)

    def convert(plan: InputPlan, values: Any) -> tuple[np.ndarray, _Issues]:
        converted = None
        if frame and plan.kind == "string":
            converted = _frame_strings(plan, X[plan.name])  # type: ignore[index]
        array, issues = converted or _convert(plan, values)
        _check_narrowing(plan, issues)
        return array.reshape(-1, 1), issues

    arrays, _ = validate(columns, names, plans, strict, convert, stacklevel=3)
    return {plan.name: array for plan, array in zip(plans, arrays, strict=True)}, n_rows


def _clean_record(
    record: dict[Any, Any], plans: Sequence[InputPlan]
) -> dict[str, np.ndarray] | None:
    """The common serving case, one record that needs nothing but boxing; else None.

    Exactly the schema's keys, each value already of its column's Python type, present,
    seen in training and inside the training range: the general path would convert
    nothing and warn about nothing, so its result is built directly. Anything else (a
    missing or extra key, a value to convert, a warning to give) returns None and takes
    the general path, with its messages.
    """
    if len(record) != len(plans):
        return None
    feeds: dict[str, np.ndarray] = {}
    for plan in plans:
        value: Any = record.get(plan.name, _ABSENT)
        kind = plan.kind
        low, high = plan.low, plan.high
        if kind == "double":
            if type(value) is float:
                if value != value or plan.dtype != "float":  # NaN; whole-number check
                    return None
            elif type(value) is not int or plan.dtype not in ("float", "integer"):
                return None
            if low is not None and high is not None and not low <= value <= high:
                return None
            feeds[plan.name] = np.array([[value]], dtype=np.float64)
        elif kind == "string":
            if type(value) is not str or value not in plan.categories:
                return None
            feeds[plan.name] = np.array([[value]], dtype=object)
        elif kind == "int64":
            if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
                return None
            if low is not None and high is not None and not low <= value <= high:
                return None
            feeds[plan.name] = np.array([[value]], dtype=np.int64)
        elif value is True or value is False:
            feeds[plan.name] = np.array([[value]], dtype=np.bool_)
        else:
            return None
    return feeds


_ABSENT: Final = object()


# ------------------------------------------------------------------------------ shapes


def _is_frame(X: object) -> bool:
    return type(X).__module__.startswith("pandas") and hasattr(X, "columns")


def _columns(X: object, plans: Sequence[InputPlan]) -> tuple[dict[str, Any], list[object], int]:
    if _is_frame(X):
        frame: Any = X
        names: list[object] = list(frame.columns)
        if len(set(map(repr, names))) != len(names):
            raise SchemaError(
                "Input: expected unique column names, got duplicates. Drop or rename the "
                "duplicated columns.",
                kind="invalid_input",
            )
        wanted = {plan.name for plan in plans}
        columns = {n: frame[n].to_numpy() for n in names if isinstance(n, str) and n in wanted}
        return columns, names, len(frame)
    schema_names = [plan.name for plan in plans]
    if isinstance(X, Mapping):
        return mapping_columns(X, lambda column: column.to_numpy())
    if isinstance(X, np.ndarray):
        return array_columns(X, schema_names)
    if isinstance(X, list | tuple):
        return list_columns(X, schema_names)
    raise SchemaError(
        f"Input: expected {ACCEPTED_INPUT}, got {type(X).__name__}.", kind="invalid_input"
    )


# ------------------------------------------------------------------------------ values


def _convert(plan: InputPlan, values: Any) -> tuple[np.ndarray, _Issues]:
    """One column (list or numpy array) as the plan's element type, and its issues."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        typed = _convert_typed(plan, values)
        if typed is not None:
            return typed
        values = values.tolist()
    elif isinstance(values, np.ndarray):
        values = values.tolist()
    return _CONVERTERS[plan.kind](plan, values)


def _convert_typed(plan: InputPlan, values: np.ndarray) -> tuple[np.ndarray, _Issues] | None:
    kind = values.dtype.kind
    issues = _Issues()
    if plan.kind == "double" and (
        (plan.dtype == "float" and kind in "iuf") or (plan.dtype == "integer" and kind in "iu")
    ):
        array = values.astype(np.float64)
    elif plan.kind == "int64" and kind in "iu":
        if values.size and (int(values.min()) < _INT64[0] or int(values.max()) > _INT64[1]):
            return None  # value by value, to name the row
        array = values.astype(np.int64)
    elif plan.kind == "bool" and kind == "b":
        return values.astype(np.bool_), issues
    else:
        return None
    if kind == "f":
        issues.missing = np.flatnonzero(np.isnan(array)).tolist()
    if plan.low is not None and plan.high is not None:
        with np.errstate(invalid="ignore"):
            outside = np.flatnonzero((array < plan.low) | (array > plan.high))
        issues.out_of_range = [(int(r), plain_value(values[r])) for r in outside]
    return array, issues


def _doubles(plan: InputPlan, values: list[Any]) -> tuple[np.ndarray, _Issues]:
    issues = _Issues()
    out: list[float] = []
    whole = plan.dtype == "integer"
    boolean = plan.dtype == "boolean"
    low, high = plan.low, plan.high
    for row, value in enumerate(values):
        if type(value) is float and value == value and not whole:
            number = value
        elif is_missing(value):
            issues.missing.append(row)
            out.append(math.nan)
            continue
        elif boolean:
            if isinstance(value, bool | np.bool_) or (
                isinstance(value, int | float | np.integer | np.floating) and value in (0, 1)
            ):
                out.append(1.0 if value else 0.0)
                continue
            raise _value_error(plan, row, value)
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_
        ):
            if whole and not (math.isfinite(value) and float(value).is_integer()):
                raise _value_error(plan, row, value)
            try:
                number = float(value)
            except OverflowError:
                raise _value_error(plan, row, value) from None
        else:
            raise _value_error(plan, row, value)
        if low is not None and high is not None and not low <= number <= high:
            issues.out_of_range.append((row, plain_value(value)))
        out.append(number)
    return np.array(out, dtype=np.float64), issues


def _int64s(plan: InputPlan, values: list[Any]) -> tuple[np.ndarray, _Issues]:
    issues = _Issues()
    out: list[int] = []
    low, high = plan.low, plan.high
    for row, value in enumerate(values):
        if type(value) is int:
            number = value
        elif is_missing(value):
            raise _value_error(plan, row, value, "missing")
        elif (isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)) or (
            isinstance(value, float | np.floating)
            and math.isfinite(value)
            and float(value).is_integer()
        ):
            number = int(value)
        else:
            raise _value_error(plan, row, value)
        if not _INT64[0] <= number <= _INT64[1]:
            raise _value_error(plan, row, value, "range")
        if low is not None and high is not None and not low <= number <= high:
            issues.out_of_range.append((row, number))
        out.append(number)
    return np.array(out, dtype=np.int64), issues


def _bools(plan: InputPlan, values: list[Any]) -> tuple[np.ndarray, _Issues]:
    out: list[bool] = []
    for row, value in enumerate(values):
        if value is True or value is False:
            out.append(value)
        elif isinstance(value, np.bool_):
            out.append(bool(value))
        elif is_missing(value):
            raise _value_error(plan, row, value, "missing")
        elif isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
            out.append(bool(value))
        else:
            raise _value_error(plan, row, value)
    return np.array(out, dtype=np.bool_), _Issues()


def _strings(plan: InputPlan, values: list[Any]) -> tuple[np.ndarray, _Issues]:
    issues = _Issues()
    out = np.empty(len(values), dtype=object)
    known = plan.categories
    for row, value in enumerate(values):
        if type(value) is str:
            text = value
        elif is_missing(value):
            issues.missing.append(row)
            out[row] = plan.missing_string
            continue
        elif isinstance(value, str):  # numpy str_
            text = str(value)
        else:
            raise _value_error(plan, row, value)
        if text not in known:
            issues.unseen[text] = None
        out[row] = text
    return out, issues


def _frame_strings(plan: InputPlan, column: Any) -> tuple[np.ndarray, _Issues] | None:
    """A DataFrame's string column, vectorized through pandas (which the caller loaded).

    None when a value is not a string: the general path then names it.
    """
    from pandas.api.types import infer_dtype

    dtype = column.dtype
    kinds = getattr(dtype, "categories", column)  # a categorical: its categories decide
    if infer_dtype(kinds, skipna=True) not in ("string", "empty"):
        return None
    missing = column.isna().to_numpy()
    values = column.to_numpy(dtype=object)
    issues = _Issues()
    if missing.any():
        values = values.copy()
        values[missing] = plan.missing_string
        issues.missing = np.flatnonzero(missing).tolist()
    import pandas as pd

    known = plan.categories
    for value in pd.unique(values[~missing]):
        if value not in known:
            issues.unseen[value] = None
    return values, issues


_CONVERTERS: Final = {"double": _doubles, "int64": _int64s, "bool": _bools, "string": _strings}


# ------------------------------------------------------------------------------ messages


def _value_error(plan: InputPlan, row: int, value: object, problem: str = "") -> SchemaError:
    return value_error(plan.name, row, value, plan.dtype, problem, storage=plan.kind, bounds=_INT64)


def _check_narrowing(plan: InputPlan, issues: _Issues) -> None:
    """:class:`SchemaError` for a value the converted graph refuses (see :class:`Narrowing`)."""
    if plan.refuse_missing and issues.missing:
        row = issues.missing[0]
        message = (
            f"Column {plan.name!r}: row {row}: expected a value, got a missing value. The "
            "ONNX model refuses a missing value in this column, as the original model "
            "does or where the conversion cannot answer as it would; send a value, or "
            "load another format of the bundle."
        )
        raise SchemaError(
            message,
            column=plan.name,
            row=row,
            value=None,
            kind="refused_missing",
            problems=(
                InputProblem(
                    row, plan.name, "a value", "a missing value", message, "refused_missing"
                ),
            ),
        )
    if plan.refuse_unseen and issues.unseen:
        unseen = next(iter(issues.unseen))
        expected = "one of the training categories"
        message = (
            f"Column {plan.name!r}: expected {expected}, got {show_value(unseen)}. The ONNX "
            "model refuses a category not seen in training in this column, as the original "
            "model does; send a known category."
        )
        raise SchemaError(
            message,
            column=plan.name,
            value=unseen,
            kind="refused_unseen",
            problems=(
                InputProblem(
                    None, plan.name, expected, show_value(unseen), message, "refused_unseen"
                ),
            ),
        )
