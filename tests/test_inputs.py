"""The input core both validators share (modelkeep._inputs): shapes, pandas recognised by
duck type, missing values, and problems reported as records, equal on both paths."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from conftest import make_frame
from modelkeep import SchemaError
from modelkeep._inputs import is_missing, is_pandas_column, mapping_columns
from modelkeep._schema import infer_schema, prepare
from modelkeep.errors import InputProblem, SchemaWarning
from modelkeep.onnx.inputs import plan_inputs, to_feeds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (pd.Series([1, 2]), True),
        (pd.Index([1, 2]), True),
        (pd.array([1, None], dtype="Int64"), True),
        (pd.Timestamp("2024-01-01"), False),
        (pd.NaT, False),
        (np.array([1, 2]), False),
        ([1, 2], False),
    ],
    ids=["series", "index", "extension-array", "timestamp", "nat", "ndarray", "list"],
)
def test_pandas_columns_are_told_from_pandas_scalars(value: object, expected: bool) -> None:
    assert is_pandas_column(value) is expected


def test_a_record_holding_pandas_scalars_is_one_record() -> None:
    record = {"when": pd.Timestamp("2024-01-01"), "amount": pd.NaT, "n": 3}
    columns, names, rows = mapping_columns(record, lambda column: column.to_numpy())
    assert (rows, names) == (1, ["when", "amount", "n"])
    assert columns["when"] == [pd.Timestamp("2024-01-01")]


def test_pandas_columns_are_converted_by_the_callers_function() -> None:
    columns, _, rows = mapping_columns(
        {"a": pd.Series([1.0, 2.0]), "b": (3, 4)}, lambda column: column.to_numpy()
    )
    assert rows == 2
    assert isinstance(columns["a"], np.ndarray) and columns["a"].tolist() == [1.0, 2.0]
    assert columns["b"] == [3, 4]


# ------------------------------------------------------------------------------ problems as data

FRAME, _ = make_frame(50)
FEATURES = infer_schema(FRAME)
PLANS = plan_inputs(FEATURES)
RECORD = {
    "age": 30,
    "income": 5e4,
    "visits": 2.0,
    "plan": "basic",
    "region": "north",
    "autopay": True,
}


def _prepare(X: object, strict: bool) -> object:
    return prepare(X, FEATURES, strict=strict)


def _to_feeds(X: object, strict: bool) -> object:
    return to_feeds(X, PLANS, strict=strict)


PATHS = pytest.mark.parametrize("path", [_prepare, _to_feeds], ids=["schema", "onnx"])


def _error(path: Callable[[object, bool], object], X: object, strict: bool) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        path(X, strict)
    return caught.value


@PATHS
def test_a_bad_value_is_one_record_naming_row_column_and_both_sides(
    path: Callable[[object, bool], object],
) -> None:
    error = _error(path, [RECORD, {**RECORD, "income": "50000"}], False)
    assert error.problems == (
        InputProblem(
            row=1,
            column="income",
            expected="float",
            received="'50000' (str)",
            message=str(error),
            kind="invalid_value",
        ),
    )


@PATHS
def test_each_missing_column_is_a_record(path: Callable[[object, bool], object]) -> None:
    record = {k: v for k, v in RECORD.items() if k not in ("plan", "age")}
    error = _error(path, record, False)
    assert error.kind == "missing_columns"
    assert error.problems == tuple(
        InputProblem(
            row=None,
            column=name,
            expected="a column the model was fitted on",
            received="no such column",
            message=f"Input is missing column {name!r}; add it, with null for unknown values.",
            kind="missing_columns",
        )
        for name in ("age", "plan")
    )


@PATHS
def test_an_extra_column_in_strict_mode_is_a_record(
    path: Callable[[object, bool], object],
) -> None:
    error = _error(path, {**RECORD, "coupon": 1}, True)
    assert error.problems == (
        InputProblem(
            row=None,
            column="coupon",
            expected="only columns the model was fitted on",
            received="a column the model was not fitted on",
            message="Input has column 'coupon', which the model was not fitted on.",
            kind="extra_columns",
        ),
    )


@PATHS
def test_an_unseen_category_in_strict_mode_is_a_record(
    path: Callable[[object, bool], object],
) -> None:
    error = _error(path, [RECORD, {**RECORD, "plan": "gold"}, {**RECORD, "plan": "gold"}], True)
    assert error.problems == (
        InputProblem(
            row=None,
            column="plan",
            expected="values seen in training",
            received="1 unseen value(s): 'gold'",
            message=str(error),
            kind="unseen_categories",
        ),
    )
    assert str(error).startswith("Column 'plan': expected values seen in training, got 1 ")


@PATHS
def test_a_value_out_of_range_in_strict_mode_names_its_first_row(
    path: Callable[[object, bool], object],
) -> None:
    error = _error(path, [RECORD, {**RECORD, "income": 1e9}], True)
    (problem,) = error.problems
    assert (problem.row, problem.column, problem.kind) == (1, "income", "out_of_range")
    assert problem.received == "1 value(s) outside it: 1000000000.0"
    assert problem.message == str(error)


@PATHS
def test_an_input_of_the_wrong_shape_is_one_record_without_sides(
    path: Callable[[object, bool], object],
) -> None:
    error = _error(path, "not a table", False)
    assert error.problems == (InputProblem(None, None, None, None, str(error), "invalid_input"),)


@PATHS
def test_a_cell_nested_thousands_deep_is_a_schema_error_not_a_recursion(
    path: Callable[[object, bool], object],
) -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    error = _error(path, [{**RECORD, "plan": deep}], False)
    (problem,) = error.problems
    assert (problem.row, problem.column, problem.kind) == (0, "plan", "invalid_value")
    assert problem.received is not None and problem.received.startswith("[[[")
    assert len(problem.received) < 80


@PATHS
def test_warnings_carry_the_records_strict_mode_would_raise(
    path: Callable[[object, bool], object],
) -> None:
    X = [RECORD, {**RECORD, "plan": "gold", "income": 1e9}, {**RECORD, "coupon": 1}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path(X, False)
    found = [w.message for w in caught if isinstance(w.message, SchemaWarning)]
    assert sorted(w.kind for w in found) == ["extra_columns", "out_of_range", "unseen_categories"]
    for warning in found:
        (problem,) = warning.problems
        assert (problem.column, problem.kind) == (warning.column or "coupon", warning.kind)
        if warning.kind != "extra_columns":  # one record per extra column, each its own text
            assert problem.message == str(warning)
    by_kind = {w.kind: w.problems[0] for w in found}
    assert by_kind["out_of_range"].row == 1
    assert by_kind["unseen_categories"].received == "1 unseen value(s): 'gold'"
    assert by_kind["extra_columns"].message == (
        "Input has column 'coupon', which the model was not fitted on."
    )


@pytest.mark.parametrize(
    ("X", "strict"),
    [
        ({**RECORD, "age": 30.5}, False),
        ({**RECORD, "autopay": "yes"}, False),
        ({**RECORD, "plan": 3}, False),
        ({"income": 1.0}, False),
        ({**RECORD, "extra": 1, "other": 2}, True),
        ({**RECORD, "plan": "gold", "region": "west"}, True),
        (pd.DataFrame([RECORD, {**RECORD, "plan": "gold"}]), True),
        ([RECORD, {**RECORD, "visits": -1.0}], True),
    ],
    ids=[
        "fraction",
        "string_for_boolean",
        "number_for_string",
        "missing_columns",
        "extra_columns",
        "unseen",
        "frame_unseen",
        "out_of_range",
    ],
)
def test_both_paths_give_equal_records(X: object, strict: bool) -> None:
    expected = _error(_prepare, X, strict).problems
    assert _error(_to_feeds, X, strict).problems == expected
    assert expected and all(json.loads(json.dumps(p.to_dict())) == p.to_dict() for p in expected)


def test_is_missing_knows_every_missing_value_without_pandas() -> None:
    missing = [None, float("nan"), np.float32("nan"), np.datetime64("NaT"), pd.NA, pd.NaT]
    present = [0, 0.0, "", False, np.datetime64("2024-01-01"), pd.Timestamp("2024-01-01")]
    assert [is_missing(v) for v in missing] == [True] * len(missing)
    assert [is_missing(v) for v in present] == [False] * len(present)
