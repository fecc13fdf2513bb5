"""The converted model routes missing values, unseen categories and near-zero inputs as the
original does, refuses what the original refuses, and no conversion can hang."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

import modelkeep
from modelkeep import SchemaError, SchemaWarning
from modelkeep._schema import infer_schema, prepare
from modelkeep.manifest import read_manifest
from modelkeep.onnx.export import build_graph, check_convertible
from modelkeep.onnx.inputs import MISSING_CATEGORY, MISSING_STRING, Narrowing
from modelkeep.onnx.runtime import OnnxRuntime
from modelkeep.onnx.strategies import LIGHTGBM_ZERO, strategy_named
from modelkeep.onnx.trees import ConversionTimeout, exact_threshold, time_limit

ROOT = Path(__file__).resolve().parents[2]
NUMERIC = ["age", "income", "score"]


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Floats never missing in training, and a string column with a real "" category."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.normal(50_000, 15_000, n),
            "score": rng.integers(0, 6, n).astype(float),
            "plan": pd.Series(rng.choice(["basic", "plus", ""], n), dtype=object),
        }
    )
    signal_ = (frame["age"] - 40) / 12 + (frame["income"] - 50_000) / 15_000
    target = ((signal_ + (frame["plan"] == "") + rng.normal(0, 0.5, n)) > 0.5).astype(int)
    return frame, target.to_numpy()


def _prep(numeric: Any = None) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", numeric if numeric is not None else StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )


def _regions(fresh: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Fresh rows of every region the schema admits that the training data lacked."""
    regions = {}
    for column in NUMERIC:
        regions[f"missing {column}"] = fresh.assign(**{column: np.nan})
    regions["every number missing"] = fresh.assign(**dict.fromkeys(NUMERIC, np.nan))
    regions["missing plan"] = fresh.assign(plan=pd.Series([None] * len(fresh), dtype=object))
    regions["empty plan"] = fresh.assign(plan="")
    regions["unseen plan"] = fresh.assign(plan="gold")
    return regions


def _outputs(predict: Callable[[Any], Any], rows: pd.DataFrame, regression: bool) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)  # missing and unseen values, on purpose
        out = predict(rows)
    return np.asarray(out if regression else np.asarray(out)[:, -1], dtype=np.float64)


