"""Decision trees in the converted graph that decide as the original's do, in bounded time.

Three patches of what the converters write, applied by :func:`modelkeep.onnx.export.build_graph`:

- **Thresholds** (:func:`adjusted_thresholds`): scikit-learn compares ``float32(x)`` with a
  float64 threshold; skl2onnx turns each threshold into one that gives the same answer in
  the graph's comparison, searching for it with a loop that never ends on an infinite
  threshold (every tree fitted on data with missing values has some: a split sending only
  the missing values right is ``x <= inf``) nor on one beyond float32's range.
  :func:`exact_threshold` computes the same value in closed form, for every threshold.
- **Missing values** (:func:`route_missing_values`): scikit-learn sends a NaN along each
  node's ``missing_go_to_left`` branch (set in training: the side the missing values went,
  or, for a feature with none missing at that node, the side with more samples);
  skl2onnx writes ``nodes_missing_value_tracks_true = 0`` everywhere, so onnxruntime
  sends every NaN to the false (right) branch. The flag is set per node from the tree it
  came from, matched by structure.
- **Time** (:func:`time_limit`): a conversion that runs past its budget is interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np

__all__ = [
    "CONVERSION_SECONDS",
    "ConversionTimeout",
    "adjusted_thresholds",
    "exact_threshold",
    "route_missing_values",
    "time_limit",
]

#: How long one conversion (one strategy) may take before it is interrupted.
CONVERSION_SECONDS: Final = 600.0

_TREE_OPS: Final = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor"})
_FLOAT32_MAX: Final = float(np.finfo(np.float32).max)
# Half a float32 step at the top of its range: from FLT_MAX + this on, float32(x) is inf.
_HALF_TOP_STEP: Final = 2.0**103
_LOCK = threading.RLock()


class ConversionTimeout(TimeoutError):
    """A conversion ran past its time budget and was interrupted."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the conversion ran past its {seconds:g} s budget and was stopped")


# ------------------------------------------------------------------------ thresholds


def _float32_at_or_below(value: float) -> Any:
    """The largest float32 (infinities included) that is <= ``value``; NaN for NaN."""
    with np.errstate(over="ignore"):
        f = np.float32(value)
    if not np.isnan(f) and float(f) > value:
        f = np.float32(np.nextafter(f, np.float32(-np.inf)))
    return f


def exact_threshold(value: float, dtype: Any) -> float:
    """The threshold ``w`` that makes the graph's ``x <= w`` decide as scikit-learn does.

    scikit-learn's trees compare ``float32(x) <= value`` (``value`` a float64). For a
    float32 graph input (``dtype`` float32) ``w`` is the largest float32 not above
    ``value``; for a float64 input it is the largest float64 ``x`` whose float32 rounding
    is not above ``value`` (ties round to even). Closed form, defined for every value:
    ``inf`` stays ``inf``, NaN (never true) stays NaN, and values beyond float32's range
    compare as the rounding to infinity makes them.
    """
    value = float(value)
    f = _float32_at_or_below(value)
    if np.dtype(dtype) == np.float32 or np.isnan(f) or f == np.inf:
        return float(f)
    if f == -np.inf:
        # Only values rounding to -inf: x <= -(FLT_MAX + half a step), the tie included.
        return -(_FLOAT32_MAX + _HALF_TOP_STEP)
    with np.errstate(over="ignore"):
        g = np.nextafter(f, np.float32(np.inf))
    midpoint = float(f) + _HALF_TOP_STEP if g == np.inf else (float(f) + float(g)) / 2.0
    even = int(np.array(f, dtype=np.float32).view(np.uint32)) & 1 == 0
    # A tie rounds to the neighbour whose last mantissa bit is 0.
    return midpoint if even else float(np.nextafter(midpoint, -np.inf))


