"""Fitted attributes of the wrong kind, dtype, dimensions or shape are refused.

Each case fits a real model, gives one fitted attribute a value no fit of its class makes
(a string where an array is, an integer array where a float one is, a 3-D array where a 2-D
one is, an object array where a numeric one is, a width that is not ``n_features_in_``
...), pickles it as a crafted file would hold it (every global in it is on the allowlist)
and loads it with ``safe_load``: the load is refused with an ``UnsafeStateError`` naming
the attribute, what the generated tables (``modelkeep.safety.state.kinds``) expect and what
came. Benign models fitted in the ways the tables were derived from keep loading.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.mixture import GaussianMixture
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import modelkeep
from modelkeep.errors import UnsafeStateError
from modelkeep.safety.state import ESTIMATORS, prove_state
from modelkeep.safety.state.checks import kind_of
from modelkeep.safety.state.kinds import KINDS, SHAPES

X = np.random.default_rng(0).normal(size=(40, 3))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])  # three classes
# Estimators of ESTIMATORS with a generated kind table (the rest are never fitted alone).
KINDS_AT_LEAST = 200


def refusal(path: str, reason: str) -> str:
    return re.escape(f"Refusing {path}: {reason}. A fitted model never has this")


def _set(model: Any, **attributes: Any) -> Callable[[], Any]:
    def build() -> Any:
        target = model()
        vars(target).update(attributes)
        return target

    return build


def _with(model: Callable[[], Any], change: Callable[[Any], None]) -> Callable[[], Any]:
    def build() -> Any:
        target = model()
        change(target)
        return target

    return build


def _logistic() -> LogisticRegression:
    return LogisticRegression().fit(X, Y)


def _scaler() -> StandardScaler:
    return StandardScaler().fit(X)


def _forest_two_outputs() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(
        X, np.column_stack([Y, 1 - Y])
    )


def _encoder() -> OneHotEncoder:
    return OneHotEncoder().fit(np.array([["a", "x"], ["b", "y"], ["a", "y"]]))


def _svc() -> SVC:
    return SVC().fit(X, Y)


def _knn() -> KNeighborsClassifier:
    return KNeighborsClassifier(n_neighbors=3).fit(X, Y)


def _bayes() -> GaussianNB:
    return GaussianNB().fit(X, Y3)


def _tree() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=2).fit(X, Y3)


def _pipeline_scale(model: Any) -> None:
    model.steps[0][1].scale_ = np.ones(5)


CASES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "logistic-coef-a-string",
        _set(_logistic, coef_="0.5"),
        refusal("model", "coef_: expected a 2-D float array, got '0.5'"),
    ),
    (
        "logistic-coef-3d",
        _set(_logistic, coef_=np.zeros((1, 3, 1))),
        refusal("model", "coef_: expected a 2-D float array, got float64 array of shape (1, 3, 1)"),
    ),
    (
        "logistic-coef-int64",
        _set(_logistic, coef_=np.zeros((1, 3), dtype=np.int64)),
        refusal("model", "coef_: expected a 2-D float array, got int64 array of shape (1, 3)"),
    ),
    (
        "logistic-coef-wrong-width",
        _set(_logistic, coef_=np.zeros((1, 4))),
        refusal(
            "model",
            "coef_: expected axis 1 of length n_features_in_ = 3, got float64 array of shape "
            "(1, 4)",
        ),
    ),
    (
        "logistic-n-features-a-float",
        _set(_logistic, n_features_in_=3.0),
        refusal("model", "n_features_in_: expected an int, got 3.0"),
    ),
    (
        "scaler-scale-an-object-array",
        _set(_scaler, scale_=np.array([1.0, 2.0, 3.0], dtype=object)),
        refusal(
            "model", "scale_: expected None or a 1-D float array, got object array of shape (3,)"
        ),
    ),
    (
        "scaler-in-a-pipeline-wrong-width",
        _with(
            lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), _pipeline_scale
        ),
        refusal(
            "model.steps[0][1]",
            "scale_: expected axis 0 of length n_features_in_ = 3, got float64 array of shape (5,)",
        ),
    ),
    (
        "forest-n-outputs-not-its-classes",
        _set(_forest_two_outputs, n_outputs_=3),
        refusal("model", "classes_: expected a length of n_outputs_ = 3, got a list of length 2"),
    ),
    (
        "forest-n-outputs-a-string",
        _set(_forest_two_outputs, n_outputs_="2"),
        refusal("model", "n_outputs_: expected an int, got '2'"),
    ),
    (
        "encoder-categories-an-array",
        _set(_encoder, categories_=np.array(["a", "b"])),
        refusal("model", "categories_: expected a list, got <U1 array of shape (2,)"),
    ),
    (
        "encoder-categories-a-dict",
        _set(_encoder, categories_={"a": 1}),
        refusal("model", "categories_: expected a list, got dict"),
    ),
    (
        "svc-support-vectors-wrong-width",
        _with(_svc, lambda m: setattr(m, "support_vectors_", np.zeros((23, 2)))),
        refusal(
            "model",
            "support_vectors_: expected axis 1 of length n_features_in_ = 3, got float64 array "
            "of shape (23, 2)",
        ),
    ),
    (
        "svc-dual-coef-complex",
        _set(_svc, _dual_coef_=np.zeros((1, 23), dtype=complex)),
        refusal(
            "model",
            "_dual_coef_: expected a 2-D float array or a sparse matrix, got complex128 array "
            "of shape (1, 23)",
        ),
    ),
    (
        "knn-fit-x-wrong-width",
        _set(_knn, _fit_X=np.zeros((40, 7))),
        refusal(
            "model",
            "_fit_X: expected axis 1 of length n_features_in_ = 3, got float64 array of shape "
            "(40, 7)",
        ),
    ),
    (
        "knn-fit-x-an-object-array",
        _set(_knn, _fit_X=X.astype(object)),
        refusal(
            "model",
            "_fit_X: expected a 2-D float array or a 2-D integer array or a sparse matrix, "
            "got object array of shape (40, 3)",
        ),
    ),
    (
        "bayes-theta-one-class-short",
        _set(_bayes, theta_=np.zeros((2, 3))),
        refusal(
            "model",
            "theta_: expected axis 0 of length len(classes_) = 3, got float64 array of shape "
            "(2, 3)",
        ),
    ),
    (
        "tree-n-classes-not-its-classes",
        _set(_tree, n_classes_=7),
        refusal("model", "n_classes_: expected len(classes_) = 3, got 7"),
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [(m, r) for _, m, r in CASES], ids=[c[0] for c in CASES]
)
def test_wrong_kind_or_shape_is_refused(
    make: Callable[[], Any], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(make(), protocol=5))
    with pytest.raises(UnsafeStateError, match=message):
        modelkeep.safe_load(path)


def _frame(X_: np.ndarray[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame(X_, columns=[f"c{i}" for i in range(X_.shape[1])])


WIDE = np.random.default_rng(1).normal(size=(6, 9))  # fewer rows than features
LABELS = np.array(["no", "yes"])[Y]

BENIGN: list[tuple[str, Callable[[], Any]]] = [
    ("logistic-string-labels", lambda: LogisticRegression().fit(X, LABELS)),
    ("logistic-float32-frame", lambda: LogisticRegression().fit(_frame(X.astype(np.float32)), Y)),
    (
        "logistic-multiclass-no-intercept",
        lambda: LogisticRegression(fit_intercept=False).fit(X, Y3),
    ),
    ("logistic-float-labels", lambda: LogisticRegression().fit(X, Y.astype(float))),
    ("logistic-bool-labels", lambda: LogisticRegression().fit(X, Y.astype(bool))),
    (
        "forest-multi-output-string-labels",
        lambda: RandomForestClassifier(n_estimators=2, max_depth=2).fit(
            X, np.column_stack([LABELS, Y3.astype(str)])
        ),
    ),
    ("ridge-multi-output-no-intercept", lambda: Ridge(fit_intercept=False).fit(X, X[:, :2])),
    ("ridge-integer-target", lambda: Ridge().fit(X, Y3)),
    ("scaler-without-std", lambda: StandardScaler(with_std=False).fit(X)),
    ("scaler-integer-input", lambda: StandardScaler().fit((X * 10).astype(int))),
    ("knn-string-labels", lambda: KNeighborsClassifier(3).fit(X, LABELS)),
    ("gmm-diagonal", lambda: GaussianMixture(2, covariance_type="diag").fit(X)),
    ("gmm-spherical", lambda: GaussianMixture(2, covariance_type="spherical").fit(X)),
    ("gmm-tied", lambda: GaussianMixture(2, covariance_type="tied").fit(X)),
    ("pca-wide-data", lambda: PCA().fit(WIDE)),
    ("linear-wide-data", lambda: LinearRegression().fit(WIDE, WIDE[:, 0])),
    ("encoder-integer-frame", lambda: OneHotEncoder().fit(_frame((X * 2).astype(int)))),
    ("svc-string-labels-balanced", lambda: SVC(class_weight="balanced").fit(X, LABELS)),
    ("bayes-string-labels", lambda: GaussianNB().fit(X, LABELS)),
]


@pytest.mark.parametrize("make", [m for _, m in BENIGN], ids=[n for n, _ in BENIGN])
def test_benign_variants_are_proven(make: Callable[[], Any]) -> None:
    # Fitted in ways beyond the benign corpus (labels, dtypes, widths, parameters): the
    # kinds and shapes each fit leaves are ones the tables admit.
    prove_state(make())


def test_kind_of_is_coarse() -> None:
    assert [
        kind_of(v)
        for v in (
            None,
            True,
            np.int32(3),
            7,
            np.float32(0.5),
            "a",
            np.zeros((2, 3), dtype=np.float32),
            np.zeros(2, dtype=np.uint8),
            np.array([b"x"]),
            np.array(["x"], dtype=object),
            [1],
            (1,),
            {1: 2},
            frozenset(),
            np.dtype("float64"),
            float,
            np.mean,
            scipy.sparse.csr_matrix((2, 2)),
            StandardScaler(),
        )
    ] == [
        "None",
        "bool",
        "int",
        "int",
        "float",
        "str",
        "array:f2",
        "array:i1",
        "array:U1",
        "array:O1",
        "list",
        "tuple",
        "dict",
        "set",
        "dtype",
        "type",
        "callable",
        "sparse",
        "instance",
    ]


def test_tables_cover_the_estimators() -> None:
    # Every estimator with a proof that a benign fit produces has a kind table; the shape
    # relations cover the families tabular work uses most.
    covered = set(ESTIMATORS) & set(KINDS)
    assert len(covered) >= KINDS_AT_LEAST
    for name, attribute in (
        ("sklearn.linear_model._logistic.LogisticRegression", "coef_"),
        ("sklearn.preprocessing._data.StandardScaler", "scale_"),
        ("sklearn.naive_bayes.GaussianNB", "theta_"),
        ("sklearn.neighbors._classification.KNeighborsClassifier", "_fit_X"),
        ("sklearn.svm._classes.SVC", "support_vectors_"),
        ("sklearn.decomposition._pca.PCA", "components_"),
        ("sklearn.ensemble._forest.RandomForestClassifier", "classes_"),
    ):
        assert attribute in SHAPES[name], (name, attribute)
