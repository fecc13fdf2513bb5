"""The loaded Model: every input shape, validation on predict, labels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelkeep
from modelkeep import SchemaError, SchemaWarning


@pytest.fixture
def model(saved: Path) -> modelkeep.Model:
    return modelkeep.load(saved)


def _rows(frame: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    # complete rows, so every input shape can carry them without missing values
    return frame.dropna().head(n).reset_index(drop=True)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def test_every_input_shape_gives_the_same_predictions(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    rows = _rows(frame)
    expected = model.predict(rows).tolist()
    records = _records(rows)
    shapes = {
        "records": records,
        "columns": {k: [r[k] for r in records] for k in rows.columns},
        "reordered frame": rows[rows.columns[::-1]],
        "array": rows.to_numpy(dtype=object),
    }
    for name, X in shapes.items():
        assert model.predict(X).tolist() == expected, name
    assert [model.predict(r).tolist()[0] for r in records] == expected
    assert set(expected) <= {"Stay", "Leave"}


def test_predict_proba_columns_are_business_labels(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    proba = model.predict_proba(frame.head(4))
    assert list(proba.columns) == ["Stay", "Leave"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.to_numpy(), model.estimator.predict_proba(frame.head(4)))


def test_missing_column_is_an_error(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    with pytest.raises(
        SchemaError,
        match=re.escape("Input is missing 1 of the model's 6 columns: 'plan'. Add every feature"),
    ) as info:
        model.predict(frame.drop(columns=["plan"]))
    assert info.value.kind == "missing_columns"


def test_extra_columns_dropped_with_a_warning_or_refused(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    wider = frame.head(3).assign(customer_id=["a", "b", "c"])
    message = "Input has 1 column(s) the model was not fitted on: 'customer_id'."
    with pytest.warns(SchemaWarning, match=re.escape(message)) as record:
        got = model.predict(wider)
    assert len(record) == 1
    assert got.tolist() == model.predict(frame.head(3)).tolist()
    with pytest.raises(SchemaError, match=re.escape(message)):
        model.predict(wider, strict=True)


def test_unconvertible_value_names_column_row_and_value(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    records = _records(_rows(frame, 3))
    records[2]["age"] = "forty"
    with pytest.raises(
        SchemaError,
        match=re.escape("Column 'age': row 2: expected integer, got 'forty' (str)."),
    ) as info:
        model.predict(records)
    assert (info.value.column, info.value.row, info.value.value) == ("age", 2, "forty")


@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [("plan", "platinum", "unseen_categories"), ("age", 130, "out_of_range")],
    ids=["unseen-category", "out-of-range"],
)
def test_unusual_values_warn_and_strict_refuses(
    model: modelkeep.Model, data: Any, column: str, value: Any, kind: str
) -> None:
    frame, _ = data
    record = _records(_rows(frame, 1))[0]
    record[column] = value
    with pytest.warns(SchemaWarning) as record_warnings:
        model.predict(record)
    warning = record_warnings[0].message
    assert isinstance(warning, SchemaWarning)
    assert (warning.kind, warning.column, warning.values) == (kind, column, (value,))
    with pytest.raises(SchemaError) as info:
        model.predict(record, strict=True)
    assert info.value.kind == kind


def test_missing_value_in_a_column_that_had_none(model: modelkeep.Model, data: Any) -> None:
    frame, _ = data
    record = _records(_rows(frame, 1))[0]
    record["age"] = None
    with pytest.warns(SchemaWarning) as warned:
        model.predict(record)
    assert warned[0].message.kind == "unexpected_missing"  # type: ignore[union-attr]


def test_repr_and_schema(model: modelkeep.Model) -> None:
    assert repr(model) == "<Model 'churn' version 1 (binary, 6 features, skops)>"
    assert [f.name for f in model.schema] == [
        "age",
        "income",
        "visits",
        "plan",
        "region",
        "autopay",
    ]
