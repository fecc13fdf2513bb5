"""Prove that every decision tree in a deserialized model is well formed.

skops does not trust ``sklearn.tree._tree.Tree`` nor the histogram gradient boosting
``TreePredictor``: both hold raw node indices that scikit-learn's Cython code follows with
bounds checking switched off. A crafted file can therefore make ``predict`` read (and, through
``decision_path``, write) outside its arrays, or walk a cycle forever. modelkeep trusts these
two types only because :func:`validate_trees` runs right after deserialization, before
anything calls the model, and refuses any tree whose arrays could lead ``predict`` astray.

Every check below mirrors an index that scikit-learn 1.9 follows without checking. For a
``Tree`` (read in ``sklearn/tree/_tree.pyx`` and ``sklearn/ensemble/_gradient_boosting.pyx``):

* ``1 <= node_count <= capacity``: ``Tree.__setstate__`` takes ``node_count`` from the file
  independently of the node array it copies, and every accessor (``children_left``,
  ``__getstate__``) trusts ``node_count``. scikit-learn 1.9 clamps a too-large count to the
  array length while loading, but lets zero and negative counts through; the upper bound is
  kept as a backstop. This check runs before any array is read, so the validator itself never
  reads past the buffer.
* ``n_outputs >= 1`` and ``max_n_classes >= 1``: gradient boosting reads ``value[node]``
  assuming at least one value per node.
* ``n_features`` equals the owning estimator's ``n_features_in_``, and that attribute exists:
  scikit-learn checks the input width against ``n_features_in_`` (and silently skips the check
  when the attribute is missing); ``compute_feature_importances`` sizes its output with
  ``n_features``. For trees inside a ``GradientBoosting*`` ``estimators_`` array, the ensemble's
  ``n_features_in_`` must agree too, because ``predict_stages`` walks them with the ensemble's
  input directly.
* Each node is a leaf (both children ``-1``) or internal with both children in
  ``[1, node_count)``; a half leaf is refused because the Cython loop tests only the left child.
* Children are numbered after their parent and every node but the root has exactly one
  parent. Together these prove the nodes form one tree rooted at 0: following parents strictly
  lowers the id, so there is no cycle and every node reaches the root. scikit-learn's
  depth-first, best-first and pruning builders all number children after their parent
  (checked on fitted trees), so no legitimate model is refused.
* ``max_depth`` is at least the depth of the deepest node: ``decision_path`` allocates
  ``n_samples * (1 + max_depth)`` slots and writes one per node on each path.
* Internal nodes' ``feature`` lies in ``[0, n_features)``; leaves' ``feature`` is never read.
* Internal thresholds are numbers or ``+inf``: scikit-learn stores ``+inf`` for splits that
  send only missing values right, and never stores NaN or ``-inf``.
* The value array has shape ``(node_count, n_outputs, max_n_classes)`` and ``n_outputs``
  matches the estimator's ``n_outputs_``. (``missing_go_to_left`` is a field of the node
  record, so its length cannot disagree.)

For a ``TreePredictor`` (read in ``sklearn/ensemble/_hist_gradient_boosting/_predictor.pyx``):

* ``nodes`` is a non-empty 1-D array of ``PREDICTOR_RECORD_DTYPE``.
* The same leaf/children/ordering/one-parent checks, with leaves flagged by ``is_leaf``
  (their ``left``/``right`` are never read).
* Internal ``feature_idx`` lies in ``[0, n_features_in_)`` of the owning
  ``HistGradientBoosting*`` estimator, whose ``_bin_mapper.is_categorical_`` must have one entry
  per feature: ``predict`` looks a categorical split's feature up in ``f_idx_map`` (built from
  it) and then in the known-categories bitsets, so the feature must be categorical.
* Both bitset arrays have shape ``(n, 8)`` of ``uint32`` (a category byte selects one of 8
  words) and a categorical node's ``bitset_idx`` is below ``n``.
* Numeric thresholds are numbers or ``+inf`` (the missing-values split), leaf values finite.
* When the estimator has a categorical ``_preprocessor``, its column selections add up to
  ``n_features_in_``, because ``predict`` indexes the preprocessed columns by ``feature_idx``.

For the ``estimators_`` of ``GradientBoosting*``, the second dimension must equal
``n_trees_per_iteration_``, because ``predict_stages`` writes column ``k`` of the raw
predictions for every column of ``estimators_``. The initial raw predictions it writes into
come from ``init_``: its width is derived from its stored state (never by running it) and must
be exactly that many columns.

Every tree is first put through a short proof made of whole-array aggregates (see
:func:`_tree_is_sound`): a tree it accepts satisfies every check above, and only a tree it does
not accept is examined node by node, to report what is wrong and where. Real forests hold
hundreds of trees, so the proof is what a load pays. Checks run in the order above; each
reports the lowest node id that fails it. Problems that
belong to the whole tree or estimator rather than to one node are reported at node 0, the root,
where every traversal starts.
"""

