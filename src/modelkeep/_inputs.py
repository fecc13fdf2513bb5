"""Prediction input: its accepted shapes, the validation driver and its messages, shared.

:mod:`modelkeep._schema` (pandas, for scikit-learn artifacts) and
:mod:`modelkeep.onnx.inputs` (numpy only, for the ONNX serving path) accept the same shapes
and say the same thing the same way about the same input; that lives here once: the input
shapes (:func:`mapping_columns`, :func:`list_columns`, :func:`array_columns`), the driver
(:func:`validate`: missing columns, extra columns, strict, convert, issues, warn), the
message table (:func:`expected_and_hint`, :func:`value_error`) and the missing-value test
(:func:`is_missing`). Only the converters, which know the storage, stay with each caller.
Every :class:`SchemaError` raised here carries its problems as
:class:`~modelkeep.errors.InputProblem` records.

Nothing here imports pandas: pandas objects are recognised by their module and converted by a
function the caller passes.
"""

from __future__ import annotations

import reprlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import numpy as np

from modelkeep.errors import (
    InputProblem,
    InvalidArgumentError,
    SchemaError,
    SchemaWarning,
    format_names,
)

__all__ = [
    "ACCEPTED_INPUT",
    "MAX_LISTED",
    "Columns",
    "Found",
    "Issue",
    "Plan",
    "array_columns",
    "bad_value",
    "check_strict",
    "column_issues",
    "expected_and_hint",
    "format_rows",
    "format_values",
    "is_missing",
    "is_pandas_column",
    "issue_to_error",
    "list_columns",
    "mapping_columns",
    "missing_columns_error",
    "not_a_classifier",
    "plain_value",
    "plain_values",
    "show_value",
    "validate",
    "value_error",
]

MAX_LISTED: Final = 5
ACCEPTED_INPUT: Final = (
    "a DataFrame, a list of records (dicts), a dict of columns, one record (a dict of "
    "scalars) or a 2-D array / list of rows in schema order"
)


def check_strict(strict: object) -> bool:
    """``strict`` as a bool; anything but True or False is an argument error.

    ``strict="no"`` is truthy: taken as it is, it would turn strict mode on.
    """
    if isinstance(strict, bool | np.bool_):
        return bool(strict)
    raise InvalidArgumentError(
        "strict",
        "True or False",
        f"{show_value(strict)} ({type(strict).__name__})",
        "strict=True raises on unusual input; strict=False (the default) warns.",
    )


def not_a_classifier(task: str) -> InvalidArgumentError:
    """What ``predict_proba`` raises for a model without classes."""
    return InvalidArgumentError(
        "predict_proba",
        "a classifier",
        f"a {task} model",
        "A regressor has no class probabilities; use predict().",
    )


def plain_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def plain_values(values: Any) -> list[Any]:
    """An array's values as Python values (object arrays may hold numpy scalars)."""
    return [plain_value(v) for v in np.asarray(values).tolist()]


def show_value(value: object) -> str:
    value = plain_value(value)
    try:
        # reprlib stops at a few levels: a cell nested thousands deep is shown, not recursed.
        text = _CONTAINERS.repr(value) if isinstance(value, _NESTED) else repr(value)
    except Exception:  # a repr that raises or recurses still names what came
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


_NESTED = (list, tuple, dict, set, frozenset)
_CONTAINERS = reprlib.Repr()
_CONTAINERS.maxlevel = 3


def check_width(got: int, expected: int) -> None:
    if got != expected:
        raise SchemaError(
            f"Input: expected {expected} columns (one per feature, in schema order), got "
            f"{got}. Pass a DataFrame or records with column names to match columns by name.",
            kind="invalid_input",
        )