def _sklearn_threshold(dy: float, dtype: Any, mode: str) -> Any:
    """skl2onnx's ``sklearn_threshold``, in closed form (see :func:`exact_threshold`)."""
    if mode != "BRANCH_LEQ":
        raise RuntimeError(f"Threshold is not changed for mode {mode!r}, only 'BRANCH_LEQ'.")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"Unexpected dtype {dtype}.")
    return np.float64(exact_threshold(dy, dtype))


@contextlib.contextmanager
def adjusted_thresholds() -> Iterator[None]:
    """skl2onnx's tree converters adjust thresholds with :func:`exact_threshold` here.

    skl2onnx's own search (``find_switch_point``) loops forever on an infinite threshold;
    the patch is skl2onnx's module attribute, restored on exit, under a lock (conversions
    in other threads wait).
    """
    from skl2onnx.common import tree_ensemble

    with _LOCK:
        original = tree_ensemble.sklearn_threshold
        tree_ensemble.sklearn_threshold = _sklearn_threshold
        try:
            yield
        finally:
            tree_ensemble.sklearn_threshold = original


# ------------------------------------------------------------------------ time


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`ConversionTimeout` after ``seconds``.

    Uses a real-time interval timer (SIGALRM), so it applies in the main thread, where no
    other SIGALRM handler or timer is in use; elsewhere the block runs unbounded (the
    converters' own loops are bounded by :func:`adjusted_thresholds`).
    """
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ConversionTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------ missing values


def _sklearn_tree_lists(model: Any) -> list[list[Any]]:
    """Every sequence of ``sklearn.tree._tree.Tree`` a converter may write as one ensemble.

    An estimator with ``tree_`` gives one list of one tree; an ensemble (``estimators_``, a
    list or a 2-D array as GradientBoosting's) gives its trees in order, and each of them
    alone (meta-estimators convert their members one by one). Pipelines, column
    transformers, unions, voting and stacking ensembles are searched.
    """
    from sklearn.tree._tree import Tree

    lists: list[list[Any]] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if obj is None or isinstance(obj, str) or id(obj) in seen:
            return
        seen.add(id(obj))
        tree = getattr(obj, "tree_", None)
        if isinstance(tree, Tree):
            lists.append([tree])
            return
        children: list[Any] = []
        for name in ("steps", "transformer_list"):
            children.extend(step for _, step in getattr(obj, name, None) or [])
        children.extend(step for _, step, _ in getattr(obj, "transformers_", None) or [])
        for name in ("final_estimator_", "estimator_", "base_estimator_"):
            children.append(getattr(obj, name, None))
        members = getattr(obj, "estimators_", None)
        if members is not None:
            flat = list(np.asarray(members, dtype=object).ravel())
            trees = [getattr(m, "tree_", None) for m in flat]
            if flat and all(isinstance(t, Tree) for t in trees):
                lists.append(trees)
            children.extend(flat)
        for child in children:
            visit(child)

    visit(model)
    return lists


def _attribute(node: Any, name: str) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _thresholds(node: Any) -> np.ndarray:
    from onnx import numpy_helper

    tensor = _attribute(node, "nodes_values_as_tensor")
    if tensor is not None:
        return np.asarray(numpy_helper.to_array(tensor), dtype=np.float64)
    return np.asarray(_attribute(node, "nodes_values") or [], dtype=np.float64)


def _close(converted: np.ndarray, original: np.ndarray) -> bool:
    """Thresholds equal up to the adjustment (one float32 step), infinities exactly."""
    infinite = np.isinf(original)
    if not np.array_equal(np.isinf(converted), infinite):
        return False
    if not np.array_equal(converted[infinite], original[infinite]):
        return False
    finite = ~infinite
    with np.errstate(invalid="ignore"):
        return bool(
            np.all(
                np.abs(converted[finite] - original[finite])
                <= 2.0 * np.spacing(np.abs(original[finite]).astype(np.float32)) + 1e-44
            )
        )


class _Ensemble:
    """One TreeEnsemble node's trees: positions of each tree's nodes, by node id."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.tree_ids = np.asarray(_attribute(node, "nodes_treeids") or [], dtype=np.int64)
        self.node_ids = np.asarray(_attribute(node, "nodes_nodeids") or [], dtype=np.int64)
        self.features = np.asarray(_attribute(node, "nodes_featureids") or [], dtype=np.int64)
        self.true = np.asarray(_attribute(node, "nodes_truenodeids") or [], dtype=np.int64)
        self.false = np.asarray(_attribute(node, "nodes_falsenodeids") or [], dtype=np.int64)
        modes = _attribute(node, "nodes_modes") or []
        self.branch = np.array([m != b"LEAF" for m in modes], dtype=bool)
        self.values = _thresholds(node)
        self.trees = sorted(set(self.tree_ids.tolist()))

    def matches(self, trees: Sequence[Any]) -> bool:
        """Whether tree id ``i`` of this node is ``trees[i]``, node for node."""
        if self.trees != list(range(len(trees))):
            return False
        for tree_id, tree in enumerate(trees):
            at = np.flatnonzero(self.tree_ids == tree_id)
            ids = self.node_ids[at]
            if sorted(ids.tolist()) != list(range(tree.node_count)):
                return False
            branch = self.branch[at]
            if not np.array_equal(branch, tree.children_left[ids] != -1):
                return False
            at, ids = at[branch], ids[branch]
            if not (
                np.array_equal(self.features[at], tree.feature[ids])
                and np.array_equal(self.true[at], tree.children_left[ids])
                and np.array_equal(self.false[at], tree.children_right[ids])
                and _close(self.values[at], tree.threshold[ids])
            ):
                return False
        return True

    def directions(self, trees: Sequence[Any]) -> list[int]:
        """``nodes_missing_value_tracks_true``: 1 where scikit-learn sends NaN left."""
        flags = np.zeros(len(self.tree_ids), dtype=np.int64)
        for tree_id, tree in enumerate(trees):
            at = np.flatnonzero((self.tree_ids == tree_id) & self.branch)
            left = np.asarray(tree.missing_go_to_left, dtype=np.int64)
            flags[at] = left[self.node_ids[at]]
        return [int(v) for v in flags]


def route_missing_values(graph: Any, model: Any) -> None:
    """Set each converted scikit-learn tree node's missing-value branch to the original's.

    onnxruntime sends a NaN to a node's true branch (``x <= threshold``, the left child)
    where ``nodes_missing_value_tracks_true`` is 1, else to the false branch, for every
    comparison mode. Trees of other libraries (HistGradientBoosting, LightGBM, XGBoost)
    are left as their converters wrote them.

    Raises:
        NotImplementedError: a scikit-learn tree that splits is found in no ensemble of
            the graph, or in two with different directions, so how the graph routes a
            missing value is not known.
    """
    from onnx import helper

    lists = _sklearn_tree_lists(model)
    placed: set[int] = set()
    for node in graph.graph.node:
        if node.op_type not in _TREE_OPS:
            continue
        ensemble = _Ensemble(node)
        found = [trees for trees in lists if ensemble.matches(trees)]
        if not found:
            continue
        flags = {tuple(ensemble.directions(trees)) for trees in found}
        if len(flags) > 1:
            raise NotImplementedError(
                f"{node.op_type} {node.name!r} matches several trees of the model that send "
                "missing values different ways"
            )
        (chosen,) = flags
        kept = [a for a in node.attribute if a.name != "nodes_missing_value_tracks_true"]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(
            helper.make_attribute("nodes_missing_value_tracks_true", list(chosen))
        )
        for trees in found:
            placed.update(id(t) for t in trees)
    for trees in lists:
        for tree in trees:
            if tree.node_count > 1 and id(tree) not in placed:
                raise NotImplementedError(
                    "a scikit-learn tree of the model was not found in the converted graph, "
                    "so the direction its nodes send missing values cannot be set"
                )
