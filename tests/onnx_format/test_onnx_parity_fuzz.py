"""Parity fuzz: a written ONNX model agrees with scikit-learn on fresh rows of every region.

For each model family the project converts (:data:`onnx_cases.KINDS`, plus pipelines built
to reach the regions of issue 11: trees fed raw columns with and without missing values
in training, an empty string as a real category), the pipeline is saved with
``formats=("onnx",)``. A refusal (``ParityError``, ``UnconvertibleModelError``) is a right
outcome and leaves nothing behind. A written model is then run, through scikit-learn and
through onnxruntime, on rows drawn here with a generator of its own (not the gate's
probes): fresh rows, missing values in any columns at once, unseen, empty and missing
strings, values beyond the training range, values around the trees' split thresholds (read
here independently of the gate), and all of these mixed. Any difference beyond the default
thresholds fails: the gate let through a model that disagrees. A row the ONNX model's input
check refuses with a SchemaError is no disagreement (it answers with an error, not a
different value), but every region must have rows that both models answered.
"""

from __future__ import annotations

import faulthandler
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx_cases import KINDS, fit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

import modelkeep
from conftest import BOOLEAN, CATEGORICAL, NUMERIC, make_frame
from modelkeep import ParityError, SchemaError, SchemaWarning, UnconvertibleModelError
from modelkeep._golden import model_input
from modelkeep._schema import prepare

SEED = 20261130  # the gate's probes are deterministic and seedless: this is another draw
ROWS_PER_REGION = 120
THRESHOLDS_DRAWN = 120
PROBA_ATOL = 1e-5
RTOL = 1e-5
TIE_TOL = 1e-6
HANG_SECONDS = 240

Records = list[dict[str, Any]]


def _raw_trees() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", "passthrough", NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("flag", "passthrough", BOOLEAN),
        ]
    )


def _trees_on_raw_columns(*, complete: bool) -> tuple[Pipeline, pd.DataFrame]:
    """A forest reading the numeric columns as they come: NaN reaches its trees."""
    frame, y = make_frame(400, seed=5)
    if complete:  # the case: no missing value in training, one at predict time
        frame = frame.fillna({"income": 50_000.0, "visits": 3.0})
    model = Pipeline(
        [("prep", _raw_trees()), ("model", RandomForestClassifier(10, random_state=0))]
    )
    return model.fit(frame, y), frame


def _tree_regressor_complete() -> tuple[Pipeline, pd.DataFrame]:
    frame, _ = make_frame(400, seed=6)
    frame = frame.fillna({"income": 50_000.0, "visits": 3.0})
    y = (frame["age"] * 0.1 + frame["income"] / 10_000).to_numpy()
    prep = ColumnTransformer([("num", StandardScaler(), NUMERIC)])
    model = Pipeline([("prep", prep), ("model", DecisionTreeRegressor(max_depth=6))])
    return model.fit(frame, y), frame


def _empty_string_category() -> tuple[Pipeline, pd.DataFrame]:
    """``""`` is a real category of 'plan': a missing plan must not be read as it."""
    frame, y = make_frame(400, seed=7)
    frame["plan"] = frame["plan"].where(frame["plan"] != "basic", "")
    prep = ColumnTransformer(
        [
            ("num", "drop", NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))])
    return model.fit(frame, y), frame


def _lightgbm_near_zero() -> tuple[Pipeline, pd.DataFrame]:
    """'income' around zero, fed raw: LightGBM reads |x| <= 1e-35 as 0."""
    from lightgbm import LGBMRegressor

    frame, _ = make_frame(400, seed=8)
    rng = np.random.default_rng(8)
    values = np.array([-1e-33, -1e-35, -5e-36, 0.0, 5e-36, 1e-35, 1e-33, -1.0, 1.0])
    frame["income"] = rng.choice(values, len(frame))
    y = (frame["income"] < -7e-36).astype(float) * 10 + frame["age"] / 10
    prep = ColumnTransformer([("num", "passthrough", NUMERIC)])
    model = Pipeline(
        [
            ("prep", prep),
            ("model", LGBMRegressor(n_estimators=10, min_child_samples=5, verbose=-1)),
        ]
    )
    return model.fit(frame, y), frame