def missing_columns_error(missing: list[str], extra: list[object], total: int) -> SchemaError:
    hint = ""
    if extra:
        hint = (
            f" The input also has columns the model was not fitted on: "
            f"{format_names(extra)}; is one misspelled?"
        )
    names = sorted(missing)
    problems = [
        InputProblem(
            None,
            name,
            "a column the model was fitted on",
            "no such column",
            f"Input is missing column {name!r}; add it, with null for unknown values.",
            "missing_columns",
        )
        for name in names
    ]
    return SchemaError(
        f"Input is missing {len(missing)} of the model's {total} columns: "
        f"{format_names(missing)}.{hint} Add every feature the model was fitted on, with "
        "null for unknown values.",
        value=tuple(names),
        kind="missing_columns",
        problems=problems,
    )


def _extra_columns(extra: list[object], strict: bool) -> Issue:
    action = (
        "Remove them, or pass strict=False to ignore them with a warning."
        if strict
        else "They were ignored; remove them, or check for a misspelled feature name."
    )
    names = sorted(str(name) for name in extra)
    problems = tuple(
        InputProblem(
            None,
            name,
            "only columns the model was fitted on",
            "a column the model was not fitted on",
            f"Input has column {name!r}, which the model was not fitted on.",
            "extra_columns",
        )
        for name in names
    )
    warning = SchemaWarning(
        f"Input has {len(extra)} column(s) the model was not fitted on: "
        f"{format_names(extra)}. {action}",
        kind="extra_columns",
        column=None,
        values=names,
        problems=problems,
    )
    return Issue(warning, None, problems)


def sorted_values(values: Any) -> list[Any]:
    plain = [plain_value(v) for v in values]
    try:
        return sorted(plain)
    except TypeError:
        return sorted(plain, key=repr)


def format_values(values: Any) -> str:
    shown = sorted_values(values)
    text = ", ".join(show_value(v) for v in shown[:MAX_LISTED])
    if len(shown) > MAX_LISTED:
        text += f" and {len(shown) - MAX_LISTED} more"
    return text


def format_rows(rows: Sequence[int]) -> str:
    text = ", ".join(str(row) for row in rows[:MAX_LISTED])
    if len(rows) > MAX_LISTED:
        text += f" and {len(rows) - MAX_LISTED} more"
    return text


def show_number(value: float | None) -> str:
    if value is not None and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def advice(strict: bool, risk: str) -> str:
    if strict:
        return "Fix the input, or pass strict=False to accept it with a warning."
    return f"They were kept; {risk} (pass strict=True to reject them)."


# ------------------------------------------------------------------------------ missing values


