"""Booster validation: real LightGBM and XGBoost models pass; mutated ones are refused.

The proof that matters is at the end: every mutated model is also handed to the real library,
but only in a separate process (forked per model, with an address-space limit and a timeout),
to show which mutations crash or hang LightGBM and XGBoost, that the validator refuses all of
those, and that it accepts none that crash. Mutated bytes are never loaded in this process.
"""

from __future__ import annotations

import json
import os
import random
import re
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from modelkeep.safety.boosters import (
    booster_state_problem,
    lightgbm_model_problem,
    xgboost_raw_problem,
)

N_FEATURES = 5

# ---------------------------------------------------------------------------------------------
# Real models
# ---------------------------------------------------------------------------------------------


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    binary = (x[:, 0] + x[:, 1] > 0).astype(int)
    three = np.digitize(x[:, 0] + 0.5 * x[:, 2], [-0.5, 0.5])
    return x, binary, three


def _frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "d"])
    frame["plan"] = pd.Categorical(rng.choice(["basic", "plus", "pro", "team", "edu"], n))
    frame["region"] = pd.Categorical(rng.choice([11, 5, 7, 9], n))
    target = ((frame.plan == "pro") | (frame.plan == "edu") | (frame.a > 1)).astype(int)
    return frame, target.to_numpy()


@cache
def lightgbm_models() -> dict[str, str]:
    """Model texts of real LightGBM models, by name."""
    x, binary, three = _data()
    frame, target = _frame()
    common: dict[str, Any] = {"n_estimators": 4, "verbose": -1, "n_jobs": 1}
    models: dict[str, Any] = {
        "classifier-binary": lgb.LGBMClassifier(num_leaves=4, **common).fit(x, binary),
        "classifier-binary-31-leaves": lgb.LGBMClassifier(num_leaves=31, **common).fit(x, binary),
        "classifier-multiclass": lgb.LGBMClassifier(num_leaves=6, **common).fit(x, three),
        "classifier-categorical": lgb.LGBMClassifier(
            num_leaves=8, min_data_per_group=5, cat_smooth=1, **common
        ).fit(frame, target),
        "classifier-linear-tree": lgb.LGBMClassifier(num_leaves=6, linear_tree=True, **common).fit(
            x, binary
        ),
        "regressor": lgb.LGBMRegressor(num_leaves=8, **common).fit(x, x[:, 0] * 2 + x[:, 1]),
        "regressor-one-leaf": lgb.LGBMRegressor(min_child_samples=1000, **common).fit(x, x[:, 0]),
    }
    texts = {name: model.booster_.model_to_string() for name, model in models.items()}
    texts["train-multiclassova"] = lgb.train(
        {"objective": "multiclassova", "num_class": 3, "num_leaves": 5, "verbose": -1},
        lgb.Dataset(x, three),
        num_boost_round=3,
    ).model_to_string()
    texts["train-regression-sqrt"] = lgb.train(
        {"objective": "regression", "reg_sqrt": True, "num_leaves": 5, "verbose": -1},
        lgb.Dataset(x, np.abs(x[:, 0])),
        num_boost_round=3,
    ).model_to_string()
    # A pickled Booster keeps exactly this text in its state.
    state = models["classifier-categorical"].booster_.__getstate__()
    assert state["_handle"] == texts["classifier-categorical"]
    return texts


