"""Hand-written proofs for the state that library code follows without checking.

Each function takes the walk, the object and its node, and raises ``walk.refuse(node, ...)``
for the first fact that fitting could not have produced. They read attributes and arrays;
they never call a method of the model (the only calls are numpy's and scikit-learn's own
state getters, ``__getstate__`` of a KD-tree and ``.state`` of a bit generator, which copy
data out of C structures). Where a check mirrors an index scikit-learn or scipy follows
unchecked, the comment names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkeep.safety.state.checks import (
    array_problem,
    describe,
    finite_number,
    int_value,
    kind_of,
)
from modelkeep.safety.state.walk import Walk

__all__ = [
    "binary_tree",
    "bisecting_kmeans",
    "bit_generator",
    "bspline",
    "distance_metric",
    "interpolation",
    "isotonic",
    "kernel_density",
    "kmeans",
    "libsvm",
    "masked_array",
    "mlp",
    "neighbors",
    "random_state",
    "scorer",
    "seed_sequence",
    "single_linkage",
    "sparse_matrix",
    "spline_transformer",
    "stacking",
    "topic_model",
    "vectorizer",
]

_MT_WORDS = 624


def _require(walk: Walk, node: int, attribute: str, problem: str | None) -> None:
    if problem is not None:
        raise walk.refuse(node, f"{attribute}: {problem}")


# -- support vector machines (libsvm's set_model copies these sizes into C structs)


def libsvm(walk: Walk, svm: Any, node: int) -> None:
    """SVC, NuSVC, SVR, NuSVR, OneClassSVM: ``predict`` hands these arrays to libsvm, which
    partitions the support vectors by ``_n_support`` and indexes coefficients and
    intercepts by class pair without bounds checks."""
    state = vars(svm)
    if state.get("_sparse") is not False:
        raise walk.refuse(
            node,
            f"_sparse: expected False (a model fitted on a dense array), got "
            f"{describe(state.get('_sparse'))}; modelkeep proves only dense libsvm models (pass "
            f"trusted=['{type(svm).__module__}.{type(svm).__qualname__}'] to load it unproven)",
        )
    n_support = state.get("_n_support")
    _require(walk, node, "_n_support", array_problem(n_support, kinds="i", ndim=1, dtype=np.int32))
    classes = int(n_support.shape[0])
    if classes < 2 or (n_support < 0).any():
        raise walk.refuse(
            node, f"_n_support: expected at least 2 non-negative counts, got {n_support.tolist()}"
        )
    vectors = state.get("support_vectors_")
    _require(
        walk,
        node,
        "support_vectors_",
        array_problem(vectors, kinds="f", ndim=2, dtype=np.float64, contiguous=True, finite=True),
    )
    count = int(vectors.shape[0])
    pairs = classes * (classes - 1) // 2
    is_classifier = hasattr(svm, "classes_")
    if is_classifier:
        labels = state.get("classes_")
        if not isinstance(labels, np.ndarray) or labels.shape != (classes,):
            raise walk.refuse(
                node,
                f"classes_: expected {classes} labels (one per support count), got "
                f"{describe(labels)}",
            )
        if int(n_support.sum()) != count:
            raise walk.refuse(
                node,
                f"_n_support: expected counts adding up to the {count} support vectors, got "
                f"{n_support.tolist()}",
            )
    elif classes != 2:
        raise walk.refuse(node, f"_n_support: expected 2 entries, got {classes}")
    kernel = state.get("kernel")
    width = state.get("n_features_in_")
    if kernel != "precomputed" and vectors.shape[1] != width:
        raise walk.refuse(
            node,
            f"support_vectors_: expected {width} columns (n_features_in_), got {describe(vectors)}",
        )
    shape_fit = state.get("shape_fit_")
    if (
        not isinstance(shape_fit, tuple)
        or len(shape_fit) != 2
        or any((int_value(n) or 0) < 0 or int_value(n) is None for n in shape_fit)
    ):
        raise walk.refuse(node, f"shape_fit_: expected (rows, columns), got {describe(shape_fit)}")
    support = state.get("support_")
    _require(
        walk,
        node,
        "support_",
        array_problem(support, kinds="i", shape=(count,), dtype=np.int32),
    )
    # With a precomputed kernel libsvm reads the kernel row at these indices.
    if count and (int(support.min()) < 0 or int(support.max()) >= int(shape_fit[0])):
        raise walk.refuse(
            node, f"support_: expected indices in [0, {int(shape_fit[0])}), got values outside"
        )
    for name, shape in (
        ("_dual_coef_", (classes - 1, count)),
        ("dual_coef_", (classes - 1, count)),
        ("_intercept_", (pairs,)),
        ("intercept_", (pairs,)),
    ):
        _require(
            walk,
            node,
            name,
            array_problem(
                state.get(name), kinds="f", shape=shape, dtype=np.float64, contiguous=True
            ),
        )
    for name in ("_probA", "_probB"):
        value = state.get(name)
        problem = array_problem(value, kinds="f", ndim=1, dtype=np.float64, contiguous=True)
        if problem is None and value.shape[0] not in (0, pairs):
            problem = f"expected 0 or {pairs} entries, got {describe(value)}"
        _require(walk, node, name, problem)
    if not finite_number(state.get("_gamma")):
        raise walk.refuse(
            node, f"_gamma: expected a finite number, got {describe(state.get('_gamma'))}"
        )


# -- neighbors (sklearn/neighbors/_binary_tree.pxi: node i's children are 2i+1 and 2i+2;
#    leaves read idx_array[idx_start:idx_end] and then data[idx_array[k]], all unchecked)

_SAFE_METRICS = frozenset(
    {
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)
_EFFECTIVE_METRICS = frozenset(
    {
        "euclidean",
        "l2",
        "manhattan",
        "cityblock",
        "l1",
        "chebyshev",
        "infinity",
        "minkowski",
        "p",
        "cosine",
        "sqeuclidean",
    }
)


def distance_metric(walk: Walk, metric: Any, node: int, width: int) -> None:
    """A KD-tree's or ball tree's metric: one of the plain ones, with weights for ``width``."""
    name = f"{type(metric).__module__}.{type(metric).__qualname__}"
    if name not in _SAFE_METRICS:
        raise walk.refuse(
            node,
            f"dist_metric: expected a Euclidean, Manhattan, Chebyshev or Minkowski metric, got "
            f"{name}",
        )
    if not name.endswith("MinkowskiDistance64"):
        return  # these read neither p nor weights
    p, vec, _ = metric.__getstate__()
    if not finite_number(p) or p < 1:
        raise walk.refuse(node, f"dist_metric: p expected a finite number >= 1, got {p!r}")
    # MinkowskiDistance reads vec[j] for every feature j when it holds any weights.
    problem = array_problem(vec, kinds="f", ndim=1, finite=True)
    if problem is None and vec.shape[0] not in (0, width):
        problem = f"expected no weights or {width}, got {describe(vec)}"
    _require(walk, node, "dist_metric weights", problem)


def binary_tree(walk: Walk, tree: Any, node: int) -> None:
    """sklearn.neighbors KDTree and BallTree, from their pickled state."""
    state = tree.__getstate__()
    data, idx, nodes, bounds = state[:4]
    leaf_size, levels, n_nodes = (int_value(v) for v in state[4:7])
    _require(
        walk,
        node,
        "data",
        array_problem(data, kinds="f", ndim=2, dtype=np.float64, contiguous=True),
    )
    rows, width = data.shape
    if rows < 1:
        raise walk.refuse(node, "data: expected at least one sample, got none")
    _require(walk, node, "idx_array", array_problem(idx, kinds="i", shape=(rows,), dtype=np.intp))
    if not np.array_equal(np.sort(idx), np.arange(rows)):
        raise walk.refuse(node, f"idx_array: expected a permutation of the {rows} sample ids")
    if leaf_size is None or leaf_size < 1 or levels is None or levels < 1 or levels > 64:
        raise walk.refuse(
            node, f"leaf_size and n_levels: expected positive, got {state[4]!r}, {state[5]!r}"
        )
    expected_nodes = 2**levels - 1
    if n_nodes is None or n_nodes != expected_nodes:
        raise walk.refuse(
            node, f"n_nodes: expected {expected_nodes} (2**n_levels - 1), got {state[6]!r}"
        )
    fields = ("idx_start", "idx_end", "is_leaf", "radius")
    if type(nodes) is not np.ndarray or nodes.dtype.names != fields or nodes.shape != (n_nodes,):
        raise walk.refuse(
            node, f"node_data: expected {n_nodes} records of {fields}, got {describe(nodes)}"
        )
    start, end, leaf = nodes["idx_start"], nodes["idx_end"], nodes["is_leaf"]
    if ((start < 0) | (start > end) | (end > rows)).any():
        raise walk.refuse(node, f"node_data: expected 0 <= idx_start <= idx_end <= {rows}")
    internal = np.flatnonzero(leaf == 0)
    if ((leaf != 0) & (leaf != 1)).any() or (
        internal.size and 2 * int(internal.max()) + 2 >= n_nodes
    ):
        raise walk.refuse(
            node, "node_data: an internal node whose children 2i+1, 2i+2 lie past the nodes"
        )
    depth = 2 if "KDTree" in type(tree).__qualname__ else 1
    _require(
        walk,
        node,
        "node_bounds",
        array_problem(bounds, kinds="f", shape=(depth, n_nodes, width), dtype=np.float64),
    )
    distance_metric(walk, state[11], node, width)
    weights = state[12]
    if weights is not None:
        _require(
            walk,
            node,
            "sample_weight",
            array_problem(weights, kinds="f", shape=(rows,), dtype=np.float64, finite=True),
        )


def neighbors(walk: Walk, estimator: Any, node: int) -> None:
    """A fitted neighbors estimator: its index agrees with its data and metric."""
    state = vars(estimator)
    method = state.get("_fit_method")
    if method is None:
        return  # not a fitted neighbors search (NearestCentroid and kin)
    if method not in ("kd_tree", "ball_tree", "brute"):
        raise walk.refuse(
            node, f"_fit_method: expected 'kd_tree', 'ball_tree' or 'brute', got {describe(method)}"
        )
    metric = state.get("effective_metric_")
    if metric not in _EFFECTIVE_METRICS:
        raise walk.refuse(
            node,
            f"effective_metric_: expected one of {', '.join(sorted(_EFFECTIVE_METRICS))}, got "
            f"{describe(metric)}",
        )
    params = state.get("effective_metric_params_")
    if (
        not isinstance(params, dict)
        or not set(params) <= {"p"}
        or not all(finite_number(v) and v >= 1 for v in params.values())
    ):
        raise walk.refuse(
            node,
            f"effective_metric_params_: expected at most a finite p >= 1, got {describe(params)}",
        )
    fit_x = state.get("_fit_X")
    width = state.get("n_features_in_")
    if method == "brute" and kind_of(fit_x) == "sparse":
        # A model fitted on sparse data keeps it sparse (brute force only); the matrix's
        # own proof checks its index arrays, and its width must be the input's.
        if len(fit_x.shape) != 2 or fit_x.shape[1] != width:
            raise walk.refuse(
                node, f"_fit_X: expected {width} columns (n_features_in_), got {describe(fit_x)}"
            )
    else:
        # Integer and boolean data stay as they came (boolean metrics); a tree's own copy
        # is float64 and is proven with the tree.
        _require(walk, node, "_fit_X", array_problem(fit_x, kinds="fiub", shape=(None, width)))
    if state.get("n_samples_fit_") != fit_x.shape[0]:
        raise walk.refuse(
            node,
            f"n_samples_fit_: expected {fit_x.shape[0]} (the rows of _fit_X), got "
            f"{describe(state.get('n_samples_fit_'))}",
        )
    tree = state.get("_tree")
    if method == "brute":
        if tree is not None:
            raise walk.refuse(node, "_tree: expected None for a brute-force search")
        return
    data = tree.__getstate__()[0] if tree is not None else None
    if data is None or data.shape != fit_x.shape:
        raise walk.refuse(node, "_tree: expected an index over _fit_X, got one of another shape")


# -- splines (scipy/interpolate/_bspl.pyx evaluate_spline reads c[interval - k + a])


def bspline(walk: Walk, spline: Any, node: int) -> None:
    state = vars(spline)
    k = int_value(state.get("k"))
    if k is None or not 0 <= k <= 10:
        raise walk.refuse(node, f"k: expected a degree in [0, 10], got {describe(state.get('k'))}")
    knots = state.get("_t", state.get("t"))
    _require(walk, node, "t", array_problem(knots, kinds="f", ndim=1, finite=True))
    if knots.shape[0] < 2 * k + 2 or (np.diff(knots) < 0).any():
        raise walk.refuse(
            node, f"t: expected at least {2 * k + 2} non-decreasing knots, got {describe(knots)}"
        )
    coefficients = state.get("_c", state.get("c"))
    _require(walk, node, "c", array_problem(coefficients, kinds="f", finite=True))
    if coefficients.ndim < 1 or coefficients.shape[0] != knots.shape[0] - k - 1:
        raise walk.refuse(
            node,
            f"c: expected {knots.shape[0] - k - 1} rows (knots - k - 1), got "
            f"{describe(coefficients)}",
        )
    if state.get("extrapolate") not in (True, False, "periodic") or state.get("axis") != 0:
        raise walk.refuse(node, "extrapolate and axis: expected True/False/'periodic' and 0")


def spline_transformer(walk: Walk, transformer: Any, node: int) -> None:
    splines = vars(transformer).get("bsplines_")
    width = vars(transformer).get("n_features_in_")
    if not isinstance(splines, list) or len(splines) != width:
        raise walk.refuse(
            node,
            f"bsplines_: expected a list of {width} splines (n_features_in_), got "
            f"{describe(splines)}",
        )


# -- ensembles

_STACK_METHODS = frozenset({"predict_proba", "decision_function", "predict"})


def stacking(walk: Walk, ensemble: Any, node: int) -> None:
    """``predict`` calls ``getattr(estimator, method)`` for each entry of ``stack_method_``."""
    state = vars(ensemble)
    methods = state.get("stack_method_")
    if methods is None:
        return
    estimators = state.get("estimators_")
    if (
        not isinstance(methods, list)
        or not isinstance(estimators, list)
        or len(methods) != len(estimators)
        or not all(type(m) is str and m in _STACK_METHODS for m in methods)
    ):
        raise walk.refuse(
            node,
            "stack_method_: expected one of 'predict_proba', 'decision_function', 'predict' "
            f"per estimator, got {describe(methods)}",
        )


def mlp(walk: Walk, network: Any, node: int) -> None:
    """Layer shapes chain from n_features_in_ to the outputs (numpy would raise on a
    mismatch, but only at predict time, with numpy's words)."""
    from sklearn.neural_network._base import ACTIVATIONS

    state = vars(network)
    coefs, intercepts = state.get("coefs_"), state.get("intercepts_")
    if coefs is None:
        return
    if (
        not isinstance(coefs, list)
        or not isinstance(intercepts, list)
        or len(coefs) != len(intercepts)
        or not coefs
    ):
        raise walk.refuse(node, "coefs_ and intercepts_: expected lists of one array per layer")
    width = state.get("n_features_in_")
    for i, (weights, bias) in enumerate(zip(coefs, intercepts, strict=True)):
        _require(walk, node, f"coefs_[{i}]", array_problem(weights, kinds="f", shape=(width, None)))
        _require(
            walk,
            node,
            f"intercepts_[{i}]",
            array_problem(bias, kinds="f", shape=(weights.shape[1],)),
        )
        width = weights.shape[1]
    if state.get("out_activation_") not in ACTIVATIONS or state.get("n_layers_") != len(coefs) + 1:
        raise walk.refuse(
            node,
            f"out_activation_ and n_layers_: expected one of {', '.join(sorted(ACTIVATIONS))} and "
            f"{len(coefs) + 1}, got {describe(state.get('out_activation_'))} and "
            f"{describe(state.get('n_layers_'))}",
        )


# -- numpy random state (numpy/random/src/mt19937: pos indexes the 624-word key)


def _mt19937_problem(state: Any) -> str | None:
    inner = state.get("state") if isinstance(state, dict) else None
    key = inner.get("key") if isinstance(inner, dict) else None
    pos = inner.get("pos") if isinstance(inner, dict) else None
    problem = array_problem(key, kinds="u", shape=(_MT_WORDS,), dtype=np.uint32)
    if problem is not None:
        return f"MT19937 key: {problem}"
    position = int_value(pos)
    if position is None or not 0 <= position <= _MT_WORDS:
        return f"MT19937 position: expected an integer in [0, {_MT_WORDS}], got {describe(pos)}"
    return None


def bit_generator(walk: Walk, generator: Any, node: int) -> None:
    # numpy's __setstate__ stores any object as the seed sequence: it must be numpy's own.
    sequence = getattr(generator, "_seed_seq", None)
    if sequence is not None:
        if type(sequence) is not np.random.SeedSequence:
            raise walk.refuse(
                node, f"_seed_seq: expected None or a numpy SeedSequence, got {describe(sequence)}"
            )
        seed_sequence(walk, sequence, node)
    state = generator.state
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    problem: str | None = None
    if kind == "MT19937":
        problem = _mt19937_problem(state)
    elif kind == "PCG64":
        inner = state.get("state")
        if not isinstance(inner, dict) or not all(
            int_value(inner.get(k)) is not None for k in ("state", "inc")
        ):
            problem = "PCG64 state: expected integers state and inc"
    else:
        problem = f"expected an MT19937 or PCG64 bit generator, got {describe(kind)}"
    if problem is not None:
        raise walk.refuse(node, problem)


def random_state(walk: Walk, rng: Any, node: int) -> None:
    bit_generator(walk, rng._bit_generator, node)


def seed_sequence(walk: Walk, sequence: Any, node: int) -> None:
    entropy, spawn_key = sequence.entropy, sequence.spawn_key
    plain_entropy = entropy is None or int_value(entropy) is not None
    if not plain_entropy and array_problem(entropy, kinds="iu", ndim=1) is not None:
        raise walk.refuse(node, f"entropy: expected integers, got {describe(entropy)}")
    if type(spawn_key) is not tuple or not all(int_value(k) is not None for k in spawn_key):
        raise walk.refuse(
            node, f"spawn_key: expected a tuple of integers, got {describe(spawn_key)}"
        )
    pool = sequence.pool
    if sequence.pool_size != 4 or array_problem(pool, kinds="u", shape=(4,), dtype=np.uint32):
        raise walk.refuse(node, "pool: expected numpy's 4-word uint32 pool")
    if not 0 <= int(sequence.n_children_spawned) <= 1 << 32:
        raise walk.refuse(node, "n_children_spawned: expected a count below 2**32")


# -- scipy sparse (index arrays followed unchecked by sparsetools)


def sparse_matrix(walk: Walk, matrix: Any, node: int) -> None:
    try:
        if hasattr(matrix, "check_format"):
            matrix.check_format(full_check=True)
        else:  # coo: its own check, plus the bounds it does not test
            matrix._check()
            rows, columns = matrix.shape
            coords = matrix.coords
            if len(coords) != 2 or (
                coords[0].size
                and (
                    int(coords[0].min()) < 0
                    or int(coords[0].max()) >= rows
                    or int(coords[1].min()) < 0
                    or int(coords[1].max()) >= columns
                )
            ):
                raise ValueError("coordinates outside the matrix")
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise walk.refuse(
            node, f"a {type(matrix).__name__} whose index arrays are invalid ({exc})"
        ) from None
    if matrix.dtype.hasobject:
        raise walk.refuse(node, "a sparse matrix holding Python objects")


def kernel_density(walk: Walk, estimator: Any, node: int) -> None:
    """score_samples walks ``tree_`` with rows as wide as n_features_in_."""
    tree = vars(estimator).get("tree_")
    if tree is None:
        return
    width = tree.__getstate__()[0].shape[1]
    if width != vars(estimator).get("n_features_in_"):
        raise walk.refuse(
            node, f"tree_: expected an index over n_features_in_ columns, got {width}"
        )


def kmeans(walk: Walk, estimator: Any, node: int) -> None:
    """predict hands cluster_centers_ to Cython loops that read n_features_in_ columns."""
    state = vars(estimator)
    centers = state.get("cluster_centers_")
    if centers is None:
        return
    _require(
        walk,
        node,
        "cluster_centers_",
        array_problem(centers, kinds="f", shape=(None, state.get("n_features_in_"))),
    )
    if state.get("_n_threads") not in (None, 1):
        state["_n_threads"] = 1  # predict never starts threads a file asked for


_DEFAULT_TOKENS = r"(?u)\b\w\w+\b"


def vectorizer(walk: Walk, estimator: Any, node: int) -> None:
    """A token pattern runs on every input text: only scikit-learn's own is admitted (a
    file's pattern could backtrack catastrophically, a hang)."""
    pattern = vars(estimator).get("token_pattern")
    if pattern not in (None, _DEFAULT_TOKENS):
        raise walk.refuse(
            node,
            f"token_pattern: expected scikit-learn's default {_DEFAULT_TOKENS!r}, got "
            f"{describe(pattern)}; load a custom pattern with trusted=[...]",
        )


def isotonic(walk: Walk, estimator: Any, node: int) -> None:
    state = vars(estimator)
    for name in ("X_thresholds_", "y_thresholds_"):
        if name in state:
            _require(walk, node, name, array_problem(state[name], kinds="f", ndim=1))


_INTERPOLATORS = frozenset({"_call_linear", "_call_linear_np", "_call_nearest"})


def interpolation(walk: Walk, interpolator: Any, node: int) -> None:
    """IsotonicRegression's ``f_``: linear interpolation over sorted, finite points."""
    state = vars(interpolator)
    call = state.get("_call")
    if (
        getattr(call, "__qualname__", "").rsplit(".", 1)[-1] not in _INTERPOLATORS
        or getattr(call, "__module__", "") != "scipy.interpolate._interpolate"
    ):
        raise walk.refuse(
            node, f"_call: expected scipy's linear interpolation, got {describe(call)}"
        )
    x = state.get("x")
    _require(walk, node, "x", array_problem(x, kinds="f", ndim=1, finite=True))
    if (np.diff(x) < 0).any():
        raise walk.refuse(node, "x: expected sorted points")
    _require(walk, node, "_y", array_problem(state.get("_y"), kinds="f", shape=(x.shape[0], None)))


def bisecting_kmeans(walk: Walk, estimator: Any, node: int) -> None:
    """predict descends ``_bisecting_tree`` recursively, running the KMeans kernel on the
    stacked ``center`` of each node's two children: the tree must be finite and acyclic,
    both children present or both absent, and every center as wide as the input."""
    kmeans(walk, estimator, node)
    state = vars(estimator)
    width = state.get("n_features_in_")
    pending, seen = [state.get("_bisecting_tree")], set[int]()
    while pending:
        tree = pending.pop()
        if tree is None:
            continue
        if id(tree) in seen or len(seen) > 2 * int(state.get("n_clusters", 0)) + 1:
            raise walk.refuse(node, "_bisecting_tree: expected a finite tree without cycles")
        seen.add(id(tree))
        _require(
            walk,
            node,
            "_bisecting_tree center",
            array_problem(getattr(tree, "center", None), kinds="f", shape=(width,)),
        )
        left, right = getattr(tree, "left", None), getattr(tree, "right", None)
        if (left is None) != (right is None):
            raise walk.refuse(node, "_bisecting_tree: expected both children or none")
        pending.extend((left, right))


def topic_model(walk: Walk, estimator: Any, node: int) -> None:
    """LatentDirichletAllocation: its topic-word arrays span n_features_in_ columns."""
    state = vars(estimator)
    if "components_" not in state:
        return
    shape = (state.get("n_components"), state.get("n_features_in_"))
    for name in ("components_", "exp_dirichlet_component_"):
        _require(walk, node, name, array_problem(state.get(name), kinds="f", shape=shape))


_RESPONSE_METHODS = frozenset({"predict", "predict_proba", "decision_function"})


def scorer(walk: Walk, score: Any, node: int) -> None:
    """A scorer calls ``getattr(estimator, method)`` for its response method."""
    method = vars(score).get("_response_method", "predict")
    methods = method if isinstance(method, tuple | list) else (method,)
    if not methods or not all(type(m) is str and m in _RESPONSE_METHODS for m in methods):
        raise walk.refuse(
            node,
            f"_response_method: expected predict, predict_proba or decision_function, got "
            f"{describe(method)}",
        )


def masked_array(walk: Walk, array: Any, node: int) -> None:
    """A masked array's data is plain numbers (or objects the walk then visits) and its
    mask, when there is one, matches its shape."""
    mask = np.ma.getmask(array)
    if mask is not np.ma.nomask and (
        type(mask) is not np.ndarray or mask.dtype != np.bool_ or mask.shape != array.shape
    ):
        raise walk.refuse(node, f"_mask: expected booleans of shape {array.shape}")


def single_linkage(walk: Walk, estimator: Any, node: int) -> None:
    """HDBSCAN.dbscan_clustering unions ``left_node`` and ``right_node`` of each merge row in
    arrays sized by the row count (sklearn/cluster/_hdbscan/_tree.pyx labelling_at_cut):
    merge ``i`` may only join ids below ``n_samples + i``."""
    tree = vars(estimator).get("_single_linkage_tree_")
    if tree is None:
        return
    fields = ("left_node", "right_node", "value", "cluster_size")
    if type(tree) is not np.ndarray or tree.ndim != 1 or tree.dtype.names != fields:
        raise walk.refuse(
            node, f"_single_linkage_tree_: expected merge records of {fields}, got {describe(tree)}"
        )
    limit = tree.shape[0] + 1 + np.arange(tree.shape[0])
    for side in ("left_node", "right_node"):
        ids = tree[side]
        if ((ids < 0) | (ids >= limit)).any():
            raise walk.refuse(
                node, f"_single_linkage_tree_: {side} expected ids of points or earlier merges"
            )
