"""validate_trees: real models of every tree kind pass; crafted node arrays are refused.

Crafted models go through ``skops.io.dumps``/``loads`` so the check sees what deserialization
produces. Nothing here calls ``predict`` (or anything else that walks the nodes) on a crafted
tree: that is the out-of-bounds access the validator exists to prevent.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    RandomTreesEmbedding,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier
from sklearn.tree._tree import Tree

from modelkeep.errors import UnsafeModelError
from modelkeep.safety.trees import validate_trees

TREE = "sklearn.tree._tree.Tree"
PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
# The tree stores, what HistGradientBoosting's categorical preprocessor is built from, and
# the Bunch stacking and voting keep named_estimators_ in.
EXPECTED_UNTRUSTED = {
    TREE,
    PREDICTOR,
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "sklearn.utils._bunch.Bunch",
}


def load(data: bytes) -> Any:
    untrusted = set(sio.get_untrusted_types(data=data))
    assert untrusted <= EXPECTED_UNTRUSTED, untrusted
    return sio.loads(data, trusted=sorted(untrusted))


def roundtrip(model: object) -> Any:
    return load(sio.dumps(model))


def refused(path: str, node: int, reason: str) -> str:
    return re.escape(f"Refusing {path}: node {node}: {reason}. ")


@cache
def quadrants() -> tuple[np.ndarray, np.ndarray]:
    """Three features, four classes split on features 1 then 0: a full depth-2 tree."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(80, 3))
    return X, 2 * (X[:, 0] > 0) + (X[:, 1] > 0)


@cache
def blobs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Five features; a binary and a three-class target."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int), np.digitize(X[:, 2], [-0.5, 0.5])


@cache
def with_nans() -> tuple[np.ndarray, np.ndarray]:
    X, _, y3 = blobs()
    X = X.copy()
    X[np.random.default_rng(2).random(X.shape) < 0.2] = np.nan
    return X, y3