@cache
def xgboost_models() -> dict[str, bytes]:
    """Serialized real XGBoost boosters, by name: UBJSON model files and pickled handles."""
    x, binary, three = _data()
    frame, target = _frame()
    common: dict[str, Any] = {"n_estimators": 4, "max_depth": 3, "n_jobs": 1}
    models: dict[str, Any] = {
        "classifier-binary": xgb.XGBClassifier(**common).fit(x, binary),
        "classifier-multiclass": xgb.XGBClassifier(**common).fit(x, three),
        "classifier-categorical": xgb.XGBClassifier(enable_categorical=True, **common).fit(
            frame, target
        ),
        "classifier-dart": xgb.XGBClassifier(booster="dart", **common).fit(x, three),
        "regressor": xgb.XGBRegressor(**common).fit(x, x[:, 0] * 2 + x[:, 1]),
        "regressor-multi-output-tree": xgb.XGBRegressor(
            multi_strategy="multi_output_tree", **common
        ).fit(x, np.c_[x[:, 0], x[:, 1]]),
        "regressor-parallel-trees": xgb.XGBRegressor(num_parallel_tree=3, **common).fit(x, x[:, 0]),
        "regressor-gblinear": xgb.XGBRegressor(booster="gblinear", n_estimators=3).fit(x, x[:, 0]),
    }
    boosters = {name: model.get_booster() for name, model in models.items()}
    boosters["train-binary"] = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(x, binary),
        num_boost_round=3,
    )
    raws: dict[str, bytes] = {}
    for name, booster in boosters.items():
        raws[f"{name}/ubj"] = bytes(booster.save_raw("ubj"))
        raws[f"{name}/json"] = bytes(booster.save_raw("json"))
        raws[f"{name}/pickle-handle"] = bytes(booster.__getstate__()["handle"])
    return raws


@pytest.mark.parametrize("name", sorted(lightgbm_models()), ids=str)
def test_real_lightgbm_models_pass(name: str) -> None:
    assert lightgbm_model_problem(lightgbm_models()[name]) is None


@pytest.mark.parametrize("name", sorted(xgboost_models()), ids=str)
def test_real_xgboost_models_pass(name: str) -> None:
    assert xgboost_raw_problem(xgboost_models()[name]) is None


def test_real_models_exercise_categorical_and_linear_fields() -> None:
    """The fixtures really contain the fields the categorical and linear checks cover."""
    lgb_text = lightgbm_models()["classifier-categorical"]
    assert re.search(r"^num_cat=[1-9]", lgb_text, re.MULTILINE)
    assert re.search(r"^num_features=.*[1-9]", lightgbm_models()["classifier-linear-tree"], re.M)
    xgb_doc = json.loads(xgboost_models()["classifier-categorical/json"])
    trees = xgb_doc["learner"]["gradient_booster"]["model"]["trees"]
    assert any(tree["categories_nodes"] for tree in trees)


def test_booster_state_problem_reads_the_bytes_setstate_reads() -> None:
    text = lightgbm_models()["classifier-binary"]
    raw = xgboost_models()["classifier-binary/pickle-handle"]
    assert booster_state_problem("lightgbm.basic.Booster", {"_handle": text}) is None
    assert booster_state_problem("lightgbm.basic.Booster", {"handle": text}) is None
    assert booster_state_problem("lightgbm.basic.Booster", {"_handle": None}) is None
    assert booster_state_problem("xgboost.core.Booster", {"handle": bytearray(raw)}) is None
    assert booster_state_problem("xgboost.core.Booster", {"handle": None}) is None
    assert booster_state_problem("sklearn.tree._tree.Tree", {"handle": b"junk"}) is None

    broken = text.replace("left_child=1", "left_child=0", 1)
    assert "left_child[0]" in (
        booster_state_problem("lightgbm.basic.Booster", {"_handle": broken}) or ""
    )
    # __setstate__ prefers "_handle" and falls back to "handle", as the check does.
    assert booster_state_problem("lightgbm.basic.Booster", {"handle": broken}) is not None
    assert booster_state_problem("lightgbm.basic.Booster", {"_handle": 3}) == (
        "LightGBM Booster state: '_handle' expected the model text (a str), got int. The model "
        "text is malformed or was tampered with, so it was not handed to LightGBM's parser; "
        "save the model again with a trusted LightGBM."
    )
    assert booster_state_problem("xgboost.core.Booster", {"handle": np.zeros(8, np.uint8)}) == (
        "XGBoost Booster state: 'handle' expected the serialized booster (a bytearray), got "
        "ndarray. The booster bytes are malformed or were tampered with, so they were not "
        "handed to XGBoost's parser; save the model again with a trusted XGBoost."
    )
    assert "'handle' entry" in (booster_state_problem("xgboost.core.Booster", {}) or "")
    assert "expected a dict" in (booster_state_problem("lightgbm.basic.Booster", [text]) or "")


