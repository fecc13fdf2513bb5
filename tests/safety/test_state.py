"""The state proofs: hostile state given to allowed classes is refused before anything runs.

Each case fits a real model, then gives it the state an attacker who reads our allowlist
would write (every class involved is allowed), and checks the refusal: through
``prove_state`` directly, and end to end through ``safe_load`` and ``scan`` for a pickle and
``modelkeep.load`` for a bundle. Nothing here calls the mutated model.
"""

from __future__ import annotations

import collections
import copyreg
import functools
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, SplineTransformer, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import modelkeep
from modelkeep.errors import UnprovenTypeError, UnsafeStateError
from modelkeep.safety.state import prove_state

X = np.random.default_rng(0).normal(size=(60, 3))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def refusal(path: str, reason: str) -> str:
    return re.escape(f"Refusing {path}: {reason}. A fitted model never has this")


def _stacking() -> StackingClassifier:
    return StackingClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=2))]
    ).fit(X, Y)


def _set(obj: Any, **attributes: Any) -> Any:
    vars(obj).update(attributes)
    return obj


def _knn_with_bad_index() -> KNeighborsClassifier:
    model = KNeighborsClassifier(algorithm="kd_tree").fit(X, Y)
    data, idx, *rest = model._tree.__getstate__()
    idx = idx.copy()
    idx[0] = 10**6  # a sample id far past the data
    model._tree.__setstate__((data, idx, *rest))
    return model


def _svc_with_bad_counts() -> SVC:
    model = SVC().fit(X, Y)
    model._n_support = np.array([1, 1], dtype=np.int32)
    return model


def _spline_with_bad_knots() -> SplineTransformer:
    model = SplineTransformer(n_knots=4, degree=3).fit(X)
    spline = model.bsplines_[0]
    spline.t = spline.t[:3].copy()
    return model


def _random_state_past_its_key() -> Pipeline:
    model = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(X, Y)
    rng = np.random.RandomState(0)
    state = rng.get_state(legacy=False)
    state["state"]["pos"] = 5000
    rng.set_state(state)  # numpy does not check the position; a draw would read past it
    model.steps[1][1].random_state = rng
    return model


CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    (
        "stack-method-names-a-writing-method",
        lambda: _set(_stacking(), stack_method_=["tofile", "predict_proba"]),
        UnsafeStateError,
        refusal(
            "model",
            "stack_method_: expected one of 'predict_proba', 'decision_function', 'predict' per "
            "estimator, got list",
        ),
    ),
    (
        "dunder-in-build-state",
        lambda: _set(LogisticRegression().fit(X, Y), __sklearn_tags__=print),
        UnsafeStateError,
        refusal(
            "model",
            "attribute '__sklearn_tags__': expected a plain attribute name, got a dunder or "
            "non-name",
        ),
    ),
    (
        "unknown-attribute",
        lambda: _set(LogisticRegression().fit(X, Y), surprise_=1),
        UnsafeStateError,
        refusal(
            "model",
            "attribute 'surprise_': expected only the parameters and fitted attributes of "
            "LogisticRegression, got one no fit of it sets",
        ),
    ),
    (
        "defaultdict-factory-is-a-partial",
        lambda: _set(
            LogisticRegression().fit(X, Y),
            class_weight=collections.defaultdict(functools.partial(np.save, "x.npy"), {}),
        ),
        UnsafeStateError,
        "a defaultdict whose factory is functools.partial",
    ),
    (
        "callable-outside-its-slot",
        lambda: _set(LogisticRegression().fit(X, Y), solver=np.save),
        UnsafeStateError,
        re.escape(
            "Refusing model: the 'solver' parameter of LogisticRegression must be a str among"
        ),
    ),
    (
        "pickle-helper-as-a-model-function",
        lambda: _set(FunctionTransformer().fit(X), func=copyreg._reconstructor),
        UnsafeStateError,
        refusal(
            "model.func",
            "a model function expected here, got copyreg._reconstructor, which only rebuilds "
            "objects while loading",
        ),
    ),
    (
        "huge-iteration-limit",
        lambda: _set(LogisticRegression().fit(X, Y), max_iter=10**9),
        UnsafeStateError,
        refusal("model", "max_iter: expected at most 100,000 iterations, got 1000000000"),
    ),
    (
        "kd-tree-index-out-of-range",
        _knn_with_bad_index,
        UnsafeStateError,
        refusal("model._tree", "idx_array: expected a permutation of the 60 sample ids"),
    ),
    (
        "svc-support-counts-disagree",
        _svc_with_bad_counts,
        UnsafeStateError,
        "_n_support: expected counts adding up to the",
    ),
    (
        "spline-knots-too-few",
        _spline_with_bad_knots,
        UnsafeStateError,
        refusal(
            "model.bsplines_[0]",
            "t: expected at least 8 non-decreasing knots, got float64 array of shape (3,)",
        ),
    ),
    (
        "random-state-position-past-the-key",
        _random_state_past_its_key,
        UnsafeStateError,
        refusal(
            "model.steps[1][1].random_state",
            "MT19937 position: expected an integer in [0, 624], got 5000",
        ),
    ),
    (
        "tree-hidden-in-a-dict",
        lambda: _set(
            LogisticRegression().fit(X, Y),
            class_weight={"t": DecisionTreeClassifier().fit(X, Y).tree_},
        ),
        UnsafeStateError,
        "it is trusted only where its owner keeps it",
    ),
    (
        "unproven-class",
        lambda: Pipeline([("p", LogisticRegression())]).fit(X, Y).set_params(p=_Unproven()),
        UnprovenTypeError,
        re.escape("Refusing model.steps[0][1]: modelkeep has no state proof for"),
    ),
]


