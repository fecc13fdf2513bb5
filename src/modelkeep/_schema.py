"""Feature schemas: infer one from a training sample; validate and coerce prediction input.

Three functions:

- :func:`infer_schema` reads a training sample into ordered :class:`FeatureSpec` entries;
- :func:`prepare` turns prediction input (a DataFrame, records, columns, one record or a
  2-D array) into a DataFrame with exactly the schema's columns, each in the pandas dtype
  the pipeline was fitted on (``FeatureSpec.storage``);
- :func:`to_json_columns` writes a frame as JSON-safe columns that :func:`prepare` reads
  back bit for bit (the bundle's golden samples depend on it).

Wrong input raises :class:`SchemaError`; its ``kind`` says which rule failed:

- ``"invalid_sample"``: :func:`infer_schema` cannot describe a column of the sample;
- ``"invalid_schema"``: a FeatureSpec's ``storage`` is not a pandas dtype;
- ``"invalid_input"``: ``X`` has an unsupported shape (type, width, ragged rows ...);
- ``"missing_columns"``: a feature is absent (``value`` holds the sorted names);
- ``"invalid_value"``: a value cannot be converted (``column``, ``row``, ``value`` set);
- with ``strict=True`` also the four kinds below, which otherwise are warnings.

Unusual but usable input gives one :class:`SchemaWarning` per column and kind:
``"extra_columns"``, ``"unseen_categories"``, ``"out_of_range"``, ``"unexpected_missing"``
(for the last one ``values`` holds row positions, for the others the offending values).
Every :class:`SchemaError` also holds its facts as records, ``problems``
(:class:`~modelkeep.errors.InputProblem`: row, column, expected, received, message, kind).

The order of the checks, the messages and the missing-value test live in
:mod:`modelkeep._inputs`, shared with the pandas-free ONNX path; this module keeps what
needs pandas: the schema inference and the converters into pandas storage.

Conversions are strict on purpose: a string is never parsed as a number or a boolean, and a
number is never turned into a string, because a client sending ``"12"`` for a number has a
bug worth surfacing. The one parse is of ISO 8601 strings into datetime columns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
    pandas_dtype,
)

from modelkeep._inputs import (
    ACCEPTED_INPUT,
    array_columns,
    bad_value,
    check_strict,
    is_missing,
    list_columns,
    mapping_columns,
    missing_columns_error,
    plain_value,
    validate,
    value_error,
)
from modelkeep.errors import SchemaError, format_names
from modelkeep.manifest import FeatureSpec, Scalar

__all__ = ["infer_schema", "model_rejection", "prepare", "to_json_columns"]

_ISO_8601: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?"
)


# ---------------------------------------------------------------------------------------
# infer_schema


def infer_schema(sample: pd.DataFrame) -> list[FeatureSpec]:
    """Describe each column of a training sample as a :class:`FeatureSpec`, in order.

    The logical dtype comes from the pandas dtype: signed and unsigned integers give
    ``integer``; floats ``float``; ``bool``/``boolean`` ``boolean``; ``str``/``string`` and
    object columns of strings ``string``; ``category`` ``category``; ``datetime64`` (naive
    or tz-aware) ``datetime``. An object column of booleans (a boolean column with missing
    values) gives ``boolean``, and an all-missing object column ``string``. ``storage``
    keeps the exact pandas dtype so :func:`prepare` can restore it.

    ``nullable`` is whether the column has a missing value. ``categories`` lists the
    observed non-missing values of string and category columns, sorted. ``min`` and ``max``
    are the smallest and largest finite values of numeric columns (None when there are
    none); infinities are left out because JSON, and so the manifest, cannot hold them.

    Args:
        sample: the data the model was fitted on, or rows of it.

    Raises:
        SchemaError: (kind ``"invalid_sample"``) a column name that is not a string, a
            duplicated name, an object column mixing types (or holding lists, numbers ...),
            or a dtype with no logical equivalent (timedelta, period, complex ...).

    Example:
        >>> infer_schema(pd.DataFrame({"tenure": [1, 24], "plan": ["basic", "pro"]}))[1]
        FeatureSpec(name='plan', dtype='string', storage='str', nullable=False, ...)
    """
    if not isinstance(sample, pd.DataFrame):
        raise SchemaError(
            f"Sample: expected a pandas DataFrame, got {type(sample).__name__}. Build one "
            "with pd.DataFrame(data, columns=feature_names).",
            kind="invalid_sample",
        )
    names = list(sample.columns)
    for name in names:
        if not isinstance(name, str):
            raise SchemaError(
                f"Sample column {name!r}: expected a string column name, got "
                f"{type(name).__name__}. Name the columns, e.g. "
                "sample.columns = sample.columns.astype(str).",
                column=str(name),
                kind="invalid_sample",
            )
    if sample.columns.has_duplicates:
        duplicated = sample.columns[sample.columns.duplicated()].unique()
        raise SchemaError(
            f"Sample: expected unique column names, got duplicates: "
            f"{format_names(duplicated)}. Drop or rename the duplicated columns.",
            column=str(duplicated[0]),
            kind="invalid_sample",
        )
    return [_infer_column(name, sample.iloc[:, i]) for i, name in enumerate(names)]


def _infer_column(name: str, column: pd.Series[Any]) -> FeatureSpec:
    dtype = column.dtype
    storage = str(dtype)
    nullable = bool(column.isna().any())
    present = column.dropna()
    if isinstance(dtype, pd.CategoricalDtype):
        categories = [plain_value(v) for v in pd.unique(present.to_numpy(dtype=object))]
        odd = sorted({type(v).__name__ for v in categories if not _is_scalar_category(v)})
        if odd:
            raise SchemaError(
                f"Sample column {name!r}: expected category values that are strings, "
                f"numbers or booleans, got {', '.join(odd)}. Convert the categories, e.g. "
                f"sample[{name!r}].astype(str).",
                column=name,
                kind="invalid_sample",
            )
        return FeatureSpec(
            name=name,
            dtype="category",
            storage="category",
            nullable=nullable,
            categories=_sorted_categories(categories),
        )
    if is_bool_dtype(dtype):
        return FeatureSpec(name=name, dtype="boolean", storage=storage, nullable=nullable)
    if is_integer_dtype(dtype) or is_float_dtype(dtype):
        finite = present.to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        return FeatureSpec(
            name=name,
            dtype="integer" if is_integer_dtype(dtype) else "float",
            storage=storage,
            nullable=nullable,
            min=low,
            max=high,
        )
    if is_datetime64_any_dtype(dtype):
        return FeatureSpec(name=name, dtype="datetime", storage=storage, nullable=nullable)
    if isinstance(dtype, pd.StringDtype):
        return _string_spec(name, storage, nullable, present.tolist())
    if dtype == np.dtype(object):
        values = present.tolist()
        kinds = {type(v) for v in values}
        if kinds and all(issubclass(k, (bool, np.bool_)) for k in kinds):
            return FeatureSpec(name=name, dtype="boolean", storage=storage, nullable=nullable)
        if all(issubclass(k, str) for k in kinds):
            return _string_spec(name, storage, nullable, [str(v) for v in values])
        found = ", ".join(sorted(k.__name__ for k in kinds))
        raise SchemaError(
            f"Sample column {name!r}: expected an object column of strings (or of "
            f"booleans), got values of type {found}. Convert the column to one type, e.g. "
            f"sample[{name!r}].astype(str), or drop it before saving.",
            column=name,
            kind="invalid_sample",
        )
    raise SchemaError(
        f"Sample column {name!r}: expected an integer, float, boolean, string, category or "
        f"datetime column, got dtype {storage}. Convert the column (e.g. with astype) or "
        "drop it before saving.",
        column=name,
        kind="invalid_sample",
    )


def _string_spec(name: str, storage: str, nullable: bool, values: list[Any]) -> FeatureSpec:
    categories: list[Scalar] = sorted(set(values))
    return FeatureSpec(
        name=name, dtype="string", storage=storage, nullable=nullable, categories=categories
    )


def _is_scalar_category(value: object) -> bool:
    return isinstance(value, (str, bool, int, float))


def _category_sort_key(value: Scalar) -> tuple[int, Any]:
    # Categories of one kind sort naturally; a mixed object categorical sorts by kind first.
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value)


def _sorted_categories(values: list[Any]) -> list[Scalar]:
    return sorted(values, key=_category_sort_key)


# ---------------------------------------------------------------------------------------
# compiled plans


@dataclass(frozen=True)
class _Plan:
    """What :func:`prepare` needs of one FeatureSpec, computed once per schema."""

    spec: FeatureSpec
    name: str
    dtype: str
    storage: Any  # numpy dtype or pandas ExtensionDtype
    nullable: bool
    low: float | None
    high: float | None
    int_bounds: tuple[int, int] | None  # what the integer storage dtype can hold
    categories: tuple[Scalar, ...]
    category_set: frozenset[Scalar]
    category_codes: dict[Scalar, int]
    category_kinds: frozenset[str]  # "str", "number", "bool": value types a category takes
    category_dtype: pd.CategoricalDtype | None
    tz: Any  # tzinfo of a tz-aware datetime storage


def _plan(spec: FeatureSpec) -> _Plan:
    storage = _storage_dtype(spec)
    categories = tuple(spec.categories or ())
    int_bounds = None
    if spec.dtype == "integer":
        numpy_dtype = getattr(storage, "numpy_dtype", storage)
        if isinstance(numpy_dtype, np.dtype) and numpy_dtype.kind in "iu":
            info = np.iinfo(numpy_dtype)
            int_bounds = (int(info.min), int(info.max))
    kinds = frozenset(str(_category_kind(c)) for c in categories) or frozenset({"str"})
    category_dtype = None
    if spec.dtype == "category":
        storage = category_dtype = pd.CategoricalDtype(list(categories))
    has_range = spec.dtype in ("integer", "float") and spec.min is not None
    return _Plan(
        spec=spec,
        name=spec.name,
        dtype=spec.dtype,
        storage=storage,
        nullable=spec.nullable,
        low=spec.min if has_range else None,
        high=spec.max if has_range else None,
        int_bounds=int_bounds,
        categories=categories,
        category_set=frozenset(categories),
        category_codes={c: i for i, c in enumerate(categories)},
        category_kinds=kinds,
        category_dtype=category_dtype,
        tz=getattr(storage, "tz", None),
    )


def _storage_dtype(spec: FeatureSpec) -> Any:
    try:
        dtype = pandas_dtype(spec.storage)
    except TypeError as exc:
        raise SchemaError(
            f"Feature {spec.name!r}: storage expected a pandas dtype, got {spec.storage!r} "
            f"({exc}). The manifest is damaged or was written by an incompatible pandas; "
            "save the model again.",
            column=spec.name,
            kind="invalid_schema",
        ) from exc
    if isinstance(dtype, np.dtype) and dtype.kind == "U":
        # pandas 3 writes its string dtype as "str", which pandas < 3 reads as numpy
        # unicode; object is what those versions store strings in.
        return np.dtype(object)
    return dtype


def _category_kind(value: object) -> str | None:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


# Plans keyed by id(features), holding the features object itself so that the id cannot be
# reused while the entry lives; an entry is used only if it holds the very same specs. The
# common caller (Model) passes the same list on every call, so this costs one lookup.
_PLANS: dict[int, tuple[Sequence[FeatureSpec], tuple[FeatureSpec, ...], list[_Plan]]] = {}
_MAX_PLANS: Final = 64


def _plans(features: Sequence[FeatureSpec]) -> list[_Plan]:
    specs = tuple(features)
    cached = _PLANS.get(id(features))
    if cached is not None and cached[0] is features and cached[1] == specs:
        return cached[2]
    plans = [_plan(spec) for spec in specs]
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[id(features)] = (features, specs, plans)
    return plans


# ---------------------------------------------------------------------------------------
# prepare


@dataclass
class _Column:
    """One converted column and what was unusual in it."""

    values: Any  # numpy array or pandas ExtensionArray in the storage dtype
    missing: list[int] = field(default_factory=list)  # rows holding a missing value
    out_of_range: list[tuple[int, Any]] = field(default_factory=list)  # (row, value)
    unseen: list[Any] = field(default_factory=list)  # unseen categories, first seen first


def prepare(X: object, features: Sequence[FeatureSpec], *, strict: bool = False) -> pd.DataFrame:
    """Validate ``X`` against the schema and coerce it to what the pipeline was fitted on.

    ``X`` may be a DataFrame, a list of records (dicts), a dict of columns (lists or
    arrays), one record (a dict of scalars), or a 2-D numpy array / list of rows with the
    columns in schema order. In a list of records, a key absent from some records is a
    missing value there. The result has exactly the schema's columns, in schema order, each
    in its ``storage`` dtype; a DataFrame keeps its index, other inputs get a RangeIndex.
    It may share memory with ``X``.

    Conversions accept, per logical dtype: integer: ints, and floats with no fractional
    part; float: ints and floats; boolean: booleans and 0/1; string: strings; category:
    values of the categories' type; datetime: datetimes, Timestamps, datetime64 and ISO
    8601 strings (with an offset exactly when the training column had a time zone). Missing
    values (None, NaN, NaT, pd.NA) are accepted anywhere. An integer column with missing
    values comes out as float64, as pandas stores such a column (nullable ``Int64`` storage
    keeps ``pd.NA``); object columns hold NaN for missing values.

    Args:
        X: the input rows.
        features: the model's schema, in order (``manifest.features``).
        strict: raise instead of warn for extra columns, unseen categories, values
            outside the training range and missing values in a column that had none.

    Returns:
        The coerced frame.

    Raises:
        SchemaError: ``X`` has an unsupported shape, lacks a feature, or holds a value that
            cannot be converted (the error names column, row and value); with
            ``strict=True`` also for what otherwise warns.

    Warns:
        SchemaWarning: one per column and kind of unusual input (``strict=False``).

    Example:
        >>> prepare({"tenure": 3, "plan": "pro"}, manifest.features)
           tenure plan
        0       3  pro
    """
    strict = check_strict(strict)
    plans = _plans(features)
    columns, names, n_rows, index = _columns(X, plans)
    converted, _ = validate(columns, names, plans, strict, _convert_column, stacklevel=2)
    if index is None:
        index = pd.RangeIndex(n_rows)
    data = {}
    for plan, values in zip(plans, converted, strict=True):
        if isinstance(values, np.ndarray) and values.dtype == object:
            # A bare object array of strings would be inferred as "str"; a Series keeps it.
            values = pd.Series(values, index=index, dtype=object, copy=False)
        data[plan.name] = values
    frame: pd.DataFrame = pd.DataFrame(data, index=index, copy=False)
    return frame


def _columns(
    X: object, plans: list[_Plan]
) -> tuple[dict[str, Any], list[object], int, pd.Index | None]:
    """Split ``X`` into (schema name -> column, every input column name, n rows, index)."""
    if isinstance(X, pd.DataFrame):
        if X.columns.has_duplicates:
            duplicated = X.columns[X.columns.duplicated()].unique()
            raise SchemaError(
                f"Input: expected unique column names, got duplicates: "
                f"{format_names(duplicated)}. Drop or rename the duplicated columns.",
                kind="invalid_input",
            )
        names: list[object] = list(X.columns)
        wanted = {plan.name for plan in plans}
        columns = {n: _series_values(X[n]) for n in names if isinstance(n, str) and n in wanted}
        return columns, names, len(X), X.index
    schema_names = [plan.name for plan in plans]
    if isinstance(X, Mapping):
        return (*mapping_columns(X, _pandas_values), None)
    if isinstance(X, np.ndarray):
        return (*array_columns(X, schema_names), None)
    if isinstance(X, (list, tuple)):
        return (*list_columns(X, schema_names), None)
    raise SchemaError(
        f"Input: expected {ACCEPTED_INPUT}, got {type(X).__name__}.",
        kind="invalid_input",
    )


def _pandas_values(column: Any) -> Any:
    # A Series or Index gives its values; an extension array is already values.
    return _series_values(column) if isinstance(column, (pd.Series, pd.Index)) else column


def _series_values(column: pd.Series[Any] | pd.Index) -> Any:
    if isinstance(column.dtype, np.dtype):
        return column.to_numpy()
    return column.array


# ---------------------------------------------------------------------------------------
# value conversion


def _convert_column(plan: _Plan, values: Any) -> tuple[Any, _Column]:
    column = _convert(plan, values)
    return column.values, column


def _convert(plan: _Plan, values: Any) -> _Column:
    """Convert one input column (list, numpy array or pandas array) to ``plan.storage``."""
    if not isinstance(values, list):
        dtype = values.dtype
        if dtype == plan.storage and dtype != np.dtype(object):
            return _checked(plan, values)  # already stored as at training: check only
        typed = _convert_typed(plan, values)
        if typed is not None:
            return _checked(plan, typed)
        values = _as_objects(values)
    return _CONVERTERS[plan.dtype](plan, values)


def _as_objects(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "mM":  # tolist() would turn datetime64[ns] into ints
            return list(values)
        return values.tolist()  # type: ignore[no-any-return]
    return list(values.to_numpy(dtype=object))


def _convert_typed(plan: _Plan, values: Any) -> Any:
    """Vectorized conversion of a typed array, or None to fall back to value by value."""
    dtype = values.dtype
    if not isinstance(dtype, np.dtype):
        if (
            plan.dtype == "datetime"
            and plan.tz is not None
            and isinstance(dtype, pd.DatetimeTZDtype)
        ):
            try:
                return values.tz_convert(plan.tz).as_unit(plan.storage.unit)
            except (OverflowError, ValueError):
                return None  # value by value, to name the row that does not fit
        if (
            plan.dtype == "string"
            and plan.storage == np.dtype(object)
            and isinstance(dtype, pd.StringDtype)
        ):
            return values.to_numpy(dtype=object, na_value=np.nan)
        return None
    kind = dtype.kind
    if plan.dtype == "float" and kind in "iuf":
        if _is_extension(plan):
            return pd.array(values, dtype=plan.storage)
        with np.errstate(over="ignore"):  # float32 storage: huge values become inf
            return values.astype(plan.storage)
    if plan.dtype == "integer" and kind in "iu" and not _is_extension(plan):
        _check_int_bounds(plan, values)
        return values.astype(plan.storage)
    if plan.dtype == "datetime" and kind == "M" and plan.tz is None:
        try:
            return pd.array(values, dtype=plan.storage)
        except (OverflowError, ValueError):
            return None  # value by value, to name the row that does not fit
    return None


def _is_extension(plan: _Plan) -> bool:
    return not isinstance(plan.storage, np.dtype)


def _check_int_bounds(plan: _Plan, values: np.ndarray[Any, Any]) -> None:
    if plan.int_bounds is None or values.size == 0:
        return
    low, high = plan.int_bounds
    if int(values.min()) < low or int(values.max()) > high:
        row = int(np.flatnonzero((values < low) | (values > high))[0])
        raise _value_error(plan, row, values[row].item())


def _checked(plan: _Plan, values: Any) -> _Column:
    """Issues of a column already in its storage dtype."""
    column = _Column(values)
    if not (isinstance(values, np.ndarray) and values.dtype.kind in "iub"):
        column.missing = np.flatnonzero(pd.isna(values)).tolist()
    if plan.low is not None and plan.high is not None:
        if isinstance(values, np.ndarray):
            numbers = values.astype(np.float64, copy=False)
        else:
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            outside = np.flatnonzero((numbers < plan.low) | (numbers > plan.high))
        column.out_of_range = [(int(row), plain_value(values[row])) for row in outside]
    if plan.dtype == "string":
        unique = pd.unique(np.asarray(values, dtype=object))
        column.unseen = [v for v in unique if not is_missing(v) and v not in plan.category_set]
    return column


def _integers(plan: _Plan, values: list[Any]) -> _Column:
    out: list[Any] = []
    column = _Column(None)
    bounds = plan.int_bounds
    low, high = plan.low, plan.high
    for row, value in enumerate(values):
        if type(value) is int:
            number = value
        elif is_missing(value):
            column.missing.append(row)
            out.append(None)
            continue
        elif _is_whole_number(value):
            number = int(value)
        else:
            raise _value_error(plan, row, value)
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            raise _value_error(plan, row, value)
        if low is not None and high is not None and not low <= float(number) <= high:
            column.out_of_range.append((row, number))
        out.append(number)
    if not column.missing:
        column.values = _array(out, plan.storage)
    elif _is_extension(plan):
        column.values = pd.array(out, dtype=plan.storage)
    else:  # what pandas makes of an integer column with missing values
        column.values = np.array([np.nan if v is None else v for v in out], dtype=np.float64)
    return column


def _is_whole_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return (
        isinstance(value, (float, np.floating))
        and math.isfinite(value)
        and float(value).is_integer()
    )


def _floats(plan: _Plan, values: list[Any]) -> _Column:
    out: list[Any] = []
    column = _Column(None)
    low, high = plan.low, plan.high
    for row, value in enumerate(values):
        if type(value) is float and value == value:
            number = value
        elif is_missing(value):
            column.missing.append(row)
            out.append(None if _is_extension(plan) else np.nan)
            continue
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, (bool, np.bool_)
        ):
            try:
                number = float(value)
            except OverflowError:
                raise _value_error(plan, row, value) from None
        else:
            raise _value_error(plan, row, value)
        if low is not None and high is not None and not low <= number <= high:
            column.out_of_range.append((row, plain_value(value)))
        out.append(number)
    with np.errstate(over="ignore"):  # float32 storage: huge values become inf, and warn
        column.values = _array(out, plan.storage)
    return column


def _booleans(plan: _Plan, values: list[Any]) -> _Column:
    out: list[Any] = []
    column = _Column(None)
    for row, value in enumerate(values):
        if value is True or value is False:
            out.append(value)
        elif isinstance(value, np.bool_):
            out.append(bool(value))
        elif is_missing(value):
            column.missing.append(row)
            out.append(None)
        elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            out.append(bool(value))
        else:
            raise _value_error(plan, row, value)
    if _is_extension(plan):
        column.values = pd.array(out, dtype=plan.storage)
    elif column.missing or plan.storage == np.dtype(object):
        column.values = _objects([np.nan if v is None else v for v in out])
    else:
        column.values = np.array(out, dtype=bool)
    return column


def _strings(plan: _Plan, values: list[Any]) -> _Column:
    out: list[Any] = []
    column = _Column(None)
    known = plan.category_set
    unseen: dict[str, None] = {}
    for row, value in enumerate(values):
        if type(value) is str:
            text = value
        elif is_missing(value):
            column.missing.append(row)
            out.append(np.nan)
            continue
        elif isinstance(value, str):  # numpy str_
            text = str(value)
        else:
            raise _value_error(plan, row, value)
        if text not in known:
            unseen[text] = None
        out.append(text)
    column.unseen = list(unseen)
    if plan.storage == np.dtype(object):
        column.values = _objects(out)
    else:
        column.values = pd.array(out, dtype=plan.storage)
    return column


def _categories(plan: _Plan, values: list[Any]) -> _Column:
    codes: list[int] = []
    column = _Column(None)
    lookup = plan.category_codes
    kinds = plan.category_kinds
    whole_numbers = bool(plan.categories) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in plan.categories
    )
    strings = "str" in kinds
    unseen: dict[Any, int] = {}
    for row, value in enumerate(values):
        if type(value) is str and strings:
            code = lookup.get(value)
        elif is_missing(value):
            column.missing.append(row)
            codes.append(-1)
            continue
        elif _category_kind(value) not in kinds:
            raise _value_error(plan, row, value)
        else:
            value = plain_value(value)
            if whole_numbers and isinstance(value, float) and value.is_integer():
                value = int(value)
            code = lookup.get(value)
        if code is None:
            code = unseen.setdefault(value, len(lookup) + len(unseen))
        codes.append(code)
    column.unseen = list(unseen)
    dtype = plan.category_dtype
    if unseen or dtype is None:
        # Keep unseen values as categories of their own (after the warning) rather than
        # letting pandas turn them into NaN behind the caller's back.
        dtype = pd.CategoricalDtype([*plan.categories, *unseen])
    column.values = pd.Categorical.from_codes(np.array(codes, dtype=np.int64), dtype=dtype)
    return column


def _datetimes(plan: _Plan, values: list[Any]) -> _Column:
    out: list[Any] = []
    column = _Column(None)
    tz = plan.tz
    for row, value in enumerate(values):
        if is_missing(value):
            column.missing.append(row)
            out.append(pd.NaT)
            continue
        if isinstance(value, str):
            if not _ISO_8601.fullmatch(value):
                raise _value_error(plan, row, value)
            try:
                stamp = pd.Timestamp(value)
            except ValueError:  # matches the pattern but is no date: month 13 ...
                raise _value_error(plan, row, value) from None
        elif isinstance(value, (datetime, np.datetime64, date)):
            stamp = pd.Timestamp(value)
        else:
            raise _value_error(plan, row, value)
        if (stamp.tzinfo is None) != (tz is None):
            raise _value_error(plan, row, value, "naive" if tz is None else "aware")
        out.append(stamp if tz is None else stamp.tz_convert(tz))
    try:
        column.values = pd.array(out, dtype=plan.storage)
    except (OverflowError, ValueError):  # out of the storage unit's range
        for row, stamp in enumerate(out):
            try:
                pd.array([stamp], dtype=plan.storage)
            except (OverflowError, ValueError):
                raise _value_error(plan, row, values[row], "range") from None
        raise
    return column


_CONVERTERS: Final = {
    "integer": _integers,
    "float": _floats,
    "boolean": _booleans,
    "string": _strings,
    "category": _categories,
    "datetime": _datetimes,
}


def _array(values: list[Any], storage: Any) -> Any:
    if isinstance(storage, np.dtype):
        return np.array(values, dtype=storage)
    return pd.array(values, dtype=storage)


def _objects(values: list[Any]) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _value_error(plan: _Plan, row: int, value: object, problem: str = "") -> SchemaError:
    if plan.dtype == "integer" and plan.int_bounds is not None and _is_whole_number(value):
        problem = "range"  # a whole number the storage cannot hold
    return value_error(
        plan.name,
        row,
        value,
        plan.dtype,
        problem,
        storage=plan.spec.storage,
        bounds=plan.int_bounds,
        kinds=plan.category_kinds,
        tz=plan.tz,
    )


# ---------------------------------------------------------------------------------------
# model_rejection

_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)


def model_rejection(
    exc: ValueError, frame: pd.DataFrame, features: Sequence[FeatureSpec], model: str
) -> SchemaError:
    """The :class:`SchemaError` for prepared input that the model itself refused.

    scikit-learn refuses NaN in an estimator without missing-value support, infinity, and
    (in trees, which compute in float32) numbers beyond float32's range; its message names
    neither column nor row. The schema cannot refuse these values up front, since other
    models take them (HistGradientBoosting bins NaN and infinity), so the refused value is
    looked up here, after the fact, in ``frame`` (the output of :func:`prepare`). Anything
    else the model refuses is reported with the model's own message.
    """
    text = str(exc)
    if "NaN" in text:
        problem = "missing"
    elif "infinity" in text or "too large" in text:
        problem = "float32" if "float32" in text else "infinite"
    else:
        problem = ""
    found = _refused_value(frame, problem) if problem else None
    if found is None:
        return SchemaError(
            f"Input: the model ({model}) refused it: {text} Check the input against the "
            "schema (modelkeep inspect), or the pipeline's own preprocessing.",
            kind="rejected_by_model",
        )
    name, row, value = found
    spec = next(spec for spec in features if spec.name == name)
    if problem == "missing":
        had = "training had none, and " if not spec.nullable else ""
        expected = f"a value ({had}{model} cannot take missing values)"
        hint = "Fill in the value, or save a pipeline that imputes it."
    elif problem == "infinite":
        expected = f"a finite number ({model} cannot take infinity)"
        hint = "Send a finite number, or null if the value is unknown."
    else:
        expected = f"a number within float32 range, ±{_FLOAT32_MAX:.4g} ({model} uses float32)"
        hint = "Send a value of the size seen in training"
        if spec.min is not None and spec.max is not None:
            hint += f" [{spec.min:g}, {spec.max:g}]"
        hint += "."
    return bad_value(name, row, plain_value(value), expected, hint)


def _refused_value(frame: pd.DataFrame, problem: str) -> tuple[str, int, Any] | None:
    """(column, row, value) of the first value, row by row, that is ``problem``."""
    first: tuple[int, int] | None = None
    for j in range(frame.shape[1]):
        column = frame.iloc[:, j]
        if not (is_float_dtype(column.dtype) or is_integer_dtype(column.dtype)):
            continue
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            if problem == "missing":
                bad = np.isnan(values)
            elif problem == "infinite":
                bad = np.isinf(values)
            else:
                bad = np.isinf(values) | (np.abs(values) > _FLOAT32_MAX)
        rows = np.flatnonzero(bad)
        if rows.size and (first is None or int(rows[0]) < first[0]):
            first = (int(rows[0]), j)
    if first is None:
        return None
    row, j = first
    return str(frame.columns[j]), row, frame.iloc[row, j]


# ---------------------------------------------------------------------------------------
# to_json_columns


def to_json_columns(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> dict[str, list[Any]]:
    """The schema's columns of ``frame`` as JSON-safe lists, in schema order.

    Missing values become None, numpy scalars Python numbers, datetimes ISO 8601 strings
    (with their UTC offset when tz-aware, to the nanosecond when needed), categories their
    values. ``prepare(to_json_columns(frame, features), features)`` gives ``frame`` back
    with the same dtypes, bit-identical floats and the same missing positions.

    Args:
        frame: a frame with the schema's columns in their storage dtypes (a sample, or the
            output of :func:`prepare`).
        features: the schema.

    Raises:
        SchemaError: a feature is not a column of ``frame`` (kind ``"missing_columns"``), or
            a float is infinite, which JSON cannot hold (kind ``"invalid_value"``).

    Example:
        >>> to_json_columns(pd.DataFrame({"tenure": [3, 5]}), schema)
        {'tenure': [3, 5]}
    """
    plans = _plans(features)
    absent = [plan.name for plan in plans if plan.name not in frame.columns]
    if absent:
        raise missing_columns_error(absent, [], len(plans))
    out: dict[str, list[Any]] = {}
    for plan in plans:
        values = list(frame[plan.name].to_numpy(dtype=object))
        out[plan.name] = [_json_value(plan, row, value) for row, value in enumerate(values)]
    return out


def _json_value(plan: _Plan, row: int, value: Any) -> Any:
    if is_missing(value):
        return None
    if isinstance(value, (datetime, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    value = plain_value(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError(
                f"Column {plan.name!r}: row {row}: expected a finite number or a missing "
                f"value, got {value!r} (float). JSON cannot hold infinity; replace it, e.g. "
                "with NaN, before saving.",
                column=plan.name,
                row=row,
                value=value,
                kind="invalid_value",
            )
        if plan.dtype == "integer" and value.is_integer():
            return int(value)  # an integer column stored as float64 for its missing values
    return value