# ---------------------------------------------------------------------------------------------
# LightGBM text surgery
# ---------------------------------------------------------------------------------------------


def _split_lgb(text: str) -> tuple[list[str], list[list[str]], str]:
    """Header lines, each tree's lines (without 'Tree=i' and blank lines), and the rest."""
    head, _, rest = text.partition("\nTree=0\n")
    body, _, tail = rest.partition("\nend of trees\n")
    trees = re.split(r"\n+Tree=\d+\n", body)
    return head.split("\n"), [t.strip("\n").split("\n") for t in trees], tail


def _join_lgb(header: list[str], trees: list[list[str]], tail: str, *, sizes: bool = True) -> str:
    """Reassemble model text as LightGBM writes it, with tree_sizes recomputed."""
    blocks = [f"Tree={i}\n" + "\n".join(lines) + "\n\n\n" for i, lines in enumerate(trees)]
    if sizes:
        header = [
            f"tree_sizes={' '.join(str(len(b)) for b in blocks)}"
            if line.startswith("tree_sizes=")
            else line
            for line in header
        ]
    return "\n".join(header) + "\n" + "".join(blocks) + "end of trees\n" + tail


def _field(lines: list[str], key: str) -> list[str]:
    for line in lines:
        if line.startswith(key + "="):
            value = line[len(key) + 1 :]
            return value.split(" ") if value else []
    raise KeyError(key)


def _set(lines: list[str], key: str, values: list[Any]) -> list[str]:
    return [
        f"{key}={' '.join(str(v) for v in values)}" if line.startswith(key + "=") else line
        for line in lines
    ]


def _lgb_edit(text: str, tree: int, key: str, change: Callable[[list[str]], list[Any]]) -> str:
    header, trees, tail = _split_lgb(text)
    trees[tree] = _set(trees[tree], key, change(_field(trees[tree], key)))
    return _join_lgb(header, trees, tail)


def test_split_and_join_round_trip() -> None:
    for text in lightgbm_models().values():
        assert _join_lgb(*_split_lgb(text)) == text


def _replace(values: list[str], index: int, new: Any) -> list[Any]:
    out: list[Any] = list(values)
    out[index] = new
    return out


LGB_CASES: list[tuple[str, Callable[[str], str], str]] = [
    (
        "back-link-to-root",
        lambda t: _lgb_edit(t, 3, "right_child", lambda v: _replace(v, 1, 0)),
        "LightGBM model text: Tree=3: right_child[1] expected a leaf (< 0) or an internal node "
        "in [1, 3), got 0 (a link back to the root).",
    ),
    (
        "leaf-out-of-range",
        lambda t: _lgb_edit(t, 0, "left_child", lambda v: _replace(v, 2, -9)),
        "LightGBM model text: Tree=0: left_child[2] expected a leaf ~child in [0, 4) or an "
        "internal node, got -9 (leaf 8).",
    ),
    (
        "split-feature-out-of-range",
        lambda t: _lgb_edit(t, 2, "split_feature", lambda v: _replace(v, 0, 5)),
        "LightGBM model text: Tree=2: split_feature[0] expected a feature in [0, 4] "
        "(max_feature_idx), got 5.",
    ),
    (
        "truncated-leaf-values",
        lambda t: _lgb_edit(t, 1, "leaf_value", lambda v: v[:-1]),
        "LightGBM model text: Tree=1: field 'leaf_value' expected 4 space-separated finite "
        "numbers, got 3 entries:",
    ),
    (
        "tree-sizes-lie",
        lambda t: re.sub(r"tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m[1]) + 7}", t),
        "LightGBM model text: Tree=1: header field 'tree_sizes' places the tree at byte",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "message"), LGB_CASES, ids=[c[0] for c in LGB_CASES])
def test_lightgbm_messages(name: str, mutate: Callable[[str], str], message: str) -> None:
    problem = lightgbm_model_problem(mutate(lightgbm_models()["classifier-binary"]))
    assert problem is not None
    assert problem.startswith(message), problem
    assert problem.endswith("save the model again with a trusted LightGBM.")