@cache
def categorical() -> tuple[np.ndarray, np.ndarray]:
    """Feature 0 holds 12 categories and decides the target; features 1 and 2 are numeric."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    X[:, 0] = rng.integers(0, 12, size=400)
    X[rng.random(400) < 0.1, 0] = np.nan
    y = np.isin(X[:, 0], [1, 4, 5, 9]).astype(int) ^ (X[:, 1] > 1.2)
    return X, y


def reference_tree() -> DecisionTreeClassifier:
    est = DecisionTreeClassifier(max_depth=2, random_state=0).fit(*quadrants())
    # The crafted cases below name node ids of exactly this tree.
    assert est.tree_.children_left.tolist() == [1, 2, -1, -1, 5, -1, -1]
    assert est.tree_.children_right.tolist() == [4, 3, -1, -1, 6, -1, -1]
    return est


def fit_categorical_hgb() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=3, categorical_features=[0], random_state=0).fit(
        *categorical()
    )


# --- legitimate models ------------------------------------------------------------------


def _stacking() -> StackingClassifier:
    X, y, _ = blobs()
    return StackingClassifier(
        [
            ("rf", RandomForestClassifier(n_estimators=3, random_state=0)),
            ("gb", GradientBoostingClassifier(n_estimators=3, random_state=0)),
        ],
        final_estimator=DecisionTreeClassifier(random_state=0),
    ).fit(X, y)


def _column_transformer() -> Pipeline:
    X, y, _ = blobs()
    columns = ColumnTransformer(
        [
            ("trees", RandomTreesEmbedding(n_estimators=3, max_depth=2, random_state=0), [0, 1]),
            ("rest", "passthrough", [2, 3, 4]),
        ],
        sparse_threshold=0,
    )
    return make_pipeline(columns, HistGradientBoostingClassifier(max_iter=3)).fit(X, y)


LEGIT: list[tuple[str, Callable[[], object], int]] = [
    ("decision-tree-classifier", lambda: DecisionTreeClassifier().fit(*blobs()[:2]), 1),
    (
        "decision-tree-regressor",
        lambda: DecisionTreeRegressor(max_depth=4).fit(blobs()[0], blobs()[0][:, 3]),
        1,
    ),
    (
        "decision-tree-best-first",
        lambda: DecisionTreeClassifier(max_leaf_nodes=9, random_state=0).fit(*blobs()[:2]),
        1,
    ),
    (
        "decision-tree-pruned",
        lambda: DecisionTreeClassifier(ccp_alpha=0.01, random_state=0).fit(*blobs()[:2]),
        1,
    ),
    # NaNs make sklearn store +inf thresholds for "only missing values go right" splits.
    ("decision-tree-nan", lambda: DecisionTreeClassifier(random_state=0).fit(*with_nans()), 1),
    (
        "decision-tree-multioutput",
        lambda: DecisionTreeClassifier().fit(blobs()[0], np.c_[blobs()[1], blobs()[2]]),
        1,
    ),
    (
        "random-forest",
        lambda: RandomForestClassifier(n_estimators=7, random_state=0).fit(*blobs()[:2]),
        7,
    ),
    (
        "random-forest-regressor-best-first",
        lambda: RandomForestRegressor(n_estimators=5, max_leaf_nodes=8, random_state=0).fit(
            blobs()[0], blobs()[0][:, 1]
        ),
        5,
    ),
    (
        "extra-trees",
        lambda: ExtraTreesClassifier(n_estimators=6, random_state=0).fit(*blobs()[:2]),
        6,
    ),
    (
        "gradient-boosting-binary",
        lambda: GradientBoostingClassifier(n_estimators=5, random_state=0).fit(*blobs()[:2]),
        5,
    ),
    (
        "gradient-boosting-multiclass",
        lambda: GradientBoostingClassifier(n_estimators=4, random_state=0).fit(
            blobs()[0], blobs()[2]
        ),
        12,
    ),
    # init_ sees 2 of the 3 features; only estimators_ share the ensemble's input width.
    (
        "gradient-boosting-tree-init",
        lambda: GradientBoostingRegressor(
            n_estimators=4,
            init=make_pipeline(PCA(n_components=2), DecisionTreeRegressor()),
            random_state=0,
        ).fit(blobs()[0], blobs()[0][:, 0]),
        5,
    ),
    (
        "hist-gradient-boosting-nan",
        lambda: HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(*with_nans()),
        15,
    ),
    ("hist-gradient-boosting-categorical", fit_categorical_hgb, 3),
    (
        "hist-gradient-boosting-regressor",
        lambda: HistGradientBoostingRegressor(max_iter=4).fit(blobs()[0], blobs()[0][:, 2]),
        4,
    ),
    (
        "isolation-forest",
        lambda: IsolationForest(n_estimators=5, max_features=0.6, random_state=0).fit(blobs()[0]),
        5,
    ),
    (
        "bagging-feature-subsets",
        lambda: BaggingClassifier(
            DecisionTreeClassifier(), n_estimators=4, max_features=0.6, random_state=0
        ).fit(*blobs()[:2]),
        4,
    ),
    (
        "pipeline",
        lambda: make_pipeline(
            StandardScaler(), RandomForestClassifier(n_estimators=4, random_state=0)
        ).fit(*blobs()[:2]),
        4,
    ),
    ("column-transformer", _column_transformer, 6),
    (
        "feature-union",
        lambda: make_pipeline(
            FeatureUnion(
                [
                    ("pca", PCA(n_components=2)),
                    ("trees", RandomTreesEmbedding(n_estimators=2, max_depth=2, random_state=0)),
                ]
            ),
            DecisionTreeClassifier(random_state=0),
        ).fit(*blobs()[:2]),
        3,
    ),
    ("stacking", _stacking, 7),
    # named_estimators_ holds the same fitted trees as estimators_: counted once.
    (
        "voting",
        lambda: VotingClassifier(
            [
                ("dt", DecisionTreeClassifier(random_state=0)),
                ("et", ExtraTreeClassifier(random_state=0)),
            ]
        ).fit(*blobs()[:2]),
        2,
    ),
]


@pytest.mark.parametrize(("factory", "count"), [c[1:] for c in LEGIT], ids=[c[0] for c in LEGIT])
def test_legitimate_models_pass_with_their_tree_count(
    factory: Callable[[], object], count: int
) -> None:
    assert validate_trees(roundtrip(factory())) == count


def test_numeric_arrays_and_cycles_in_the_object_graph_are_walked_safely() -> None:
    est = reference_tree()
    graph: list[object] = [est, {"again": est}, np.zeros(10**6)]
    graph.append(graph)
    assert validate_trees(graph) == 1


def test_the_whole_message_says_what_to_do() -> None:
    est = reference_tree()
    data = _with_tree_state(est, lambda s: s["nodes"]["left_child"].__setitem__(4, 99))
    expected = (
        "Refusing model.tree_: node 4: left child expected in [1, 7), got 99. A well-formed "
        "tree never has this; the file was crafted or corrupted. Do not use it; save the "
        "model again from its source."
    )
    with pytest.raises(UnsafeModelError, match=f"^{re.escape(expected)}$") as caught:
        validate_trees(load(data))
    assert (caught.value.estimator_path, caught.value.node) == ("model.tree_", 4)
    assert caught.value.reason == "left child expected in [1, 7), got 99"


# --- crafted sklearn Trees --------------------------------------------------------------


def _with_tree_state(
    est: Any, edit: Callable[[dict[str, Any]], None], *, n_features: int | None = None
) -> bytes:
    """Rebuild ``est.tree_`` from an edited copy of its state, as a crafted file would."""
    tree = est.tree_
    original = tree.__getstate__()
    state = {
        "max_depth": original["max_depth"],
        "node_count": original["node_count"],
        "nodes": original["nodes"].copy(),
        "values": original["values"].copy(),
    }
    edit(state)
    crafted = Tree(
        tree.n_features if n_features is None else n_features,
        np.asarray(tree.n_classes, dtype=np.intp),
        tree.n_outputs,
    )
    crafted.__setstate__(state)
    est.tree_ = crafted
    data: bytes = sio.dumps(est)
    return data


def _set(field: str, node: int, value: float) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        state["nodes"][field][node] = value

    return edit


def _set_max_depth(state: dict[str, Any]) -> None:
    state["max_depth"] = 1


CRAFTED_TREES: list[tuple[str, Callable[[dict[str, Any]], None], int, str]] = [
    ("child-out-of-range", _set("left_child", 4, 99), 4, "left child expected in [1, 7), got 99"),
    ("child-negative", _set("right_child", 1, -7), 1, "right child expected in [1, 7), got -7"),
    ("cycle-to-root", _set("right_child", 4, 0), 4, "right child expected in [1, 7), got 0"),
    (
        "cycle-to-earlier-node",
        _set("right_child", 4, 1),
        4,
        "right child expected after the node (id > 4), got 1; a link backwards can form a cycle",
    ),
    (
        "self-loop",
        _set("left_child", 1, 1),
        1,
        "left child expected after the node (id > 1), got 1; a link backwards can form a cycle",
    ),
    (
        "two-parents",
        _set("right_child", 0, 2),
        2,
        "expected exactly one parent link, got 2 (from nodes 0, 1)",
    ),
    (
        "same-child-twice",
        _set("right_child", 4, 5),
        5,
        "expected exactly one parent link, got 2 (from nodes 4, 4)",
    ),
    (
        "internal-node-half-leaf",
        _set("right_child", 4, -1),
        4,
        "children expected both -1 (leaf) or both node ids, got left 5 and right -1",
    ),
    (
        "leaf-half-internal",
        _set("right_child", 2, 5),
        2,
        "children expected both -1 (leaf) or both node ids, got left -1 and right 5",
    ),
    ("feature-beyond-inputs", _set("feature", 4, 3), 4, "feature index expected in [0, 3), got 3"),
    ("feature-negative", _set("feature", 0, -2), 0, "feature index expected in [0, 3), got -2"),
    (
        "threshold-nan",
        _set("threshold", 1, np.nan),
        1,
        "threshold expected a number or +inf, got nan",
    ),
    (
        "threshold-minus-inf",
        _set("threshold", 4, -np.inf),
        4,
        "threshold expected a number or +inf, got -inf",
    ),
    (
        "max-depth-too-small",
        _set_max_depth,
        2,
        "depth expected at most max_depth=1, got 2; decision_path sizes its output from max_depth",
    ),
]


@pytest.mark.parametrize(
    ("edit", "node", "reason"), [c[1:] for c in CRAFTED_TREES], ids=[c[0] for c in CRAFTED_TREES]
)
def test_crafted_tree_is_refused(
    edit: Callable[[dict[str, Any]], None], node: int, reason: str
) -> None:
    data = _with_tree_state(reference_tree(), edit)
    with pytest.raises(UnsafeModelError, match=refused("model.tree_", node, reason)) as caught:
        validate_trees(load(data))
    assert (caught.value.estimator_path, caught.value.node, caught.value.reason) == (
        "model.tree_",
        node,
        reason,
    )


def test_leaf_features_and_infinite_thresholds_are_accepted() -> None:
    # Leaves keep feature -2 (TREE_UNDEFINED); +inf is sklearn's missing-values-only split.
    def edit(state: dict[str, Any]) -> None:
        state["nodes"]["feature"][2] = 12345
        state["nodes"]["threshold"][0] = np.inf

    assert validate_trees(load(_with_tree_state(reference_tree(), edit))) == 1


def test_tree_with_more_features_than_its_estimator_is_refused() -> None:
    data = _with_tree_state(reference_tree(), lambda state: None, n_features=5)
    reason = "n_features expected 3 (the estimator's n_features_in_), got 5"
    with pytest.raises(UnsafeModelError, match=refused("model.tree_", 0, reason)):
        validate_trees(load(data))


def test_tree_whose_estimator_has_no_n_features_in_is_refused() -> None:
    # Without n_features_in_, sklearn skips the input-width check the feature bounds rely on.
    est = reference_tree()
    del est.n_features_in_
    reason = (
        "the estimator owning this tree has no n_features_in_, so scikit-learn would not "
        "check the input width its feature indices rely on"
    )
    with pytest.raises(UnsafeModelError, match=refused("model.tree_", 0, reason)):
        validate_trees(roundtrip(est))


def _edit_tree_json(data: bytes, field: str, value: str) -> bytes:
    """Rewrite one scalar of the bare estimator's tree state inside the skops zip."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "schema.json":
                schema = json.loads(content)
                tree_state = schema["content"]["content"]["tree_"]["content"]["content"]
                tree_state[field]["content"] = value
                content = json.dumps(schema).encode()
            target.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("node_count", "reason"),
    [
        ("0", "node_count expected at least 1 (the root), got 0"),
        ("-3", "node_count expected at least 1 (the root), got -3"),
    ],
    ids=["empty", "negative"],
)
def test_node_count_from_the_file_is_checked_before_any_array_is_read(
    node_count: str, reason: str
) -> None:
    # Tree.__setstate__ takes node_count from the file independently of the node array.
    data = _edit_tree_json(sio.dumps(reference_tree()), "node_count", node_count)
    with pytest.raises(UnsafeModelError, match=refused("model.tree_", 0, reason)):
        validate_trees(load(data))