from __future__ import annotations

import functools
import numbers
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelkeep.errors import UnsafeModelError

__all__ = ["validate_trees"]

_TREE_LEAF = -1
_BITSET_WORDS = 8  # 256 category values / 32 bits per uint32 word

# Objects that cannot hold a tree; skipping them keeps the walk cheap.
_ATOMS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    range,
    slice,
    np.generic,
    np.dtype,
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
)


# Exact types (not subclasses) of values an estimator's attributes mostly hold.
_INERT_TYPES = frozenset({type(None), bool, int, float, str, bytes, np.float64, np.int64})


def _inert(value: object) -> bool:
    """Whether ``value`` can hold no tree, decided cheaply (the walk checks the rest)."""
    kind = type(value)
    return kind in _INERT_TYPES or (kind is np.ndarray and value.dtype != object)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _SklearnTypes:
    tree: Any
    predictor: Any
    predictor_dtype: np.dtype[Any]
    gradient_boosting: Any
    hist_gradient_boosting: Any


@functools.cache
def _sklearn_types() -> _SklearnTypes:
    # Imported on first use: validation only ever runs on an already-loaded sklearn model.
    from sklearn.ensemble._gb import BaseGradientBoosting
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
        BaseHistGradientBoosting,
    )
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    return _SklearnTypes(
        tree=Tree,
        predictor=TreePredictor,
        predictor_dtype=np.dtype(PREDICTOR_RECORD_DTYPE),
        gradient_boosting=BaseGradientBoosting,
        hist_gradient_boosting=BaseHistGradientBoosting,
    )


@dataclass(frozen=True)
class _HistInfo:
    """What an owning HistGradientBoosting estimator tells about its predictors' inputs."""

    estimator_id: int
    n_features: int
    is_categorical: NDArray[np.bool_]


@dataclass(frozen=True)
class _Context:
    """Facts inherited from the objects above the one being visited.

    ``owner`` is the nearest object whose attributes led here; ``feed_width`` is the input
    width a gradient boosting ensemble feeds its trees without their own check; ``hist`` is set
    below a HistGradientBoosting estimator's ``_predictors``.
    """

    owner: object | None = None
    feed_width: int | None = None
    hist: _HistInfo | None = None

    def key(self) -> tuple[int | None, int]:
        # The estimator lives as long as the walk; a _HistInfo's own id could be reused.
        return (self.feed_width, 0 if self.hist is None else self.hist.estimator_id)