def test_lightgbm_refuses_bad_header_and_characters() -> None:
    text = lightgbm_models()["classifier-multiclass"]
    cases = {
        "num_class=3": "num_class=4",
        "num_tree_per_iteration=3": "num_tree_per_iteration=0",
        "objective=multiclass num_class:3": "objective=multiclass num_class:7",
        "max_feature_idx=4": "max_feature_idx=9",
        "version=v4": "version=v9",
    }
    for old, new in cases.items():
        assert old in text
        assert lightgbm_model_problem(text.replace(old, new, 1)) is not None, new
    assert "objective=" in text
    assert (
        lightgbm_model_problem(text.replace("objective=multiclass", "objective=evil")) is not None
    )
    assert lightgbm_model_problem(text.replace("\n", "\r\n")) is not None
    assert lightgbm_model_problem(text + "\x00") is not None
    assert lightgbm_model_problem(text.replace("end of trees", "")) is not None
    assert lightgbm_model_problem(b"tree\n") is not None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Random mutations
# ---------------------------------------------------------------------------------------------


def _lgb_mutations(text: str, rng: random.Random, count: int) -> list[tuple[str, str]]:
    header, trees, tail = _split_lgb(text)
    max_feature = int(_field(header, "max_feature_idx")[0])
    out: list[tuple[str, str]] = []
    split_trees = [i for i, t in enumerate(trees) if int(_field(t, "num_leaves")[0]) > 2]
    kinds = [
        "back-link",
        "self-loop",
        "internal-out-of-range",
        "leaf-out-of-range",
        "shared-child",
        "swap-to-earlier",
        "split-feature",
        "num-leaves-lie",
        "truncated-array",
        "decision-type",
        "categorical-bit",
        "cat-threshold",
        "cat-boundaries",
        "num-cat-lie",
        "linear-features",
        "tree-sizes",
    ]
    while len(out) < count:
        kind = rng.choice(kinds)
        index = rng.choice(split_trees)
        lines = list(trees[index])
        n = int(_field(lines, "num_leaves")[0])
        side = rng.choice(["left_child", "right_child"])
        node = rng.randrange(n - 1)
        children = _field(lines, side)
        if kind == "back-link":
            lines = _set(lines, side, _replace(children, node, 0))
        elif kind == "self-loop":
            lines = _set(lines, side, _replace(children, node, node))
        elif kind == "internal-out-of-range":
            lines = _set(lines, side, _replace(children, node, n - 1 + rng.randrange(1000)))
        elif kind == "leaf-out-of-range":
            lines = _set(lines, side, _replace(children, node, -n - 1 - rng.randrange(10**6)))
        elif kind == "shared-child":
            other = _field(lines, "left_child" if side == "right_child" else "right_child")
            lines = _set(lines, side, _replace(children, node, rng.choice(other)))
        elif kind == "swap-to-earlier":
            lines = _set(lines, side, _replace(children, node, rng.randrange(max(node, 1))))
        elif kind == "split-feature":
            bad = rng.choice([max_feature + 1 + rng.randrange(10**6), -1 - rng.randrange(10)])
            lines = _set(
                lines, "split_feature", _replace(_field(lines, "split_feature"), node, bad)
            )
        elif kind == "num-leaves-lie":
            lines = _set(lines, "num_leaves", [n + rng.choice([-2, -1, 1, 2, 1000])])
        elif kind == "truncated-array":
            key = rng.choice(
                [
                    "left_child",
                    "right_child",
                    "split_feature",
                    "threshold",
                    "leaf_value",
                    "decision_type",
                ]
            )
            lines = _set(lines, key, _field(lines, key)[: -rng.randint(1, 2)])
        elif kind == "decision-type":
            bad = rng.choice([12, 13, 16, 64, 127, -1])
            lines = _set(
                lines, "decision_type", _replace(_field(lines, "decision_type"), node, bad)
            )
        elif kind == "categorical-bit":
            values = _field(lines, "decision_type")
            lines = _set(lines, "decision_type", _replace(values, node, int(values[node]) | 1))
        elif kind in ("cat-threshold", "cat-boundaries", "num-cat-lie"):
            num_cat = int(_field(lines, "num_cat")[0])
            if num_cat == 0:
                continue
            if kind == "num-cat-lie":
                lines = _set(lines, "num_cat", [num_cat + rng.choice([-1, 1, 50])])
            elif kind == "cat-threshold":
                cats = [i for i, d in enumerate(_field(lines, "decision_type")) if int(d) & 1]
                bad = rng.choice([num_cat, num_cat + 7, -1, 10**6])
                lines = _set(
                    lines, "threshold", _replace(_field(lines, "threshold"), rng.choice(cats), bad)
                )
            else:
                bounds = _field(lines, "cat_boundaries")
                at = rng.randrange(len(bounds))
                lines = _set(
                    lines,
                    "cat_boundaries",
                    _replace(bounds, at, int(bounds[at]) + rng.choice([-3, 5, 10**6])),
                )
        elif kind == "linear-features":
            if "is_linear=1" not in lines:
                continue
            counts = _field(lines, "num_features")
            if not any(int(c) for c in counts):
                continue
            features = _field(lines, "leaf_features")
            at = rng.choice([i for i, f in enumerate(features) if f])
            bad = rng.choice([max_feature + 1, 10**6, -5])
            lines = _set(lines, "leaf_features", _replace(features, at, bad))
        new_trees = list(trees)
        new_trees[index] = lines
        if kind == "tree-sizes":
            sizes_line = next(h for h in header if h.startswith("tree_sizes="))
            sizes = sizes_line.split("=")[1].split(" ")
            at = rng.randrange(len(sizes))
            sizes[at] = str(max(0, int(sizes[at]) + rng.choice([-40, -7, 3, 200, 10**5])))
            mutated = _join_lgb(header, trees, tail, sizes=False).replace(
                sizes_line, "tree_sizes=" + " ".join(sizes)
            )
        else:
            mutated = _join_lgb(header, new_trees, tail)
        if mutated != text:
            out.append((kind, mutated))
    return out