def test_sklearn_itself_clamps_a_node_count_beyond_the_stored_nodes() -> None:
    # Crafted in the file, not in-process: dumps' __getstate__ would read past the array.
    # Tree.__setstate__ resizes to the array it copied and lowers node_count to fit, so the
    # loaded tree is whole; validate_trees keeps its own bound as a backstop.
    data = _edit_tree_json(sio.dumps(reference_tree()), "node_count", "9")
    model = load(data)
    assert (model.tree_.node_count, model.tree_.capacity) == (7, 7)
    assert validate_trees(model) == 1


def test_sklearn_itself_refuses_a_value_array_of_the_wrong_shape() -> None:
    # So a crafted value shape never reaches validate_trees; its own check is a backstop.
    state = reference_tree().tree_.__getstate__()
    state = {**state, "values": np.zeros((7, 1, 3))}
    tree = Tree(3, np.array([4], dtype=np.intp), 1)
    with pytest.raises(ValueError, match=re.escape("Wrong shape for value array from the pickle")):
        tree.__setstate__(state)


def test_path_names_the_tree_inside_a_pipeline_forest() -> None:
    X, y = quadrants()
    model = Pipeline(
        [
            ("scale", StandardScaler()),
            ("forest", RandomForestClassifier(n_estimators=4, max_depth=2, random_state=0)),
        ]
    ).fit(X, y)
    victim = model.steps[1][1].estimators_[3]
    n = victim.tree_.node_count
    _with_tree_state(victim, _set("left_child", 0, n + 3))
    path = "model.steps[1][1].estimators_[3].tree_"
    reason = f"left child expected in [1, {n}), got {n + 3}"
    with pytest.raises(UnsafeModelError, match=refused(path, 0, reason)):
        validate_trees(roundtrip(model))


