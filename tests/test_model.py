"""The loaded Model: every input shape, validation on predict, labels."""

from __future__ import annotations

import json
import re
import warnings
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


# --------------------------------------------------------------------------------------
# hardening (issue 10): everyday inputs give modelkeep errors or correct results


def _plain_frame(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    """Complete numeric data, as a model without an imputer is fitted on."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"tenure": rng.integers(1, 72, n), "charges": rng.normal(70.0, 20.0, n).round(2)}
    )
    return frame, (frame["tenure"] < 20).to_numpy().astype(int)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, modelkeep.Model]:
    """LogisticRegression, a tree and HistGradientBoosting on complete data, no labels=."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    frame, target = _plain_frame()
    estimators = {
        "logistic": LogisticRegression(),
        "tree": DecisionTreeClassifier(max_depth=3, random_state=0),
        "hist": HistGradientBoostingClassifier(max_iter=10),
    }
    root = tmp_path_factory.mktemp("plain")
    models = {}
    for name, estimator in estimators.items():
        modelkeep.save(estimator.fit(frame, target), root / name, sample=frame, name=name)
        models[name] = modelkeep.load(root / name)
    return models


@pytest.mark.parametrize(
    "X",
    [
        pd.DataFrame({"tenure": pd.Series([], dtype="int64"), "charges": []}),
        [],
        {"tenure": [], "charges": []},
    ],
    ids=["empty-frame", "empty-list", "empty-columns"],
)
def test_no_rows_give_an_empty_result_of_the_right_shape(
    plain: dict[str, modelkeep.Model], X: Any
) -> None:
    model = plain["logistic"]
    predictions = model.predict(X)
    assert predictions.shape == (0,)
    assert predictions.dtype == np.asarray(model.estimator.classes_).dtype
    proba = model.predict_proba(X)
    assert proba.shape == (0, 2)
    assert list(proba.columns) == [0, 1]


@pytest.mark.parametrize(
    ("estimator", "value", "message"),
    [
        (
            "logistic",
            float("inf"),
            "Column 'charges': row 1: expected a finite number (LogisticRegression cannot "
            "take infinity), got inf (float). Send a finite number, or null if the value is "
            "unknown.",
        ),
        (
            "tree",
            1e308,
            "Column 'charges': row 1: expected a number within float32 range, ±3.403e+38 "
            "(DecisionTreeClassifier uses float32), got 1e+308 (float). Send a value of the "
            "size seen in training [{low:g}, {high:g}].",
        ),
        (
            "logistic",
            float("nan"),
            "Column 'charges': row 1: expected a value (training had none, and "
            "LogisticRegression cannot take missing values), got nan (float). Fill in the "
            "value, or save a pipeline that imputes it.",
        ),
    ],
    ids=["inf-logistic", "1e308-tree-float32", "nan-without-imputer"],
)
def test_a_value_the_model_refuses_is_a_schema_error_naming_column_and_row(
    plain: dict[str, modelkeep.Model], estimator: str, value: float, message: str
) -> None:
    model = plain[estimator]
    spec = next(f for f in model.schema if f.name == "charges")
    rows = [{"tenure": 5, "charges": 50.0}, {"tenure": 6, "charges": value}]
    for method in (model.predict, model.predict_proba):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SchemaWarning)  # out of range / unexpected missing
            # numpy's own "overflow encountered in cast" as the tree casts to float32
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(
                SchemaError, match=re.escape(message.format(low=spec.min, high=spec.max))
            ) as info:
                method(rows)
        assert (info.value.column, info.value.row, info.value.kind) == (
            "charges",
            1,
            "invalid_value",
        )
        assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("value", [float("inf"), 1e308, float("nan")], ids=["inf", "1e308", "nan"])
def test_a_model_that_takes_the_value_gives_its_own_answer(
    plain: dict[str, modelkeep.Model], value: float
) -> None:
    model = plain["hist"]
    rows = pd.DataFrame({"tenure": [5, 60], "charges": [value, value]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        got = model.predict(rows)
    assert got.tolist() == model.estimator.predict(rows).tolist()


def test_any_other_scikit_learn_value_error_is_converted(
    plain: dict[str, modelkeep.Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = plain["logistic"]

    def refuse(X: Any) -> Any:
        raise ValueError("X has a problem.")

    monkeypatch.setattr(model.estimator, "predict", refuse)
    message = (
        "Input: the model (LogisticRegression) refused it: X has a problem. Check the input "
        "against the schema (modelkeep inspect), or the pipeline's own preprocessing."
    )
    with pytest.raises(SchemaError, match=re.escape(message)) as info:
        model.predict({"tenure": 5, "charges": 50.0})
    assert info.value.kind == "rejected_by_model"


def test_predict_proba_keeps_the_index_of_a_shuffled_filtered_frame(
    model: modelkeep.Model, data: Any
) -> None:
    frame, _ = data
    subset = frame[frame["age"] > 40].sample(frac=1.0, random_state=3)
    proba = model.predict_proba(subset)
    assert proba.index.equals(subset.index)
    out = frame.copy()
    out["p"] = proba["Leave"]  # aligns on the index, as pandas does
    expected = model.estimator.predict_proba(frame)[:, 1]
    chosen = out["p"].notna().to_numpy()
    np.testing.assert_array_equal(out["p"].to_numpy()[chosen], expected[chosen])
    assert chosen.sum() == len(subset)


def test_without_labels_predictions_are_the_classes_with_their_type(
    plain: dict[str, modelkeep.Model],
) -> None:
    model = plain["logistic"]
    frame, _ = _plain_frame(20)
    got = model.predict(frame)
    assert got.tolist() == model.estimator.predict(frame).tolist()
    assert all(type(v) is int for v in got.tolist())
    assert (got == 1).sum() == (model.estimator.predict(frame) == 1).sum() > 0
    assert model.labels is None
    assert model.manifest.target.labels is None
    assert list(model.predict_proba(frame).columns) == [0, 1]


def test_an_older_bundle_spelling_each_class_as_its_label_predicts_the_classes(
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import LogisticRegression

    frame, target = _plain_frame()
    path = tmp_path / "old"
    modelkeep.save(LogisticRegression().fit(frame, target), path, sample=frame, name="old")
    manifest_path = path / "modelkeep.json"
    manifest = json.loads(manifest_path.read_text())
    # What save() wrote without labels= before: each class as its own text.
    manifest["target"]["labels"] = [{"value": 0, "label": "0"}, {"value": 1, "label": "1"}]
    manifest_path.write_text(json.dumps(manifest))
    model = modelkeep.load(path)
    got = model.predict(frame.head(20)).tolist()
    assert got == model.estimator.predict(frame.head(20)).tolist()
    assert all(type(v) is int for v in got)
    assert model.labels is None


@pytest.mark.parametrize("strict", ["no", 0, None], ids=["string", "int", "none"])
def test_strict_must_be_a_bool(plain: dict[str, modelkeep.Model], strict: Any) -> None:
    model = plain["logistic"]
    shown = {"no": "'no' (str)", 0: "0 (int)", None: "None (NoneType)"}[strict]
    message = (
        f"strict: expected True or False, got {shown}. strict=True raises on unusual "
        "input; strict=False (the default) warns."
    )
    for method in (model.predict, model.predict_proba, model.prepare):
        with pytest.raises(modelkeep.InvalidArgumentError, match=re.escape(message)) as info:
            method({"tenure": 5, "charges": 50.0}, strict=strict)
        assert info.value.parameter == "strict"
