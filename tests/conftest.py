"""Shared fixtures: real data with mixed dtypes and missing values, real fitted pipelines."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# `make test` exports .services.env (scripts/services.sh), which points modelkeep.Registry()
# at the team servers. Tests use a fresh local registry unless they ask for a team one
# (tests/registry/team.py reads these), so the variables are moved aside here.
TEAM_ENVIRONMENT = {
    key: os.environ.pop(key)
    for key in ("MODELKEEP_REGISTRY_URI", "MODELKEEP_ARTIFACTS_URI")
    if key in os.environ
}

NUMERIC = ["age", "income", "visits"]
CATEGORICAL = ["plan", "region"]
BOOLEAN = ["autopay"]


def make_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed dtypes: integer, float with NaN, integer-as-float with NaN, string with None,
    pandas category, boolean; and a binary target that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "visits": rng.poisson(3, n).astype(float),
            "plan": rng.choice(["basic", "plus", "premium"], n),
            "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
            "autopay": rng.random(n) < 0.6,
        }
    )
    frame.loc[rng.choice(n, n // 15, replace=False), "income"] = np.nan
    frame.loc[rng.choice(n, n // 20, replace=False), "visits"] = np.nan
    score = (
        (frame["age"] < 35).astype(float)
        + (frame["plan"] == "basic")
        + (~frame["autopay"]).astype(float)
        + rng.normal(0, 0.7, n)
    )
    target = (score > 1.2).astype(int).to_numpy()
    return frame, target


def preprocessor() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("flag", "passthrough", BOOLEAN),
        ]
    )


ESTIMATORS: dict[str, Callable[[], Any]] = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "random_forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=15),
}


@pytest.fixture(scope="session")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame()


@pytest.fixture(scope="session")
def fitted() -> Callable[[str], Pipeline]:
    """Fitted classification pipelines by estimator name, fitted once per session."""
    cache: dict[str, Pipeline] = {}
    frame, target = make_frame()

    def get(kind: str) -> Pipeline:
        if kind not in cache:
            cache[kind] = Pipeline([("prep", preprocessor()), ("model", ESTIMATORS[kind]())]).fit(
                frame, target
            )
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def multiclass_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, _ = make_frame()
    classes = np.array(["low", "mid", "high"])[frame["age"].to_numpy() % 3]
    model = Pipeline([("prep", preprocessor()), ("model", LogisticRegression(max_iter=500))])
    return model.fit(frame, classes), frame


@pytest.fixture(scope="session")
def regression_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, _ = make_frame()
    y = frame["age"] * 3.5 + frame["income"].fillna(0) / 1000
    model = Pipeline([("prep", preprocessor()), ("model", Ridge())])
    return model.fit(frame, y), frame


@pytest.fixture
def saved(tmp_path: Any, fitted: Callable[[str], Pipeline], data: Any) -> Any:
    """A saved random-forest bundle and its path."""
    import modelkeep

    frame, _ = data
    path = tmp_path / "churn"
    modelkeep.save(
        fitted("random_forest"),
        path,
        sample=frame,
        name="churn",
        labels={0: "Stay", 1: "Leave"},
        metrics={"f1": 0.7},
        data_version="d1",
    )
    return path
