"""Prove, from the saved bytes alone, that a LightGBM or XGBoost booster is well formed.

``lightgbm.basic.Booster`` and ``xgboost.core.Booster`` are on the allowlist, but unpickling
them does not rebuild Python objects: their ``__setstate__`` hands saved bytes to the
libraries' C++ parsers (``LGBM_BoosterLoadModelFromString`` for LightGBM's model text,
``XGBoosterUnserializeFromBuffer`` for XGBoost's UBJSON snapshot). Those parsers trust the
indices they read, so a crafted booster crashes the interpreter while loading or predicting,
or makes ``predict`` walk a cycle forever. The functions here parse the same bytes themselves,
bounded by the input's length, and accept a booster only when every index the library would
follow is in range and every tree is one tree rooted at node 0. Nothing here imports
LightGBM or XGBoost.

What LightGBM 4.7 follows without checking (read in ``src/io/tree.cpp``
``Tree::Tree(const char*, size_t*)``, ``include/LightGBM/tree.h`` and
``src/boosting/gbdt_model_text.cpp`` ``GBDT::LoadModelFromString``), and what is checked here:

* ``tree_sizes``: every tree is parsed at ``first_tree + sum(tree_sizes[:i])`` with no bound,
  so each offset must land exactly on that tree's ``Tree=i`` line.
* A tree block is read as up to 22 ``key=value`` lines up to a blank line, scanning for ``=``
  without stopping at the end of the string: every line must be a known key, once.
* Arrays are read with the count ``num_leaves`` implies (``StringToArrayFast`` does not check
  the count): every field must hold exactly ``num_leaves - 1`` (internal) or ``num_leaves``
  (leaf) numbers. Integer fields are parsed exactly; decimal fields are counted and limited
  to the characters of a number (no index depends on their values, and LightGBM's decimal
  parsers stop at a space or the end of the string), except categorical thresholds, which are
  parsed.
* ``predict`` walks ``node = left_child[node]`` / ``right_child[node]`` while ``node >= 0``
  and then reads ``leaf_value[~node]``: children must be internal nodes in
  ``[1, num_leaves - 1)`` or leaves ``~child`` in ``[0, num_leaves)``, every node but the root
  has exactly one parent, and every node is reached from the root (so no cycle).
* ``split_feature`` indexes the input row and the importance vector: ``[0, max_feature_idx]``.
* ``decision_type`` selects the decision function and missing-value handling: bits above the
  four used ones must be zero and the missing type must be 0, 1 or 2.
* A categorical split reads ``cat_boundaries[int(threshold)]`` and ``[... + 1]`` and then
  ``cat_threshold`` between them: ``num_cat > 0``, the threshold an integer in
  ``[0, num_cat)``, ``cat_boundaries`` starting at 0, non-decreasing, and ending at the length
  of ``cat_threshold``.
* Linear trees slice ``leaf_features`` and ``leaf_coeff`` by the per-leaf ``num_features``
  and index the input row with ``leaf_features``: counts non-negative and adding up to both
  arrays' lengths, features in ``[0, max_feature_idx]``, coefficients finite.
* ``num_iteration = num_trees / num_tree_per_iteration`` and predictions write
  ``num_tree_per_iteration`` outputs into a ``num_class`` buffer: both at least 1 and equal,
  and the tree count a multiple of them. The objective must be one LightGBM knows, and a
  multiclass objective's ``num_class`` must match the header (its output transform writes
  that many values).
* ``feature_names``, ``feature_infos`` and ``monotone_constraints`` have
  ``max_feature_idx + 1`` entries; the ``pandas_categorical`` line the Python package reads is
  JSON ``null`` or a list of lists of scalars.

Sizes are bounded by the text itself: every count must match the numbers actually present.

What XGBoost 3.2 follows without checking (``src/common/json.cc`` ``UBJReader``,
``src/tree/tree_model.cc`` ``RegTree::LoadModel``/``LoadCategoricalSplit``,
``src/tree/multi_target_tree_model.cc``, ``src/gbm/gbtree_model.cc``, the CPU predictor), and
what is checked here:

* The UBJSON reader ``memcpy``s string lengths and typed-array counts as stored and recurses
  without a depth limit: the decoder here accepts only what XGBoost writes, bounds every count
  by the bytes left, limits nesting depth, and refuses duplicate keys and trailing bytes.
* A tree's arrays are indexed by ``tree_param.num_nodes`` and the multi-target ones by
  ``num_nodes * size_leaf_vector``: every array must have exactly that length.
* Loading reads ``nodes[parents[i]]`` for every node but the root: parents in range and, for
  reachable nodes, naming the node whose child they are.
* Prediction walks ``left_children`` and, for the right branch, ``left + 1``: a node is a leaf
  (``left == -1``) or has both children in ``[1, num_nodes)`` with ``right == left + 1``; every
  node is reached from the root exactly once, except nodes pruned and marked deleted, which
  must number ``num_deleted``.
* ``split_indices`` index the input row: internal ones in ``[0, num_feature)``.
* Categorical splits index ``categories_segments``/``categories_sizes`` by the position in
  ``categories_nodes`` and ``categories`` by the segment, and build a bitset as large as the
  largest category: ``split_type`` has one 0/1 per node and marks exactly the internal nodes in
  ``categories_nodes`` (strictly increasing), segments lie within ``categories``, categories
  are in ``[0, 2**24)``.
* ``tree_info[t]`` names the output column tree ``t`` adds to: in ``[0, n_groups)``.
  ``gbtree_model_param.num_trees``, ``tree_info``, the tree list (each ``id`` its position),
  ``iteration_indptr`` (from 0, non-decreasing, to ``num_trees``) and DART's ``weight_drop``
  agree. ``base_score`` has one value per output group; ``num_feature`` is at most ``2**24``
  and every tree's ``tree_param.num_feature`` equals it. A gblinear model has
  ``(num_feature + 1) * n_groups`` weights. The 3.x category recoder (``cats``) has one entry
  per feature, ``feature_segments`` are consistent with it and ``sorted_idx`` is a
  permutation within each feature.

What stays trusted: the arithmetic on numbers (leaf values, thresholds, gains), the values of
training-only fields (``label_index``, ``feature_infos`` contents, the ``parameters:``
section, XGBoost's training configuration), and the libraries' own checks that already
refuse a malformed file with an exception rather than a crash.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["booster_state_problem", "lightgbm_model_problem", "xgboost_raw_problem"]

LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
XGBOOST_BOOSTER = "xgboost.core.Booster"

_LIGHTGBM_ADVICE = (
    "The model text is malformed or was tampered with, so it was not handed to LightGBM's "
    "parser; save the model again with a trusted LightGBM."
)
_XGBOOST_ADVICE = (
    "The booster bytes are malformed or were tampered with, so they were not handed to "
    "XGBoost's parser; save the model again with a trusted XGBoost."
)

_INT32_MAX = 2**31 - 1


class _Problem(Exception):
    """A reason to refuse a booster; the message says what, expected and got."""


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# LightGBM model text
# ---------------------------------------------------------------------------------------------

_INT_LINE = re.compile(r"-?[0-9]{1,10}(?: -?[0-9]{1,10})*")
_FINITE = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?"
# Decimals are counted and limited to the characters of a number: no index depends on their
# values, and LightGBM's own parsers stop at a space or the end of the string (a malformed
# token is refused by LightGBM or read as a wrong number, never past the buffer).
_FINITE_LINE = re.compile(r"[-+.0-9eE]+(?: [-+.0-9eE]+)*")
_STAT_LINE = re.compile(r"[-+.0-9a-zA-Z]+(?: [-+.0-9a-zA-Z]+)*")
_INT = re.compile(r"-?[0-9]{1,10}")
_FLOAT = re.compile(_FINITE)

_HEADER_KEYS = frozenset(
    {
        "tree",
        "version",
        "num_class",
        "num_tree_per_iteration",
        "label_index",
        "max_feature_idx",
        "objective",
        "average_output",
        "feature_names",
        "monotone_constraints",
        "feature_infos",
        "tree_sizes",
    }
)
_HEADER_BARE = frozenset({"tree", "average_output"})
_HEADER_REQUIRED = (
    "version",
    "num_class",
    "label_index",
    "max_feature_idx",
    "feature_names",
    "feature_infos",
)
_VERSIONS = frozenset({"v2", "v3", "v4"})

# Objectives LightGBM 4.7's ObjectiveFunction::CreateObjectiveFunction(str) knows, with the
# parameters their ToString writes.
_LGB_OBJECTIVES: dict[str, frozenset[str]] = {
    "regression": frozenset({"sqrt"}),
    "regression_l1": frozenset({"sqrt"}),
    "quantile": frozenset({"sqrt"}),
    "huber": frozenset({"sqrt"}),
    "fair": frozenset({"sqrt"}),
    "poisson": frozenset(),
    "mape": frozenset({"sqrt"}),
    "gamma": frozenset(),
    "tweedie": frozenset(),
    "binary": frozenset({"sigmoid"}),
    "multiclass": frozenset({"num_class"}),
    "multiclassova": frozenset({"num_class", "sigmoid"}),
    "cross_entropy": frozenset(),
    "cross_entropy_lambda": frozenset(),
    "lambdarank": frozenset(),
    "rank_xendcg": frozenset(),
    "custom": frozenset(),
}

# Tree fields: (kind, count) where count is "internal" (num_leaves - 1) or "leaf" (num_leaves).
_I, _F, _S = "int", "finite", "stat"
_TREE_ARRAYS: dict[str, tuple[str, str]] = {
    "split_feature": (_I, "internal"),
    "split_gain": (_S, "internal"),
    "threshold": (_F, "internal"),
    "decision_type": (_I, "internal"),
    "left_child": (_I, "internal"),
    "right_child": (_I, "internal"),
    "leaf_value": (_F, "leaf"),
    "leaf_weight": (_S, "leaf"),
    "leaf_count": (_I, "leaf"),
    "internal_value": (_S, "internal"),
    "internal_weight": (_S, "internal"),
    "internal_count": (_I, "internal"),
    "leaf_const": (_F, "leaf"),
    "num_features": (_I, "leaf"),
}
_TREE_KEYS = frozenset(
    {
        *_TREE_ARRAYS,
        "num_leaves",
        "num_cat",
        "cat_boundaries",
        "cat_threshold",
        "is_linear",
        "shrinkage",
        "leaf_features",
        "leaf_coeff",
    }
)
_TREE_REQUIRED_SPLIT = ("left_child", "right_child", "split_feature", "threshold")

_CATEGORICAL_MASK = 1
_MISSING_NAN = 2
# decision_type: bit 0 categorical, bit 1 default left, bits 2-3 missing type (0, 1 or 2).
_DECISIONS = frozenset(v for v in range(16) if (v >> 2) & 3 <= _MISSING_NAN)
_CATEGORICAL_DECISIONS = frozenset(v for v in _DECISIONS if v & _CATEGORICAL_MASK)
# LightGBM caps num_leaves at 131072; the bound keeps the per-tree work linear in the text.
_MAX_LEAVES = 131072


def lightgbm_model_problem(text: str) -> str | None:
    """Return why LightGBM's parser must not see ``text``, or None when it is well formed.

    ``text`` is a LightGBM model string as ``Booster.model_to_string()`` writes it and as a
    pickled ``lightgbm.basic.Booster`` stores it in its state. The check is pure: it reads
    only ``text`` and imports nothing.

    Parameters:
        text: the model text.

    Returns:
        None when every index LightGBM follows without checking is in range and every tree
        is one tree rooted at node 0; otherwise one message naming the tree and field, what
        was expected and what was found.

    Example:
        >>> lightgbm_model_problem("tree\\n")
        "LightGBM model text: expected at least one 'Tree=' line, got none. ..."
    """
    if not isinstance(text, str):
        return f"LightGBM model text: expected a str, got {type(text).__name__}. {_LIGHTGBM_ADVICE}"
    try:
        _check_lightgbm(text)
    except _Problem as problem:
        return f"LightGBM model text: {problem} {_LIGHTGBM_ADVICE}"
    return None


def _check_lightgbm(text: str) -> None:
    for char, name in (("\x00", "NUL"), ("\r", "carriage return"), ("\t", "tab")):
        at = text.find(char)
        if at >= 0:
            raise _Problem(
                f"expected no {name} character (LightGBM's line parser treats it differently "
                f"from this check), got one at offset {at}."
            )
    lines = text.split("\n")
    header, first_tree = _lgb_header(lines)
    max_feature = _lgb_header_int(header, "max_feature_idx", 0, _INT32_MAX - 1)
    num_class = _lgb_header_int(header, "num_class", 1, _INT32_MAX)
    per_iteration = (
        _lgb_header_int(header, "num_tree_per_iteration", 1, _INT32_MAX)
        if "num_tree_per_iteration" in header
        else num_class
    )
    _lgb_header_int(header, "label_index", -_INT32_MAX, _INT32_MAX)
    if header["version"] not in _VERSIONS:
        raise _Problem(
            f"header field 'version' expected one of {sorted(_VERSIONS)}, "
            f"got {_show(header['version'])}."
        )
    n_features = max_feature + 1
    for key in ("feature_names", "feature_infos"):
        count = len(header[key].split(" "))
        if count != n_features or "" in header[key].split(" "):
            raise _Problem(
                f"header field {key!r} expected {n_features} space-separated entries "
                f"(max_feature_idx + 1), got {count}."
            )
    if "monotone_constraints" in header:
        values = _lgb_numbers(header["monotone_constraints"], _I, n_features)
        if values is None or any(v not in (-1, 0, 1) for v in values):
            raise _Problem(
                f"header field 'monotone_constraints' expected {n_features} values in "
                f"{{-1, 0, 1}}, got {_show(header['monotone_constraints'])}."
            )
    if "objective" in header:
        _lgb_objective(header["objective"], num_class)
    if per_iteration != num_class:
        raise _Problem(
            f"header field 'num_tree_per_iteration' expected to equal num_class ({num_class}), "
            f"got {per_iteration}."
        )

    start = sum(len(line) + 1 for line in lines[:first_tree])
    blocks = _lgb_tree_blocks_fast(text, start, first_tree)
    trees, end_line, offsets, end_offset = blocks or _lgb_tree_blocks(lines, first_tree)
    if "tree_sizes" in header:
        sizes = _lgb_numbers(header["tree_sizes"], _I, len(trees)) if header["tree_sizes"] else []
        if sizes is None or len(sizes) != len(trees):
            raise _Problem(
                f"header field 'tree_sizes' expected {len(trees)} sizes (one per tree), "
                f"got {_show(header['tree_sizes'])}."
            )
        position = 0
        for index, size in enumerate(sizes):
            if position != offsets[index]:
                raise _Problem(
                    f"Tree={index}: header field 'tree_sizes' places the tree at byte "
                    f"{position} after the first tree, expected {offsets[index]}, "
                    "where its 'Tree=' line is."
                )
            position += size
        if position != end_offset:
            raise _Problem(
                f"header field 'tree_sizes' expected to add up to {end_offset} bytes "
                f"(up to 'end of trees'), got {position}."
            )
    if len(trees) % per_iteration:
        raise _Problem(
            f"expected the number of trees to be a multiple of num_tree_per_iteration "
            f"({per_iteration}), got {len(trees)} trees."
        )
    if num_class > max(1, len(trees)):
        raise _Problem(
            f"header field 'num_class' expected at most the number of trees "
            f"({len(trees)}), got {num_class}."
        )
    links: list[tuple[int, list[int], list[int], int]] = []
    for index, fields in enumerate(trees):
        _lgb_tree(index, fields, max_feature, links)
    if not _lgb_links_sound(links):
        for tree, left, right, num_leaves in links:
            _lgb_links(tree, left, right, num_leaves)
    _lgb_tail(lines, end_line)


def _lgb_header(lines: list[str]) -> tuple[dict[str, str], int]:
    if not lines or lines[0] != "tree":
        raise _Problem(f"first line expected 'tree', got {_show(lines[0] if lines else '')}.")
    header: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):
        if line.startswith("Tree="):
            break
        if not line:
            continue
        key, sep, value = line.partition("=")
        if key not in _HEADER_KEYS:
            raise _Problem(
                f"header line {index + 1} expected one of the keys LightGBM writes, "
                f"got {_show(line)}."
            )
        if (not sep) != (key in _HEADER_BARE):
            raise _Problem(f"header line {index + 1} has an unexpected form: {_show(line)}.")
        if "=" in value and key not in ("feature_names", "monotone_constraints"):
            raise _Problem(
                f"header line {index + 1} expected one '=', got several in {_show(line)}."
            )
        if key in header:
            raise _Problem(f"header field {key!r} expected once, got it twice.")
        header[key] = value
    else:
        raise _Problem("expected at least one 'Tree=' line, got none.")
    for key in _HEADER_REQUIRED:
        if key not in header:
            raise _Problem(f"header field {key!r} expected, got no such line.")
    return header, index


def _lgb_header_int(header: Mapping[str, str], key: str, low: int, high: int) -> int:
    value = header[key]
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise _Problem(
            f"header field {key!r} expected an integer in [{low}, {high}], got {_show(value)}."
        )
    return int(value)


def _lgb_objective(value: str, num_class: int) -> None:
    tokens = value.split(" ")
    name, params = tokens[0], tokens[1:]
    allowed = _LGB_OBJECTIVES.get(name)
    if allowed is None:
        raise _Problem(
            f"header field 'objective' expected one of LightGBM's objectives, got {_show(name)}."
        )
    seen: set[str] = set()
    for token in params:
        key, sep, number = token.partition(":")
        if key not in allowed or key in seen or (key == "sqrt") == bool(sep):
            raise _Problem(
                f"header field 'objective' ({name}) has an unexpected parameter {_show(token)}."
            )
        seen.add(key)
        if key == "num_class" and (not _INT.fullmatch(number) or int(number) != num_class):
            raise _Problem(
                f"objective parameter num_class expected {num_class} (the header's num_class), "
                f"got {_show(number)}."
            )
        if key == "sigmoid" and (not _FLOAT.fullmatch(number) or not float(number) > 0):
            raise _Problem(
                f"objective parameter sigmoid expected a positive number, got {_show(number)}."
            )
    if name.startswith("multiclass") and "num_class" not in seen:
        raise _Problem(f"objective {name} expected a num_class parameter, got none.")


_TREE_SECTION = re.compile(r"(?:Tree=(?:0|[1-9][0-9]*)\n(?:[a-z_]+=[ -~]*\n)+\n+)*")
_TREE_LINE = re.compile(r"^(Tree|[a-z_]+)=(.*)$", re.MULTILINE)


def _lgb_tree_blocks_fast(
    text: str, start: int, first: int
) -> tuple[list[dict[str, str]], int, list[int], int] | None:
    """:func:`_lgb_tree_blocks` with C-level scans; None sends the text to the slow reader."""
    end = text.find("\nend of trees\n", start)
    if end < 0:
        return None
    section = text[start : end + 1]
    if not section.isascii() or not _TREE_SECTION.fullmatch(section):
        return None
    trees: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for key, value in _TREE_LINE.findall(section):
        if key == "Tree":
            if value != str(len(trees)):
                return None
            fields = {}
            trees.append(fields)
        elif key in fields or key not in _TREE_KEYS:
            return None
        else:
            fields[key] = value
    offsets = [0]
    at = section.find("\nTree=")
    while at >= 0:
        offsets.append(at + 1)
        at = section.find("\nTree=", at + 1)
    if len(offsets) != len(trees):
        return None
    return trees, first + section.count("\n"), offsets, len(section)


def _lgb_tree_blocks(
    lines: list[str], first: int
) -> tuple[list[dict[str, str]], int, list[int], int]:
    """Split the tree section into blocks; also each 'Tree=' line's byte offset."""
    trees: list[dict[str, str]] = []
    offsets: list[int] = []
    position = 0  # bytes from the first 'Tree=' line; the tree section is ASCII (checked)
    index = first
    count = len(lines)
    while True:
        if index >= count:
            raise _Problem("expected an 'end of trees' line after the trees, got the end.")
        line = lines[index]
        if line == "end of trees":
            return trees, index, offsets, position
        if not line:
            position += 1
            index += 1
            continue
        tree_no = len(trees)
        if line != f"Tree={tree_no}":
            raise _Problem(
                f"expected 'Tree={tree_no}' or 'end of trees' after tree {tree_no - 1}, "
                f"got {_show(line)}."
            )
        if not line.isascii():
            raise _Problem(f"Tree={tree_no}: expected ASCII text.")
        offsets.append(position)
        position += len(line) + 1
        index += 1
        fields: dict[str, str] = {}
        while index < count and lines[index]:
            entry = lines[index]
            if not entry.isascii():
                raise _Problem(f"Tree={tree_no}: expected ASCII text, got {_show(entry)}.")
            key, sep, value = entry.partition("=")
            if not sep or key not in _TREE_KEYS:
                raise _Problem(
                    f"Tree={tree_no}: expected a 'key=value' line with a known key, "
                    f"got {_show(entry)}."
                )
            if key in fields:
                raise _Problem(f"Tree={tree_no}: field {key!r} expected once, got it twice.")
            fields[key] = value
            position += len(entry) + 1
            index += 1
        if index >= count:
            raise _Problem(f"Tree={tree_no}: expected a blank line after the tree, got the end.")
        trees.append(fields)