def is_missing(value: object) -> bool:
    """None, NaN, NaT (numpy's or pandas'), or pandas' NA; pandas is never imported."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    # pandas' NA and NaT, recognised by their type's name.
    return type(value).__name__ in _PANDAS_MISSING


_PANDAS_MISSING: Final = frozenset({"NAType", "NaTType"})


# ------------------------------------------------------------------------------ value messages


def expected_and_hint(
    dtype: str,
    problem: str = "",
    *,
    storage: str = "",
    bounds: tuple[int, int] | None = None,
    kinds: Iterable[str] = ("str",),
    tz: object = None,
) -> tuple[str, str]:
    """What a column of logical ``dtype`` expects, and how to fix a value it rejected.

    ``problem`` narrows the message: ``"missing"`` (a storage that cannot hold a missing
    value, ``storage`` naming it), ``"range"`` (a whole number outside ``bounds``, or a
    datetime ``storage`` cannot hold), ``"aware"``/``"naive"`` (a datetime with or
    without a UTC offset against a training column without or with one, ``tz``). ``kinds``
    are the value types a category column's categories take.
    """
    if problem == "missing":
        return (
            f"{'an integer' if dtype == 'integer' else 'a boolean'} (the ONNX model takes "
            f"this column as {storage}, which cannot hold a missing value)",
            "Send a value: the training data had none missing in this column.",
        )
    if dtype == "integer":
        if problem == "range" and bounds is not None:
            return (
                f"integer between {bounds[0]} and {bounds[1]} ({storage})",
                "The value does not fit the column's training dtype.",
            )
        return "integer", "Send a whole number (a JSON number, not a string)."
    if dtype == "float":
        return "float", "Send a number (a JSON number, not a string)."
    if dtype == "boolean":
        return "boolean", "Send true or false (or 1 or 0); strings are not converted."
    if dtype == "string":
        return "string", "Send text as a string; numbers are not converted."
    if dtype == "category":
        return (
            f"category value ({' or '.join(sorted(kinds))})",
            "Send one of the training categories.",
        )
    if problem == "range":
        return (
            f"a datetime that {storage} can hold",
            "The date is too far from 1970 for the column's training dtype.",
        )
    if problem == "aware":
        return (
            f"datetime with a UTC offset (training: {tz})",
            "Include the offset, e.g. '2024-01-31T12:00:00+00:00'.",
        )
    if problem == "naive":
        return (
            "datetime without a UTC offset (training had none)",
            "Send local times as in training, e.g. '2024-01-31T12:00:00'.",
        )
    return (
        "datetime",
        "Send a datetime or an ISO 8601 string such as '2024-01-31T12:00:00'.",
    )


def value_error(
    name: str,
    row: int,
    value: object,
    dtype: str,
    problem: str = "",
    *,
    storage: str = "",
    bounds: tuple[int, int] | None = None,
    kinds: Iterable[str] = ("str",),
    tz: object = None,
) -> SchemaError:
    """The :class:`SchemaError` for a value its column cannot take (:func:`expected_and_hint`)."""
    expected, hint = expected_and_hint(
        dtype, problem, storage=storage, bounds=bounds, kinds=kinds, tz=tz
    )
    return bad_value(name, row, value, expected, hint)


def bad_value(name: str, row: int, value: object, expected: str, hint: str) -> SchemaError:
    """The error "Column ...: row ...: expected ..., got ...", with its record."""
    received = f"{show_value(value)} ({type(value).__name__})"
    message = f"Column {name!r}: row {row}: expected {expected}, got {received}. {hint}"
    return SchemaError(
        message,
        column=name,
        row=row,
        value=value,
        kind="invalid_value",
        problems=(InputProblem(row, name, expected, received, message, "invalid_value"),),
    )


# ------------------------------------------------------------------------------ the driver


class Plan(Protocol):
    """What the driver reads of a caller's per-feature plan."""

    @property
    def name(self) -> str: ...
    @property
    def nullable(self) -> bool: ...
    @property
    def low(self) -> float | None: ...
    @property
    def high(self) -> float | None: ...


class Found(Protocol):
    """What a converter found unusual in one column."""

    @property
    def missing(self) -> Sequence[int]: ...  # rows holding a missing value
    @property
    def out_of_range(self) -> Sequence[tuple[int, Any]]: ...  # (row, value)
    @property
    def unseen(self) -> Iterable[Any]: ...  # unseen categories, first seen first


@dataclass(frozen=True)
class Issue:
    """Unusual input: a warning, or with ``strict=True`` an error.

    ``row`` is the first row concerned, when there is one; ``problems`` the same as records.
    """

    warning: SchemaWarning
    row: int | None
    problems: tuple[InputProblem, ...]


def issue_to_error(issue: Issue) -> SchemaError:
    """What ``strict=True`` raises for an :class:`Issue`."""
    warning = issue.warning
    return SchemaError(
        str(warning),
        column=warning.column,
        row=issue.row,
        value=warning.values,
        kind=warning.kind,
        problems=issue.problems,
    )


P = TypeVar("P", bound=Plan)
V = TypeVar("V")