# --- GradientBoosting's estimators_ grid ------------------------------------------------


def test_gradient_boosting_tree_is_named_by_stage_and_output() -> None:
    X, _, y3 = blobs()
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y3)
    _with_tree_state(model.estimators_[1, 2], _set("feature", 0, 5))
    reason = "feature index expected in [0, 5), got 5"
    with pytest.raises(UnsafeModelError, match=refused("model.estimators_[1, 2].tree_", 0, reason)):
        validate_trees(roundtrip(model))


def test_gradient_boosting_with_more_trees_per_stage_than_outputs_is_refused() -> None:
    # predict_stages writes raw-prediction column k for every column k of estimators_.
    X, y, _ = blobs()
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y)
    model.estimators_ = np.concatenate([model.estimators_, model.estimators_], axis=1)
    reason = (
        "expected 1 trees per stage (n_trees_per_iteration_), got 2; predict writes one "
        "raw-prediction column per tree"
    )
    with pytest.raises(UnsafeModelError, match=refused("model.estimators_", 0, reason)):
        validate_trees(roundtrip(model))


def test_gradient_boosting_whose_estimators_are_numbers_is_refused() -> None:
    # Plain numeric attributes are skipped by the walk, but never estimators_ itself.
    X, y, _ = blobs()
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y)
    model.estimators_ = np.zeros(3)
    reason = "expected a 2-D array of trees (stage, output), got (3,)"
    with pytest.raises(UnsafeModelError, match=refused("model.estimators_", 0, reason)):
        validate_trees(model)