FAMILIES: dict[str, Callable[[], tuple[Pipeline, pd.DataFrame]]] = {
    **{kind: (lambda kind=kind: fit(kind)) for kind in KINDS},  # type: ignore[misc]
    "forest_on_raw_columns_with_missing": lambda: _trees_on_raw_columns(complete=False),
    "forest_on_raw_columns_complete": lambda: _trees_on_raw_columns(complete=True),
    "tree_regressor_scaled_complete": _tree_regressor_complete,
    "empty_string_category": _empty_string_category,
    "lightgbm_near_zero": _lightgbm_near_zero,
}


# ------------------------------------------------------------------------ fresh rows


def _records(frame: pd.DataFrame) -> Records:
    records: Records = []
    for row in frame.astype(object).to_dict("records"):
        records.append({k: _plain(v) for k, v in row.items()})
    return records


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _regions(model: Pipeline, frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, Records]:
    base, _ = make_frame(ROWS_PER_REGION, seed=int(rng.integers(1_000, 1_000_000)))
    base = base[list(frame.columns)]
    columns = list(frame.columns)
    strings = [
        c
        for c in columns
        if frame[c].dtype == object or str(frame[c].dtype) in ("category", "str", "string")
    ]
    numeric = [c for c in columns if c in NUMERIC]
    regions: dict[str, Records] = {"fresh rows": _records(base)}

    missing = _records(base)
    for row in missing:  # one to three columns missing at once, any columns
        for column in rng.choice(columns, size=int(rng.integers(1, 4)), replace=False):
            row[str(column)] = None
    regions["missing values"] = missing

    odd = _records(base)
    for row in odd:
        for column in strings:
            choice = int(rng.integers(0, 4))
            if choice == 0:
                row[column] = f"never-seen-{int(rng.integers(0, 10**6))}"
            elif choice == 1:
                row[column] = ""
            elif choice == 2:
                row[column] = None
    regions["unseen, empty and missing strings"] = odd

    beyond = _records(base)
    for row in beyond:
        column = str(rng.choice(numeric))
        values = frame[column].dropna()
        low, high = float(values.min()), float(values.max())
        span = max(high - low, 1.0)
        side = rng.choice([-1.0, 1.0])
        if int(rng.integers(0, 3)) == 0:  # just outside
            value = np.nextafter(low, -np.inf) if side < 0 else np.nextafter(high, np.inf)
        else:
            value = (low if side < 0 else high) + side * span * float(rng.uniform(0.01, 50))
        if column == "age":
            value = int(np.floor(value) if side < 0 else np.ceil(value))
        row[column] = float(value) if column != "age" else value
    regions["beyond the training range"] = beyond

    thresholds = _threshold_values(model, rng)
    near: Records = []
    if thresholds:
        rows = _records(base)
        for i in range(ROWS_PER_REGION * 2):
            column = str(rng.choice(sorted(thresholds)))
            values = thresholds[column]
            row = dict(rows[i % len(rows)])
            raw = float(values[int(rng.integers(0, values.size))])
            how = int(rng.integers(0, 3))
            if how == 0:  # k float64 steps away
                for _ in range(int(rng.integers(0, 4))):
                    raw = float(np.nextafter(raw, rng.choice([-np.inf, np.inf])))
            elif how == 1:  # the float32 value nearest, or its neighbour
                single = np.float32(raw)
                if rng.integers(0, 2):
                    single = np.nextafter(single, np.float32(rng.choice([-np.inf, np.inf])))
                raw = float(single)
            if column == "age":  # an integer column: the whole numbers either side
                row[column] = math.floor(raw) if rng.integers(0, 2) else math.ceil(raw)
            else:
                row[column] = raw
            near.append(row)
        regions["around tree thresholds"] = near

    mixed: Records = []
    pools = list(regions.values())
    for i in range(ROWS_PER_REGION):
        row = dict(pools[0][i % len(pools[0])])
        for column in columns:  # each column from a region drawn at random
            pool = pools[int(rng.integers(0, len(pools)))]
            row[column] = pool[int(rng.integers(0, len(pool)))][column]
        mixed.append(row)
    regions["mixed"] = mixed
    return regions