def _lgb_numbers(value: str, kind: str, count: int) -> list[Any] | None:
    """Check ``count`` space-separated numbers of ``kind``; None when they do not parse.

    Integers come back as a list; decimals are only checked (the syntax excludes inf and
    nan), since no index depends on them, and come back as an empty list.
    """
    if count == 0:
        return [] if value == "" else None
    if value.count(" ") + 1 != count:
        return None
    pattern = _INT_LINE if kind == _I else _FINITE_LINE if kind == _F else _STAT_LINE
    if not pattern.fullmatch(value):
        return None
    if kind != _I:
        return []
    numbers = list(map(int, value.split(" ")))
    if min(numbers) < -(2**31) or max(numbers) > 2**32 - 1:
        return None
    return numbers


def _lgb_token(value: str, index: int) -> str:
    return value.split(" ")[index]


def _lgb_field(
    tree: int, fields: Mapping[str, str], key: str, kind: str, count: int
) -> list[Any] | None:
    if key not in fields:
        return None
    numbers = _lgb_numbers(fields[key], kind, count)
    if numbers is None:
        what = {_I: "integers", _F: "finite numbers", _S: "numbers"}[kind]
        got = fields[key].split(" ") if fields[key] else []
        raise _Problem(
            f"Tree={tree}: field {key!r} expected {count} space-separated {what}, "
            f"got {len(got)} entries: {_show(fields[key])}."
        )
    return numbers


