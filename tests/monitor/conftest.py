"""Monitoring fixtures: the churn example's generator, and one churn bundle saved once.

``tests/monitor`` is a package so that this conftest is imported as ``monitor.conftest``
and does not shadow ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelkeep
from churn_example import churn

ROOT = Path(__file__).resolve().parents[2]
LABELS = {0: "No Churn", 1: "Churn"}


FEATURES: list[str] = list(churn.FEATURES)
TARGET: str = churn.TARGET


def fresh(n: int, seed: int) -> pd.DataFrame:
    """Unshifted churn rows from the training generator: features and the label."""
    frame: pd.DataFrame = churn.generate(n, seed=seed)[[*FEATURES, TARGET]]
    return frame


def pipeline() -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, churn.NUMERIC_FEATURES),
            (
                "contract",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                churn.CATEGORICAL_FEATURES,
            ),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression(max_iter=500))])


@pytest.fixture(scope="session")
def training() -> pd.DataFrame:
    return fresh(4000, seed=0)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, training: pd.DataFrame) -> Path:
    """A churn logistic regression saved with a label map and holdout metrics."""
    model = pipeline().fit(training[FEATURES], training[TARGET])
    holdout = fresh(20_000, seed=999)
    proba = model.predict_proba(holdout[FEATURES])[:, 1]
    predicted = (proba >= 0.5).astype(np.int64)
    metrics = {
        "accuracy": float(accuracy_score(holdout[TARGET], predicted)),
        "f1": float(f1_score(holdout[TARGET], predicted)),
        "roc_auc": float(roc_auc_score(holdout[TARGET], proba)),
    }
    path = tmp_path_factory.mktemp("monitor") / "churn_model"
    modelkeep.save(
        model, path, sample=training[FEATURES], name="churn", labels=LABELS, metrics=metrics
    )
    return path


@pytest.fixture(scope="session")
def model(bundle: Path) -> modelkeep.Model:
    return modelkeep.load(bundle)