def validate_trees(obj: object, *, root: str = "model") -> int:
    """Validate every scikit-learn tree reachable from ``obj``; return how many there are.

    Walks pipelines, feature unions, column transformers, ensembles, stacking and voting
    estimators and any attribute holding an estimator (lists, tuples, dicts, sets and object
    arrays included, shared objects visited once) and checks each
    ``sklearn.tree._tree.Tree`` and HistGradientBoosting ``TreePredictor`` as described in
    this module's docstring. Numeric arrays are skipped without being read.

    Parameters:
        obj: a freshly deserialized model, before anything has called it.
        root: the name the error paths start with.

    Returns:
        The number of distinct trees validated.

    Raises:
        UnsafeModelError: for the first tree (in attribute order) that could make ``predict``
            read or write out of bounds or loop; ``estimator_path`` reads like
            ``model.steps[1][1].estimators_[3].tree_`` and ``node`` is the first bad node.

    Example:
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> est = DecisionTreeClassifier(max_depth=2).fit([[0.0], [1.0], [2.0]], [0, 1, 1])
        >>> validate_trees(est)
        1
    """
    sk = _sklearn_types()
    seen: set[tuple[int, int | None, int]] = set()
    trees: set[tuple[int, int, int | None, int]] = set()
    tree_ids: set[int] = set()
    # Paths are built only where a tree or an ensemble is checked, from parent links, so the
    # walk stays linear however deep the graph nests.
    parents: list[int] = [-1]
    labels: list[str] = [root]

    def path_of(node: int) -> str:
        parts: list[str] = []
        while node >= 0:
            parts.append(labels[node])
            node = parents[node]
        return "".join(reversed(parts))

    stack: list[tuple[object, int, _Context]] = [(obj, 0, _Context())]
    boosting: dict[int, tuple[object, str]] = {}
    while stack:
        item, node, ctx = stack.pop()
        if isinstance(item, _ATOMS):
            continue
        if isinstance(item, sk.gradient_boosting) and "estimators_" in vars(item):
            boosting.setdefault(id(item), (item, path_of(node)))
        if isinstance(item, np.ndarray) and item.dtype != object:
            continue
        if isinstance(item, (sk.tree, sk.predictor)):
            # A tree shared by two owners must satisfy both, so it is checked per owner.
            key = (id(item), id(ctx.owner), *ctx.key())
            if key not in trees:
                trees.add(key)
                if isinstance(item, sk.tree):
                    _check_tree(item, path_of(node), ctx)
                else:
                    _check_predictor(item, path_of(node), ctx, sk.predictor_dtype)
                tree_ids.add(id(item))
            continue
        visit_key = (id(item), *ctx.key())
        if visit_key in seen:
            continue
        seen.add(visit_key)
        children = list(_children(item, functools.partial(path_of, node), ctx, sk))
        for value, label, child_ctx in reversed(children):
            parents.append(node)
            labels.append(label)
            stack.append((value, len(labels) - 1, child_ctx))
    # Only now that every tree is known to be sound may an init estimator be run (it may hold
    # trees of its own).
    for estimator, path in boosting.values():
        _check_initial_predictions(estimator, path)
    return len(tree_ids)


def _check_initial_predictions(estimator: Any, path: str) -> None:
    """The raw-prediction array ``predict`` starts from must be as wide as ``estimators_``.

    ``predict_stages`` adds tree ``k`` of every stage into column ``k`` of the array the init
    estimator produced, without bounds checks; a crafted ``init_`` (a DummyClassifier whose
    ``class_prior_`` is too short, a loss that is not multiclass ...) would make it write past
    that array. The width is derived from the stored state alone, never by running ``init_``
    (whose own state the state proofs have checked): a regressor of one output gives one
    column; a classifier gives one column per class under a multiclass loss, and the positive
    class's column otherwise (a pipeline answers as its last step).
    """
    columns = int(estimator.estimators_.shape[1])
    init = getattr(estimator, "init_", None)
    if isinstance(init, str) and init == "zero":
        return  # predict then allocates n_trees_per_iteration_ columns, checked above
    final = init
    while type(final).__name__ == "Pipeline":
        steps = getattr(final, "steps", None)
        final = steps[-1][1] if isinstance(steps, list) and steps else None  # it predicts
    loss = getattr(estimator, "_loss", None)
    multiclass = bool(getattr(loss, "is_multiclass", False))
    # A DummyClassifier's probabilities are its class_prior_; other classifiers' its classes_.
    classes = getattr(final, "class_prior_", getattr(final, "classes_", None))
    if classes is not None:
        count = int(np.asarray(classes).size) if np.ndim(classes) == 1 else -1
        width = count if multiclass else (1 if count >= 2 else -1)
        kind = "multiclass" if multiclass else "binary"
        what = f"an init classifier of {count} class(es) under a {kind} loss"
    else:
        outputs = getattr(final, "n_outputs_", 1)
        width = 1 if outputs == 1 else -1
        what = f"an init regressor of {outputs!r} output(s)"
    if width != columns:
        raise UnsafeModelError(
            f"{path}.init_",
            0,
            f"initial raw predictions expected {columns} column(s) (one per tree of a stage), "
            f"got {what}",
        )


