"""Fitted benign models: every estimator of ``sklearn.utils.all_estimators()`` that can be
fitted on small generic data, plus XGBoost, LightGBM and a pandas-fed pipeline.

Shared by ``scripts/generate_allowlist.py`` (which derives the allowlist from what these
reference when pickled), the benign-coverage test and the scanner benchmark. Estimators that
cannot be covered are returned with the reason.

Each estimator is built with scikit-learn's own test constructor
(``sklearn.utils._test_common.instance_generator._construct_instances``), which supplies
required arguments (a meta-estimator's ``estimator=``, a search's ``param_grid=``) and small
settings that keep fitting fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Fitted", "fitted_models", "outputs"]

N_ROWS = 60
N_FEATURES = 5
_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "score_samples",
    "kneighbors",
)


@dataclass
class Fitted:
    """A fitted model and an input to compare its outputs on."""

    name: str
    estimator: Any
    X: Any


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, (N_ROWS, N_FEATURES))
    y_class = (X[:, 0] + X[:, 1] > 1.0).astype(int)
    y_reg = X @ np.arange(1.0, N_FEATURES + 1.0) + rng.normal(0.0, 0.1, N_ROWS)
    words = ["red", "green", "blue", "cyan", "gold", "teal", "pink", "gray"]
    text = [" ".join(rng.choice(words, 4)) for _ in range(N_ROWS)]
    return {
        "X": X,
        "X_int": rng.integers(0, 4, (N_ROWS, N_FEATURES)),
        "y_class": y_class,
        "y_reg": y_reg,
        "y_multi": np.column_stack([y_class, 1 - y_class, (X[:, 2] > 0.5).astype(int)]),
        "y_multi_reg": np.column_stack([y_reg, y_reg * 0.5 + X[:, 3]]),
        "text": text,
        "dicts": [{w: 1.0 for w in t.split()} for t in text],
        "images": rng.uniform(0.0, 1.0, (4, 20, 20)),
    }


# Estimators whose input is not a 2-D numeric array: how to fit them and what to compare on.
def _special(name: str, d: dict[str, Any]) -> tuple[Callable[[Any], Any], Any] | None:
    X, y = d["X"], d["y_class"]
    table: dict[str, tuple[Callable[[Any], Any], Any]] = {
        "CountVectorizer": (lambda e: e.fit(d["text"]), d["text"]),
        "TfidfVectorizer": (lambda e: e.fit(d["text"]), d["text"]),
        "HashingVectorizer": (lambda e: e.fit(d["text"]), d["text"]),
        "TfidfTransformer": (lambda e: e.fit(d["X_int"]), d["X_int"]),
        "DictVectorizer": (lambda e: e.fit(d["dicts"]), d["dicts"]),
        "FeatureHasher": (lambda e: e.fit(d["dicts"]), d["dicts"]),
        "LabelEncoder": (lambda e: e.fit(y), y),
        "LabelBinarizer": (lambda e: e.fit(y), y),
        "MultiLabelBinarizer": (lambda e: e.fit([[1, 2], [3]]), [[1, 3], [2]]),
        "IsotonicRegression": (lambda e: e.fit(X[:, 0], d["y_reg"]), X[:, 0]),
        "KernelCenterer": (lambda e: e.fit(X @ X.T), X @ X.T),
        "PatchExtractor": (lambda e: e.fit(d["images"]), d["images"]),
        "CategoricalNB": (lambda e: e.fit(d["X_int"], y), d["X_int"]),
        # its test instance holds a dictionary of 3 features
        "SparseCoder": (lambda e: e.fit(X[:, :3]), X[:, :3]),
    }
    return table.get(name)


def _fit(name: str, estimator: Any, d: dict[str, Any]) -> Any:
    """Fit ``estimator`` on the data its tags ask for; return the input to compare on."""
    special = _special(name, d)
    if special is not None:
        fit, X_cmp = special
        fit(estimator)
        return X_cmp
    from sklearn.base import is_classifier, is_regressor

    tags = estimator.__sklearn_tags__()
    multi_only = not tags.target_tags.single_output
    X = d["X"]
    if is_classifier(estimator):
        y = d["y_multi"] if multi_only else d["y_class"]
    elif is_regressor(estimator):
        y = d["y_multi_reg"] if multi_only else d["y_reg"]
    else:
        y = d["y_multi_reg"] if multi_only else d["y_class"]
    estimator.fit(X, y)
    return X


def outputs(estimator: Any, X: Any) -> dict[str, Any]:
    """What the model computes on ``X``: each output method that works, as arrays.

    A model with none (clustering without ``predict``, embeddings) is compared on its
    fitted array attributes instead.
    """
    found: dict[str, Any] = {}
    for method in _METHODS:
        if not hasattr(estimator, method):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = getattr(estimator, method)(X)
        except Exception:  # a method the fitted model cannot run on this input
            continue
        if hasattr(value, "tocsr"):  # sparse: compared by its arrays, never densified
            csr = value.tocsr()
            csr.sort_indices()
            for part in ("data", "indices", "indptr"):
                found[f"{method}.{part}"] = getattr(csr, part)
            continue
        found[method] = _as_array(value)
    if not found:
        for key, value in sorted(vars(estimator).items()):
            if key.endswith("_") and not key.startswith("_") and isinstance(value, np.ndarray):
                found[key] = value
    return found


def _as_array(value: Any) -> Any:
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.to_numpy()
    return np.asarray(value) if not isinstance(value, np.ndarray) else value


def fitted_models() -> tuple[list[Fitted], dict[str, str]]:
    """(every model that could be fitted, {estimator name: why it was not})."""
    from sklearn.utils import all_estimators
    from sklearn.utils._test_common.instance_generator import _construct_instances

    d = _data()
    fitted: list[Fitted] = []
    skipped: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and small-data warnings while fitting
        for name, cls in all_estimators():
            try:
                estimator = _construct(name, cls, _construct_instances, d)
                X_cmp = _fit(name, estimator, d)
            except Exception as exc:
                skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                continue
            fitted.append(Fitted(name, estimator, X_cmp))
        fitted.extend(_boosting(d))
        fitted.append(_pandas_pipeline())
    return fitted, skipped


def _construct(name: str, cls: Any, construct: Callable[[Any], Any], d: dict[str, Any]) -> Any:
    if name == "FrozenEstimator":  # wraps an already fitted estimator
        from sklearn.linear_model import LogisticRegression

        return cls(LogisticRegression().fit(d["X"], d["y_class"]))
    for estimator in construct(cls):
        params = estimator.get_params(deep=False)
        if "precomputed" in (params.get("metric"), params.get("kernel")):
            continue
        if "random_state" in params and params["random_state"] is None:
            estimator.set_params(random_state=0)
        return estimator
    raise ValueError("no instance scikit-learn's test constructor offers")


def _boosting(d: dict[str, Any]) -> list[Fitted]:
    import lightgbm
    import xgboost

    X, y, y_reg = d["X"], d["y_class"], d["y_reg"]
    models = [
        ("XGBClassifier", xgboost.XGBClassifier(n_estimators=5, max_depth=3), y),
        ("XGBRegressor", xgboost.XGBRegressor(n_estimators=5, max_depth=3), y_reg),
        ("LGBMClassifier", lightgbm.LGBMClassifier(n_estimators=5, verbose=-1), y),
        ("LGBMRegressor", lightgbm.LGBMRegressor(n_estimators=5, verbose=-1), y_reg),
    ]
    return [Fitted(name, model.fit(X, target), X) for name, model, target in models]


def _pandas_pipeline() -> Fitted:
    """A ColumnTransformer pipeline fed a DataFrame with string, category and boolean columns,
    emitting pandas between steps, ending in a categorical-aware histogram GBM."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, N_ROWS),
            "income": rng.normal(50_000, 15_000, N_ROWS),
            "plan": rng.choice(["basic", "plus", "premium"], N_ROWS),
            "region": pd.Categorical(rng.choice(["north", "south"], N_ROWS)),
            "autopay": rng.random(N_ROWS) < 0.5,
        }
    )
    frame.loc[::7, "income"] = np.nan
    y = (frame["age"] < 40).astype(int).to_numpy()
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
            ("cat", OrdinalEncoder(), ["plan", "region"]),
            ("flag", "passthrough", ["autopay"]),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    model = Pipeline(
        [
            ("prep", prep),
            ("hgb", HistGradientBoostingClassifier(max_iter=5, categorical_features=[2, 3])),
        ]
    )
    return Fitted("Pipeline(ColumnTransformer, pandas)", model.fit(frame, y), frame)