def test_gradient_boosting_tree_fitted_on_fewer_features_is_refused() -> None:
    # predict_stages hands every tree the ensemble's input without the tree's own check.
    X, y, _ = blobs()
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y)
    narrow = DecisionTreeRegressor(max_depth=2).fit(X[:, :2], y)
    model.estimators_[2, 0] = narrow
    reason = (
        "estimator n_features_in_ expected 5 (the ensemble's, whose input it is given "
        "unchecked), got 2"
    )
    with pytest.raises(UnsafeModelError, match=refused("model.estimators_[2, 0].tree_", 0, reason)):
        validate_trees(roundtrip(model))


# --- crafted HistGradientBoosting TreePredictors ----------------------------------------


def _first_internal(nodes: np.ndarray, *, categorical: bool) -> int:
    mask = (nodes["is_leaf"] == 0) & ((nodes["is_categorical"] != 0) == categorical)
    found = np.flatnonzero(mask)
    assert found.size, "the fixture's first tree lacks the split this case corrupts"
    return int(found[0])


def _predictor_case(
    name: str,
) -> tuple[HistGradientBoostingClassifier, int, str]:
    """Corrupt the first predictor of a fitted categorical model; return it, node, reason."""
    model = fit_categorical_hgb()
    predictor = model._predictors[0][0]
    nodes = predictor.nodes.copy()
    n = nodes.size
    cat = _first_internal(nodes, categorical=True)
    num = _first_internal(nodes, categorical=False)
    leaf = int(np.flatnonzero(nodes["is_leaf"] != 0)[0])
    n_bitsets = predictor.raw_left_cat_bitsets.shape[0]
    if name == "left-out-of-range":
        nodes["left"][num] = n + 10
        node, reason = num, f"left child expected in [1, {n}), got {n + 10}"
    elif name == "right-to-root":
        nodes["right"][cat] = 0
        node, reason = cat, f"right child expected in [1, {n}), got 0"
    elif name == "backward-link":
        nodes["left"][num] = num
        node = num
        reason = (
            f"left child expected after the node (id > {num}), got {num}; a link backwards "
            "can form a cycle"
        )
    elif name == "feature-beyond-inputs":
        nodes["feature_idx"][num] = 3
        node, reason = num, "feature index expected in [0, 3), got 3"
    elif name == "bitset-idx-out-of-range":
        nodes["bitset_idx"][cat] = n_bitsets + 40
        node, reason = cat, f"bitset_idx expected in [0, {n_bitsets}), got {n_bitsets + 40}"
    elif name == "categorical-split-on-numeric-feature":
        nodes["is_categorical"][num] = 1
        feature = int(nodes["feature_idx"][num])
        node = num
        reason = (
            f"categorical split expected on a categorical feature, got feature {feature}, "
            "which the bin mapper treats as numeric"
        )
    elif name == "threshold-nan":
        nodes["num_threshold"][num] = np.nan
        node, reason = num, "threshold expected a number or +inf, got nan"
    elif name == "leaf-value-inf":
        nodes["value"][leaf] = np.inf
        node, reason = leaf, "leaf value expected finite, got inf"
    else:  # pragma: no cover - the parametrize list and this function disagree
        raise AssertionError(name)
    predictor.nodes = nodes
    return model, node, reason