def _lgb_tree(
    tree: int,
    fields: Mapping[str, str],
    max_feature: int,
    links: list[tuple[int, list[int], list[int], int]],
) -> None:
    """Check one tree's fields; queue its links for the whole-model proof."""
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in fields:
            raise _Problem(f"Tree={tree}: field {key!r} expected, got no such line.")
    num_leaves = _lgb_scalar(tree, fields, "num_leaves", 1, _MAX_LEAVES)
    num_cat = _lgb_scalar(tree, fields, "num_cat", 0, max(0, num_leaves - 1))
    is_linear = _lgb_scalar(tree, fields, "is_linear", 0, 1) if "is_linear" in fields else 0
    if "shrinkage" in fields and _lgb_numbers(fields["shrinkage"], _F, 1) is None:
        raise _Problem(
            f"Tree={tree}: field 'shrinkage' expected a finite number, "
            f"got {_show(fields['shrinkage'])}."
        )
    n_internal = num_leaves - 1
    if n_internal == 0 and not is_linear:
        # LightGBM reads nothing else of a one-leaf tree (and writes its other fields empty or
        # with stray counts); predict returns leaf_value[0] without walking.
        _lgb_field(tree, fields, "leaf_value", _F, 1)
        return
    arrays: dict[str, list[Any]] = {}
    for key, (kind, size) in _TREE_ARRAYS.items():
        count = n_internal if size == "internal" else num_leaves
        numbers = _lgb_field(tree, fields, key, kind, count)
        if numbers is not None:
            arrays[key] = numbers
    if n_internal > 0:
        for key in _TREE_REQUIRED_SPLIT:
            if key not in arrays:
                raise _Problem(f"Tree={tree}: field {key!r} expected, got no such line.")
        links.append((tree, arrays["left_child"], arrays["right_child"], num_leaves))
        features = arrays["split_feature"]
        if min(features) < 0 or max(features) > max_feature:
            node, feature = next(
                (i, f) for i, f in enumerate(features) if not 0 <= f <= max_feature
            )
            raise _Problem(
                f"Tree={tree}: split_feature[{node}] expected a feature in "
                f"[0, {max_feature}] (max_feature_idx), got {feature}."
            )
    decisions = arrays.get("decision_type", [0] * n_internal)
    if not _DECISIONS.issuperset(decisions):
        node, decision = next((i, d) for i, d in enumerate(decisions) if d not in _DECISIONS)
        raise _Problem(
            f"Tree={tree}: decision_type[{node}] expected categorical, default-left and "
            f"missing-type bits (0-11, missing type 0, 1 or 2), got {decision}."
        )
    categorical = (
        [i for i, d in enumerate(decisions) if d & _CATEGORICAL_MASK]
        if _CATEGORICAL_DECISIONS.intersection(decisions)
        else []
    )
    if num_cat > 0 or categorical:
        _lgb_categories(tree, fields, num_cat, categorical)
    elif "cat_boundaries" in fields or "cat_threshold" in fields:
        raise _Problem(f"Tree={tree}: cat_boundaries/cat_threshold expected only when num_cat > 0.")
    if is_linear:
        _lgb_linear(tree, fields, arrays, max_feature)
    else:
        for key in ("leaf_const", "num_features", "leaf_features", "leaf_coeff"):
            if key in fields:
                raise _Problem(f"Tree={tree}: field {key!r} expected only when is_linear=1.")