def _bisecting_with_a_cycle() -> Any:
    from sklearn.cluster import BisectingKMeans

    model = BisectingKMeans(n_clusters=3, random_state=0).fit(X)
    model._bisecting_tree.left.left = model._bisecting_tree  # predict would recurse forever
    model._bisecting_tree.left.right = model._bisecting_tree.right
    return model


def _hdbscan_merging_a_later_node() -> Any:
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(copy=True).fit(X)
    model._single_linkage_tree_["left_node"][0] = 10**9
    return model


def _search_with_a_writing_response_method() -> Any:
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, scoring="roc_auc")
    search.fit(X, Y)
    search.scorer_._response_method = "tofile"
    return search


EXTRA_CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    (
        "bisecting-tree-with-a-cycle",
        _bisecting_with_a_cycle,
        UnsafeStateError,
        refusal("model", "_bisecting_tree: expected a finite tree without cycles"),
    ),
    (
        "hdbscan-merge-of-an-id-out-of-range",
        _hdbscan_merging_a_later_node,
        UnsafeStateError,
        refusal(
            "model",
            "_single_linkage_tree_: left_node expected ids of points or earlier merges",
        ),
    ),
    (
        "scorer-response-method-names-a-writing-method",
        _search_with_a_writing_response_method,
        UnsafeStateError,
        refusal(
            "model.scorer_",
            "_response_method: expected predict, predict_proba or decision_function, got 'tofile'",
        ),
    ),
]
CASES += EXTRA_CASES


class _Unproven:
    """Stands for any class of an allowed module that has no proof."""


@pytest.mark.parametrize(
    ("make", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_state_is_refused(
    make: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prove_state(make())


def test_n_jobs_is_forced_to_one() -> None:
    forest = RandomForestClassifier(n_estimators=3, n_jobs=8, random_state=0).fit(X, Y)
    assert prove_state(forest) == 3
    assert forest.n_jobs == 1


def test_gradient_boosting_init_is_never_run() -> None:
    # The width of init_'s output is read from its state; a predict that would do harm (here
    # one that raises) is never reached.
    model = GradientBoostingClassifier(n_estimators=2, random_state=0).fit(X, Y)

    def boom(*args: object) -> None:
        raise AssertionError("init_ was run")

    model.init_.predict_proba = boom  # an instance attribute no fit sets
    with pytest.raises(UnsafeStateError, match="attribute 'predict_proba'"):
        prove_state(model)
    del model.init_.predict_proba
    assert prove_state(model) == 2


def test_trusted_admits_an_unproven_class_without_walking_it() -> None:
    model = Pipeline([("p", LogisticRegression())]).fit(X, Y)
    model.steps[0] = ("p", _Unproven())
    name = f"{_Unproven.__module__}.{_Unproven.__qualname__}"
    assert prove_state(model, trusted=[name]) == 0


def test_trusted_admits_a_proven_class_unproven() -> None:
    # A sparse-fitted SVC has no proof; naming the class vouches for it.
    import scipy.sparse

    model = SVC().fit(scipy.sparse.csr_matrix(X), Y)
    with pytest.raises(UnsafeStateError, match=re.escape("modelkeep proves only dense libsvm")):
        prove_state(model)
    assert prove_state(model, trusted=["sklearn.svm._classes.SVC"]) == 0


def _pickled(tmp_path: Path, model: object) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    return path


def test_safe_load_and_scan_refuse_hostile_state(tmp_path: Path) -> None:
    path = _pickled(tmp_path, _set(_stacking(), stack_method_=["tofile", "predict_proba"]))
    with pytest.raises(UnsafeStateError, match="stack_method_"):
        modelkeep.safe_load(path)
    report = modelkeep.scan(path)
    assert (report.untrusted, report.state, report.safe) == ((), "refused", False)
    assert report.issues[0].stream == "state"
    assert "stack_method_" in report.issues[0].problem


def test_scan_without_state_withholds_safe(tmp_path: Path) -> None:
    path = _pickled(tmp_path, LogisticRegression().fit(X, Y))
    assert (modelkeep.scan(path).state, modelkeep.scan(path).safe) == ("proven", True)
    names_only = modelkeep.scan(path, state=False)
    assert (names_only.untrusted, names_only.state, names_only.safe) == ((), "not checked", False)


def test_a_bundle_gets_the_same_proofs(tmp_path: Path) -> None:
    import hashlib
    import json

    bundle = tmp_path / "bundle"
    modelkeep.save(
        LogisticRegression().fit(X, Y),
        bundle,
        name="lr",
        sample=X[:5],
        feature_names=["a", "b", "c"],
    )
    hostile = _set(LogisticRegression().fit(X, Y), max_iter=10**9)
    import skops.io as sio

    artifact = bundle / "artifacts" / "pipeline.skops"
    artifact.chmod(0o644)
    sio.dump(hostile, artifact)
    manifest_path = bundle / "modelkeep.json"
    manifest = json.loads(manifest_path.read_text())
    data = artifact.read_bytes()
    for entry in manifest["artifacts"]:
        if entry["path"] == "artifacts/pipeline.skops":
            entry["sha256"], entry["size"] = hashlib.sha256(data).hexdigest(), len(data)
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UnsafeStateError, match="max_iter: expected at most 100,000"):
        modelkeep.load(bundle)
    assert modelkeep.scan(bundle).state == "refused"


def test_neighbors_fitted_on_integer_or_sparse_data_load(tmp_path: Path) -> None:
    """_fit_X keeps the input's dtype (and sparsity, for brute force): none is refused."""
    from scipy import sparse

    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (60, 3))
    y = x[:, 0] > 4
    fitted = {
        "int": KNeighborsClassifier().fit(x, y),
        "int_brute": KNeighborsClassifier(algorithm="brute").fit(x, y),
        "sparse": KNeighborsClassifier().fit(sparse.csr_matrix(x.astype(float)), y),
    }
    inputs = {"sparse": sparse.csr_matrix(x.astype(float))}
    for name, model in fitted.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model))
        loaded = modelkeep.safe_load(path)
        data = inputs.get(name, x)
        assert (loaded.predict(data) == model.predict(data)).all(), name