def _threshold_values(model: Pipeline, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Raw-column values at split thresholds, read and mapped back by this test alone."""
    estimator = model.steps[-1][1]
    by_feature: dict[int, list[float]] = {}
    for feature, threshold in _splits(estimator):
        by_feature.setdefault(feature, []).append(threshold)
    prep = model.steps[0][1]
    numeric = dict(prep.named_transformers_).get("num")
    scaler = numeric[-1] if isinstance(numeric, Pipeline) else numeric
    out: dict[str, np.ndarray] = {}
    for j, column in enumerate(NUMERIC):
        values = np.unique(np.asarray(by_feature.get(j, []), dtype=np.float64))
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        if values.size > THRESHOLDS_DRAWN:
            values = rng.choice(values, size=THRESHOLDS_DRAWN, replace=False)
        if isinstance(scaler, StandardScaler):
            values = values * scaler.scale_[j] + scaler.mean_[j]
        elif not (isinstance(scaler, FunctionTransformer) and scaler.func is None):
            continue  # a step this test does not invert ("passthrough" is the identity)
        out[column] = values
    return out


def _splits(estimator: Any) -> list[tuple[int, float]]:
    module = type(estimator).__module__.split(".")[0]
    if module == "xgboost":
        found: list[tuple[int, float]] = []

        def walk(node: dict[str, Any]) -> None:
            if "split" in node:
                found.append((int(str(node["split"]).lstrip("f")), float(node["split_condition"])))
                for child in node.get("children", []):
                    walk(child)

        for dump in estimator.get_booster().get_dump(dump_format="json"):
            walk(json.loads(dump))
        return found
    if module == "lightgbm":
        table = estimator.booster_.trees_to_dataframe()
        table = table[table["split_feature"].notna()]
        names = estimator.booster_.feature_name()
        return [
            (names.index(f), float(t))
            for f, t in zip(table["split_feature"], table["threshold"], strict=True)
        ]
    if hasattr(estimator, "tree_"):
        tree = estimator.tree_
        return [
            (int(f), float(t)) for f, t in zip(tree.feature, tree.threshold, strict=True) if f >= 0
        ]
    if hasattr(estimator, "_predictors"):
        return [
            (int(node["feature_idx"]), float(node["num_threshold"]))
            for predictors in estimator._predictors
            for predictor in predictors
            for node in predictor.nodes
            if not node["is_leaf"] and not node["is_categorical"]
        ]
    if hasattr(estimator, "estimators_"):
        return [s for member in np.ravel(estimator.estimators_) for s in _splits(member)]
    return []


# ------------------------------------------------------------------------ comparison


def _accepted(predict: Callable[[Records], Any], records: Records, refusal: Any) -> list[int]:
    """Positions of the rows ``predict`` answers.

    A model refuses a missing value by column, not by row: the columns it refuses one in
    are found on the rows missing only that column, the rows missing none of them are run
    at once, and only if that fails, by the set of columns they miss (a refused set is
    left out).
    """
    try:
        predict(records)
        return list(range(len(records)))
    except refusal:
        pass
    patterns: dict[tuple[str, ...], list[int]] = {}
    for i, record in enumerate(records):
        patterns.setdefault(tuple(k for k, v in record.items() if v is None), []).append(i)
    refused = set()
    for pattern, positions in patterns.items():
        if len(pattern) == 1:
            try:
                predict([records[i] for i in positions])
            except refusal:
                refused.add(pattern[0])
    kept = [i for p, positions in patterns.items() if not refused & set(p) for i in positions]
    try:
        predict([records[i] for i in kept])
        return sorted(kept)
    except refusal:
        pass
    accepted = []
    for pattern, positions in patterns.items():
        if refused & set(pattern):
            continue
        try:
            predict([records[i] for i in positions])
        except refusal:
            continue
        accepted.extend(positions)
    return sorted(accepted)


def _disagreements(
    model: Pipeline, served: Any, records: Records, *, regression: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows both models answered, rows that differ, descriptions), as positions.

    A row the original raises on, or the ONNX model's input check refuses (SchemaError),
    is left out: neither answers it differently, one answers with an error.
    """
    features = served.schema

    def original(rows: Records) -> tuple[np.ndarray, np.ndarray | None]:
        data = model_input(model, prepare(rows, features))
        proba = None if regression else np.asarray(model.predict_proba(data), float)
        return np.asarray(model.predict(data)), proba

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # schema warnings, unknown categories
        kept = _accepted(original, records, Exception)
        kept = [kept[i] for i in _accepted(served.predict, [records[i] for i in kept], SchemaError)]
        rows = [records[i] for i in kept]
        if not rows:
            return np.array(kept, dtype=int), np.zeros(0, dtype=int), []
        want, want_p = original(rows)
        got = np.asarray(served.predict(rows))
        got_p = None if regression else np.asarray(served.predict_proba(rows))
    described = []
    if regression:
        diff = np.abs(got.astype(float) - want.astype(float)) / np.maximum(1.0, np.abs(want))
        bad = np.flatnonzero(~(diff <= RTOL))
        described = [f"row {rows[i]}: sklearn {want[i]}, onnx {got[i]}" for i in bad[:3]]
    else:
        assert want_p is not None and got_p is not None
        top = np.sort(want_p, axis=1)
        ties = top[:, -1] - top[:, -2] <= TIE_TOL
        diff = np.abs(got_p - want_p).max(axis=1)
        bad = np.flatnonzero(((got != want) & ~ties) | ~(diff <= PROBA_ATOL))
        described = [
            f"row {rows[i]}: sklearn {want[i]} {want_p[i].round(6).tolist()}, "
            f"onnx {got[i]} {got_p[i].round(6).tolist()}"
            for i in bad[:3]
        ]
    positions = np.array(kept, dtype=int)
    return positions, positions[bad], described


@pytest.mark.parametrize("family", list(FAMILIES), ids=list(FAMILIES))
def test_a_written_conversion_agrees_on_fresh_rows_of_every_region(
    family: str, tmp_path: Path
) -> None:
    # A conversion that hangs (issue 11: infinite thresholds) must fail, not stall the
    # suite: the watchdog thread ends the run with every thread's traceback.
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        with threadpool_limits(1):  # OpenMP (HistGradientBoosting) spins on a busy machine
            _check_family(family, tmp_path)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _check_family(family: str, tmp_path: Path) -> None:
    model, frame = FAMILIES[family]()
    regression = not hasattr(model, "predict_proba")
    path = tmp_path / "m"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SchemaWarning)
            modelkeep.save(model, path, sample=frame, name="fuzz", formats=("onnx",))
    except (ParityError, UnconvertibleModelError):
        # The gate found something and refused: the promise holds, nothing was written.
        assert not path.exists()
        return
    served = modelkeep.load(path, format="onnx")
    regions = _regions(model, frame, np.random.default_rng(SEED))
    records = [row for rows in regions.values() for row in rows]
    region_of = np.array([name for name, rows in regions.items() for _ in rows], dtype=object)
    answered, differ, described = _disagreements(model, served, records, regression=regression)
    found = {
        name: int((region_of[differ] == name).sum())
        for name in regions
        if (region_of[differ] == name).any()
    }
    assert not found, f"{family}: written, yet disagrees with scikit-learn: {found} {described}"
    # Every region reached both models (not all refused by one of them).
    counts = {name: int((region_of[answered] == name).sum()) for name in regions}
    assert counts["fresh rows"] == ROWS_PER_REGION
    assert all(n > 0 for n in counts.values()), counts