def _lgb_scalar(tree: int, fields: Mapping[str, str], key: str, low: int, high: int) -> int:
    value = fields[key]
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise _Problem(
            f"Tree={tree}: field {key!r} expected an integer in [{low}, {high}], "
            f"got {_show(value)}."
        )
    return int(value)


def _lgb_links_sound(links: list[tuple[int, list[int], list[int], int]]) -> bool:
    """Whole-model proof that every tree's links form one tree rooted at node 0.

    LightGBM numbers a split's new internal node after every existing one, so a parent's id
    is below its internal children's. When every child is in range, every non-root node has
    exactly one parent and internal children come after their parent, following parents
    strictly lowers the id: no cycle, and every node reaches the root. A tree this proof does
    not accept is examined by :func:`_lgb_links`, which also accepts other numberings.
    """
    if not links:
        return True
    n_internal = np.fromiter((n - 1 for _, _, _, n in links), np.int64, len(links))
    children = np.fromiter(
        itertools.chain.from_iterable(itertools.chain(left, right) for _, left, right, _ in links),
        np.int64,
    )
    # Per child slot: its tree's internal count, and the id of the node it hangs from.
    slot_tree = np.repeat(np.arange(len(links)), 2 * n_internal)
    bound = n_internal[slot_tree]
    starts = np.cumsum(2 * n_internal) - 2 * n_internal
    slot = np.arange(children.size) - starts[slot_tree]
    parent = np.where(slot < bound, slot, slot - bound)
    internal = children >= 0
    if not np.all(np.where(internal, (children > parent) & (children < bound), ~children <= bound)):
        return False
    base_internal = (np.cumsum(n_internal) - n_internal)[slot_tree]
    base_leaf = (np.cumsum(n_internal + 1) - (n_internal + 1))[slot_tree]
    total = int(n_internal.sum())
    internal_hits = np.bincount((base_internal + children)[internal], minlength=total)
    leaf_hits = np.bincount((base_leaf + ~children)[~internal], minlength=total + len(links))
    roots = np.zeros(total, dtype=bool)
    roots[np.cumsum(n_internal) - n_internal] = True
    return bool(np.all(internal_hits == (~roots).astype(np.int64)) and np.all(leaf_hits == 1))


def _lgb_links(tree: int, left: list[int], right: list[int], num_leaves: int) -> None:
    n_internal = num_leaves - 1
    internal_parents = [0] * n_internal
    leaf_parents = [0] * num_leaves
    for side, children in (("left_child", left), ("right_child", right)):
        for node, child in enumerate(children):
            if child >= 0:
                if not 1 <= child < n_internal:
                    cause = " (a link back to the root)" if child == 0 else ""
                    raise _Problem(
                        f"Tree={tree}: {side}[{node}] expected a leaf (< 0) or an internal "
                        f"node in [1, {n_internal}), got {child}{cause}."
                    )
                internal_parents[child] += 1
                if internal_parents[child] > 1:
                    raise _Problem(
                        f"Tree={tree}: {side}[{node}] expected a node no other node links to, "
                        f"got internal node {child} a second time (a shared child or a cycle)."
                    )
            else:
                leaf = ~child
                if leaf >= num_leaves:
                    raise _Problem(
                        f"Tree={tree}: {side}[{node}] expected a leaf ~child in "
                        f"[0, {num_leaves}) or an internal node, got {child} (leaf {leaf})."
                    )
                leaf_parents[leaf] += 1
                if leaf_parents[leaf] > 1:
                    raise _Problem(
                        f"Tree={tree}: {side}[{node}] expected a leaf no other node links to, "
                        f"got leaf {leaf} ({child}) a second time."
                    )
    # One parent each; now every internal node must be reached from the root, which also
    # rules out a cycle among nodes the root does not reach.
    seen = [False] * n_internal
    seen[0] = True
    stack = [0]
    reached = 1
    while stack:
        node = stack.pop()
        for child in (left[node], right[node]):
            if child > 0 and not seen[child]:
                seen[child] = True
                reached += 1
                stack.append(child)
    if reached != n_internal:
        node = seen.index(False)
        raise _Problem(
            f"Tree={tree}: internal node {node} expected to be reached from the root, got a "
            "node only a cycle links to."
        )
    if 0 in leaf_parents:
        leaf = leaf_parents.index(0)
        raise _Problem(
            f"Tree={tree}: leaf {leaf} expected one parent, got none (no child entry is {~leaf})."
        )


def _lgb_categories(
    tree: int,
    fields: Mapping[str, str],
    num_cat: int,
    categorical: list[int],
) -> None:
    if num_cat == 0:
        raise _Problem(
            f"Tree={tree}: decision_type[{categorical[0]}] marks a categorical split, "
            "expected num_cat > 0, got num_cat=0."
        )
    for key in ("cat_boundaries", "cat_threshold"):
        if key not in fields:
            raise _Problem(f"Tree={tree}: field {key!r} expected (num_cat > 0), got no line.")
    bounds = _lgb_field(tree, fields, "cat_boundaries", _I, num_cat + 1) or [0]
    size = len(fields["cat_threshold"].split(" ")) if fields["cat_threshold"] else 0
    if bounds[0] != 0 or bounds[-1] != size:
        raise _Problem(
            f"Tree={tree}: cat_boundaries expected to run from 0 to {size} (the length of "
            f"cat_threshold), got {bounds[0]} to {bounds[-1]}."
        )
    for i in range(num_cat):
        if bounds[i + 1] < bounds[i]:
            raise _Problem(
                f"Tree={tree}: cat_boundaries[{i + 1}] expected >= cat_boundaries[{i}] "
                f"({bounds[i]}), got {bounds[i + 1]}."
            )
    words = _lgb_field(tree, fields, "cat_threshold", _I, size)
    if words is None or any(w < 0 for w in words):
        raise _Problem(f"Tree={tree}: cat_threshold expected unsigned 32-bit words.")
    for node in categorical:
        value = float(_lgb_token(fields["threshold"], node))
        if not math.isfinite(value) or value != int(value) or not 0 <= value < num_cat:
            raise _Problem(
                f"Tree={tree}: threshold[{node}] of a categorical split expected a category "
                f"set index in [0, {num_cat}) (num_cat), got {value!r}."
            )


