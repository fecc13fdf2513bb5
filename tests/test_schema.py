"""Feature schemas: inference, validation and coercion of prediction input, JSON round trip."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelkeep._schema import infer_schema, prepare, to_json_columns
from modelkeep.errors import SchemaError, SchemaWarning
from modelkeep.manifest import FeatureSpec

SAMPLE = pd.DataFrame(
    {
        "tenure": [1, 24, 72],
        "charges": [29.5, np.nan, 110.0],
        "senior": [True, False, True],
        "plan": ["basic", "pro", None],
        "contract": pd.Categorical(["m2m", "1y", "2y"]),
        "signup": pd.to_datetime(
            ["2020-01-01", "2021-06-15T10:30:00", "2023-12-31"], format="ISO8601"
        ),
    }
)
SCHEMA = infer_schema(SAMPLE)
RECORD: dict[str, Any] = {
    "tenure": 12,
    "charges": 50.0,
    "senior": False,
    "plan": "pro",
    "contract": "1y",
    "signup": "2022-03-04T05:06:07",
}


def expected_frame(n: int = 1) -> pd.DataFrame:
    """``RECORD`` repeated ``n`` times, as prepare() must return it."""
    return pd.DataFrame(
        {
            "tenure": np.full(n, 12, dtype=np.int64),
            "charges": np.full(n, 50.0),
            "senior": np.zeros(n, dtype=bool),
            "plan": pd.array(["pro"] * n, dtype="str"),
            "contract": pd.Categorical(["1y"] * n, categories=["1y", "2y", "m2m"]),
            "signup": pd.to_datetime(["2022-03-04T05:06:07"] * n).as_unit("us"),
        }
    )


def records_with(column: str, value: object, row: int = 2) -> list[dict[str, Any]]:
    """Three copies of ``RECORD`` with ``value`` in ``column`` of ``row``."""
    records = [dict(RECORD) for _ in range(3)]
    records[row][column] = value
    return records


def spec(name: str = "x", **fields: Any) -> list[FeatureSpec]:
    return [FeatureSpec(name=name, **fields)]


# ---------------------------------------------------------------------------------------
# infer_schema


def test_infer_schema_of_the_sample() -> None:
    assert infer_schema(SAMPLE) == [
        FeatureSpec(name="tenure", dtype="integer", storage="int64", nullable=False, min=1, max=72),
        FeatureSpec(
            name="charges", dtype="float", storage="float64", nullable=True, min=29.5, max=110
        ),
        FeatureSpec(name="senior", dtype="boolean", storage="bool", nullable=False),
        FeatureSpec(
            name="plan",
            dtype="string",
            storage="str",
            nullable=True,
            categories=["basic", "pro"],
        ),
        FeatureSpec(
            name="contract",
            dtype="category",
            storage="category",
            nullable=False,
            categories=["1y", "2y", "m2m"],
        ),
        FeatureSpec(name="signup", dtype="datetime", storage="datetime64[us]", nullable=False),
    ]


INFER_CASES = [
    (pd.Series([3, 1, 2]), dict(dtype="integer", storage="int64", min=1, max=3)),
    (
        pd.Series([3, 250], dtype="uint8"),
        dict(dtype="integer", storage="uint8", min=3, max=250),
    ),
    (
        pd.Series([5, None], dtype="Int64"),
        dict(dtype="integer", storage="Int64", nullable=True, min=5, max=5),
    ),
    (
        pd.Series([2**62, -(2**62)]),
        dict(dtype="integer", storage="int64", min=-(2.0**62), max=2.0**62),
    ),
    (
        pd.Series([0.5, np.nan, -1.5]),
        dict(dtype="float", storage="float64", nullable=True, min=-1.5, max=0.5),
    ),
    (
        pd.Series([0.5, 2.0], dtype="float32"),
        dict(dtype="float", storage="float32", min=0.5, max=2.0),
    ),
    (
        pd.Series([np.nan, np.nan]),
        dict(dtype="float", storage="float64", nullable=True, min=None, max=None),
    ),
    (
        pd.Series([-np.inf, 1.0, np.inf, 3.0]),
        dict(dtype="float", storage="float64", min=1.0, max=3.0),
    ),
    (pd.Series([True, False]), dict(dtype="boolean", storage="bool")),
    (
        pd.Series([True, None], dtype="boolean"),
        dict(dtype="boolean", storage="boolean", nullable=True),
    ),
    (pd.Series([True, None]), dict(dtype="boolean", storage="object", nullable=True)),
    (
        pd.Series(["b", None, "a", "b"]),
        dict(dtype="string", storage="str", nullable=True, categories=["a", "b"]),
    ),
    (
        pd.Series(["b", np.nan, "a"], dtype=object),
        dict(dtype="string", storage="object", nullable=True, categories=["a", "b"]),
    ),
    (
        pd.Series(["b", None], dtype="string"),
        dict(dtype="string", storage="string", nullable=True, categories=["b"]),
    ),
    (
        pd.Series([None, None], dtype=object),
        dict(dtype="string", storage="object", nullable=True, categories=[]),
    ),
    (
        pd.Series(pd.Categorical(["z", "a", None], categories=["z", "a", "never"])),
        dict(dtype="category", storage="category", nullable=True, categories=["a", "z"]),
    ),
    (
        pd.Series(pd.Categorical([3, 1, 2])),
        dict(dtype="category", storage="category", categories=[1, 2, 3]),
    ),
    (
        pd.Series(pd.to_datetime(["2024-01-01", None])),
        dict(dtype="datetime", storage="datetime64[us]", nullable=True),
    ),
    (
        pd.Series(pd.to_datetime(["2024-01-01T00:00:00.000000001"])),
        dict(dtype="datetime", storage="datetime64[ns]"),
    ),
    (
        pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("Europe/Paris")),
        dict(dtype="datetime", storage="datetime64[us, Europe/Paris]"),
    ),
]
INFER_IDS = [
    "int64",
    "uint8",
    "Int64-with-NA",
    "large-int64",
    "float64-with-NaN",
    "float32",
    "float-all-missing",
    "float-infinities-left-out",
    "bool",
    "boolean-with-NA",
    "object-bool-with-None",
    "str-with-None",
    "object-strings",
    "string",
    "object-all-missing",
    "category-observed-sorted",
    "category-ints",
    "datetime-us",
    "datetime-ns",
    "datetime-tz",
]


@pytest.mark.parametrize(("column", "expected"), INFER_CASES, ids=INFER_IDS)
def test_infer_schema_dtypes(column: pd.Series[Any], expected: dict[str, Any]) -> None:
    expected = {"name": "x", "nullable": False, **expected}
    assert infer_schema(pd.DataFrame({"x": column})) == [FeatureSpec(**expected)]


def test_infer_schema_keeps_column_order() -> None:
    frame = pd.DataFrame({"b": [1], "a": [1.0], "c": ["x"]})
    assert [f.name for f in infer_schema(frame)] == ["b", "a", "c"]


INFER_ERRORS = [
    (
        pd.DataFrame({"x": [1, "a", 2.5]}),
        "x",
        "Sample column 'x': expected an object column of strings (or of booleans), got "
        "values of type float, int, str. Convert the column to one type, e.g. "
        "sample['x'].astype(str), or drop it before saving.",
    ),
    (
        pd.DataFrame({"x": [[1, 2], [3]]}),
        "x",
        "Sample column 'x': expected an object column of strings (or of booleans), got "
        "values of type list. Convert the column to one type, e.g. "
        "sample['x'].astype(str), or drop it before saving.",
    ),
    (
        pd.DataFrame({"x": [True, "yes"]}),
        "x",
        "Sample column 'x': expected an object column of strings (or of booleans), got "
        "values of type bool, str. Convert the column to one type, e.g. "
        "sample['x'].astype(str), or drop it before saving.",
    ),
    (
        pd.DataFrame({"x": pd.to_timedelta([1, 2], unit="s").as_unit("ns")}),
        "x",
        "Sample column 'x': expected an integer, float, boolean, string, category or "
        "datetime column, got dtype timedelta64[ns]. Convert the column (e.g. with astype) "
        "or drop it before saving.",
    ),
    (
        pd.DataFrame({"x": pd.Categorical(pd.to_datetime(["2024-01-01"]))}),
        "x",
        "Sample column 'x': expected category values that are strings, numbers or "
        "booleans, got Timestamp. Convert the categories, e.g. sample['x'].astype(str).",
    ),
    (
        pd.DataFrame({"a": [1], 0: [2]}),
        "0",
        "Sample column 0: expected a string column name, got int. Name the columns, e.g. "
        "sample.columns = sample.columns.astype(str).",
    ),
    (
        pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"]),
        "a",
        "Sample: expected unique column names, got duplicates: 'a'. Drop or rename the "
        "duplicated columns.",
    ),
]


@pytest.mark.parametrize(
    ("sample", "column", "message"),
    INFER_ERRORS,
    ids=["mixed", "lists", "bool-and-str", "timedelta", "timestamp-categories", "int-name", "dup"],
)
def test_infer_schema_errors(sample: pd.DataFrame, column: str, message: str) -> None:
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        infer_schema(sample)
    assert caught.value.column == column
    assert caught.value.kind == "invalid_sample"


def test_infer_schema_needs_a_dataframe() -> None:
    message = (
        "Sample: expected a pandas DataFrame, got ndarray. Build one with "
        "pd.DataFrame(data, columns=feature_names)."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        infer_schema(np.zeros((2, 2)))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# prepare: input shapes


ONE_ROW_SHAPES = {
    "record": lambda: dict(RECORD),
    "records": lambda: [dict(RECORD)],
    "dataframe": lambda: pd.DataFrame([RECORD]),
    "dataframe-reordered": lambda: pd.DataFrame([RECORD])[list(reversed(RECORD))],
    "columns-lists": lambda: {k: [v] for k, v in RECORD.items()},
    "columns-tuples": lambda: {k: (v,) for k, v in RECORD.items()},
    "columns-arrays": lambda: {k: np.array([v]) for k, v in RECORD.items()},
    "columns-series": lambda: {k: pd.Series([v]) for k, v in RECORD.items()},
    "rows": lambda: [list(RECORD.values())],
    "rows-tuples": lambda: [tuple(RECORD.values())],
    "array-2d-object": lambda: np.array([list(RECORD.values())], dtype=object),
}


@pytest.mark.parametrize("make", ONE_ROW_SHAPES.values(), ids=ONE_ROW_SHAPES.keys())
def test_every_input_shape_gives_the_same_frame(make: Any) -> None:
    pd.testing.assert_frame_equal(prepare(make(), SCHEMA), expected_frame())


def test_dataframe_in_storage_dtypes_comes_back_unchanged() -> None:
    frame = SAMPLE.iloc[[0, 1]]
    pd.testing.assert_frame_equal(prepare(frame, SCHEMA), frame)


def test_dataframe_keeps_its_index() -> None:
    frame = pd.DataFrame([RECORD, RECORD], index=[10, 7])
    assert prepare(frame, SCHEMA).index.tolist() == [10, 7]


def test_dataframe_in_other_dtypes_is_converted() -> None:
    frame = pd.DataFrame(
        {
            "tenure": np.array([12], dtype=np.int32),
            "charges": np.array([50], dtype=np.int64),
            "senior": np.array([0], dtype=np.int8),
            "plan": pd.Series(["pro"], dtype=object),
            "contract": pd.Categorical(["1y"]),
            "signup": pd.to_datetime(["2022-03-04T05:06:07"]).as_unit("ns"),
        }
    )
    pd.testing.assert_frame_equal(prepare(frame, SCHEMA), expected_frame())


def test_numeric_2d_array() -> None:
    features = [
        FeatureSpec(name="a", dtype="integer", storage="int64", nullable=False, min=0, max=9),
        FeatureSpec(name="b", dtype="float", storage="float64", nullable=False, min=0, max=9),
    ]
    got = prepare(np.array([[1.0, 2.5], [3.0, 4.0]]), features)
    expected = pd.DataFrame({"a": [1, 3], "b": [2.5, 4.0]})
    pd.testing.assert_frame_equal(got, expected)


def test_records_may_omit_a_nullable_value() -> None:
    records = [dict(RECORD), {k: v for k, v in RECORD.items() if k != "plan"}]
    got = prepare(records, SCHEMA)
    assert got["plan"].isna().tolist() == [False, True]


def test_empty_list_gives_an_empty_frame_of_the_schema_dtypes() -> None:
    got = prepare([], SCHEMA)
    assert len(got) == 0
    assert got.dtypes.to_dict() == SAMPLE.dtypes.to_dict()


SHAPE_ERRORS = [
    (
        np.zeros((2, 5)),
        "Input: expected 6 columns (one per feature, in schema order), got 5. Pass a "
        "DataFrame or records with column names to match columns by name.",
    ),
    (
        [[1, 2, 3]],
        "Input: expected 6 columns (one per feature, in schema order), got 3. Pass a "
        "DataFrame or records with column names to match columns by name.",
    ),
    (
        [list(RECORD.values()), [1, 2]],
        "Input: row 1: expected 6 values (one per feature, in schema order), got 2.",
    ),
    (
        [list(RECORD.values()), 5],
        "Input: row 1: expected a list of values like row 0, got int.",
    ),
    (
        [dict(RECORD), [1, 2]],
        "Input: row 1: expected a record (dict) like row 0, got list.",
    ),
    (
        np.zeros(6),
        "Input: expected a 2-D array (rows x features), got a 1-D array of shape (6,). "
        "Reshape one row with x.reshape(1, -1).",
    ),
    (
        [1, 2, 3, 4, 5, 6],
        "Input: expected a list of records (dicts) or of rows (lists), got a list of int. "
        "Wrap a single row in a list: [[...]].",
    ),
    (
        pd.Series(RECORD),
        "Input: expected a DataFrame, a list of records (dicts), a dict of columns, one "
        "record (a dict of scalars) or a 2-D array / list of rows in schema order, got "
        "Series.",
    ),
    (
        "tenure=12",
        "Input: expected a DataFrame, a list of records (dicts), a dict of columns, one "
        "record (a dict of scalars) or a 2-D array / list of rows in schema order, got str.",
    ),
    (
        {**RECORD, "tenure": [1, 2]},
        "Input: expected one record (every value a scalar) or a dict of columns (every "
        "value a list or array), got both: lists for 'tenure' and scalars for 'charges', "
        "'contract', 'plan', 'senior', 'signup'.",
    ),
    (
        {**{k: [v, v] for k, v in RECORD.items()}, "plan": ["pro"]},
        "Input: expected columns of one length, got lengths 'tenure': 2, 'charges': 2, "
        "'senior': 2, 'plan': 1, 'contract': 2 and 1 more. Give every column one value per "
        "row.",
    ),
    (
        {**{k: [v] for k, v in RECORD.items()}, "plan": np.array([["pro"]])},
        "Input: column 'plan': expected a 1-D list or array, got an array of shape (1, 1).",
    ),
    (
        pd.DataFrame([[*RECORD.values(), "pro"]], columns=[*RECORD, "plan"]),
        "Input: expected unique column names, got duplicates: 'plan'. Drop or rename the "
        "duplicated columns.",
    ),
]
SHAPE_IDS = [
    "array-width",
    "rows-width",
    "ragged-row",
    "row-not-a-list",
    "record-not-a-dict",
    "1-d-array",
    "list-of-scalars",
    "series",
    "string",
    "record-and-columns",
    "unequal-lengths",
    "2-d-column",
    "duplicate-columns",
]


@pytest.mark.parametrize(("X", "message"), SHAPE_ERRORS, ids=SHAPE_IDS)
def test_unsupported_input_shapes(X: object, message: str) -> None:
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        prepare(X, SCHEMA)
    assert caught.value.kind == "invalid_input"


# ---------------------------------------------------------------------------------------
# prepare: columns


def test_missing_columns_are_an_error() -> None:
    record = {k: v for k, v in RECORD.items() if k not in ("tenure", "plan")}
    message = (
        "Input is missing 2 of the model's 6 columns: 'plan', 'tenure'. Add every feature "
        "the model was fitted on, with null for unknown values."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        prepare(record, SCHEMA)
    assert caught.value.kind == "missing_columns"
    assert caught.value.value == ("plan", "tenure")


def test_missing_columns_error_names_the_extra_ones_too() -> None:
    record = {k: v for k, v in RECORD.items() if k != "tenure"}
    record["tenur"] = 12
    message = (
        "Input is missing 1 of the model's 6 columns: 'tenure'. The input also has columns "
        "the model was not fitted on: 'tenur'; is one misspelled? Add every feature the "
        "model was fitted on, with null for unknown values."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare(record, SCHEMA)


def test_extra_columns_are_dropped_with_one_warning() -> None:
    record = {"zip": "75001", **RECORD, "age": 40}
    message = (
        "Input has 2 column(s) the model was not fitted on: 'age', 'zip'. They were "
        "ignored; remove them, or check for a misspelled feature name."
    )
    with pytest.warns(SchemaWarning, match=f"^{re.escape(message)}$") as caught:
        got = prepare(record, SCHEMA)
    assert len(caught) == 1
    warning = caught[0].message
    assert isinstance(warning, SchemaWarning)
    assert (warning.kind, warning.column, warning.values) == ("extra_columns", None, ("age", "zip"))
    pd.testing.assert_frame_equal(got, expected_frame())


def test_extra_columns_with_strict_are_an_error() -> None:
    message = (
        "Input has 1 column(s) the model was not fitted on: 'age'. Remove them, or pass "
        "strict=False to ignore them with a warning."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        prepare({**RECORD, "age": 40}, SCHEMA, strict=True)
    assert caught.value.kind == "extra_columns"


# ---------------------------------------------------------------------------------------
# prepare: values that cannot be converted

BAD_VALUES = [
    (
        "tenure",
        "abc",
        "Column 'tenure': row 2: expected integer, got 'abc' (str). Send a whole number "
        "(a JSON number, not a string).",
    ),
    (
        "tenure",
        "12",
        "Column 'tenure': row 2: expected integer, got '12' (str). Send a whole number "
        "(a JSON number, not a string).",
    ),
    (
        "tenure",
        2.5,
        "Column 'tenure': row 2: expected integer, got 2.5 (float). Send a whole number "
        "(a JSON number, not a string).",
    ),
    (
        "tenure",
        float("inf"),
        "Column 'tenure': row 2: expected integer, got inf (float). Send a whole number "
        "(a JSON number, not a string).",
    ),
    (
        "tenure",
        True,
        "Column 'tenure': row 2: expected integer, got True (bool). Send a whole number "
        "(a JSON number, not a string).",
    ),
    (
        "tenure",
        2**70,
        "Column 'tenure': row 2: expected integer between -9223372036854775808 and "
        "9223372036854775807 (int64), got 1180591620717411303424 (int). The value does not "
        "fit the column's training dtype.",
    ),
    (
        "charges",
        "12.5",
        "Column 'charges': row 2: expected float, got '12.5' (str). Send a number (a JSON "
        "number, not a string).",
    ),
    (
        "charges",
        False,
        "Column 'charges': row 2: expected float, got False (bool). Send a number (a JSON "
        "number, not a string).",
    ),
    (
        "charges",
        10**400,
        f"Column 'charges': row 2: expected float, got 1{'0' * 56}... (int). Send a number "
        "(a JSON number, not a string).",
    ),
    (
        "senior",
        "true",
        "Column 'senior': row 2: expected boolean, got 'true' (str). Send true or false (or "
        "1 or 0); strings are not converted.",
    ),
    (
        "senior",
        2,
        "Column 'senior': row 2: expected boolean, got 2 (int). Send true or false (or 1 or "
        "0); strings are not converted.",
    ),
    (
        "plan",
        5,
        "Column 'plan': row 2: expected string, got 5 (int). Send text as a string; numbers "
        "are not converted.",
    ),
    (
        "plan",
        ["pro"],
        "Column 'plan': row 2: expected string, got ['pro'] (list). Send text as a string; "
        "numbers are not converted.",
    ),
    (
        "contract",
        1,
        "Column 'contract': row 2: expected category value (str), got 1 (int). Send one of "
        "the training categories.",
    ),
    (
        "signup",
        "yesterday",
        "Column 'signup': row 2: expected datetime, got 'yesterday' (str). Send a datetime "
        "or an ISO 8601 string such as '2024-01-31T12:00:00'.",
    ),
    (
        "signup",
        "2024-13-01",
        "Column 'signup': row 2: expected datetime, got '2024-13-01' (str). Send a datetime "
        "or an ISO 8601 string such as '2024-01-31T12:00:00'.",
    ),
    (
        "signup",
        "01/02/2024",
        "Column 'signup': row 2: expected datetime, got '01/02/2024' (str). Send a datetime "
        "or an ISO 8601 string such as '2024-01-31T12:00:00'.",
    ),
    (
        "signup",
        1700000000,
        "Column 'signup': row 2: expected datetime, got 1700000000 (int). Send a datetime "
        "or an ISO 8601 string such as '2024-01-31T12:00:00'.",
    ),
    (
        "signup",
        "2024-01-31T12:00:00+01:00",
        "Column 'signup': row 2: expected datetime without a UTC offset (training had "
        "none), got '2024-01-31T12:00:00+01:00' (str). Send local times as in training, "
        "e.g. '2024-01-31T12:00:00'.",
    ),
    (
        "signup",
        "3000-01-01",
        None,  # accepted: datetime64[us] holds it
    ),
]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [case for case in BAD_VALUES if case[2] is not None],
    ids=lambda v: repr(v)[:30] if not isinstance(v, str) or len(v) < 30 else None,
)
def test_values_that_cannot_be_converted(column: str, value: object, message: str) -> None:
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        prepare(records_with(column, value), SCHEMA)
    error = caught.value
    assert (error.kind, error.column, error.row) == ("invalid_value", column, 2)
    assert error.value == value


def test_row_is_the_position_in_a_dataframe_not_its_label() -> None:
    frame = pd.DataFrame(records_with("tenure", "abc", row=1), index=[30, 20, 10])
    with pytest.raises(SchemaError, match=r"^Column 'tenure': row 1: ") as caught:
        prepare(frame, SCHEMA)
    assert caught.value.row == 1


def test_integer_outside_the_storage_dtype() -> None:
    features = spec(dtype="integer", storage="uint8", nullable=False, min=0, max=200)
    message = (
        "Column 'x': row 1: expected integer between 0 and 255 (uint8), got -1 (int). "
        "The value does not fit the column's training dtype."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare({"x": [3, -1]}, features)
    with pytest.raises(SchemaError, match=r"^Column 'x': row 1: expected integer between"):
        prepare({"x": np.array([3, 300])}, features)


TZ_SCHEMA = spec("at", dtype="datetime", storage="datetime64[us, Europe/Paris]", nullable=True)


def test_naive_datetime_into_a_timezone_aware_column() -> None:
    message = (
        "Column 'at': row 0: expected datetime with a UTC offset (training: Europe/Paris), "
        "got '2024-01-31T12:00:00' (str). Include the offset, e.g. "
        "'2024-01-31T12:00:00+00:00'."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare({"at": "2024-01-31T12:00:00"}, TZ_SCHEMA)


def test_datetime_out_of_the_storage_range() -> None:
    features = spec(dtype="datetime", storage="datetime64[ns]", nullable=False)
    message = (
        "Column 'x': row 1: expected a datetime that datetime64[ns] can hold, got "
        "'3000-01-01' (str). The date is too far from 1970 for the column's training dtype."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare({"x": ["2024-01-01", "3000-01-01"]}, features)


# ---------------------------------------------------------------------------------------
# prepare: values that are converted

ACCEPTED = [
    ("tenure", 12.0, 12),
    ("tenure", np.int32(12), 12),
    ("tenure", np.float32(12.0), 12),
    ("charges", 50, 50.0),
    ("charges", np.float32(50.0), 50.0),
    ("charges", np.int8(50), 50.0),
    ("senior", 0, False),
    ("senior", 0.0, False),
    ("senior", np.bool_(False), False),
    ("plan", np.str_("pro"), "pro"),
    ("signup", datetime(2022, 3, 4, 5, 6, 7), pd.Timestamp("2022-03-04T05:06:07")),
    ("signup", pd.Timestamp("2022-03-04T05:06:07"), pd.Timestamp("2022-03-04T05:06:07")),
    ("signup", np.datetime64("2022-03-04T05:06:07"), pd.Timestamp("2022-03-04T05:06:07")),
    ("signup", "2022-03-04 05:06:07", pd.Timestamp("2022-03-04T05:06:07")),
    ("signup", "2022-03-04T05:06:07.000", pd.Timestamp("2022-03-04T05:06:07")),
]


@pytest.mark.parametrize(
    ("column", "value", "expected"), ACCEPTED, ids=lambda v: f"{type(v).__name__}:{v}"
)
def test_values_that_are_converted(column: str, value: object, expected: object) -> None:
    got = prepare({**RECORD, column: value}, SCHEMA)
    pd.testing.assert_frame_equal(got, expected_frame())
    assert got[column].iloc[0] == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-31T12:00:00Z",
        "2024-01-31T13:00:00+01:00",
        "2024-01-31T07:00:00-05:00",
        pd.Timestamp("2024-01-31T12:00:00", tz="UTC"),
        datetime(2024, 1, 31, 12, tzinfo=timezone.utc),
    ],
    ids=["Z", "plus-one", "minus-five", "Timestamp-UTC", "datetime-utc"],
)
def test_aware_datetimes_are_converted_to_the_training_zone(value: object) -> None:
    got = prepare({"at": value}, TZ_SCHEMA)
    assert str(got["at"].dtype) == "datetime64[us, Europe/Paris]"
    assert got["at"].iloc[0] == pd.Timestamp("2024-01-31T13:00:00", tz="Europe/Paris")


@pytest.mark.parametrize(
    "missing", [None, np.nan, pd.NA, pd.NaT, float("nan")], ids=["None", "nan", "NA", "NaT", "f"]
)
def test_missing_values_are_accepted_in_nullable_columns(missing: object) -> None:
    got = prepare({**RECORD, "charges": missing, "plan": missing}, SCHEMA)
    assert got["charges"].isna().all()
    assert got["plan"].isna().all()
    assert str(got["plan"].dtype) == "str"


def test_integer_column_with_missing_values_becomes_float64() -> None:
    message = (
        "Column 'tenure': expected no missing values (training had none), got 1 in row(s) "
        "1. They were kept; the pipeline may not handle them (pass strict=True to reject "
        "them)."
    )
    with pytest.warns(SchemaWarning, match=f"^{re.escape(message)}$"):
        got = prepare({**{k: [v, v] for k, v in RECORD.items()}, "tenure": [3, None]}, SCHEMA)
    assert got["tenure"].dtype == np.float64
    assert got["tenure"].tolist()[0] == 3.0
    assert np.isnan(got["tenure"].tolist()[1])


def test_boolean_column_with_missing_values_becomes_object() -> None:
    with pytest.warns(SchemaWarning, match="^Column 'senior': expected no missing"):
        got = prepare({**{k: [v, v] for k, v in RECORD.items()}, "senior": [1, None]}, SCHEMA)
    assert got["senior"].dtype == object
    assert got["senior"].iloc[0] is True
    assert np.isnan(got["senior"].iloc[1])


def test_nullable_extension_storage_keeps_pd_na() -> None:
    features = [
        FeatureSpec(name="i", dtype="integer", storage="Int64", nullable=True, min=0, max=9),
        FeatureSpec(name="b", dtype="boolean", storage="boolean", nullable=True),
        FeatureSpec(name="s", dtype="string", storage="string", nullable=True, categories=["a"]),
    ]
    got = prepare([{"i": 3, "b": True, "s": "a"}, {"i": None, "b": None, "s": None}], features)
    expected = pd.DataFrame(
        {
            "i": pd.array([3, None], dtype="Int64"),
            "b": pd.array([True, None], dtype="boolean"),
            "s": pd.array(["a", None], dtype="string"),
        }
    )
    pd.testing.assert_frame_equal(got, expected)


# ---------------------------------------------------------------------------------------
# prepare: warnings, and errors with strict=True

UNUSUAL = [
    (
        [("contract", "3y"), ("contract", "5y"), ("contract", "3y")],
        "unseen_categories",
        "contract",
        ("3y", "5y"),
        None,
        "Column 'contract': expected values seen in training, got 2 unseen value(s): '3y', '5y'.",
    ),
    (
        [("plan", "gold")],
        "unseen_categories",
        "plan",
        ("gold",),
        None,
        "Column 'plan': expected values seen in training, got 1 unseen value(s): 'gold'.",
    ),
    (
        [("tenure", 0), ("tenure", 120)],
        "out_of_range",
        "tenure",
        (0, 120),
        0,
        "Column 'tenure': expected values in the training range [1, 72], got 2 value(s) "
        "outside it: 0, 120.",
    ),
    (
        [("charges", 10.25), ("charges", float("inf"))],
        "out_of_range",
        "charges",
        (10.25, float("inf")),
        0,
        "Column 'charges': expected values in the training range [29.5, 110], got 2 "
        "value(s) outside it: 10.25, inf.",
    ),
    (
        [("senior", None), ("senior", None), ("senior", None)],
        "unexpected_missing",
        "senior",
        (0, 1, 2),
        0,
        "Column 'senior': expected no missing values (training had none), got 3 in row(s) 0, 1, 2.",
    ),
]
UNUSUAL_IDS = ["unseen-category", "unseen-string", "int-range", "float-range", "missing"]
WARN_ADVICE = {
    "unseen_categories": " They were kept; the model's output for them is unreliable "
    "(pass strict=True to reject them).",
    "out_of_range": " They were kept; the model is extrapolating (pass strict=True to "
    "reject them).",
    "unexpected_missing": " They were kept; the pipeline may not handle them (pass "
    "strict=True to reject them).",
}
STRICT_ADVICE = " Fix the input, or pass strict=False to accept it with a warning."


def unusual_records(changes: list[tuple[str, object]]) -> list[dict[str, Any]]:
    records = [dict(RECORD) for _ in changes]
    for record, (column, value) in zip(records, changes, strict=True):
        record[column] = value
    return records


@pytest.mark.parametrize(
    ("changes", "kind", "column", "values", "row", "message"), UNUSUAL, ids=UNUSUAL_IDS
)
def test_unusual_values_warn_once_per_column_and_kind(
    changes: list[tuple[str, object]],
    kind: str,
    column: str,
    values: tuple[object, ...],
    row: int | None,
    message: str,
) -> None:
    full = message + WARN_ADVICE[kind]
    with pytest.warns(SchemaWarning, match=f"^{re.escape(full)}$") as caught:
        got = prepare(unusual_records(changes), SCHEMA)
    assert len(caught) == 1
    warning = caught[0].message
    assert isinstance(warning, SchemaWarning)
    assert (warning.kind, warning.column, warning.values) == (kind, column, values)
    assert len(got) == len(changes)


@pytest.mark.parametrize(
    ("changes", "kind", "column", "values", "row", "message"), UNUSUAL, ids=UNUSUAL_IDS
)
def test_unusual_values_with_strict_are_an_error(
    changes: list[tuple[str, object]],
    kind: str,
    column: str,
    values: tuple[object, ...],
    row: int | None,
    message: str,
) -> None:
    full = message + STRICT_ADVICE
    with pytest.raises(SchemaError, match=f"^{re.escape(full)}$") as caught:
        prepare(unusual_records(changes), SCHEMA, strict=True)
    error = caught.value
    assert (error.kind, error.column, error.value, error.row) == (kind, column, values, row)


def test_unseen_categories_are_kept_not_turned_into_nan() -> None:
    with pytest.warns(SchemaWarning, match="^Column 'contract': expected values seen"):
        got = prepare({**RECORD, "contract": "3y"}, SCHEMA)
    assert got["contract"].tolist() == ["3y"]
    assert got["contract"].cat.categories.tolist() == ["1y", "2y", "m2m", "3y"]


def test_unusual_values_in_a_dataframe_in_storage_dtypes() -> None:
    frame = SAMPLE.assign(tenure=[1, 99, 72], plan=["basic", "gold", None])
    with pytest.warns(SchemaWarning) as caught:
        prepare(frame, SCHEMA)
    found = [(w.message.kind, w.message.values) for w in caught]  # type: ignore[union-attr]
    assert found == [("out_of_range", (99,)), ("unseen_categories", ("gold",))]


def test_several_columns_and_kinds_give_one_warning_each() -> None:
    records = [{**RECORD, "tenure": 0, "plan": "gold", "senior": None, "x": 1}]
    with pytest.warns(SchemaWarning) as caught:
        prepare(records, SCHEMA)
    found = [(w.message.kind, w.message.column) for w in caught]  # type: ignore[union-attr]
    assert found == [
        ("extra_columns", None),
        ("out_of_range", "tenure"),
        ("unexpected_missing", "senior"),
        ("unseen_categories", "plan"),
    ]


def test_no_warning_when_conversion_fails() -> None:
    # Warnings are errors in this suite: an unseen-category warning would surface first.
    message = (
        "Column 'charges': row 0: expected float, got 'x' (str). Send a number (a JSON "
        "number, not a string)."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare({**RECORD, "plan": "gold", "charges": "x", "extra": 1}, SCHEMA)


def test_value_lists_in_messages_are_capped() -> None:
    records = [{**RECORD, "plan": f"p{i}"} for i in range(8)]
    message = (
        "Column 'plan': expected values seen in training, got 8 unseen value(s): 'p0', "
        "'p1', 'p2', 'p3', 'p4' and 3 more."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message + STRICT_ADVICE)}$"):
        prepare(records, SCHEMA, strict=True)


# ---------------------------------------------------------------------------------------
# to_json_columns and the round trip

ROUND_TRIP = {
    "int64-extremes": pd.Series([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]),
    "uint64-max": pd.Series(np.array([0, np.iinfo(np.uint64).max], dtype=np.uint64)),
    "int32": pd.Series(np.array([-5, 7], dtype=np.int32)),
    "Int64-with-NA": pd.Series([2**53 + 1, None], dtype="Int64"),
    "float-specials": pd.Series([np.nan, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 0.1]),
    "float32": pd.Series(np.array([0.1, np.nan, -0.0], dtype=np.float32)),
    "Float64-with-NA": pd.Series([0.1, None], dtype="Float64"),
    "bool": pd.Series([True, False]),
    "boolean-with-NA": pd.Series([True, None], dtype="boolean"),
    "object-bool-with-NaN": pd.Series([True, np.nan, False], dtype=object),
    "str-with-None": pd.Series(["a", None, "", "é ü 中"]),
    "object-str-with-NaN": pd.Series(["a", np.nan], dtype=object),
    "string-with-NA": pd.Series(["a", None], dtype="string"),
    "category-str": pd.Series(pd.Categorical(["b", None, "a"])),
    "category-int": pd.Series(pd.Categorical([3, 1, 3])),
    "datetime-us": pd.Series(pd.to_datetime(["2024-02-29T23:59:59.999999", None])),
    "datetime-ns": pd.Series(pd.to_datetime(["2024-01-01T00:00:00.123456789", None])),
    "datetime-s": pd.Series(pd.to_datetime(["1900-01-01", "2262-04-12"]).as_unit("s")),
    "datetime-tz-dst": pd.Series(
        pd.to_datetime(["2024-03-31T00:30:00Z", "2024-03-31T01:30:00Z", None], utc=True)
    ).dt.tz_convert("Europe/Paris"),
    "datetime-utc": pd.Series(pd.to_datetime(["2024-01-01T00:00:00Z"], utc=True)),
}


def assert_identical(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for name in expected.columns:
        column = expected[name]
        if column.dtype.kind == "f":  # assert_frame_equal takes -0.0 for 0.0
            want = column.to_numpy()
            have = got[name].to_numpy()
            assert want.tobytes() == have.tobytes(), name


@pytest.mark.parametrize("column", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_round_trip_through_json(column: pd.Series[Any]) -> None:
    frame = pd.DataFrame({"x": column})
    features = infer_schema(frame)
    columns = json.loads(json.dumps(to_json_columns(frame, features), allow_nan=False))
    assert_identical(prepare(columns, features), frame)


def test_round_trip_of_the_whole_sample() -> None:
    columns = to_json_columns(SAMPLE, SCHEMA)
    assert columns == {
        "tenure": [1, 24, 72],
        "charges": [29.5, None, 110.0],
        "senior": [True, False, True],
        "plan": ["basic", "pro", None],
        "contract": ["m2m", "1y", "2y"],
        "signup": ["2020-01-01T00:00:00", "2021-06-15T10:30:00", "2023-12-31T00:00:00"],
    }
    assert_identical(prepare(columns, SCHEMA), SAMPLE)


def test_to_json_columns_gives_plain_python_values() -> None:
    frame = pd.DataFrame({name: column.iloc[:2] for name, column in ROUND_TRIP.items()})
    columns = to_json_columns(frame, infer_schema(frame))
    types = {type(v) for values in columns.values() for v in values}
    assert types <= {type(None), int, float, bool, str}


def test_to_json_columns_of_an_integer_column_with_missing_values() -> None:
    features = spec(dtype="integer", storage="int64", nullable=False, min=0, max=9)
    frame = pd.DataFrame({"x": [3.0, np.nan]})
    assert to_json_columns(frame, features) == {"x": [3, None]}


def test_to_json_columns_refuses_infinity() -> None:
    frame = pd.DataFrame({"x": [1.0, -np.inf]})
    message = (
        "Column 'x': row 1: expected a finite number or a missing value, got -inf (float). "
        "JSON cannot hold infinity; replace it, e.g. with NaN, before saving."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        to_json_columns(frame, infer_schema(frame))


def test_to_json_columns_needs_every_feature() -> None:
    message = (
        "Input is missing 1 of the model's 6 columns: 'tenure'. Add every feature the model "
        "was fitted on, with null for unknown values."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        to_json_columns(SAMPLE.drop(columns="tenure"), SCHEMA)


# ---------------------------------------------------------------------------------------
# more input forms


def test_timezone_aware_dataframe_column_is_converted_to_the_training_zone() -> None:
    stamps = pd.to_datetime(["2024-01-31T12:00:00Z", None], utc=True)
    frame = pd.DataFrame({"at": stamps.tz_convert("Asia/Tokyo").as_unit("ns")})
    got = prepare(frame, TZ_SCHEMA)
    expected = pd.DataFrame({"at": stamps.tz_convert("Europe/Paris").as_unit("us")})
    pd.testing.assert_frame_equal(got, expected)


def test_object_storage_survives_a_duplicated_index() -> None:
    sample = pd.DataFrame({"o": pd.Series(["a", np.nan], dtype=object), "b": [True, None]})
    frame = pd.DataFrame({"o": ["a", "a"], "b": [True, False]}, index=[1, 1])
    got = prepare(frame, infer_schema(sample))
    assert got.dtypes.tolist() == [np.dtype(object), np.dtype(object)]
    assert got.index.tolist() == [1, 1]
    assert got["b"].tolist() == [True, False]


def test_numeric_categories() -> None:
    features = spec("c", dtype="category", storage="category", nullable=False, categories=[1, 2])
    got = prepare({"c": [2.0, np.int64(1)]}, features)
    assert got["c"].tolist() == [2, 1]
    assert got["c"].cat.categories.tolist() == [1, 2]
    message = (
        "Column 'c': row 0: expected category value (number), got '1' (str). Send one of the "
        "training categories."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        prepare({"c": "1"}, features)


def test_record_keys_that_are_not_strings_are_extra_columns() -> None:
    with pytest.warns(SchemaWarning, match=r"^Input has 1 column\(s\) .*: '5'\. "):
        got = prepare({**RECORD, 5: "x"}, SCHEMA)
    pd.testing.assert_frame_equal(got, expected_frame())


def test_strict_input_without_problems() -> None:
    pd.testing.assert_frame_equal(prepare(dict(RECORD), SCHEMA, strict=True), expected_frame())


def test_schema_with_a_storage_that_is_no_dtype() -> None:
    message = (
        "Feature 'x': storage expected a pandas dtype, got 'int65' (data type 'int65' not "
        "understood). The manifest is damaged or was written by an incompatible pandas; "
        "save the model again."
    )
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$") as caught:
        prepare({"x": 1}, spec(dtype="integer", storage="int65", nullable=False))
    assert caught.value.kind == "invalid_schema"


def test_the_same_features_list_is_planned_once() -> None:
    features = list(SCHEMA)
    prepare(dict(RECORD), features)
    features[0] = FeatureSpec(name="tenure", dtype="float", storage="float64", nullable=False)
    assert prepare(dict(RECORD), features)["tenure"].dtype == np.float64
