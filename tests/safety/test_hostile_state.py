"""A hostile corpus against the state proofs: every file is refused with a modelkeep error,
and nothing runs, crashes or hangs.

Each file is built here from allowlisted globals only (see ``hostile_state_payloads``) and
loaded in a confined child (3 GB of address space, 20 s of CPU per file, an audit hook that
ends it on any write, process, network, library loading or foreign code); a file that loads
is also used (``predict``/``transform`` on a few rows, or the bundle's golden replay).
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hostile_state_payloads as hp
import numpy as np
import pandas as pd
import pytest
from hostile_state_payloads import PICKLE, STATE, TREE, UNPROVEN, UNTRUSTED, Case

CASES = [
    Case("stacking-stack-method-tofile", hp.stacking_tofile, STATE),
    Case("pipeline-step-sets-sklearn-tags", hp.sklearn_tags_dunder, STATE + PICKLE),
    Case(
        "defaultdict-factory-partial-mean",
        hp.defaultdict_partial(np.mean),
        STATE,
    ),
    Case(
        "defaultdict-factory-partial-check-array",
        hp.defaultdict_partial(__import__("sklearn.utils.validation").utils.validation.check_array),
        STATE,
    ),
    Case("gradient-boosting-init-looping-tree", hp.gradient_boosting_bad_init, TREE),
    Case("gradient-boosting-init-too-wide", hp.gradient_boosting_wide_init, ("loaded",)),
    Case("nmf-billion-iterations", hp.nmf_unbounded, STATE + UNPROVEN),
    Case("logistic-billion-iterations", hp.logistic(max_iter=10**9), STATE),
    Case("logistic-negative-tol", hp.logistic(tol=-1.0), STATE),
    Case("logistic-solver-not-an-option", hp.logistic(solver="tofile"), STATE),
    Case("random-state-position-past-key", hp.random_state_pos(10**6), STATE + PICKLE),
    Case("random-state-position-negative", hp.random_state_pos(-5), STATE + PICKLE),
    Case("kd-tree-index-out-of-range", hp.knn_tree(hp._idx_out_of_range), STATE),
    Case("kd-tree-node-end-out-of-range", hp.knn_tree(hp._node_end_out_of_range), STATE),
    Case("kd-tree-data-one-row", hp.knn_tree(hp._tree_data_swapped), STATE),
    Case("ball-tree-knn", hp.ball_tree_knn, UNTRUSTED),
    Case("svc-n-support-too-big", hp.svc(hp._n_support_too_big), STATE),
    Case("svc-n-support-disagrees-with-coef", hp.svc(hp._n_support_shifted), STATE),
    Case("spline-knots-reversed", hp.spline(hp._knots_reversed), STATE),
    Case("spline-knots-too-few", hp.spline(hp._knots_too_few), STATE),
    Case("spline-knots-nan", hp.spline(hp._knots_nan), STATE),
    Case("sparse-second-build-bad-indices", hp.sparse_rebuilt, PICKLE + STATE),
    Case("tree-cycle-in-dict", hp.tree_hidden("dict"), TREE),
    Case("tree-cycle-in-list", hp.tree_hidden("list"), TREE),
    Case("tree-cycle-in-object-array", hp.tree_hidden("object-array"), TREE),
    Case("bare-tree-in-list", hp.tree_hidden("bare-tree-in-list"), STATE + TREE),
    Case("tree-cycle-in-pandas-series", hp.tree_hidden("series"), UNPROVEN + TREE),
    Case("partial-chain-400k-top-down", hp.partial_chain_top_down, PICKLE),
    Case(
        "partial-args-chain-100k",
        functools.partial(hp.partial_args_chain, 100_000),
        PICKLE + STATE,
    ),
    Case("bytes-3gb-newobj", hp.bytes_newobj, PICKLE),
    Case("bytes-3gb-reduce", hp.bytes_reduce, PICKLE),
    Case("bytearray-3gb-newobj-ex", hp.bytearray_newobj_ex, PICKLE),
    Case("dup-million-per-mark-segment", hp.dup_segments, PICKLE),
    Case("zlib-bomb-1-5gb", hp.zlib_bomb, PICKLE, suffix=".joblib"),
    Case("lightgbm-child-back-to-root", hp.lightgbm_cycle, PICKLE + UNPROVEN),
    Case(
        "lightgbm-child-back-to-root-trusted",
        hp.lightgbm_cycle,
        PICKLE,
        trusted=("lightgbm.basic.Booster",),
    ),
    Case("xgboost-child-out-of-range", hp.xgboost_child_out_of_range, PICKLE + UNPROVEN),
    Case(
        "xgboost-child-out-of-range-trusted",
        hp.xgboost_child_out_of_range,
        PICKLE,
        trusted=("xgboost.core.Booster",),
    ),
    # my own, against the proofs specifically
    Case("shared-callable-knn-first", hp.shared_callable(False), STATE),
    Case("constraint-message-repr-raises", hp.repr_in_constraint_message, STATE + PICKLE),
    Case("constraint-message-repr-deep-chain", hp.deep_estimator_chain, STATE + PICKLE),
    Case(
        "trusted-nmf-holds-stray-callable",
        hp.proven_holds_trusted(False),
        ("loaded", *STATE),  # trusted= vouches for what an unproven class holds
        trusted=("sklearn.decomposition._nmf.NMF",),
    ),
    Case(
        "trusted-nmf-holds-looping-tree",
        hp.proven_holds_trusted(True),
        STATE + TREE,
        trusted=("sklearn.decomposition._nmf.NMF",),
    ),
    Case("object-array-of-estimators", hp.object_array_of_estimators, STATE),
    Case("generator-mt19937-past-key", hp.generator_in_random_state, STATE + PICKLE + UNTRUSTED),
    Case("tol-numpy-nan", hp.float_iter_nan, STATE),
]


def _forest() -> bytes:
    return hp.dumps(hp.forest_n_jobs())


LOADED = [
    Case("forest-n-jobs-8", _forest, ("loaded",), attrs={"n_jobs": "1"}),
]


# -- bundles: a benign model saved, then its artifact replaced by a crafted one


def _frame() -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    x, y = hp.data()
    return pd.DataFrame(x, columns=["a", "b", "c", "d"]), y


def _benign(kind: str = "logistic") -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    frame, y = _frame()
    if kind == "forest-n-jobs":
        return RandomForestClassifier(n_estimators=5, max_depth=3, n_jobs=8, random_state=0).fit(
            frame, y
        )
    return LogisticRegression().fit(frame, y)


def _replace(bundle: Path, artifact: str, content: bytes) -> None:
    (bundle / artifact).write_bytes(content)
    manifest_path = bundle / "modelkeep.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["artifacts"]:
        if entry["path"] == artifact:
            entry["sha256"] = hashlib.sha256(content).hexdigest()
            entry["size"] = len(content)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _skops_bytes(model: object, workdir: Path, name: str) -> bytes:
    import skops.io as sio

    target = workdir / f"{name}.skops-src"
    sio.dump(model, target)
    return target.read_bytes()


def _mutated(mutate: Callable[[Any], None], kind: str = "logistic") -> Callable[[], Any]:
    def build() -> Any:
        model = _benign(kind)
        mutate(model)
        return model

    return build


def _set(**attrs: Any) -> Callable[[Any], None]:
    return lambda model: model.__dict__.update(attrs)


def _stacking() -> Any:
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    frame, y = _frame()
    model = StackingClassifier(
        [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=2))]
    ).fit(frame, y)
    model.stack_method_ = ["tofile", "tofile"]
    return model


def _svc_shifted() -> Any:
    from sklearn.svm import SVC

    frame, y = _frame()
    model = SVC().fit(frame, y)
    hp._n_support_shifted(model)
    return model


def _spline_reversed() -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer

    frame, y = _frame()
    from sklearn.linear_model import LogisticRegression

    model = make_pipeline(SplineTransformer(n_knots=4), LogisticRegression()).fit(frame, y)
    hp._knots_reversed(model.steps[0][1].bsplines_[0])
    return model


def _tree_cycle_skops() -> Any:
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    frame, y = _frame()
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, y)
    _, args, state = model.tree_.__reduce__()
    state = dict(state)
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 0
    state["nodes"] = nodes
    tree = Tree(*args)
    tree.__setstate__(state)  # built here only to be written by skops; never used
    model.tree_ = tree
    return model


def _tags_dunder() -> Any:
    model = _benign()
    model.__dict__["__sklearn_tags__"] = "tofile"
    return model


def _nmf_in_pipeline() -> Any:
    from sklearn.decomposition import NMF
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame, y = _frame()
    model = make_pipeline(NMF(n_components=2, max_iter=300), LogisticRegression()).fit(frame, y)
    model.steps[0][1].max_iter = 10**9
    return model


def _repr_raises() -> Any:
    from sklearn.tree import DecisionTreeClassifier

    model = _benign()
    inner = DecisionTreeClassifier()
    del inner.__dict__["criterion"]
    model.solver = inner
    return model


#: (id, base model, format of the artifact replaced, builder of the replacement, expected).
#: A builder returns a model (written with skops) or bytes (written as they are).
BUNDLES: list[tuple[str, str, str, Callable[[], Any], tuple[str, ...]]] = [
    ("skops-stacking-tofile", "logistic", "skops", _stacking, STATE),
    (
        "skops-logistic-billion-iterations",
        "logistic",
        "skops",
        _mutated(_set(max_iter=10**9)),
        STATE,
    ),
    ("skops-svc-n-support", "logistic", "skops", _svc_shifted, STATE),
    ("skops-spline-knots-reversed", "logistic", "skops", _spline_reversed, STATE + UNTRUSTED),
    ("skops-tree-cycle", "logistic", "skops", _tree_cycle_skops, TREE),
    ("skops-sklearn-tags-dunder", "logistic", "skops", _tags_dunder, STATE),
    (
        "skops-nmf-billion-iterations",
        "logistic",
        "skops",
        _nmf_in_pipeline,
        STATE + UNPROVEN + UNTRUSTED,
    ),
    ("pickle-sparse-second-build", "logistic", "pickle", hp.sparse_rebuilt, PICKLE + STATE),
    (
        "pickle-partial-chain",
        "logistic",
        "pickle",
        functools.partial(hp.partial_chain_top_down, 1000),
        PICKLE,
    ),
    ("pickle-kd-tree-index", "logistic", "pickle", hp.knn_tree(hp._idx_out_of_range), STATE),
    (
        "pickle-random-state-position",
        "logistic",
        "pickle",
        hp.random_state_pos(10**6),
        STATE + PICKLE,
    ),
    ("joblib-zlib-bomb", "logistic", "joblib", hp.zlib_bomb, PICKLE),
    ("skops-forest-n-jobs-8", "forest-n-jobs", "skops", lambda: None, ("loaded",)),
]

_EXTENSIONS = {"skops": "skops", "pickle": "pkl", "joblib": "joblib"}


def _build_bundle(workdir: Path, entry: tuple[str, str, str, Callable[[], Any], Any]) -> Path:
    import modelkeep

    name, base, fmt, build, _ = entry
    frame, _ = _frame()
    bundle = workdir / name
    modelkeep.save(_benign(base), bundle, sample=frame[:10], name="hostile", formats=(fmt,))
    replacement = build()
    if replacement is not None:
        artifact = f"artifacts/pipeline.{_EXTENSIONS[fmt]}"
        if not isinstance(replacement, bytes):
            replacement = _skops_bytes(replacement, workdir, name)
        _replace(bundle, artifact, replacement)
    return bundle


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("hostile-state")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitting tiny models warns (convergence and kin)
        jobs = _jobs(workdir)
    return hp.run_confined(jobs, str(workdir))


def _jobs(workdir: Path) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for case in [*CASES, *LOADED]:
        path = workdir / f"{case.id}{case.suffix}"
        path.write_bytes(case.build())
        jobs.append(
            {
                "id": case.id,
                "mode": "safe_load",
                "path": str(path),
                "trusted": list(case.trusted),
                "attrs": list(case.attrs),
            }
        )
    for entry in BUNDLES:
        bundle = _build_bundle(workdir, entry)
        jobs.append(
            {
                "id": entry[0],
                "mode": "bundle",
                "path": str(bundle),
                "trusted": [],
                "attrs": ["n_jobs"] if entry[4] == ("loaded",) else [],
            }
        )
    return jobs


def _show(verdict: dict[str, Any]) -> str:
    return json.dumps(verdict, indent=2)[:4000]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_file_is_refused(case: Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[case.id]
    if verdict["outcome"] == "loaded" and "loaded" in case.expect:
        assert "use_error" not in verdict or case.id.startswith("trusted"), _show(verdict)
        return
    assert verdict["outcome"] == "refused", _show(verdict)
    assert verdict["error"] in case.expect, _show(verdict)


@pytest.mark.parametrize("case", LOADED, ids=lambda c: c.id)
def test_file_that_loads_is_tamed(case: Case, verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts[case.id]
    assert verdict["outcome"] == "loaded", _show(verdict)
    assert verdict["attrs"] == case.attrs, _show(verdict)
    assert verdict.get("used") == "predict", _show(verdict)


@pytest.mark.parametrize("entry", BUNDLES, ids=lambda e: e[0])
def test_hostile_bundle_is_refused(
    entry: tuple[str, str, str, Any, tuple[str, ...]], verdicts: dict[str, dict[str, Any]]
) -> None:
    verdict = verdicts[entry[0]]
    if entry[4] == ("loaded",):
        assert verdict["outcome"] == "loaded", _show(verdict)
        assert verdict["attrs"] == {"n_jobs": "1"}, _show(verdict)
        return
    assert verdict["outcome"] == "refused", _show(verdict)
    assert verdict["error"] in entry[4], _show(verdict)
