"""The churn example: synthetic data that looks like churn data, and a model that learns it.

The example scripts are not a package; they import each other as siblings
(``from data import ...``), as they do when run with ``python examples/churn/train.py``.
So the tests import them the same way, with ``examples/churn`` on ``sys.path``.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

CHURN_DIR = Path(__file__).resolve().parents[2] / "examples" / "churn"


def _import_example(name: str) -> ModuleType:
    """Import ``examples/churn/<name>.py`` as the scripts see it (a top-level module)."""
    sys.path.insert(0, str(CHURN_DIR))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(CHURN_DIR))
    # The names are generic ("data", "train"): fail clearly if something else got them first.
    if Path(module.__file__ or "").resolve().parent != CHURN_DIR:
        raise ImportError(f"{name!r} resolved to {module.__file__}, not {CHURN_DIR / name}.py")
    return module


churn_data = _import_example("data")
churn_train = _import_example("train")

EXPECTED_DTYPES = {
    "customer_id": "str",
    "tenure": "int64",
    "monthly_charges": "float64",
    "support_complaints": "int64",
    "payment_delay_days": "float64",
    "contract_type": "str",
    "usage_change": "float64",
    "churn": "int64",
}
GAPPY_COLUMNS = ["monthly_charges", "usage_change", "payment_delay_days"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return churn_data.generate(5000, seed=0)


# --- generator ---------------------------------------------------------------------------


def test_same_seed_gives_identical_frame() -> None:
    pd.testing.assert_frame_equal(
        churn_data.generate(500, seed=3), churn_data.generate(500, seed=3)
    )


def test_different_seed_gives_different_frame() -> None:
    first = churn_data.generate(500, seed=3)
    second = churn_data.generate(500, seed=4)
    assert not first.equals(second)
    assert set(first["customer_id"]).isdisjoint(second["customer_id"])


def test_columns_and_dtypes(frame: pd.DataFrame) -> None:
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == EXPECTED_DTYPES
    features = [c for c in EXPECTED_DTYPES if c not in ("customer_id", churn_data.TARGET)]
    assert features == churn_data.FEATURES
    assert churn_data.TARGET == "churn"
    assert sorted(churn_data.NUMERIC_FEATURES + churn_data.CATEGORICAL_FEATURES) == sorted(
        churn_data.FEATURES
    )
    assert isinstance(frame.index, pd.RangeIndex)
    assert len(frame) == 5000


def test_customer_ids_are_unique_and_well_formed(frame: pd.DataFrame) -> None:
    assert frame["customer_id"].is_unique
    assert frame["customer_id"].str.fullmatch(r"\d{4}-[A-Z]{5}").all()


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        ("tenure", 0, 72),
        ("monthly_charges", 18, 120),
        ("support_complaints", 0, 10),
        ("payment_delay_days", 0, 90),
        ("usage_change", -60, 60),
        ("churn", 0, 1),
    ],
    ids=lambda value: str(value),
)
def test_value_ranges(frame: pd.DataFrame, column: str, low: float, high: float) -> None:
    values = frame[column].dropna()
    assert values.between(low, high).all(), f"{column}: {values.min()}..{values.max()}"


def test_counts_are_whole_numbers(frame: pd.DataFrame) -> None:
    delay = frame["payment_delay_days"].dropna()
    assert (delay == delay.round()).all()


def test_distribution_shapes(frame: pd.DataFrame) -> None:
    # Recent customers dominate, most pay on time, most never complain.
    assert frame["tenure"].median() < frame["tenure"].mean() < 36
    assert (frame["payment_delay_days"] == 0).mean() > 0.6
    assert (frame["support_complaints"] == 0).mean() > 0.4
    assert frame["support_complaints"].max() >= 5
    assert frame["usage_change"].min() < -30 < 30 < frame["usage_change"].max()


def test_contract_categories(frame: pd.DataFrame) -> None:
    shares = frame["contract_type"].value_counts(normalize=True)
    assert set(shares.index) == {"month-to-month", "one-year", "two-year"}
    assert shares.idxmax() == "month-to-month"
    assert shares["month-to-month"] > 0.4
    assert frame["contract_type"].notna().all()


def test_churn_rate(frame: pd.DataFrame) -> None:
    assert 0.15 <= frame["churn"].mean() <= 0.35


def test_missing_values_at_missing_rate(frame: pd.DataFrame) -> None:
    rates = frame.isna().mean()
    for column in GAPPY_COLUMNS:
        # 5000 draws at p=0.02: standard deviation about 0.002.
        assert 0.01 < rates[column] < 0.03, f"{column}: {rates[column]}"
    assert (rates.drop(GAPPY_COLUMNS) == 0).all()


def test_missing_rate_zero_and_dtypes_stable() -> None:
    complete = churn_data.generate(300, seed=1, missing_rate=0.0)
    assert not complete.isna().any().any()
    assert {name: str(dtype) for name, dtype in complete.dtypes.items()} == EXPECTED_DTYPES


def test_missing_rate_is_honoured() -> None:
    gappy = churn_data.generate(2000, seed=1, missing_rate=0.2)
    assert 0.17 < gappy["usage_change"].isna().mean() < 0.23


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": -1}, "n_rows must be >= 0, got -1."),
        ({"missing_rate": 1.0}, "missing_rate must be in [0, 1), got 1.0."),
        ({"missing_rate": -0.1}, "missing_rate must be in [0, 1), got -0.1."),
    ],
    ids=["negative-rows", "missing-rate-one", "missing-rate-negative"],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        churn_data.generate(**kwargs)


def test_churn_higher_for_month_to_month_than_two_year(frame: pd.DataFrame) -> None:
    by_contract = frame.groupby("contract_type")["churn"].mean()
    assert by_contract["month-to-month"] > by_contract["one-year"] > by_contract["two-year"]
    assert by_contract["month-to-month"] > 3 * by_contract["two-year"]


def test_churn_higher_with_complaints(frame: pd.DataFrame) -> None:
    none = frame.loc[frame["support_complaints"] == 0, "churn"].mean()
    many = frame.loc[frame["support_complaints"] >= 3, "churn"].mean()
    assert many > none + 0.15


def test_churn_higher_for_short_tenure_late_payment_and_falling_usage(
    frame: pd.DataFrame,
) -> None:
    churn = frame["churn"]
    assert churn[frame["tenure"] < 12].mean() > churn[frame["tenure"] >= 36].mean() + 0.15
    assert (
        churn[frame["payment_delay_days"] > 0].mean()
        > churn[frame["payment_delay_days"] == 0].mean()
    )
    assert churn[frame["usage_change"] < -20].mean() > churn[frame["usage_change"] > 0].mean()


def test_monthly_charges_vary_with_contract(frame: pd.DataFrame) -> None:
    by_contract = frame.groupby("contract_type")["monthly_charges"].mean()
    assert by_contract.max() - by_contract.min() > 2


# --- training ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_data() -> pd.DataFrame:
    return churn_data.generate(2000, seed=0)


@pytest.mark.parametrize(
    ("classifier", "n_estimators"),
    [("random_forest", 50), ("logistic", 300)],
    ids=["random_forest", "logistic"],
)
def test_train_learns_churn(
    training_data: pd.DataFrame, classifier: str, n_estimators: int
) -> None:
    pipeline, metrics, X_train = churn_train.train(
        training_data, classifier, seed=0, n_estimators=n_estimators
    )
    assert set(metrics) == {"f1", "roc_auc"}
    assert all(isinstance(value, float) for value in metrics.values())
    assert all(value == round(value, 4) for value in metrics.values())
    assert metrics["roc_auc"] > 0.75
    assert 0 < metrics["f1"] < 1
    # The training frame is the sample to save: raw features, 75% of the rows.
    assert list(X_train.columns) == churn_data.FEATURES
    assert len(X_train) == 1500
    assert list(pipeline.classes_) == [0, 1]


def test_train_is_deterministic(training_data: pd.DataFrame) -> None:
    first = churn_train.train(training_data, "random_forest", seed=1, n_estimators=10)
    second = churn_train.train(training_data, "random_forest", seed=1, n_estimators=10)
    assert first[1] == second[1]
    pd.testing.assert_frame_equal(first[2], second[2])


def test_holdout_split_is_stratified(training_data: pd.DataFrame) -> None:
    _, _, X_train = churn_train.train(training_data, "logistic", seed=0)
    rate = training_data["churn"].mean()
    assert training_data.loc[X_train.index, "churn"].mean() == pytest.approx(rate, abs=0.005)


def test_pipeline_handles_missing_values_and_unknown_contract(
    training_data: pd.DataFrame,
) -> None:
    pipeline, _, X_train = churn_train.train(training_data, "logistic", seed=0)
    odd = X_train.head(2).copy()
    odd.loc[odd.index[0], GAPPY_COLUMNS] = np.nan
    odd.loc[odd.index[1], "contract_type"] = "three-year"
    proba = pipeline.predict_proba(odd)
    assert proba.shape == (2, 2)
    assert np.isfinite(proba).all()


@pytest.mark.parametrize("classifier", churn_train.CLASSIFIERS)
def test_build_pipeline_steps(classifier: str) -> None:
    pipeline = churn_train.build_pipeline(classifier, n_estimators=7, seed=5)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "classifier"]
    assert pipeline.named_steps["classifier"].random_state == 5


def test_build_pipeline_rejects_unknown_classifier() -> None:
    message = (
        "Unknown classifier 'svm'; expected one of random_forest, logistic, hist_gradient_boosting."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        churn_train.build_pipeline("svm")


def test_train_rejects_frame_without_target(training_data: pd.DataFrame) -> None:
    message = (
        "Training data is missing column(s) churn, tenure; "
        "expected a frame like data.generate() returns."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        churn_train.train(training_data.drop(columns=["churn", "tenure"]))