def _xgb_json_mutations(raw: bytes, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    base = json.loads(raw)
    kinds = [
        "back-link",
        "self-loop",
        "child-out-of-range",
        "right-not-left-plus-one",
        "shared-child",
        "half-leaf",
        "parent-out-of-range",
        "split-index",
        "num-nodes-lie",
        "truncated-array",
        "tree-info",
        "num-trees-lie",
        "iteration-indptr",
        "num-feature-lie",
        "base-score",
        "categories",
        "categories-nodes",
        "categories-segments",
        "tree-id",
    ]
    out: list[tuple[str, bytes]] = []
    while len(out) < count:
        doc = json.loads(json.dumps(base))
        learner = doc["learner"]
        booster = learner["gradient_booster"]
        model = booster["model"] if "model" in booster else booster["gbtree"]["model"]
        trees = model["trees"]
        t = rng.randrange(len(trees))
        tree = trees[t]
        n = int(tree["tree_param"]["num_nodes"])
        lefts, rights = tree["left_children"], tree["right_children"]
        internal = [i for i in range(n) if lefts[i] != -1]
        if not internal:
            continue
        node = rng.choice(internal)
        kind = rng.choice(kinds)
        if kind == "back-link":
            rng.choice([lefts, rights])[node] = 0
        elif kind == "self-loop":
            lefts[node], rights[node] = node, node + 1
        elif kind == "child-out-of-range":
            lefts[node] = n + rng.choice([-1, 0, 5, 10**6])
            rights[node] = lefts[node] + 1
        elif kind == "right-not-left-plus-one":
            rights[node] = rng.choice([lefts[node], lefts[node] + 2, n + 3])
        elif kind == "shared-child":
            other = rng.choice(internal)
            lefts[node], rights[node] = lefts[other], rights[other]
        elif kind == "half-leaf":
            lefts[node] = -1
        elif kind == "parent-out-of-range":
            tree["parents"][rng.randrange(1, n)] = rng.choice([n, n + 100, -5, 2**31 - 1])
        elif kind == "split-index":
            tree["split_indices"][node] = N_FEATURES + rng.choice([0, 3, 10**6])
        elif kind == "num-nodes-lie":
            tree["tree_param"]["num_nodes"] = str(n + rng.choice([-2, -1, 1, 4]))
        elif kind == "truncated-array":
            key = rng.choice(
                [
                    "left_children",
                    "right_children",
                    "parents",
                    "split_indices",
                    "split_conditions",
                    "default_left",
                    "base_weights",
                ]
            )
            del tree[key][-1]
        elif kind == "tree-info":
            model["tree_info"][t] = rng.choice([3, 7, -1, 10**6])
        elif kind == "num-trees-lie":
            params = model["gbtree_model_param"]
            params["num_trees"] = str(int(params["num_trees"]) + rng.choice([-1, 1, 5]))
        elif kind == "iteration-indptr":
            indptr = model["iteration_indptr"]
            indptr[rng.randrange(len(indptr))] += rng.choice([-2, 1, 100])
        elif kind == "num-feature-lie":
            learner["learner_model_param"]["num_feature"] = str(N_FEATURES - rng.randint(1, 3))
        elif kind == "base-score":
            learner["learner_model_param"]["base_score"] = rng.choice(["[1,2,3,4]", "[]", "[0.5,"])
        elif kind in ("categories", "categories-nodes", "categories-segments"):
            if not tree["categories_nodes"]:
                continue
            k = rng.randrange(len(tree["categories_nodes"]))
            if kind == "categories":
                tree["categories"][rng.randrange(len(tree["categories"]))] = rng.choice(
                    [-1, -(2**20), 2**30]
                )
            elif kind == "categories-nodes":
                tree["categories_nodes"][k] = rng.choice([n, n + 50, 0, -1])
            else:
                key = rng.choice(["categories_segments", "categories_sizes"])
                tree[key][k] = rng.choice([-3, 0, len(tree["categories"]) + 1, 10**7])
        elif kind == "tree-id":
            tree["id"] = rng.choice([t + 1, 0 if t else 1, -1])
        mutated = json.dumps(doc).encode()
        if json.loads(mutated) != base:
            out.append((kind, mutated))
    return out


def _ubj_child_mutations(raw: bytes, rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    """Patch left_children entries in place in a pickled UBJSON handle."""
    spots = [m.end() for m in re.finditer(rb"left_children\[\$l#L", raw)]
    out: list[tuple[str, bytes]] = []
    while len(out) < count:
        at = rng.choice(spots)
        (n,) = struct.unpack_from(">q", raw, at)
        start = at + 8
        lefts = struct.unpack_from(f">{n}i", raw, start)
        internal = [i for i, v in enumerate(lefts) if v != -1]
        if not internal:
            continue
        node = rng.choice(internal)
        kind, value = rng.choice(
            [
                ("back-link", 0),
                ("self-loop", node),
                ("out-of-range", n + 10**6),
                ("far-out-of-range", 2**31 - 1),
                ("negative", -7),
            ]
        )
        patched = bytearray(raw)
        struct.pack_into(">i", patched, start + 4 * node, value)
        out.append((f"ubj-{kind}", bytes(patched)))
    return out


def test_every_random_mutation_is_refused() -> None:
    rng = random.Random(20241129)
    refused = 0
    for name in ("classifier-binary-31-leaves", "classifier-categorical", "classifier-linear-tree"):
        for kind, text in _lgb_mutations(lightgbm_models()[name], rng, 60):
            assert lightgbm_model_problem(text) is not None, (name, kind)
            refused += 1
    for name in ("classifier-multiclass", "classifier-categorical", "regressor-multi-output-tree"):
        for kind, raw in _xgb_json_mutations(xgboost_models()[f"{name}/json"], rng, 60):
            assert xgboost_raw_problem(raw) is not None, (name, kind)
            refused += 1
    for kind, raw in _ubj_child_mutations(xgboost_models()["regressor/pickle-handle"], rng, 40):
        assert xgboost_raw_problem(raw) is not None, kind
        assert booster_state_problem("xgboost.core.Booster", {"handle": bytearray(raw)})
        refused += 1
    assert refused == 400


def test_ubjson_decoder_is_bounded() -> None:
    raw = xgboost_models()["classifier-binary/pickle-handle"]
    for cut in (1, 17, len(raw) // 2, len(raw) - 1):
        assert xgboost_raw_problem(raw[:cut]) is not None
    assert "trailing bytes" in (xgboost_raw_problem(raw + b"Z") or "")
    huge_string = b"{L" + struct.pack(">q", 2**62) + b"x"
    assert "within the" in (xgboost_raw_problem(huge_string) or "")
    huge_array = b"{L\x00\x00\x00\x00\x00\x00\x00\x01a[$l#L" + struct.pack(">q", 2**40) + b"}"
    assert "within the" in (xgboost_raw_problem(huge_array) or "")
    deep = b"{L\x00\x00\x00\x00\x00\x00\x00\x01a" + b"[" * 10_000
    assert "nesting" in (xgboost_raw_problem(deep) or "")
    deep_json = b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert xgboost_raw_problem(deep_json) is not None
    duplicate = b"{L\x00\x00\x00\x00\x00\x00\x00\x01aZL\x00\x00\x00\x00\x00\x00\x00\x01aZ}"
    assert "twice" in (xgboost_raw_problem(duplicate) or "")
    assert xgboost_raw_problem(b"binf" + raw) is not None
    assert xgboost_raw_problem(b"") is not None


# ---------------------------------------------------------------------------------------------
# The real libraries on the mutations, in forked children of a separate process
# ---------------------------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import numpy as np
    import lightgbm as lgb
    import xgboost as xgb

    rows = np.random.default_rng(0).normal(size=(16, 5))
    rows[:, 3:] = np.abs(np.round(rows[:, 3:] * 2))

    def run(kind, path):
        data = open(path, "rb").read()
        if kind == "lgb":
            booster = lgb.Booster(model_str=data.decode())
            booster.predict(rows, num_threads=1)
            try:  # SHAP walks the tree recursively; linear trees do not support it
                booster.predict(rows, pred_contrib=True, num_threads=1)
            except lgb.basic.LightGBMError:
                pass
        else:
            booster = xgb.Booster()
            if kind == "xgb-pickle":
                booster.__setstate__({"handle": bytearray(data)})
            else:
                booster.load_model(bytearray(data))
            n = booster.num_features()
            # Category codes as plain numbers still take the categorical split path.
            booster.feature_names = None
            booster.feature_types = None
            booster.predict(xgb.DMatrix(np.resize(rows, (16, n)), nthread=1))

    jobs = json.load(open(sys.argv[1]))
    results = {}
    running = {}
    def reap(block):
        pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        key = running.pop(pid)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            results[key] = "hang" if sig == signal.SIGALRM else "crash:" + signal.Signals(sig).name
        else:
            results[key] = {0: "ok", 3: "error"}.get(os.WEXITSTATUS(status), "crash:exit")
        return True
    for key, (kind, path) in jobs.items():
        while len(running) >= 4:
            reap(True)
        pid = os.fork()
        if pid == 0:
            try:
                resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(1)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                try:
                    run(kind, path)
                except Exception:
                    os._exit(3)
                os._exit(0)
            finally:
                os._exit(4)
        running[pid] = key
    while running:
        reap(True)
    print(json.dumps(results))
    """
)


def _run_in_library(tmp_path: Path, jobs: dict[str, tuple[str, bytes]]) -> dict[str, str]:
    manifest = {}
    for key, (kind, data) in jobs.items():
        path = tmp_path / f"{len(manifest)}.bin"
        path.write_bytes(data)
        manifest[key] = (kind, str(path))
    (tmp_path / "jobs.json").write_text(json.dumps(manifest))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "jobs.json")],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=True,
    )
    results: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def test_the_library_crashes_only_on_what_the_validator_refuses(tmp_path: Path) -> None:
    rng = random.Random(7)
    jobs: dict[str, tuple[str, bytes]] = {}
    verdicts: dict[str, bool] = {}
    for name in ("classifier-binary-31-leaves", "classifier-categorical", "classifier-linear-tree"):
        text = lightgbm_models()[name]
        jobs[f"lgb/{name}/original"] = ("lgb", text.encode())
        for i, (kind, mutated) in enumerate(_lgb_mutations(text, rng, 30)):
            key = f"lgb/{name}/{kind}/{i}"
            jobs[key] = ("lgb", mutated.encode())
            verdicts[key] = lightgbm_model_problem(mutated) is None
    for name in ("classifier-multiclass", "classifier-categorical", "regressor-multi-output-tree"):
        raw = xgboost_models()[f"{name}/json"]
        jobs[f"xgb/{name}/original"] = ("xgb-json", raw)
        for i, (kind, mutated) in enumerate(_xgb_json_mutations(raw, rng, 30)):
            key = f"xgb/{name}/{kind}/{i}"
            jobs[key] = ("xgb-json", mutated)
            verdicts[key] = xgboost_raw_problem(mutated) is None
    handle = xgboost_models()["regressor/pickle-handle"]
    jobs["xgb-pickle/regressor/original"] = ("xgb-pickle", handle)
    for i, (kind, mutated) in enumerate(_ubj_child_mutations(handle, rng, 20)):
        key = f"xgb-pickle/regressor/{kind}/{i}"
        jobs[key] = ("xgb-pickle", mutated)
        verdicts[key] = xgboost_raw_problem(mutated) is None

    started = time.perf_counter()
    outcomes = _run_in_library(tmp_path, jobs)
    elapsed = time.perf_counter() - started

    originals = {k: v for k, v in outcomes.items() if k.endswith("/original")}
    assert set(originals.values()) == {"ok"}, originals
    mutated_keys = [k for k in jobs if not k.endswith("/original")]
    harmful = [k for k in mutated_keys if outcomes[k].startswith(("crash", "hang"))]
    accepted = [k for k in mutated_keys if verdicts[k]]
    # The figure the README quotes: of N mutated files, K crash or hang the library.
    table: dict[str, dict[str, int]] = {}
    for key in mutated_keys:
        library = key.split("/")[0]
        row = table.setdefault(library, {"mutated": 0, "refused": 0, "crash": 0, "hang": 0})
        row["mutated"] += 1
        row["refused"] += not verdicts[key]
        outcome = outcomes[key]
        if outcome.startswith("crash"):
            row["crash"] += 1
        elif outcome == "hang":
            row["hang"] += 1
    print(f"\nbooster mutations ({elapsed:.1f}s in the library): {json.dumps(table)}")
    print("harmful:", sorted({(k.split("/")[0], k.split("/")[2], outcomes[k]) for k in harmful}))
    assert accepted == [], accepted
    assert all(not verdicts[k] for k in harmful)
    # The mutations do reach the failures the validator exists to prevent.
    assert table["lgb"]["hang"] + table["lgb"]["crash"] > 0


# ---------------------------------------------------------------------------------------------
# Cost on a large model (figures only; no timed assertion)
# ---------------------------------------------------------------------------------------------


def test_cost_on_500_trees() -> None:
    x, binary, _ = _data(2000)
    lgb_text = (
        lgb.LGBMClassifier(n_estimators=500, num_leaves=31, verbose=-1, n_jobs=1)
        .fit(x, binary)
        .booster_.model_to_string()
    )
    booster = xgb.XGBClassifier(n_estimators=500, max_depth=6, n_jobs=1).fit(x, binary)
    raw = bytes(booster.get_booster().__getstate__()["handle"])

    def best(call: Callable[[], object], repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return min(times)

    check_lgb = best(lambda: lightgbm_model_problem(lgb_text))
    load_lgb = best(lambda: lgb.Booster(model_str=lgb_text))

    def load_xgb() -> None:
        xgb.Booster().__setstate__({"handle": bytearray(raw)})

    check_xgb = best(lambda: xgboost_raw_problem(raw))
    load_xgb_time = best(load_xgb)
    assert lightgbm_model_problem(lgb_text) is None
    assert xgboost_raw_problem(raw) is None
    print(
        f"\n500 trees: LightGBM {len(lgb_text) / 1e6:.1f} MB text, check {check_lgb * 1e3:.0f} ms,"
        f" lgb.Booster(model_str) {load_lgb * 1e3:.0f} ms; XGBoost {len(raw) / 1e6:.1f} MB "
        f"UBJSON, check {check_xgb * 1e3:.0f} ms, unserialize {load_xgb_time * 1e3:.0f} ms"
    )