def _worst(model: Any, served: Any, rows: pd.DataFrame, regression: bool) -> float:
    """Largest difference between the original (fed as modelkeep feeds it) and ONNX."""
    features = infer_schema(_frame(50, 0)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        prepared = prepare(rows, features)
    if regression:
        want = _outputs(model.predict, prepared, True)
        got = _outputs(served.predict, rows, True)
        return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
    want = _outputs(model.predict_proba, prepared, False)
    got = _outputs(lambda r: served.predict_proba(r).to_numpy(), rows, False)
    return float(np.max(np.abs(got - want)))


TREES: dict[str, tuple[Callable[[], Any], bool]] = {
    "decision_tree": (lambda: DecisionTreeClassifier(max_depth=8, random_state=0), False),
    "random_forest": (
        lambda: RandomForestClassifier(n_estimators=10, max_depth=8, random_state=0),
        False,
    ),
    "extra_trees": (
        lambda: ExtraTreesClassifier(n_estimators=10, max_depth=8, random_state=0),
        False,
    ),
    "random_forest_regressor": (
        lambda: RandomForestRegressor(n_estimators=10, max_depth=8, random_state=0),
        True,
    ),
    "extra_trees_regressor": (
        lambda: ExtraTreesRegressor(n_estimators=10, max_depth=8, random_state=0),
        True,
    ),
}


@pytest.mark.parametrize("kind", list(TREES), ids=list(TREES))
def test_trees_send_missing_values_where_scikit_learn_does(kind: str, tmp_path: Path) -> None:
    """NaN in a column never missing in training: each node's missing_go_to_left branch."""
    estimator, regression = TREES[kind]
    frame, y = _frame(400, 0)
    target = frame["age"] / 10 + frame["score"] if regression else y
    model = Pipeline([("prep", _prep()), ("model", estimator())]).fit(frame, target)
    modelkeep.save(model, tmp_path / "m", sample=frame, name=kind, formats=("skops", "onnx"))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    fresh, _ = _frame(300, 5)
    for region, rows in _regions(fresh).items():
        assert _worst(model, served, rows, regression) <= 1e-5, region


def _run(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


FITTED_ON_MISSING = """
    import sys, warnings
    import numpy as np, pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeRegressor
    import modelkeep

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = ((frame["a"] + rng.normal(0, 0.5, 300)) > 0).astype(int).to_numpy()
    frame.loc[::5, "a"] = np.nan  # split thresholds of inf: missing values alone go right
    worst = 0.0
    for i, model in enumerate([
        RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, y),
        DecisionTreeRegressor(random_state=0).fit(frame, frame["b"] * 2 + y),
    ]):
        trees = getattr(model, "estimators_", [model])
        assert any(np.isinf(t.tree_.threshold).any() for t in trees)
        path = f"{sys.argv[1]}/m{i}"
        modelkeep.save(model, path, sample=frame, name="m", formats=("skops", "onnx"))
        served = modelkeep.load(path, format="onnx")
        fresh = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
        fresh.loc[::2, "a"] = np.nan
        fresh.loc[::3, "b"] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if i == 0:
                got = served.predict_proba(fresh).to_numpy()
                want = model.predict_proba(fresh)
            else:
                got, want = served.predict(fresh), model.predict(fresh)
        worst = max(worst, float(np.abs(got - want).max()))
    print(worst)
"""


def test_trees_fitted_on_missing_values_save_with_onnx_in_bounded_time(tmp_path: Path) -> None:
    """Such trees have an inf threshold, on which skl2onnx's threshold search never ended."""
    result = _run(FITTED_ON_MISSING, str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) <= 1e-5


def test_thresholds_are_adjusted_in_closed_form_for_every_value() -> None:
    """float32(x) <= value exactly when x <= exact_threshold(value, float64), for all x."""
    rng = np.random.default_rng(0)
    finite = [*(rng.normal(size=300) * 10.0 ** rng.integers(-40, 39, 300)), 0.0, -0.0]
    beyond = [3.5e38, -3.5e38, 1e300, -1e300]
    with np.errstate(over="ignore"):
        for value in [*finite, *beyond, np.inf, -np.inf]:
            w = exact_threshold(value, np.float64)
            probe = w if np.isfinite(w) else np.copysign(np.finfo(np.float64).max, w)
            for x in (probe, np.nextafter(probe, np.inf), np.nextafter(probe, -np.inf), value):
                if np.isfinite(x):
                    # As scikit-learn compares: the float32 widened back, against a double.
                    assert (float(np.float32(x)) <= value) == (x <= w), (value, x, w)
            f = np.float32(exact_threshold(value, np.float32))
            for x in (f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))):
                assert (float(np.float32(x)) <= value) == (float(x) <= float(f)), (value, x)
    assert exact_threshold(np.inf, np.float64) == np.inf
    assert np.isnan(exact_threshold(np.nan, np.float64))


def test_a_conversion_past_its_budget_is_stopped() -> None:
    started = time.monotonic()
    budget = re.escape("past its 0.2 s budget")
    with pytest.raises(ConversionTimeout, match=budget), time_limit(0.2):
        while time.monotonic() - started < 30:
            pass
    assert time.monotonic() - started < 5


KILLED_SAVE = """
    import sys
    import numpy as np, pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    import modelkeep

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=1000) for i in range(8)})
    y = (frame.sum(axis=1) + rng.normal(0, 1, 1000) > 0).astype(int).to_numpy()
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(frame, y)
    print("fitted", flush=True)
    modelkeep.save(model, sys.argv[1], sample=frame, name="m", formats=("skops", "onnx"))
"""


