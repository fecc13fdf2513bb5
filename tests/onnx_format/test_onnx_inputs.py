"""The numpy-only input path of ONNX models: same rules and messages as schema.prepare."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conftest import make_frame
from modelkeep import SchemaError, SchemaWarning
from modelkeep._schema import infer_schema, prepare
from modelkeep.onnx.inputs import MISSING_STRING, input_kind, plan_inputs, to_feeds

FRAME, _ = make_frame(100)
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


def test_each_column_gets_the_element_type_of_its_dtype() -> None:
    assert {spec.name: input_kind(spec) for spec in FEATURES} == {
        "age": "int64",
        "income": "double",
        "visits": "double",
        "plan": "string",
        "region": "string",  # a pandas category of strings
        "autopay": "bool",
    }
    nullable = infer_schema(
        pd.DataFrame(
            {
                "n": pd.array([1, None, 3], dtype="Int64"),
                "f": [1.0, None, 3.0],
                "b": [True, None, False],
            }
        )
    )
    assert [input_kind(spec) for spec in nullable] == ["double", "double", "double"]


def test_a_record_becomes_one_row_arrays() -> None:
    feeds, n = to_feeds(RECORD, PLANS)
    assert n == 1
    assert {name: (a.shape, a.dtype.kind) for name, a in feeds.items()} == {
        "age": ((1, 1), "i"),
        "income": ((1, 1), "f"),
        "visits": ((1, 1), "f"),
        "plan": ((1, 1), "O"),
        "region": ((1, 1), "O"),
        "autopay": ((1, 1), "b"),
    }


def test_a_clean_record_takes_a_short_path_to_the_same_arrays() -> None:
    short, _ = to_feeds(RECORD, PLANS)
    general, _ = to_feeds([RECORD], PLANS)  # a list of records takes the general path
    assert list(short) == list(general)
    for name, array in short.items():
        assert array.dtype == general[name].dtype
        np.testing.assert_array_equal(array, general[name])
    # An unusual value leaves the short path and warns as the general path does.
    with pytest.warns(SchemaWarning, match="unseen value"):
        to_feeds({**RECORD, "plan": "gold"}, PLANS)


def test_a_frame_is_read_column_by_column() -> None:
    feeds, n = to_feeds(FRAME, PLANS)
    assert n == len(FRAME)
    np.testing.assert_array_equal(feeds["age"].ravel(), FRAME["age"].to_numpy())
    np.testing.assert_array_equal(feeds["income"].ravel(), FRAME["income"].to_numpy())
    assert feeds["region"].ravel().tolist() == FRAME["region"].astype(str).tolist()


def test_a_missing_string_is_fed_as_the_empty_string() -> None:
    frame = FRAME.head(3).assign(plan=["basic", None, np.nan]).astype({"plan": object})
    with pytest.warns(SchemaWarning, match="expected no missing values"):
        feeds, _ = to_feeds(frame, PLANS)
    assert feeds["plan"].ravel().tolist() == ["basic", MISSING_STRING, MISSING_STRING]


def _prepare_error(X: Any, strict: bool = False) -> str:
    with pytest.raises(SchemaError) as caught:
        prepare(X, FEATURES, strict=strict)
    return str(caught.value)


@pytest.mark.parametrize(
    ("X", "strict"),
    [
        ({k: v for k, v in RECORD.items() if k != "age"}, False),
        ({**RECORD, "income": "50000"}, False),
        ({**RECORD, "age": 30.5}, False),
        ({**RECORD, "autopay": "yes"}, False),
        ({**RECORD, "plan": 3}, False),
        ({**RECORD, "plan": "gold"}, True),
        ({**RECORD, "extra": 1}, True),
        ({**RECORD, "income": 1e9}, True),
        ([RECORD, 3], False),
        ({"age": [1, 2], "income": 3.0}, False),
        (np.zeros((2, 3)), False),
        ("not a table", False),
        (pd.DataFrame([{**RECORD, "plan": 3}]), False),
        (pd.DataFrame([RECORD, {**RECORD, "plan": "gold"}]), True),
    ],
    ids=[
        "missing_column",
        "string_for_float",
        "fraction_for_integer",
        "string_for_boolean",
        "number_for_string",
        "unseen_category_strict",
        "extra_column_strict",
        "out_of_range_strict",
        "not_a_record",
        "mixed_columns",
        "wrong_width",
        "wrong_type",
        "frame_number_for_string",
        "frame_unseen_category_strict",
    ],
)
def test_errors_read_as_the_schema_module_writes_them(X: Any, strict: bool) -> None:
    expected = _prepare_error(X, strict)
    with pytest.raises(SchemaError, match=re.escape(expected)):
        to_feeds(X, PLANS, strict=strict)


def test_warnings_read_as_the_schema_module_writes_them() -> None:
    record = {**RECORD, "plan": "gold", "income": 1e9, "extra": 1}
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        prepare(record, FEATURES)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        to_feeds(record, PLANS)
    assert [str(w.message) for w in got] == [str(w.message) for w in expected]
    assert len(got) == 3