def _children(
    item: object, path: Callable[[], str], ctx: _Context, sk: _SklearnTypes
) -> Iterator[tuple[object, str, _Context]]:
    """``(value, label, context)`` of each child; ``path()`` builds the item's own path, only
    for the ensembles whose checks name it."""
    if isinstance(item, dict):
        for key, value in item.items():
            if not _inert(value):
                yield value, f"[{key!r}]", ctx
    elif isinstance(item, (list, tuple)):
        for i, value in enumerate(item):
            if not _inert(value):
                yield value, f"[{i}]", ctx
    elif isinstance(item, (set, frozenset)):
        for value in item:
            yield value, "{...}", ctx
    elif isinstance(item, np.ndarray):
        for index in np.ndindex(item.shape):
            yield item[index], f"[{', '.join(map(str, index))}]", ctx
    elif isinstance(item, functools.partial):
        yield item.func, ".func", ctx
        yield item.args, ".args", ctx
        yield item.keywords, ".keywords", ctx
    elif isinstance(item, types.MethodType):
        yield item.__self__, ".__self__", ctx
    else:
        attrs = getattr(item, "__dict__", None)
        if not isinstance(attrs, dict):
            return
        own = replace(ctx, owner=item)
        for name, value in attrs.items():
            child = own
            if name == "estimators_" and isinstance(item, sk.gradient_boosting):
                width = _check_gradient_boosting(item, value, path())
                child = replace(own, feed_width=width)
            elif name == "_predictors" and isinstance(item, sk.hist_gradient_boosting):
                child = replace(own, hist=_hist_info(item, path()))
            elif _inert(value):
                continue  # most attributes of a fitted estimator: not walked at all
            yield value, f".{name}", child


def _n_features_in(estimator: object, path: str, what: str) -> int:
    """The estimator's ``n_features_in_``, refused when absent or not a positive integer."""
    value = getattr(estimator, "n_features_in_", None)
    if value is None:
        raise UnsafeModelError(
            path,
            0,
            f"{what} has no n_features_in_, so scikit-learn would not check the input width "
            "its feature indices rely on",
        )
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise UnsafeModelError(
            path, 0, f"{what} n_features_in_ expected a positive integer, got {value!r}"
        )
    return int(value)


def _check_gradient_boosting(estimator: object, estimators: object, path: str) -> int:
    """Check the ``estimators_`` grid of a GradientBoosting model; return its input width."""
    width = _n_features_in(estimator, path, "the gradient boosting estimator")
    grid_path = f"{path}.estimators_"
    if not isinstance(estimators, np.ndarray) or estimators.ndim != 2:
        shape = getattr(estimators, "shape", type(estimators).__name__)
        raise UnsafeModelError(
            grid_path, 0, f"expected a 2-D array of trees (stage, output), got {shape}"
        )
    per_iteration = getattr(estimator, "n_trees_per_iteration_", None)
    if estimators.shape[1] != per_iteration:
        raise UnsafeModelError(
            grid_path,
            0,
            f"expected {per_iteration!r} trees per stage (n_trees_per_iteration_), got "
            f"{estimators.shape[1]}; predict writes one raw-prediction column per tree",
        )
    return width


