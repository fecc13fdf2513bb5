"""The input shapes both validators share (modelkeep._inputs), pandas recognised by duck type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelkeep._inputs import is_pandas_column, mapping_columns


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