def _lgb_linear(
    tree: int,
    fields: Mapping[str, str],
    arrays: Mapping[str, list[Any]],
    max_feature: int,
) -> None:
    counts = arrays.get("num_features")
    if counts is None:
        if "leaf_features" in fields or "leaf_coeff" in fields:
            raise _Problem(
                f"Tree={tree}: leaf_features/leaf_coeff expected only with num_features."
            )
        return
    if any(c < 0 for c in counts):
        raise _Problem(f"Tree={tree}: num_features expected counts >= 0, got {_show(counts)}.")
    total = sum(counts)
    for key, kind in (("leaf_features", _I), ("leaf_coeff", _F)):
        raw = fields.get(key)
        if raw is None:
            raise _Problem(f"Tree={tree}: field {key!r} expected (is_linear=1), got no line.")
        tokens = raw.split()
        numbers = _lgb_numbers(" ".join(tokens), kind, total)
        if numbers is None:
            raise _Problem(
                f"Tree={tree}: field {key!r} expected {total} numbers (the sum of "
                f"num_features), got {len(tokens)}."
            )
        if key == "leaf_features":
            for i, feature in enumerate(numbers):
                if not 0 <= feature <= max_feature:
                    raise _Problem(
                        f"Tree={tree}: leaf_features[{i}] expected a feature in "
                        f"[0, {max_feature}], got {feature}."
                    )


def _lgb_tail(lines: list[str], end_line: int) -> None:
    last = ""
    for line in reversed(lines):
        if line.strip():
            last = line.strip()
            break
    for offset, line in enumerate(lines[end_line + 1 :], start=end_line + 2):
        if line.startswith("pandas_categorical:") and line.strip() != last:
            raise _Problem(
                f"line {offset}: 'pandas_categorical:' expected only as the last line, "
                "got it earlier."
            )
    if not last.startswith("pandas_categorical:"):
        return
    payload = last[len("pandas_categorical:") :]
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise _Problem(f"pandas_categorical expected JSON, got {_show(payload)}.") from None
    if value is None:
        return
    scalars = (str, int, float, bool)
    if not isinstance(value, list) or not all(
        isinstance(column, list) and all(isinstance(v, scalars) for v in column) for column in value
    ):
        raise _Problem(
            "pandas_categorical expected null or a list of lists of categories, "
            f"got {_show(payload)}."
        )


# ---------------------------------------------------------------------------------------------
# UBJSON as XGBoost writes it
# ---------------------------------------------------------------------------------------------

_MAX_DEPTH = 32
_SCALARS = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q", "d": ">f"}
_TYPED = {"i": "b", "U": "B", "l": "i", "L": "q", "d": "f"}


_OPEN_OBJECT, _CLOSE_OBJECT, _OPEN_ARRAY, _CLOSE_ARRAY = b"{}[]"
_TYPE, _COUNT, _INT64, _STRING = b"$#LS"


def _ubj_decode(data: bytes) -> Any:
    """Decode the UBJSON subset XGBoost writes, strictly; every count is bounded.

    Only what XGBoost's ``UBJReader`` reads is accepted: ``L``-sized strings and keys,
    objects closed by ``}``, arrays either counted (``[#L``), typed (``[$t#L``, with the element
    types XGBoost writes) or closed by ``]``, and the scalar markers it writes. Every length is
    checked against the bytes left before anything is read, nesting stops at
    ``_MAX_DEPTH`` and a key may appear once per object (XGBoost keeps the first, Python the
    last: a duplicate would let the two readings differ).
    """
    end = len(data)
    unpack = struct.unpack_from

    def fail(pos: int, expected: str, got: str) -> _Problem:
        return _Problem(f"UBJSON at byte {pos}: expected {expected}, got {got}.")

    def length(pos: int, what: str, unit: int) -> tuple[int, int]:
        if pos + 9 > end or data[pos] != _INT64:
            got = "the end of the data" if pos + 9 > end else repr(chr(data[pos]))
            raise fail(pos, f"'L' and an int64 {what}", got)
        (count,) = unpack(">q", data, pos + 1)
        pos += 9
        if count < 0 or count * unit > end - pos:
            raise fail(pos, f"a {what} within the {end - pos} bytes left", str(count))
        return count, pos

    def value(pos: int, depth: int) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:
            raise fail(pos, f"nesting at most {_MAX_DEPTH} deep", "deeper nesting")
        if pos >= end:
            raise fail(pos, "a value", "the end of the data")
        marker = data[pos]
        pos += 1
        if marker == _OPEN_OBJECT:
            result: dict[str, Any] = {}
            while True:
                if pos >= end:
                    raise fail(pos, "'}' or a key", "the end of the data")
                if data[pos] == _CLOSE_OBJECT:
                    return result, pos + 1
                size, pos = length(pos, "key length", 1)
                key = data[pos : pos + size].decode("utf-8", errors="surrogateescape")
                if key in result:
                    raise fail(pos, "unique object keys", f"{key!r} twice")
                result[key], pos = value(pos + size, depth + 1)
        if marker == _OPEN_ARRAY:
            if pos < end and data[pos] == _TYPE:
                kind = chr(data[pos + 1]) if pos + 1 < end else ""
                if kind not in _TYPED:
                    raise fail(pos + 1, "a typed-array element type XGBoost writes", repr(kind))
                if pos + 2 >= end or data[pos + 2] != _COUNT:
                    raise fail(pos + 2, "'#' after a typed array's type", "something else")
                code = _TYPED[kind]
                width = struct.calcsize(code)
                count, pos = length(pos + 3, "element count", width)
                if kind == "d":
                    # No index is a float: keep the values as an array, not Python floats.
                    floats = np.frombuffer(data, dtype=">f4", count=count, offset=pos)
                    return floats, pos + count * width
                return unpack(f">{count}{code}", data, pos), pos + count * width
            items: list[Any] = []
            if pos < end and data[pos] == _COUNT:
                count, pos = length(pos + 1, "element count", 1)
                for _ in range(count):
                    item, pos = value(pos, depth + 1)
                    items.append(item)
                return items, pos
            while True:
                if pos >= end:
                    raise fail(pos, "']' or a value", "the end of the data")
                if data[pos] == _CLOSE_ARRAY:
                    return items, pos + 1
                item, pos = value(pos, depth + 1)
                items.append(item)
        scalar = _SCALARS.get(chr(marker))
        if scalar is not None:
            width = struct.calcsize(scalar)
            if pos + width > end:
                raise fail(pos, f"{width} more bytes", "the end of the data")
            return unpack(scalar, data, pos)[0], pos + width
        if marker == _STRING:
            size, pos = length(pos, "string length", 1)
            return data[pos : pos + size].decode("utf-8", errors="surrogateescape"), pos + size
        if chr(marker) in "TF":
            return marker == ord("T"), pos
        if marker == ord("Z"):
            return None, pos
        raise fail(pos - 1, "a UBJSON value marker XGBoost writes", repr(chr(marker)))

    document, stop = value(0, 0)
    if stop != end:
        raise _Problem(f"UBJSON expected to end at byte {stop}, got {end - stop} trailing bytes.")
    return document


def _decode_xgboost(raw: bytes) -> Any:
    if raw[:2] == b'{"' or raw[:1] in (b" ", b"\n"):
        return _decode_json(raw)
    return _ubj_decode(raw)


def _decode_json(raw: bytes) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _Problem(f"JSON expected unique object keys, got {key!r} twice.")
            result[key] = value
        return result

    try:
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _Problem(f"expected UBJSON or JSON, got undecodable data ({error}).") from None
    # Measure nesting without recursion: XGBoost's JSON reader recurses without a limit.
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _Problem(f"JSON expected nesting at most {_MAX_DEPTH} deep, got deeper.")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return document


# ---------------------------------------------------------------------------------------------
# XGBoost model checks
# ---------------------------------------------------------------------------------------------