def _hist_info(estimator: object, path: str) -> _HistInfo:
    """Check what a HistGradientBoosting estimator's ``predict`` indexes besides the nodes."""
    n_features = _n_features_in(estimator, path, "the histogram gradient boosting estimator")
    is_categorical = getattr(getattr(estimator, "_bin_mapper", None), "is_categorical_", None)
    if not isinstance(is_categorical, np.ndarray) or is_categorical.shape != (n_features,):
        shape = getattr(is_categorical, "shape", type(is_categorical).__name__)
        raise UnsafeModelError(
            f"{path}._bin_mapper.is_categorical_",
            0,
            f"expected one flag per input feature, shape ({n_features},), got {shape}; "
            "predict maps categorical features through it",
        )
    preprocessor = getattr(estimator, "_preprocessor", None)
    if preprocessor is not None:
        _check_hist_preprocessor(preprocessor, f"{path}._preprocessor", n_features)
    return _HistInfo(
        estimator_id=id(estimator), n_features=n_features, is_categorical=is_categorical != 0
    )


def _check_hist_preprocessor(preprocessor: object, path: str, n_features: int) -> None:
    """The encoder and passthrough scaling must hand ``n_features`` columns to the predictors."""
    width = 0
    for i, entry in enumerate(getattr(preprocessor, "transformers_", ())):
        transformer, columns = entry[1], entry[2]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        mask = np.asarray(columns)
        if mask.dtype != np.bool_ or mask.shape != (n_features,):
            raise UnsafeModelError(
                f"{path}.transformers_[{i}]",
                0,
                f"column selection expected a boolean mask of shape ({n_features},), got "
                f"{mask.dtype} of shape {mask.shape}",
            )
        width += int(mask.sum())
    if width != n_features:
        raise UnsafeModelError(
            path,
            0,
            f"expected to output {n_features} columns (n_features_in_), got {width}; the "
            "predictors index the preprocessed columns by feature",
        )