def validate(
    columns: Mapping[str, Any],
    names: Sequence[object],
    plans: Sequence[P],
    strict: bool,
    convert: Callable[[P, Any], tuple[V, Found]],
    *,
    stacklevel: int = 2,
) -> tuple[list[V], list[Issue]]:
    """Check and convert the columns split from an input; (converted columns, issues).

    ``columns`` maps schema names to column values and ``names`` lists every input column
    (as :data:`Columns`). The steps, in this order: a missing column raises; extra columns
    are an issue, raised at once with ``strict=True`` (the structure is wrong, the values
    do not matter); ``convert`` turns each plan's column into the caller's storage (raising
    :class:`SchemaError` for a value it cannot take) and reports what it found; what is
    unusual raises with ``strict=True`` (the first issue) and otherwise warns, each warning
    ``stacklevel`` frames above the caller.
    """
    wanted = {plan.name for plan in plans}
    missing = [plan.name for plan in plans if plan.name not in columns]
    extra = [name for name in names if name not in wanted]
    if missing:
        raise missing_columns_error(missing, extra, len(plans))
    pending: list[Issue] = []
    if extra:
        pending.append(_extra_columns(extra, strict))
        if strict:
            raise issue_to_error(pending[0])
    converted: list[V] = []
    for plan in plans:
        values, found = convert(plan, columns[plan.name])
        converted.append(values)
        if found.missing or found.out_of_range or found.unseen:
            pending.extend(column_issues(plan, found, strict))
    if strict and pending:
        raise issue_to_error(pending[0])
    for issue in pending:
        warnings.warn(issue.warning, stacklevel=stacklevel + 1)
    return converted, pending


def column_issues(plan: Plan, found: Found, strict: bool) -> list[Issue]:
    """The issues of one converted column, one per kind."""
    name = plan.name
    issues: list[Issue] = []
    unseen = list(found.unseen)
    if unseen:
        issues.append(
            _column_issue(
                name,
                "unseen_categories",
                "values seen in training",
                f"{len(unseen)} unseen value(s): {format_values(unseen)}",
                advice(strict, "the model's output for them is unreliable"),
                sorted_values(unseen),
                None,
            )
        )
    out_of_range = found.out_of_range
    if out_of_range:
        values = sorted_values({value for _, value in out_of_range})
        low, high = show_number(plan.low), show_number(plan.high)
        issues.append(
            _column_issue(
                name,
                "out_of_range",
                f"values in the training range [{low}, {high}]",
                f"{len(values)} value(s) outside it: {format_values(values)}",
                advice(strict, "the model is extrapolating"),
                values,
                out_of_range[0][0],
            )
        )
    missing = found.missing
    if missing and not plan.nullable:
        issues.append(
            _column_issue(
                name,
                "unexpected_missing",
                "no missing values (training had none)",
                f"{len(missing)} in row(s) {format_rows(missing)}",
                advice(strict, "the pipeline may not handle them"),
                list(missing),
                missing[0],
            )
        )
    return issues


def _column_issue(
    name: str,
    kind: str,
    expected: str,
    received: str,
    action: str,
    values: Sequence[Any],
    row: int | None,
) -> Issue:
    message = f"Column {name!r}: expected {expected}, got {received}. {action}"
    problems = (InputProblem(row, name, expected, received, message, kind),)
    warning = SchemaWarning(message, kind=kind, column=name, values=values, problems=problems)
    return Issue(warning, row, problems)


Columns = tuple[dict[str, Any], list[object], int]
"""(schema name -> column values, every input column name, number of rows)."""


def is_pandas_column(value: object) -> bool:
    """A pandas Series, Index or extension array, recognised without importing pandas.

    pandas scalars (``Timestamp``, ``NaT``) have ``to_numpy`` too, but no length.
    """
    return (
        type(value).__module__.startswith("pandas")
        and hasattr(value, "to_numpy")
        and hasattr(value, "__len__")
    )


def is_sequence(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray) or is_pandas_column(value)