PREDICTOR_CASES = [
    "left-out-of-range",
    "right-to-root",
    "backward-link",
    "feature-beyond-inputs",
    "bitset-idx-out-of-range",
    "categorical-split-on-numeric-feature",
    "threshold-nan",
    "leaf-value-inf",
]


@pytest.mark.parametrize("case", PREDICTOR_CASES, ids=PREDICTOR_CASES)
def test_crafted_tree_predictor_is_refused(case: str) -> None:
    model, node, reason = _predictor_case(case)
    data = sio.dumps(model)
    with pytest.raises(UnsafeModelError, match=refused("model._predictors[0][0]", node, reason)):
        validate_trees(load(data))


def test_bitsets_too_narrow_for_a_category_byte_are_refused() -> None:
    model = fit_categorical_hgb()
    predictor = model._predictors[0][0]
    rows = predictor.raw_left_cat_bitsets.shape[0]
    predictor.raw_left_cat_bitsets = np.ascontiguousarray(predictor.raw_left_cat_bitsets[:, :4])
    reason = (
        f"raw_left_cat_bitsets expected a uint32 array of shape (n, 8), got uint32 of "
        f"shape ({rows}, 4)"
    )
    with pytest.raises(UnsafeModelError, match=refused("model._predictors[0][0]", 0, reason)):
        validate_trees(roundtrip(model))


