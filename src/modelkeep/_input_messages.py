"""Messages about prediction input, shared by both validators.

:mod:`modelkeep.schema` (pandas, for scikit-learn artifacts) and
:mod:`modelkeep.onnx.inputs` (numpy only, for the ONNX serving path) say the same thing the
same way about the same input; the wording lives here once. Nothing here imports pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from modelkeep.errors import SchemaError, SchemaWarning, format_names

MAX_LISTED: Final = 5


def python(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def show(value: object) -> str:
    text = repr(python(value))
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
    plain = [python(v) for v in values]
    try:
        return sorted(plain)
    except TypeError:
        return sorted(plain, key=repr)


def format_values(values: Any) -> str:
    shown = sorted_values(values)
    text = ", ".join(show(v) for v in shown[:MAX_LISTED])
    if len(shown) > MAX_LISTED:
        text += f" and {len(shown) - MAX_LISTED} more"
    return text


def format_rows(rows: Sequence[int]) -> str:
    text = ", ".join(str(row) for row in rows[:MAX_LISTED])
    if len(rows) > MAX_LISTED:
        text += f" and {len(rows) - MAX_LISTED} more"
    return text


def number(value: float | None) -> str:
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
            f"[{number(low)}, {number(high)}], got {len(values)} value(s) "
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