def array_columns(X: np.ndarray, names: Sequence[str]) -> Columns:
    """A 2-D array whose columns are the features in schema order."""
    if X.ndim != 2:
        raise SchemaError(
            f"Input: expected a 2-D array (rows x features), got a {X.ndim}-D array of "
            f"shape {X.shape}. Reshape one row with x.reshape(1, -1).",
            kind="invalid_input",
        )
    check_width(X.shape[1], len(names))
    return {name: X[:, j] for j, name in enumerate(names)}, list(names), X.shape[0]


def mapping_columns(X: Mapping[Any, Any], pandas_values: Callable[[Any], Any]) -> Columns:
    """One record (every value a scalar) or a dict of columns (every value a sequence).

    ``pandas_values`` turns a pandas column into the values the caller works with.
    """
    names = list(X)
    sequences = [name for name in names if is_sequence(X[name])]
    if not sequences:  # one record: every value a scalar
        return {name: [X[name]] for name in names if isinstance(name, str)}, names, 1
    if len(sequences) != len(names):
        listed = set(sequences)
        scalars = [name for name in names if name not in listed]
        raise SchemaError(
            "Input: expected one record (every value a scalar) or a dict of columns (every "
            f"value a list or array), got both: lists for {format_names(sequences)} and "
            f"scalars for {format_names(scalars)}.",
            kind="invalid_input",
        )
    columns: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for name in names:
        value = X[name]
        if isinstance(value, tuple):
            value = list(value)
        elif is_pandas_column(value):
            value = pandas_values(value)
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise SchemaError(
                f"Input: column {name!r}: expected a 1-D list or array, got an array of "
                f"shape {value.shape}.",
                column=str(name),
                kind="invalid_input",
            )
        lengths[str(name)] = len(value)
        if isinstance(name, str):
            columns[name] = value
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name!r}: {n}" for name, n in list(lengths.items())[:MAX_LISTED])
        if len(lengths) > MAX_LISTED:
            shown += f" and {len(lengths) - MAX_LISTED} more"
        raise SchemaError(
            f"Input: expected columns of one length, got lengths {shown}. Give every column "
            "one value per row.",
            kind="invalid_input",
        )
    return columns, names, next(iter(lengths.values()), 0)


def list_columns(X: Sequence[Any], names: Sequence[str]) -> Columns:
    """A list of records (dicts) or of rows (lists of values in schema order)."""
    schema_names: list[object] = list(names)
    if not X:  # no rows: nothing to check
        return {name: [] for name in names}, schema_names, 0
    first = X[0]
    if isinstance(first, Mapping):
        for row, record in enumerate(X):
            if not isinstance(record, Mapping):
                raise SchemaError(
                    f"Input: row {row}: expected a record (dict) like row 0, got "
                    f"{type(record).__name__}.",
                    row=row,
                    kind="invalid_input",
                )
        seen: list[object] = list(set().union(*X))  # only reported, and then sorted
        columns = {n: [record.get(n) for record in X] for n in seen if isinstance(n, str)}
        return columns, seen, len(X)
    if isinstance(first, list | tuple | np.ndarray):
        width = len(names)
        for row, values in enumerate(X):
            if not isinstance(values, list | tuple | np.ndarray):
                raise SchemaError(
                    f"Input: row {row}: expected a list of values like row 0, got "
                    f"{type(values).__name__}.",
                    row=row,
                    kind="invalid_input",
                )
            if len(values) != width:
                if row == 0:
                    check_width(len(values), width)
                raise SchemaError(
                    f"Input: row {row}: expected {width} values (one per feature, in schema "
                    f"order), got {len(values)}.",
                    row=row,
                    kind="invalid_input",
                )
        by_position = zip(names, zip(*X, strict=True), strict=True)
        return {name: list(values) for name, values in by_position}, schema_names, len(X)
    raise SchemaError(
        f"Input: expected a list of records (dicts) or of rows (lists), got a list of "
        f"{type(first).__name__}. Wrap a single row in a list: [[...]].",
        kind="invalid_input",
    )