def test_bin_mapper_without_a_flag_per_feature_is_refused() -> None:
    # predict builds f_idx_map from is_categorical_ and indexes it by feature_idx.
    model = fit_categorical_hgb()
    model._bin_mapper.is_categorical_ = model._bin_mapper.is_categorical_[:1].copy()
    reason = (
        "expected one flag per input feature, shape (3,), got (1,); predict maps categorical "
        "features through it"
    )
    with pytest.raises(
        UnsafeModelError, match=refused("model._bin_mapper.is_categorical_", 0, reason)
    ):
        validate_trees(roundtrip(model))


def test_preprocessor_dropping_columns_is_refused() -> None:
    # The predictors index the preprocessed columns; fewer columns would be read past.
    model = fit_categorical_hgb()
    name, encoder, _ = model._preprocessor.transformers_[0]
    model._preprocessor.transformers_[0] = (name, encoder, np.zeros(3, dtype=bool))
    reason = (
        "expected to output 3 columns (n_features_in_), got 2; the predictors index the "
        "preprocessed columns by feature"
    )
    with pytest.raises(UnsafeModelError, match=refused("model._preprocessor", 0, reason)):
        validate_trees(roundtrip(model))


def test_tree_predictor_outside_a_hist_gradient_boosting_model_is_refused() -> None:
    predictor = fit_categorical_hgb()._predictors[0][0]
    reason = (
        "expected inside a HistGradientBoosting estimator's _predictors, found elsewhere; "
        "nothing bounds its feature indices"
    )
    with pytest.raises(UnsafeModelError, match=refused("bundle[0]", 0, reason)):
        validate_trees(roundtrip([predictor]), root="bundle")


def test_gradient_boosting_init_narrower_than_the_stages_is_refused() -> None:
    # predict_stages writes column k of the init estimator's output for every tree k of a
    # stage; a DummyClassifier prior with too few classes would make it write past the end.
    X, _, y3 = blobs()
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y3)
    model.init_.class_prior_ = model.init_.class_prior_[:2]
    reason = (
        "initial raw predictions expected 3 column(s) (one per tree of a stage), got an init "
        "classifier of 2 class(es) under a multiclass loss"
    )
    with pytest.raises(UnsafeModelError, match=refused("model.init_", 0, reason)):
        validate_trees(roundtrip(model))


def test_gradient_boosting_zero_and_estimator_inits_pass() -> None:
    X, y, _ = blobs()
    zero = GradientBoostingClassifier(n_estimators=3, init="zero", random_state=0).fit(X, y)
    tree_init = GradientBoostingClassifier(
        n_estimators=3, init=DecisionTreeClassifier(max_depth=2), random_state=0
    ).fit(X, y)
    assert validate_trees(roundtrip(zero)) == 3
    assert validate_trees(roundtrip(tree_init)) == 4


# --- the fast proof agrees with the node-by-node diagnosis --------------------------------


def _fitted_node_arrays() -> list[tuple[np.ndarray, int, int]]:
    """(nodes, n_features, max_depth) of real trees: deep, shallow, regression, one node."""
    X, y2, y3 = blobs()
    Xn, yn = with_nans()
    estimators = [
        DecisionTreeClassifier(random_state=0).fit(X, y3),
        DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y2),
        DecisionTreeClassifier(max_leaf_nodes=9, random_state=0).fit(X, y3),  # best-first
        DecisionTreeRegressor(random_state=0).fit(X, X[:, 3]),
        DecisionTreeClassifier(random_state=0).fit(Xn, yn),  # missing-value splits
        DecisionTreeClassifier().fit(X, np.zeros(len(X))),  # a single leaf
        reference_tree(),
    ]
    return [
        (est.tree_.__getstate__()["nodes"].copy(), est.n_features_in_, est.tree_.max_depth)
        for est in estimators
    ]


