"""Fitted pipelines for the ONNX tests: small data, few trees, every kind the issue lists."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from conftest import BOOLEAN, CATEGORICAL, NUMERIC, make_frame, preprocessor

ROWS = 400


def frame_and_targets() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The shared mixed-dtype frame (NaNs in two columns), a class and a numeric target."""
    frame, y = make_frame(ROWS)
    y_numeric = (frame["age"] * 3.5 + frame["income"].fillna(0) / 1000).to_numpy()
    return frame, y, y_numeric


def scaled_without_imputation() -> ColumnTransformer:
    """Scaling and one-hot encoding only: NaNs reach the estimator (for HGB)."""
    return ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("flag", "passthrough", BOOLEAN),
        ]
    )


def _xgboost() -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=20, max_depth=3, random_state=0)


def _lightgbm() -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=20, random_state=0, verbose=-1)


# name -> (preprocessing, estimator, regression?)
KINDS: dict[str, tuple[Callable[[], Any], Callable[[], Any], bool]] = {
    "logistic_regression": (preprocessor, lambda: LogisticRegression(max_iter=500), False),
    "random_forest": (
        preprocessor,
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        False,
    ),
    "extra_trees": (
        preprocessor,
        lambda: ExtraTreesClassifier(n_estimators=20, random_state=0),
        False,
    ),
    "gradient_boosting": (
        preprocessor,
        lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
        False,
    ),
    "hist_gradient_boosting_nan": (
        scaled_without_imputation,
        lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
        False,
    ),
    "svc_probability": (
        preprocessor,
        lambda: SVC(probability=True, random_state=0),
        False,
    ),
    "k_nearest_neighbours": (preprocessor, lambda: KNeighborsClassifier(5), False),
    "ridge": (preprocessor, Ridge, True),
    "random_forest_regressor": (
        preprocessor,
        lambda: RandomForestRegressor(n_estimators=20, random_state=0),
        True,
    ),
    "xgboost": (preprocessor, _xgboost, False),
    "lightgbm": (preprocessor, _lightgbm, False),
}


def fit(kind: str) -> tuple[Pipeline, pd.DataFrame]:
    """The pipeline of ``kind`` fitted on the shared frame, and that frame."""
    frame, y, y_numeric = frame_and_targets()
    prep, estimator, regression = KINDS[kind]
    model = Pipeline([("prep", prep()), ("model", estimator())])
    with warnings.catch_warnings():
        # scikit-learn 1.9 deprecates SVC(probability=True); it is still what users have.
        warnings.filterwarnings("ignore", "The `probability` parameter", FutureWarning)
        model.fit(frame, y_numeric if regression else y)
    return model, frame