def _staging(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.modelkeep-*[0-9a-f]"))


def test_a_killed_save_leaves_nothing_once_the_path_is_saved_again(tmp_path: Path) -> None:
    target = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_SAVE), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while not _staging(target) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _staging(target), "the save never staged its bundle"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    left = _staging(target)
    assert left and not target.exists()  # the kill left its staging directory
    time.sleep(2.1)  # older than the grace a just-created staging directory gets
    frame, y = _frame(200, 0)
    model = Pipeline([("prep", _prep()), ("model", LogisticRegression())]).fit(frame, y)
    modelkeep.save(model, target, sample=frame, name="m")
    assert _staging(target) == []
    assert read_manifest(target).name == "m"


def test_missing_and_unseen_strings_encode_as_scikit_learn_encodes_them(tmp_path: Path) -> None:
    """ "" is a real category; a missing string is not it (unknown: all zeros), in convert too."""
    frame, y = _frame(400, 0)
    model = Pipeline([("prep", _prep()), ("model", LogisticRegression(max_iter=500))])
    model.fit(frame, y)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    modelkeep.convert(tmp_path / "m", to="onnx")
    served = modelkeep.load(tmp_path / "m", format="onnx")
    fresh, _ = _frame(200, 5)
    for region in ("missing plan", "empty plan", "unseen plan"):
        assert _worst(model, served, _regions(fresh)[region], False) <= 1e-5, region
    artifact = read_manifest(tmp_path / "m").artifact("onnx")
    assert artifact is not None
    # LogisticRegression takes no NaN: the ONNX model refuses a missing number as it does.
    assert artifact.details["narrowing"] == {
        "missing_string": MISSING_CATEGORY,
        "refuse_missing": NUMERIC,
        "refuse_unseen": [],
    }


def test_a_missing_category_learned_in_training_is_the_one_a_missing_string_takes(
    tmp_path: Path,
) -> None:
    frame, y = _frame(400, 0)
    frame["plan"] = frame["plan"].astype("str")  # missing values become NaN, a category
    frame.loc[::7, "plan"] = np.nan
    y = np.where(frame["plan"].isna(), 1 - y, y)
    model = Pipeline([("prep", _prep()), ("model", LogisticRegression(max_iter=500))])
    model.fit(frame, y)
    encoder = model.named_steps["prep"].named_transformers_["cat"]
    assert pd.isna(encoder.categories_[0][-1])
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    fresh, _ = _frame(200, 5)
    for region in ("missing plan", "empty plan", "unseen plan"):
        rows = _regions(fresh)[region]
        assert _worst(model, served, rows, False) <= 1e-5, region


def test_what_the_original_refuses_the_onnx_model_refuses_naming_the_column(
    tmp_path: Path,
) -> None:
    """GradientBoosting takes no NaN; an encoder with handle_unknown="error" no new value."""
    frame, y = _frame(300, 0)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline(
        [("prep", prep), ("model", GradientBoostingClassifier(n_estimators=10, random_state=0))]
    ).fit(frame, y)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("skops", "onnx"))
    artifact = read_manifest(tmp_path / "m").artifact("onnx")
    assert artifact is not None
    assert artifact.details["narrowing"] == {
        "missing_string": MISSING_CATEGORY,
        "refuse_missing": [*NUMERIC, "plan"],
        "refuse_unseen": ["plan"],
    }
    served = modelkeep.load(tmp_path / "m", format="onnx")
    record = frame.iloc[0].to_dict()
    features = infer_schema(frame)
    for column in [*NUMERIC, "plan"]:
        message = rf"^Column '{column}': row 0: expected a value, got a missing value\. "
        with pytest.raises(SchemaError, match=message):
            served.predict({**record, column: None})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SchemaWarning)
            prepared = prepare({**record, column: None}, features)
        with pytest.raises(ValueError, match=r"NaN|unknown categories"):  # as the original
            model.predict(prepared)
    with pytest.raises(SchemaError) as caught:
        served.predict_proba([{**record, "plan": "gold"}])
    assert caught.value.column == "plan" and caught.value.kind == "refused_unseen"
    # What both accept, they answer alike.
    np.testing.assert_allclose(
        served.predict_proba(frame.head(50)).to_numpy(),
        model.predict_proba(frame.head(50)),
        atol=1e-5,
    )