def _first(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _sound_links(
    ids: NDArray[np.intp], lefts: NDArray[np.intp], rights: NDArray[np.intp], n: int
) -> NDArray[np.intp] | None:
    """Parent ids when the internal nodes ``ids`` and their children provably form one tree
    rooted at node 0, else None (then :func:`_check_structure` names the first bad node).

    The proof: ``n - 1`` links (two per internal node), every child numbered after its parent
    and below ``n``, and no child linked twice. Distinct children in ``[1, n)`` that number
    ``n - 1`` are every non-root node exactly once -- what ``_check_structure`` checks node by
    node.
    """
    if 2 * ids.size != n - 1:
        return None
    parent = np.zeros(n, dtype=np.intp)
    if ids.size == 0:
        return parent
    if not ((lefts > ids).all() and (rights > ids).all()):
        return None
    if max(int(lefts.max()), int(rights.max())) >= n:
        return None
    # Children are now at least 1, so bincount sees no negative id.
    if int(np.bincount(np.concatenate((lefts, rights)), minlength=n).max()) != 1:
        return None
    parent[lefts] = ids
    parent[rights] = ids
    return parent


def _within_depth(parent: NDArray[np.intp], internal_count: int, max_depth: int) -> bool:
    """Whether no node lies deeper than ``max_depth``, on a proven tree.

    With the root its own parent, ``max_depth`` parent steps from any node end at the root
    exactly when the node is at most that deep; the ``max_depth``-th power of the parent map
    is built by repeated squaring (about ``2 * log2(max_depth)`` gathers).
    """
    if max_depth >= internal_count:
        return True  # a path from the root passes at most one internal node per level
    if max_depth < 1:
        return max_depth == 0 and parent.size == 1
    power: NDArray[np.intp] | None = None
    step, remaining = parent, max_depth
    while True:
        if remaining & 1:
            power = step if power is None else step[power]
        remaining >>= 1
        if not remaining:
            break
        step = step[step]
    return power is not None and not power.any()


def _check_structure(
    path: str, internal: NDArray[np.bool_], left: NDArray[np.intp], right: NDArray[np.intp]
) -> NDArray[np.intp]:
    """Prove the internal nodes' links form one tree rooted at node 0; return parent ids."""
    n = internal.size
    node_ids = np.flatnonzero(internal)
    lefts, rights = left[internal], right[internal]

    for side, children in (("left", lefts), ("right", rights)):
        bad = (children < 1) | (children >= n)
        if bad.any():
            i = _first(bad)
            raise UnsafeModelError(
                path,
                int(node_ids[i]),
                f"{side} child expected in [1, {n}), got {int(children[i])}",
            )

    # Forward links only: then following parents strictly lowers the id, so no cycle.
    backward = (lefts <= node_ids) | (rights <= node_ids)
    if backward.any():
        i = _first(backward)
        side, child = ("left", lefts[i]) if lefts[i] <= node_ids[i] else ("right", rights[i])
        raise UnsafeModelError(
            path,
            int(node_ids[i]),
            f"{side} child expected after the node (id > {int(node_ids[i])}), got "
            f"{int(child)}; a link backwards can form a cycle",
        )

    # Exactly one parent per non-root node: no shared subtrees and nothing unreachable.
    in_degree = np.bincount(np.concatenate([lefts, rights]), minlength=n)
    wrong = in_degree[1:] != 1
    if wrong.any():
        node = _first(wrong) + 1
        links = np.sort(
            np.concatenate([node_ids[lefts == node], node_ids[rights == node]])
        ).tolist()
        if not links:
            reason = "expected exactly one parent link, got none; it is unreachable from the root"
        else:
            listed = ", ".join(map(str, links))
            reason = f"expected exactly one parent link, got {len(links)} (from nodes {listed})"
        raise UnsafeModelError(path, node, reason)

    parent = np.zeros(n, dtype=np.intp)
    parent[lefts] = node_ids
    parent[rights] = node_ids
    return parent


def _depths(parent: NDArray[np.intp]) -> NDArray[np.intp]:
    """Depth of every node by pointer jumping: O(log depth) vectorized rounds.

    ``depth[i]`` holds the number of edges from ``i`` to ``ancestor[i]``; each round doubles
    the jump. Only called on proven trees, and the round count is capped regardless.
    """
    depth = np.ones(parent.size, dtype=np.intp)
    depth[0] = 0
    ancestor = parent.copy()
    for _ in range(parent.size.bit_length() + 1):
        if not ancestor.any():
            break
        depth += depth[ancestor]
        ancestor = ancestor[ancestor]
    return depth


def _bad_threshold(thresholds: NDArray[np.float64]) -> NDArray[np.bool_]:
    # +inf is legitimate (missing-values-only split); NaN and -inf are never produced.
    return np.isnan(thresholds) | np.isneginf(thresholds)


def _check_tree(tree: Any, path: str, ctx: _Context) -> None:
    """Validate one ``sklearn.tree._tree.Tree`` against its owning estimator."""
    node_count, capacity = int(tree.node_count), int(tree.capacity)
    if node_count < 1:
        raise UnsafeModelError(
            path, 0, f"node_count expected at least 1 (the root), got {node_count}"
        )
    if node_count > capacity:
        raise UnsafeModelError(
            path,
            0,
            f"node_count {node_count} exceeds the {capacity} nodes stored; every access "
            "would read past the node array",
        )
    n_outputs, max_n_classes = int(tree.n_outputs), int(tree.max_n_classes)
    if n_outputs < 1 or max_n_classes < 1:
        raise UnsafeModelError(
            path,
            0,
            "value rows expected at least one entry, got "
            f"n_outputs={n_outputs}, max_n_classes={max_n_classes}",
        )

    n_features = _n_features_in(ctx.owner, path, "the estimator owning this tree")
    if ctx.feed_width is not None and n_features != ctx.feed_width:
        raise UnsafeModelError(
            path,
            0,
            f"estimator n_features_in_ expected {ctx.feed_width} (the ensemble's, whose "
            f"input it is given unchecked), got {n_features}",
        )
    if int(tree.n_features) != n_features:
        raise UnsafeModelError(
            path,
            0,
            f"n_features expected {n_features} (the estimator's n_features_in_), got "
            f"{int(tree.n_features)}",
        )

    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    expected_outputs = getattr(ctx.owner, "n_outputs_", n_outputs)
    expected_shape = (node_count, expected_outputs, max_n_classes)
    if values.shape == expected_shape and _tree_is_sound(nodes, n_features, int(tree.max_depth)):
        return
    _diagnose_tree(path, nodes, values, n_features, int(tree.max_depth), expected_shape)
    # Reached only if the proof and the diagnosis disagree; refusing is the safe side.
    raise UnsafeModelError(path, 0, "the tree's node arrays could not be proven well formed")


def _tree_is_sound(nodes: Any, n_features: int, max_depth: int) -> bool:
    """The node-array checks of :func:`_diagnose_tree` as a few whole-array aggregates."""
    n = nodes.size
    left = nodes["left_child"].astype(np.intp, copy=False)
    right = nodes["right_child"].astype(np.intp, copy=False)
    internal = left != _TREE_LEAF
    ids = np.flatnonzero(internal)
    # Internal nodes' right children are proven >= 1 below, so n - k right links of -1 can
    # only be the leaves'.
    if int(np.count_nonzero(right == _TREE_LEAF)) != n - ids.size:
        return False
    parent = _sound_links(ids, left[ids], right[ids], n)
    if parent is None or not _within_depth(parent, ids.size, max_depth):
        return False
    if ids.size == 0:
        return True
    # A negative feature becomes a huge unsigned one.
    feature = nodes["feature"][ids].astype(np.int64, copy=False).view(np.uint64)
    if int(feature.max()) >= n_features:
        return False
    # NaN and -inf both fail ``> -inf``.
    return bool((nodes["threshold"][ids] > -np.inf).all())


def _diagnose_tree(
    path: str,
    nodes: Any,
    values: Any,
    n_features: int,
    max_depth: int,
    expected_shape: tuple[int, int, int],
) -> None:
    """Raise for the first node that fails a check, in the order of the module docstring;
    return if none does (then the caller refuses the tree anyway)."""
    left = nodes["left_child"].astype(np.intp, copy=False)
    right = nodes["right_child"].astype(np.intp, copy=False)
    internal = left != _TREE_LEAF
    half = internal == (right == _TREE_LEAF)
    if half.any():
        i = _first(half)
        raise UnsafeModelError(
            path,
            i,
            "children expected both -1 (leaf) or both node ids, got "
            f"left {int(left[i])} and right {int(right[i])}",
        )
    parent = _check_structure(path, internal, left, right)

    depth = _depths(parent)
    too_deep = depth > max_depth
    if too_deep.any():
        i = _first(too_deep)
        raise UnsafeModelError(
            path,
            i,
            f"depth expected at most max_depth={max_depth}, got {int(depth[i])}; "
            "decision_path sizes its output from max_depth",
        )

    feature = nodes["feature"]
    bad = internal & ((feature < 0) | (feature >= n_features))
    if bad.any():
        i = _first(bad)
        raise UnsafeModelError(
            path, i, f"feature index expected in [0, {n_features}), got {int(feature[i])}"
        )

    bad = internal & _bad_threshold(nodes["threshold"])
    if bad.any():
        i = _first(bad)
        raise UnsafeModelError(
            path, i, f"threshold expected a number or +inf, got {float(nodes['threshold'][i])}"
        )

    if values.shape != expected_shape:
        raise UnsafeModelError(
            path, 0, f"value array shape expected {expected_shape}, got {values.shape}"
        )


def _check_predictor(predictor: Any, path: str, ctx: _Context, record_dtype: np.dtype[Any]) -> None:
    """Validate one HistGradientBoosting ``TreePredictor`` against its owning estimator."""
    hist = ctx.hist
    if hist is None:
        raise UnsafeModelError(
            path,
            0,
            "expected inside a HistGradientBoosting estimator's _predictors, found elsewhere; "
            "nothing bounds its feature indices",
        )
    nodes = getattr(predictor, "nodes", None)
    if (
        not isinstance(nodes, np.ndarray)
        or nodes.dtype != record_dtype
        or nodes.ndim != 1
        or nodes.size < 1
    ):
        got = (
            f"{nodes.dtype} of shape {nodes.shape}"
            if isinstance(nodes, np.ndarray)
            else type(nodes).__name__
        )
        raise UnsafeModelError(
            path, 0, f"nodes expected a non-empty 1-D PREDICTOR_RECORD_DTYPE array, got {got}"
        )

    internal = nodes["is_leaf"] == 0
    left = nodes["left"].astype(np.intp)
    right = nodes["right"].astype(np.intp)
    ids = np.flatnonzero(internal)
    if _sound_links(ids, left[ids], right[ids], internal.size) is None:
        _check_structure(path, internal, left, right)
        raise UnsafeModelError(path, 0, "the predictor's links could not be proven a tree")

    feature = nodes["feature_idx"]
    bad = internal & ((feature < 0) | (feature >= hist.n_features))
    if bad.any():
        i = _first(bad)
        raise UnsafeModelError(
            path,
            i,
            f"feature index expected in [0, {hist.n_features}), got {int(feature[i])}",
        )

    n_bitsets = _bitset_rows(predictor, path)
    categorical = internal & (nodes["is_categorical"] != 0)
    if categorical.any():
        safe_feature = np.where(categorical, feature, 0)
        bad = categorical & ~hist.is_categorical[safe_feature]
        if bad.any():
            i = _first(bad)
            raise UnsafeModelError(
                path,
                i,
                f"categorical split expected on a categorical feature, got feature "
                f"{int(feature[i])}, which the bin mapper treats as numeric",
            )
        bitset_idx = nodes["bitset_idx"]
        bad = categorical & (bitset_idx >= n_bitsets)
        if bad.any():
            i = _first(bad)
            raise UnsafeModelError(
                path,
                i,
                f"bitset_idx expected in [0, {n_bitsets}), got {int(bitset_idx[i])}",
            )

    threshold = nodes["num_threshold"]
    bad = internal & ~categorical & _bad_threshold(threshold)
    if bad.any():
        i = _first(bad)
        raise UnsafeModelError(
            path, i, f"threshold expected a number or +inf, got {float(threshold[i])}"
        )

    value = nodes["value"]
    bad = ~internal & ~np.isfinite(value)
    if bad.any():
        i = _first(bad)
        raise UnsafeModelError(path, i, f"leaf value expected finite, got {float(value[i])}")


def _bitset_rows(predictor: Any, path: str) -> int:
    """Rows both categorical bitset arrays have, after checking their layout."""
    rows: list[int] = []
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        bitsets = getattr(predictor, name, None)
        if (
            not isinstance(bitsets, np.ndarray)
            or bitsets.dtype != np.uint32
            or bitsets.ndim != 2
            or bitsets.shape[1] != _BITSET_WORDS
        ):
            got = (
                f"{bitsets.dtype} of shape {bitsets.shape}"
                if isinstance(bitsets, np.ndarray)
                else type(bitsets).__name__
            )
            raise UnsafeModelError(
                path,
                0,
                f"{name} expected a uint32 array of shape (n, {_BITSET_WORDS}), got {got}",
            )
        rows.append(int(bitsets.shape[0]))
    return min(rows)