def test_sparse_neighbors_data_of_another_width_is_refused(tmp_path: Path) -> None:
    from scipy import sparse

    x = np.random.default_rng(1).random((40, 3))
    model = KNeighborsClassifier(algorithm="brute").fit(sparse.csr_matrix(x), x[:, 0] > 0.5)
    model._fit_X = sparse.csr_matrix(np.random.default_rng(2).random((40, 5)))
    path = tmp_path / "wide.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(UnsafeStateError, match=re.escape("_fit_X: expected 3 columns")):
        modelkeep.safe_load(path)


def test_encoders_grouping_infrequent_categories_load(tmp_path: Path) -> None:
    """min_frequency / max_categories make encoders keep _infrequent_indices: a fit's state."""
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    rng = np.random.default_rng(3)
    column = rng.choice(["a", "b", "c", "d"], (90, 1), p=[0.5, 0.3, 0.15, 0.05])
    for encoder in (
        OneHotEncoder(min_frequency=5, handle_unknown="infrequent_if_exist"),
        OneHotEncoder(max_categories=2),
        OrdinalEncoder(min_frequency=5),
    ):
        fitted = encoder.fit(column)
        assert fitted._infrequent_enabled
        path = tmp_path / "encoder.pkl"
        path.write_bytes(pickle.dumps(fitted))
        loaded = modelkeep.safe_load(path)
        assert (loaded.transform(column) != fitted.transform(column)).sum() == 0, encoder


def test_multiclass_gradient_boosting_loads_from_pickle_and_joblib(tmp_path: Path) -> None:
    """Its loss pickles through Cython's own unpickler, allowed with the class it builds."""
    import joblib
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(90, 3)), rng.integers(0, 3, 90)
    for model in (
        HistGradientBoostingClassifier(max_iter=3).fit(x, y),
        GradientBoostingClassifier(n_estimators=3).fit(x, y),
    ):
        pickled, dumped = tmp_path / "m.pkl", tmp_path / "m.joblib"
        pickled.write_bytes(pickle.dumps(model, protocol=5))
        joblib.dump(model, dumped)
        for path in (pickled, dumped):
            loaded = modelkeep.safe_load(path)
            assert (loaded.predict_proba(x) == model.predict_proba(x)).all()
            assert modelkeep.scan(path).status == "trusted"


class _CythonUnpickle:
    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        import sklearn._loss._loss as losses

        # getattr: a dunder name written in a class body would be mangled.
        return (getattr(losses, "__pyx_unpickle_CyHalfMultinomialLoss"), self.args)


def test_the_loss_unpickler_builds_nothing_but_its_loss(tmp_path: Path) -> None:
    from sklearn._loss._loss import CyHalfBinomialLoss

    path = tmp_path / "hostile.pkl"
    for args in (
        (collections.OrderedDict, 238750788, ()),
        (CyHalfBinomialLoss, 238750788, ({"x": 1},)),
        (CyHalfBinomialLoss, 1, ()),
    ):
        path.write_bytes(pickle.dumps({"loss": _CythonUnpickle(*args)}, protocol=4))
        with pytest.raises(modelkeep.errors.CorruptPickleError):
            modelkeep.safe_load(path)