def test_a_graph_without_narrowing_metadata_loads_as_before() -> None:
    """Graphs converted before this (no metadata): missing strings fed as "", nothing refused."""
    frame, y = _frame(200, 0)
    model = Pipeline([("prep", _prep()), ("model", LogisticRegression())]).fit(frame, y)
    features = infer_schema(frame)
    graph = build_graph(
        model, features, check_convertible(model, features), strategy_named("double")
    )
    kept = [p for p in graph.metadata_props if not p.key.startswith("modelkeep.refuse")]
    kept = [p for p in kept if p.key != "modelkeep.missing_string"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    runtime = OnnxRuntime(
        graph.SerializeToString(), artifact="old", features=features, classes=[0, 1]
    )
    assert runtime.narrowing == Narrowing()
    with pytest.warns(SchemaWarning):
        feeds, _ = runtime.feeds({**frame.iloc[0].to_dict(), "plan": None})
    assert feeds["plan"].ravel().tolist() == [MISSING_STRING]


@pytest.mark.parametrize("zero_as_missing", [False, True], ids=["zero", "zero_as_missing"])
def test_lightgbm_reads_near_zero_and_missing_inputs_as_lightgbm_does(
    zero_as_missing: bool, tmp_path: Path
) -> None:
    from lightgbm import LGBMClassifier

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=800),
            "z": rng.choice([0.0, 0.0, 1.0, -1.0, 2.0], 800),
            "m": rng.normal(size=800),
        }
    )
    y = ((frame["a"] > 0) ^ (frame["z"] >= 0)).astype(int).to_numpy()
    frame.loc[::9, "m"] = np.nan
    model = LGBMClassifier(
        n_estimators=20, verbose=-1, random_state=0, zero_as_missing=zero_as_missing
    ).fit(frame, y)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    near = [0.0, -0.0, 1e-36, -1e-36, LIGHTGBM_ZERO, -LIGHTGBM_ZERO, 1e-35, -1e-35, np.nan]
    near += [np.nextafter(LIGHTGBM_ZERO, 1.0), -np.nextafter(LIGHTGBM_ZERO, 1.0)]
    fresh = pd.DataFrame({"a": rng.normal(size=len(near) * 8), "m": rng.normal(size=len(near) * 8)})
    for column in ("a", "z", "m"):
        rows = fresh.assign(z=rng.choice([0.0, 1.0, -1.0], len(fresh)))
        rows[column] = np.repeat(near, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SchemaWarning)
            got = served.predict_proba(rows).to_numpy()
        want = model.predict_proba(rows[["a", "z", "m"]])
        assert np.abs(got - want).max() <= 1e-5, column


@pytest.mark.parametrize("unknown", [-1, np.nan], ids=["unknown_-1", "unknown_nan"])
def test_an_ordinal_encoder_answers_missing_and_unseen_strings_as_scikit_learn(
    unknown: float, tmp_path: Path
) -> None:
    """Its missing category encodes as encoded_missing_value (NaN), which the trees route."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    frame, y = _frame(400, 0)
    frame["plan"] = frame["plan"].astype("str")
    frame.loc[::7, "plan"] = np.nan
    y = np.where(frame["plan"].isna(), 1 - y, y)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=unknown)
    prep = ColumnTransformer([("num", "passthrough", NUMERIC), ("cat", encoder, ["plan"])])
    model = Pipeline(
        [("prep", prep), ("model", HistGradientBoostingClassifier(max_iter=15, random_state=0))]
    ).fit(frame, y)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    fresh, _ = _frame(200, 5)
    for region, rows in _regions(fresh).items():
        assert _worst(model, served, rows, False) <= 1e-5, region