_XGB_OBJECTIVES = frozenset(
    {
        "reg:squarederror",
        "reg:squaredlogerror",
        "reg:logistic",
        "reg:pseudohubererror",
        "reg:absoluteerror",
        "reg:quantileerror",
        "reg:expectileerror",
        "reg:gamma",
        "reg:tweedie",
        "reg:linear",
        "binary:logistic",
        "binary:logitraw",
        "binary:hinge",
        "count:poisson",
        "survival:cox",
        "survival:aft",
        "multi:softmax",
        "multi:softprob",
        "rank:ndcg",
        "rank:map",
        "rank:pairwise",
    }
)
_MAX_FEATURES = 2**24
_MAX_CATEGORY = 2**24
_ROOT_PARENTS = (-1, _INT32_MAX)
_DELETED_SPLIT = _INT32_MAX


def xgboost_raw_problem(raw: bytes | bytearray) -> str | None:
    """Return why XGBoost's parser must not see ``raw``, or None when it is well formed.

    ``raw`` is what a pickled ``xgboost.core.Booster`` keeps in ``state["handle"]`` (the UBJSON
    snapshot ``{"Config": ..., "Model": ...}``) or what ``Booster.save_raw("ubj")`` or
    ``save_raw("json")`` returns (the model document alone). The check is pure: it reads only
    ``raw`` and imports nothing.

    Parameters:
        raw: the serialized booster.

    Returns:
        None when every index XGBoost follows without checking is in range and every tree is
        one tree rooted at node 0; otherwise one message naming the tree and field.

    Example:
        >>> xgboost_raw_problem(b"{}")
        "XGBoost booster: 'learner' expected an object, got nothing. ..."
    """
    if not isinstance(raw, (bytes, bytearray)):
        return (
            f"XGBoost booster: expected bytes or a bytearray, got {type(raw).__name__}. "
            f"{_XGBOOST_ADVICE}"
        )
    try:
        _check_xgboost(bytes(raw))
    except _Problem as problem:
        return f"XGBoost booster: {problem} {_XGBOOST_ADVICE}"
    return None


