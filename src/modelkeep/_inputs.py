"""Prediction input: its accepted shapes and the messages about it, shared by both validators.

:mod:`modelkeep.schema` (pandas, for scikit-learn artifacts) and
:mod:`modelkeep.onnx.inputs` (numpy only, for the ONNX serving path) accept the same shapes
and say the same thing the same way about the same input; that lives here once. Nothing here
imports pandas: pandas objects are recognised by their module and converted by a function the
caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from modelkeep.errors import InvalidArgumentError, SchemaError, SchemaWarning, format_names

MAX_LISTED: Final = 5


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


def show_value(value: object) -> str:
    text = repr(plain_value(value))
    return text if len(text) <= 60 else text[:57] + "..."


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
    return SchemaError(
        f"Input is missing {len(missing)} of the model's {total} columns: "
        f"{format_names(missing)}.{hint} Add every feature the model was fitted on, with "
        "null for unknown values.",
        value=tuple(sorted(missing)),
        kind="missing_columns",
    )


def extra_columns_warning(extra: list[object], strict: bool) -> SchemaWarning:
    action = (
        "Remove them, or pass strict=False to ignore them with a warning."
        if strict
        else "They were ignored; remove them, or check for a misspelled feature name."
    )
    return SchemaWarning(
        f"Input has {len(extra)} column(s) the model was not fitted on: "
        f"{format_names(extra)}. {action}",
        kind="extra_columns",
        column=None,
        values=sorted(str(name) for name in extra),
    )


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


def column_warnings(
    name: str,
    *,
    unseen: Sequence[Any],
    out_of_range: Sequence[tuple[int, Any]],
    missing: Sequence[int],
    nullable: bool,
    low: float | None,
    high: float | None,
    strict: bool,
) -> list[tuple[SchemaWarning, int | None]]:
    """The warnings about one column's values, each with the first row concerned."""
    found: list[tuple[SchemaWarning, int | None]] = []
    if unseen:
        warning = SchemaWarning(
            f"Column {name!r}: expected values seen in training, got "
            f"{len(unseen)} unseen value(s): {format_values(unseen)}. "
            + advice(strict, "the model's output for them is unreliable"),
            kind="unseen_categories",
            column=name,
            values=sorted_values(unseen),
        )
        found.append((warning, None))
    if out_of_range:
        values = sorted_values({value for _, value in out_of_range})
        warning = SchemaWarning(
            f"Column {name!r}: expected values in the training range "
            f"[{show_number(low)}, {show_number(high)}], got {len(values)} value(s) "
            f"outside it: {format_values(values)}. " + advice(strict, "the model is extrapolating"),
            kind="out_of_range",
            column=name,
            values=values,
        )
        found.append((warning, out_of_range[0][0]))
    if missing and not nullable:
        warning = SchemaWarning(
            f"Column {name!r}: expected no missing values (training had none), got "
            f"{len(missing)} in row(s) {format_rows(missing)}. "
            + advice(strict, "the pipeline may not handle them"),
            kind="unexpected_missing",
            column=name,
            values=list(missing),
        )
        found.append((warning, missing[0]))
    return found


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
