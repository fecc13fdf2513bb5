"""Batch-scoring fixtures: the churn example's data, and one churn bundle (skops and ONNX)
saved once per session.

``tests/batch`` is a package so that this conftest is imported as ``batch.conftest`` and
does not shadow ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelkeep
from churn_example import churn

LABELS = {0: "No Churn", 1: "Churn"}


def customers(n: int, seed: int = 1) -> pd.DataFrame:
    """Churn rows as a scoring job gets them: the id and the features, no label."""
    return churn.generate(n, seed=seed).drop(columns=[churn.TARGET])


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A churn random forest (20 trees) saved with skops and ONNX artifacts."""
    data = churn.generate(1500, seed=0)
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
    forest = RandomForestClassifier(n_estimators=20, min_samples_leaf=5, random_state=0, n_jobs=1)
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", forest)])
    X = data[churn.FEATURES]
    pipeline.fit(X, data[churn.TARGET])
    path = tmp_path_factory.mktemp("batch") / "churn"
    modelkeep.save(pipeline, path, sample=X, name="churn", labels=LABELS, formats=("skops", "onnx"))
    return path