def _mutate(nodes: np.ndarray, rng: np.random.Generator) -> None:
    """One random change of the kind a crafted file makes."""
    n = nodes.size
    i, j = rng.integers(0, n, size=2)
    kind = rng.integers(0, 8)
    if kind == 0:
        nodes["left_child"][i] = rng.integers(-3, n + 3)
    elif kind == 1:
        nodes["right_child"][i] = rng.integers(-3, n + 3)
    elif kind == 2:  # a child shared by two parents, or a node made a leaf
        nodes["left_child"][i] = nodes["right_child"][j]
    elif kind == 3:
        nodes["left_child"][i], nodes["right_child"][i] = -1, -1
    elif kind == 4:
        nodes["feature"][i] = rng.integers(-3, 8)
    elif kind == 5:
        nodes["threshold"][i] = rng.choice([np.nan, -np.inf, np.inf, 0.5])
    elif kind == 6:  # a swap keeps every count right but may point backwards
        nodes["left_child"][i], nodes["left_child"][j] = (
            nodes["left_child"][j],
            nodes["left_child"][i],
        )
    else:
        nodes["right_child"][i], nodes["left_child"][j] = (
            nodes["left_child"][j],
            nodes["right_child"][i],
        )


def test_fast_proof_accepts_exactly_what_the_diagnosis_accepts() -> None:
    from modelkeep.safety.trees import _diagnose_tree, _tree_is_sound

    rng = np.random.default_rng(7)
    verdicts = {True: 0, False: 0}
    for nodes, n_features, max_depth in _fitted_node_arrays():
        values = np.zeros((nodes.size, 1, 1))
        for trial in range(400):
            crafted = nodes.copy()
            for _ in range(int(rng.integers(0, 3))):  # zero changes: the real tree
                _mutate(crafted, rng)
            depth_limit = max_depth + int(rng.integers(-2, 2))
            try:
                _diagnose_tree("t", crafted, values, n_features, depth_limit, values.shape)
                diagnosed_sound = True
            except UnsafeModelError:
                diagnosed_sound = False
            proven = _tree_is_sound(crafted, n_features, depth_limit)
            assert proven == diagnosed_sound, (trial, n_features, depth_limit)
            verdicts[proven] += 1
    # Both outcomes are exercised many times over.
    assert min(verdicts.values()) > 500, verdicts


def test_fast_link_proof_accepts_exactly_what_the_structure_check_accepts() -> None:
    """The same agreement for the links alone, as TreePredictors are checked."""
    from modelkeep.safety.trees import _check_structure, _sound_links

    rng = np.random.default_rng(11)
    verdicts = {True: 0, False: 0}
    for nodes, _, _ in _fitted_node_arrays():
        for _ in range(300):
            crafted = nodes.copy()
            for _ in range(int(rng.integers(0, 3))):
                _mutate(crafted, rng)
            left = crafted["left_child"].astype(np.intp)
            right = crafted["right_child"].astype(np.intp)
            internal = left != -1
            ids = np.flatnonzero(internal)
            try:
                expected = _check_structure("t", internal, left, right)
            except UnsafeModelError:
                expected = None
            parent = _sound_links(ids, left[ids], right[ids], internal.size)
            assert (parent is None) == (expected is None)
            if parent is not None:
                assert expected is not None and (parent == expected).all()
            verdicts[parent is not None] += 1
    assert min(verdicts.values()) > 300, verdicts


def test_the_tree_walk_is_linear_on_a_deep_chain() -> None:
    # Paths are built from parent links only where a tree is checked: a 200,000-deep chain
    # of lists (whose path strings, built eagerly, would grow quadratically) walks at once.
    X, y, _ = blobs()
    chain: list[object] = []
    link = chain
    for _ in range(200_000):
        deeper: list[object] = []
        link.append(deeper)
        link = deeper
    link.append(DecisionTreeClassifier(max_depth=2).fit(X, y))
    assert validate_trees(chain) == 1