def _obj(parent: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        got = "nothing" if value is None else type(value).__name__
        raise _Problem(f"{where}{key!r} expected an object, got {got}.")
    return value


def _seq(parent: Mapping[str, Any], key: str, where: str, kind: type = int) -> Sequence[Any]:
    value = parent.get(key)
    if isinstance(value, np.ndarray):
        if kind is int:
            raise _Problem(f"{where}{key!r} expected an array of ints, got floats.")
        return value  # type: ignore[return-value]  # indexed and sized like a sequence
    if not isinstance(value, (list, tuple)):
        got = "nothing" if value is None else type(value).__name__
        raise _Problem(f"{where}{key!r} expected an array, got {got}.")
    if kind is int:
        ok = all(type(v) is int for v in value)
    else:
        ok = all(type(v) in (int, float) for v in value)
    if not ok:
        raise _Problem(f"{where}{key!r} expected an array of {kind.__name__}s, got other values.")
    return value


def _int_param(parent: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = parent.get(key)
    text = value if isinstance(value, str) else None
    if text is None or not re.fullmatch(r"[0-9]{1,10}", text) or not low <= int(text) <= high:
        raise _Problem(
            f"{where}{key!r} expected an integer string in [{low}, {high}], got {_show(value)}."
        )
    return int(text)


def _check_xgboost(raw: bytes) -> None:
    if not raw:
        raise _Problem("expected a serialized booster, got no bytes.")
    if raw[:1] != b"{":
        raise _Problem(
            f"expected a UBJSON or JSON object (first byte '{{'), got {_show(raw[:8])}; "
            "XGBoost 3.2 no longer reads the old binary format."
        )
    document = _decode_xgboost(raw)
    if not isinstance(document, dict):
        raise _Problem("expected an object at the top level.")
    config: Mapping[str, Any] | None = None
    if "Model" in document:
        config = _obj(document, "Config")
        document = _obj(document, "Model")
    learner = _obj(document, "learner")
    params = _obj(learner, "learner_model_param", "learner: ")
    where = "learner_model_param: "
    num_feature = _int_param(params, "num_feature", where, 0, _MAX_FEATURES)
    num_class = _int_param(params, "num_class", where, 0, _INT32_MAX)
    num_target = (
        _int_param(params, "num_target", where, 1, _INT32_MAX) if "num_target" in params else 1
    )
    if num_class > 1 and num_target > 1:
        raise _Problem(
            f"learner_model_param: expected num_class or num_target to be 1, got "
            f"num_class={num_class} and num_target={num_target}."
        )
    n_groups = max(num_class, num_target, 1)
    _xgb_base_score(params, n_groups)
    for key in ("feature_names", "feature_types"):
        if key in learner:
            names = learner[key]
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                raise _Problem(f"learner: {key!r} expected an array of strings.")
            if len(names) not in (0, num_feature):
                raise _Problem(
                    f"learner: {key!r} expected 0 or {num_feature} entries (num_feature), "
                    f"got {len(names)}."
                )
    objective = _obj(learner, "objective", "learner: ")
    _xgb_objective(objective, num_class, "learner.objective: ")
    booster = _obj(learner, "gradient_booster", "learner: ")
    name = booster.get("name")
    if name == "gbtree":
        _xgb_gbtree(_obj(booster, "model", "gbtree: "), num_feature, n_groups, None)
    elif name == "dart":
        inner = _obj(booster, "gbtree", "dart: ")
        if inner.get("name") != "gbtree":
            raise _Problem(f"dart: gbtree.name expected 'gbtree', got {_show(inner.get('name'))}.")
        weights = _seq(booster, "weight_drop", "dart: ", float)
        _xgb_gbtree(_obj(inner, "model", "dart.gbtree: "), num_feature, n_groups, len(weights))
    elif name == "gblinear":
        model = _obj(booster, "model", "gblinear: ")
        weights = _seq(model, "weights", "gblinear.model: ", float)
        expected = (num_feature + 1) * n_groups
        if len(weights) != expected:
            raise _Problem(
                f"gblinear.model: 'weights' expected {expected} values ((num_feature + 1) * "
                f"output groups), got {len(weights)}."
            )
    else:
        raise _Problem(
            f"gradient_booster.name expected 'gbtree', 'dart' or 'gblinear', got {_show(name)}."
        )
    if config is not None:
        _xgb_config(config, name, num_class, num_feature, num_target)


def _xgb_base_score(params: Mapping[str, Any], n_groups: int) -> None:
    value = params.get("base_score")
    if value is None:
        return
    if not isinstance(value, str):
        raise _Problem(f"learner_model_param: 'base_score' expected a string, got {_show(value)}.")
    number = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:inf|nan)"
    if re.fullmatch(number, value, re.IGNORECASE) and n_groups == 1:
        return
    match = re.fullmatch(rf"\[((?:{number})(?:,(?:{number}))*)\]", value, re.IGNORECASE)
    count = len(match.group(1).split(",")) if match else 0
    if count != n_groups:
        raise _Problem(
            f"learner_model_param: 'base_score' expected {n_groups} values (one per output "
            f"group), got {_show(value)}."
        )


def _xgb_objective(objective: Mapping[str, Any], num_class: int, where: str) -> None:
    name = objective.get("name")
    if name not in _XGB_OBJECTIVES:
        raise _Problem(f"{where}'name' expected one of XGBoost's objectives, got {_show(name)}.")
    if isinstance(name, str) and name.startswith("multi:"):
        param = _obj(objective, "softmax_multiclass_param", where)
        classes = _int_param(param, "num_class", where + "softmax_multiclass_param.", 0, 2**31)
        if classes != num_class:
            raise _Problem(
                f"{where}softmax_multiclass_param.num_class expected {num_class} "
                f"(learner_model_param.num_class), got {classes}."
            )


def _xgb_config(
    config: Mapping[str, Any], name: object, num_class: int, num_feature: int, num_target: int
) -> None:
    learner = _obj(config, "learner", "Config: ")
    if "learner_model_param" in learner:
        params = _obj(learner, "learner_model_param", "Config.learner: ")
        where = "Config.learner.learner_model_param: "
        for key, expected in (
            ("num_feature", num_feature),
            ("num_class", num_class),
            ("num_target", num_target),
        ):
            if key in params and _int_param(params, key, where, 0, 2**32) != expected:
                raise _Problem(
                    f"{where}{key!r} expected {expected} (the model's), got {params[key]!r}."
                )
    if "objective" in learner:
        _xgb_objective(
            _obj(learner, "objective", "Config.learner: "), num_class, "Config.learner.objective: "
        )
    if "gradient_booster" in learner:
        booster = _obj(learner, "gradient_booster", "Config.learner: ")
        if booster.get("name") != name:
            raise _Problem(
                f"Config.learner.gradient_booster.name expected {name!r} (the model's), "
                f"got {_show(booster.get('name'))}."
            )


def _xgb_gbtree(
    model: Mapping[str, Any], num_feature: int, n_groups: int, n_weights: int | None
) -> None:
    where = "gbtree_model_param: "
    params = _obj(model, "gbtree_model_param", "gbtree.model: ")
    num_trees = _int_param(params, "num_trees", where, 0, _INT32_MAX)
    parallel = _int_param(params, "num_parallel_tree", where, 1, _INT32_MAX)
    trees = model.get("trees")
    if not isinstance(trees, list) or not all(isinstance(t, dict) for t in trees):
        raise _Problem("gbtree.model: 'trees' expected an array of objects.")
    if len(trees) != num_trees:
        raise _Problem(
            f"gbtree_model_param: 'num_trees' expected {len(trees)} (the trees present), "
            f"got {num_trees}."
        )
    if n_weights is not None and n_weights != num_trees:
        raise _Problem(
            f"dart: 'weight_drop' expected {num_trees} weights (one per tree), got {n_weights}."
        )
    info = _seq(model, "tree_info", "gbtree.model: ")
    if len(info) != num_trees:
        raise _Problem(
            f"gbtree.model: 'tree_info' expected {num_trees} entries (one per tree), "
            f"got {len(info)}."
        )
    if num_trees and n_groups > num_trees:
        raise _Problem(
            f"learner_model_param: expected at most {num_trees} output groups (one tree each), "
            f"got {n_groups}."
        )
    if "cats" in model:
        _xgb_cats(_obj(model, "cats", "gbtree.model: "), num_feature)
    leaf_size: int | None = None
    for index, tree in enumerate(trees):
        size = _xgb_tree(index, tree, num_feature, n_groups)
        if leaf_size is not None and size != leaf_size:
            raise _Problem(
                f"tree {index}: tree_param.size_leaf_vector expected {leaf_size} like tree 0, "
                f"got {size}."
            )
        leaf_size = size
        groups = 1 if size > 1 else n_groups
        if not 0 <= info[index] < groups:
            raise _Problem(
                f"tree {index}: tree_info[{index}] expected an output group in [0, {groups}), "
                f"got {info[index]}."
            )
    if "iteration_indptr" in model:
        # Every boosting round adds num_parallel_tree trees per output group (one group for
        # multi-target trees); prediction slices the tree list by these offsets.
        per_round = parallel * (1 if (leaf_size or 1) > 1 else n_groups)
        indptr = _seq(model, "iteration_indptr", "gbtree.model: ")
        expected = list(range(0, num_trees + 1, per_round))
        if list(indptr) != expected or expected[-1] != num_trees:
            raise _Problem(
                f"gbtree.model: 'iteration_indptr' expected {_show(expected)} ({per_round} trees "
                f"per round, {num_trees} trees), got {_show(list(indptr))}."
            )


def _xgb_cats(cats: Mapping[str, Any], num_feature: int) -> None:
    where = "gbtree.model.cats: "
    enc = cats.get("enc")
    if not isinstance(enc, list) or not all(isinstance(e, dict) for e in enc):
        raise _Problem(f"{where}'enc' expected an array of objects.")
    segments = _seq(cats, "feature_segments", where)
    order = _seq(cats, "sorted_idx", where)
    if not enc:
        if segments or order:
            raise _Problem(f"{where}expected no feature_segments or sorted_idx without 'enc'.")
        return
    if len(enc) != num_feature or len(segments) != num_feature + 1:
        raise _Problem(
            f"{where}expected {num_feature} 'enc' entries and {num_feature + 1} "
            f"feature_segments (num_feature), got {len(enc)} and {len(segments)}."
        )
    if segments[0] != 0 or segments[-1] != len(order):
        raise _Problem(
            f"{where}'feature_segments' expected to run from 0 to {len(order)} "
            f"(len(sorted_idx)), got {segments[0]} to {segments[-1]}."
        )
    for feature, entry in enumerate(enc):
        values = _seq(entry, "values", f"{where}enc[{feature}]: ")
        if "offsets" in entry:
            offsets = _seq(entry, "offsets", f"{where}enc[{feature}]: ")
            n_cats = max(len(offsets) - 1, 0)
            if offsets and (
                offsets[0] != 0
                or offsets[-1] != len(values)
                or any(b < a for a, b in itertools.pairwise(offsets))
            ):
                raise _Problem(
                    f"{where}enc[{feature}].offsets expected to run from 0 to {len(values)} "
                    "without decreasing."
                )
            if not offsets and values:
                raise _Problem(f"{where}enc[{feature}] expected no values without offsets.")
        else:
            kind = entry.get("type")
            if type(kind) is not int or not 7 <= kind <= 16:
                raise _Problem(
                    f"{where}enc[{feature}].type expected a numeric category type code "
                    f"(7-16), got {_show(kind)}."
                )
            n_cats = len(values)
        begin, end = segments[feature], segments[feature + 1]
        if end - begin != n_cats:
            raise _Problem(
                f"{where}feature_segments[{feature}:{feature + 2}] expected to span {n_cats} "
                f"categories, got {begin} to {end}."
            )
        if sorted(order[begin:end]) != list(range(n_cats)):
            raise _Problem(
                f"{where}sorted_idx[{begin}:{end}] expected a permutation of 0..{n_cats - 1}."
            )


def _xgb_tree(index: int, tree: Mapping[str, Any], num_feature: int, n_groups: int) -> int:
    where = f"tree {index}: "
    if tree.get("id") != index:
        raise _Problem(f"{where}'id' expected {index} (its position), got {_show(tree.get('id'))}.")
    params = _obj(tree, "tree_param", where)
    n = _int_param(params, "num_nodes", where + "tree_param.", 1, _INT32_MAX)
    size = (
        _int_param(params, "size_leaf_vector", where + "tree_param.", 0, _INT32_MAX)
        if "size_leaf_vector" in params
        else 1
    )
    deleted = (
        _int_param(params, "num_deleted", where + "tree_param.", 0, n)
        if "num_deleted" in params
        else 0
    )
    tree_features = _int_param(params, "num_feature", where + "tree_param.", 0, _MAX_FEATURES)
    if tree_features != num_feature:
        raise _Problem(
            f"{where}tree_param.num_feature expected {num_feature} "
            f"(learner_model_param.num_feature), got {tree_features}."
        )
    multi = size > 1
    if multi and size != n_groups:
        raise _Problem(
            f"{where}tree_param.size_leaf_vector expected {n_groups} (the output groups), "
            f"got {size}."
        )
    arrays: dict[str, Sequence[Any]] = {}
    for key, kind in (
        ("left_children", int),
        ("right_children", int),
        ("parents", int),
        ("split_indices", int),
        ("default_left", int),
        ("split_conditions", float),
        ("loss_changes", float),
        ("sum_hessian", float),
        ("base_weights", float),
    ):
        if multi and key in ("loss_changes", "sum_hessian") and key not in tree:
            continue
        values = _seq(tree, key, where, kind)
        expected = n * size if key == "base_weights" else n
        if len(values) != expected:
            raise _Problem(
                f"{where}{key!r} expected {expected} entries (tree_param.num_nodes"
                f"{' * size_leaf_vector' if expected != n else ''}), got {len(values)}."
            )
        arrays[key] = values
    left, right, parents = arrays["left_children"], arrays["right_children"], arrays["parents"]
    leaves = _xgb_links(where, left, right, parents, arrays, n, deleted, multi)
    splits = arrays["split_indices"]
    for node in range(n):
        if left[node] != -1 and not 0 <= splits[node] < num_feature:
            raise _Problem(
                f"{where}split_indices[{node}] expected a feature in [0, {num_feature}) "
                f"(num_feature), got {splits[node]}."
            )
    if multi:
        weights = _seq(tree, "leaf_weights", where, float)
        if len(weights) != leaves * size:
            raise _Problem(
                f"{where}'leaf_weights' expected {leaves * size} entries (leaves * "
                f"size_leaf_vector), got {len(weights)}."
            )
    if "split_type" in tree:
        _xgb_categories(where, tree, left, n)
    return size


def _xgb_links(
    where: str,
    left: Sequence[int],
    right: Sequence[int],
    parents: Sequence[int],
    arrays: Mapping[str, Sequence[Any]],
    n: int,
    deleted: int,
    multi: bool,
) -> int:
    """Check the tree's links; return its number of leaves."""
    if parents[0] not in _ROOT_PARENTS:
        raise _Problem(
            f"{where}parents[0] expected the root's marker ({_INT32_MAX} or -1), got {parents[0]}."
        )
    for node in range(1, n):
        if not 0 <= parents[node] < n:
            raise _Problem(
                f"{where}parents[{node}] expected a node in [0, {n}), got {parents[node]}."
            )
    leaf_slots: list[int] = []
    has_parent = [False] * n
    for node in range(n):
        lc, rc = left[node], right[node]
        if lc == -1:
            if multi:
                leaf_slots.append(rc)
            elif rc != -1:
                raise _Problem(
                    f"{where}right_children[{node}] expected -1 for a leaf "
                    f"(left_children[{node}] is -1), got {rc} (a half leaf)."
                )
            continue
        if not 1 <= lc < n:
            cause = " (a link back to the root)" if lc == 0 else ""
            raise _Problem(
                f"{where}left_children[{node}] expected -1 (a leaf) or a node in [1, {n}), "
                f"got {lc}{cause}."
            )
        if rc != lc + 1:
            raise _Problem(
                f"{where}right_children[{node}] expected {lc + 1} (left_children + 1, which "
                f"the predictor assumes), got {rc}."
            )
        if rc >= n:
            raise _Problem(f"{where}right_children[{node}] expected a node in [1, {n}), got {rc}.")
        for side, child in (("left_children", lc), ("right_children", rc)):
            if has_parent[child]:
                raise _Problem(
                    f"{where}{side}[{node}] expected a node no other node links to, got node "
                    f"{child} a second time (a shared child or a cycle)."
                )
            has_parent[child] = True
            if parents[child] != node:
                raise _Problem(
                    f"{where}parents[{child}] expected {node} (the node linking to it), "
                    f"got {parents[child]}."
                )
    # Walk from the root; anything not reached must be a node the pruner marked deleted.
    seen = [False] * n
    seen[0] = True
    stack = [0]
    reached = 1
    while stack:
        node = stack.pop()
        if left[node] != -1:
            for child in (left[node], right[node]):
                if not seen[child]:
                    seen[child] = True
                    reached += 1
                    stack.append(child)
    if n - reached != deleted:
        raise _Problem(
            f"{where}expected every node but the {deleted} deleted ones (tree_param."
            f"num_deleted) to be reached from the root, got {n - reached} unreached."
        )
    splits, default_left = arrays["split_indices"], arrays["default_left"]
    for node in range(n):
        if not seen[node] and (splits[node] != _DELETED_SPLIT or default_left[node] != 1):
            raise _Problem(
                f"{where}node {node} expected to be reached from the root or marked deleted, "
                "got a node only a cycle or nothing links to."
            )
    if multi:
        reached_leaves = [right[node] for node in range(n) if seen[node] and left[node] == -1]
        if sorted(reached_leaves) != list(range(len(reached_leaves))) or len(reached_leaves) != len(
            leaf_slots
        ):
            raise _Problem(
                f"{where}right_children of the leaves expected the leaf indices "
                f"0..{len(leaf_slots) - 1} once each (multi-target tree), got "
                f"{_show(sorted(leaf_slots))}."
            )
        return len(leaf_slots)
    return sum(1 for node in range(n) if left[node] == -1)


def _xgb_categories(where: str, tree: Mapping[str, Any], left: Sequence[int], n: int) -> None:
    split_type = _seq(tree, "split_type", where)
    if len(split_type) != n or any(t not in (0, 1) for t in split_type):
        raise _Problem(
            f"{where}'split_type' expected {n} entries (num_nodes) of 0 or 1, "
            f"got {len(split_type)} entries."
        )
    nodes = _seq(tree, "categories_nodes", where)
    segments = _seq(tree, "categories_segments", where)
    sizes = _seq(tree, "categories_sizes", where)
    categories = _seq(tree, "categories", where)
    if len(segments) != len(nodes) or len(sizes) != len(nodes):
        raise _Problem(
            f"{where}categories_segments and categories_sizes expected {len(nodes)} entries "
            f"(one per categorical node), got {len(segments)} and {len(sizes)}."
        )
    marked = [node for node in range(n) if split_type[node] == 1 and left[node] != -1]
    if list(nodes) != marked:
        raise _Problem(
            f"{where}'categories_nodes' expected the internal nodes split_type marks "
            f"categorical, in order ({_show(marked)}), got {_show(list(nodes))}."
        )
    for k, (begin, size) in enumerate(zip(segments, sizes, strict=True)):
        if begin < 0 or size < 1 or begin + size > len(categories):
            raise _Problem(
                f"{where}categories_segments[{k}]={begin} with categories_sizes[{k}]={size} "
                f"expected a non-empty range within the {len(categories)} categories."
            )
    for j, category in enumerate(categories):
        if not 0 <= category < _MAX_CATEGORY:
            raise _Problem(
                f"{where}categories[{j}] expected a category in [0, {_MAX_CATEGORY}), "
                f"got {category}."
            )


# ---------------------------------------------------------------------------------------------
# Pickle BUILD states
# ---------------------------------------------------------------------------------------------


def booster_state_problem(obj_type_fullname: str, state: object) -> str | None:
    """Return why a booster's BUILD ``state`` must not reach its ``__setstate__``, or None.

    Call it right before BUILD (pickle) or before constructing a booster from a skops state.
    For ``lightgbm.basic.Booster`` the model text is ``state["_handle"]`` (falling back to
    ``state["handle"]`` exactly as ``Booster.__setstate__`` does); for ``xgboost.core.Booster``
    it is ``state["handle"]``. Any other class name returns None.

    Parameters:
        obj_type_fullname: the fully qualified name of the class being built.
        state: the state BUILD would pass to ``__setstate__``.

    Returns:
        None when the class is not one of the two boosters, when the state carries no model
        (the library then loads nothing), or when the model is well formed; otherwise a
        message saying what is wrong and what to do.

    Example:
        >>> booster_state_problem("xgboost.core.Booster", {"handle": None}) is None
        True
    """
    if obj_type_fullname == LIGHTGBM_BOOSTER:
        if not isinstance(state, dict):
            return (
                f"LightGBM Booster state: expected a dict, got {type(state).__name__}. "
                f"{_LIGHTGBM_ADVICE}"
            )
        text = state.get("_handle", state.get("handle", None))
        if text is None:
            return None
        if not isinstance(text, str):
            return (
                "LightGBM Booster state: '_handle' expected the model text (a str), got "
                f"{type(text).__name__}. {_LIGHTGBM_ADVICE}"
            )
        return lightgbm_model_problem(text)
    if obj_type_fullname == XGBOOST_BOOSTER:
        if not isinstance(state, dict) or "handle" not in state:
            got = type(state).__name__ if not isinstance(state, dict) else "a dict without it"
            return (
                f"XGBoost Booster state: expected a dict with a 'handle' entry, got {got}. "
                f"{_XGBOOST_ADVICE}"
            )
        raw = state["handle"]
        if raw is None:
            return None
        if not isinstance(raw, (bytes, bytearray)):
            return (
                "XGBoost Booster state: 'handle' expected the serialized booster (a bytearray),"
                f" got {type(raw).__name__}. {_XGBOOST_ADVICE}"
            )
        return xgboost_raw_problem(raw)
    return None
