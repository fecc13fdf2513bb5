"""Measure a converted model against the original before it is written.

The rows compared come from three sources, and each row belongs to one *region* of the
input space the schema admits (:data:`REGIONS`); the report counts rows and the worst
disagreement per region, and a disagreement beyond the thresholds in any region fails:

- ``golden``: the bundle's golden samples;
- ``validation``: the ``sample`` given to ``save`` (or ``validation=`` given to
  ``convert``), at most :data:`VALIDATION_ROWS` rows spread evenly over it;
- ``probe``: rows built by varying one column of a few base rows (golden rows, else the
  first validation rows), one group per column and region:

  - ``missing value``: a missing value in every column. In the default, non-strict mode a
    prediction accepts one in any column (one the training data never had missing only
    warns), so every column is probed, not only the nullable ones;
  - ``missing string``: the same for string and category columns, where a converted
    model may confuse a missing string with a real category such as ``""``;
  - ``unseen category``: :data:`UNSEEN_CATEGORY` (and ``""`` unless it is a category) in
    every string and category column;
  - ``beyond the training range``: values below the minimum and above the maximum of
    every numeric column (one representable step outside, a span outside, far outside);
  - ``midpoints``: the midpoints between neighbouring training values of every float
    column, where a tree fitted on the raw column puts its thresholds
    (:data:`CLOSEST_MIDPOINTS` closest pairs and :data:`SPREAD_MIDPOINTS` spread out);
  - ``tree thresholds``: for tree models (scikit-learn trees, forests, gradient boosting
    and histogram gradient boosting, XGBoost, LightGBM), each split threshold mapped back
    to its raw column through monotone preprocessing (scalers, imputers, passthrough, by
    ``inverse_transform``), with the values one float32 and one float64 step either side
    of it, before and after the mapping (a threshold near zero also gets the values around
    LightGBM's zero bound, 1e-35). At most :data:`THRESHOLDS_PER_FEATURE` distinct
    thresholds per tree feature (evenly spread over the sorted thresholds, plus the one
    closest to zero) and :data:`THRESHOLD_ROWS` rows in all, so a large forest's gate
    stays fast. A threshold on a feature no monotone chain leads to (a one-hot column, a
    column built from several) is not probed; the report's ``notes`` say how many.

Both models see the same rows, coerced to the schema as a prediction would be; the
original through scikit-learn, the converted one through onnxruntime fed by
:mod:`modelkeep.onnx.inputs` (the serving path). A probe group the original itself
refuses (an unseen category under ``handle_unknown="error"``) is left out and named in
``skipped``; a probe or validation group the converted model's input check refuses with
a :class:`SchemaError` (a missing value in an ``int64`` input, or another narrowing the
manifest records) is left out and named in ``refused``: such input gets an error from the
converted model, never a different answer. Golden rows are never refused.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from modelkeep._inputs import plain_value
from modelkeep.errors import SchemaError, SchemaWarning
from modelkeep.manifest import FeatureSpec, GoldenSamples, Scalar
from modelkeep.onnx.report import (
    OutputDifference,
    ParityReport,
    ParityThresholds,
    RegionCheck,
    WorstRow,
)
from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE, OnnxRuntime, onnx_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BEYOND_RANGE",
    "CLOSEST_MIDPOINTS",
    "GOLDEN",
    "MIDPOINTS",
    "MISSING_STRING",
    "MISSING_VALUE",
    "REGIONS",
    "SPREAD_MIDPOINTS",
    "THRESHOLDS_PER_FEATURE",
    "THRESHOLD_ROWS",
    "TREE_THRESHOLDS",
    "UNSEEN",
    "UNSEEN_CATEGORY",
    "VALIDATION",
    "VALIDATION_ROWS",
    "Expected",
    "Rows",
    "evaluation_rows",
    "measure",
    "original_outputs",
    "sample_thresholds",
    "tree_thresholds",
]

VALIDATION_ROWS: Final = 10_000
CLOSEST_MIDPOINTS: Final = 100
SPREAD_MIDPOINTS: Final = 100
PROBE_BASE_ROWS: Final = 8
THRESHOLDS_PER_FEATURE: Final = 128
THRESHOLD_ROWS: Final = 6_000
UNSEEN_CATEGORY: Final = "modelkeep-unseen-category"
WORST_ROWS: Final = 5

GOLDEN: Final = "golden"
VALIDATION: Final = "validation"
MISSING_VALUE: Final = "missing value"
MISSING_STRING: Final = "missing string"
UNSEEN: Final = "unseen category"
BEYOND_RANGE: Final = "beyond the training range"
MIDPOINTS: Final = "midpoints"
TREE_THRESHOLDS: Final = "tree thresholds"
#: Every region, in the order reports list them.
REGIONS: Final = (
    GOLDEN,
    VALIDATION,
    MISSING_VALUE,
    MISSING_STRING,
    UNSEEN,
    BEYOND_RANGE,
    MIDPOINTS,
    TREE_THRESHOLDS,
)


@dataclass
class Group:
    """Consecutive rows of one source (``golden``, ``validation`` or a probe) and region."""

    source: str
    frame: pd.DataFrame
    region: str = ""

    def __post_init__(self) -> None:
        if not self.region:
            self.region = self.source if self.source in (GOLDEN, VALIDATION) else ""


@dataclass
class Rows:
    """Every row to compare, as groups of frames coerced to the schema."""

    groups: list[Group] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def evaluation_rows(
    features: Sequence[FeatureSpec],
    golden: GoldenSamples,
    validation: Any,
    *,
    model: Any = None,
) -> Rows:
    """The golden, validation and probe rows, each group coerced to the schema.

    ``model`` (the fitted original) adds the ``tree thresholds`` probes of its trees.
    """
    from modelkeep._schema import prepare, to_json_columns

    rows = Rows()
    with warnings.catch_warnings():
        # Probes are unusual on purpose; validation data may hold unseen values too.
        warnings.simplefilter("ignore", SchemaWarning)
        if golden.rows:
            rows.groups.append(Group(GOLDEN, prepare(golden.inputs, features)))
        if validation is not None:
            frame = _spread(prepare(_schema_columns(validation, features), features))
            rows.groups.append(Group(VALIDATION, frame))
        # Probes vary one column of a few base rows: golden rows when there are some, else
        # the first validation rows without an infinity (JSON cannot hold one). Midpoints
        # and ranges come from the largest set of values at hand.
        values = rows.groups[-1].frame if rows.groups else None
        base = _finite_rows(rows.groups[0].frame).iloc[:PROBE_BASE_ROWS] if rows.groups else None
        if base is None or values is None or not len(base):
            return rows
        columns = to_json_columns(base, features)
        probes = _probes(values, features, columns)
        if model is not None:
            thresholds, notes = _threshold_probes(model, features, columns)
            probes.extend(thresholds)
            rows.notes.extend(notes)
        for region, source, probe in probes:
            rows.groups.append(Group(source, prepare(probe, features), region))
    return rows


def _finite_rows(frame: pd.DataFrame) -> pd.DataFrame:
    numbers = frame.select_dtypes(include="number").to_numpy(dtype=np.float64, na_value=np.nan)
    finite: pd.DataFrame = frame[~np.isinf(numbers).any(axis=1)] if numbers.size else frame
    return finite


def _schema_columns(data: Any, features: Sequence[FeatureSpec]) -> Any:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        present = [f.name for f in features if f.name in data.columns]
        if len(present) == len(features):
            return data[present]
    return data


def _spread(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= VALIDATION_ROWS:
        return frame
    positions = np.linspace(0, len(frame) - 1, num=VALIDATION_ROWS).round().astype(int)
    spread: pd.DataFrame = frame.iloc[np.unique(positions)]
    return spread


Probe = tuple[str, str, dict[str, list[Any]]]  # region, source, columns


def _varied(columns: dict[str, list[Any]], name: str, values: Sequence[Any]) -> dict[str, Any]:
    """The base rows, cycled, with column ``name`` set to ``values``: one row per value."""
    n_base = len(next(iter(columns.values()), []))
    probe = {k: [v[i % n_base] for i in range(len(values))] for k, v in columns.items()}
    probe[name] = list(values)
    return probe


def _probes(
    values: pd.DataFrame, features: Sequence[FeatureSpec], columns: dict[str, list[Any]]
) -> list[Probe]:
    n_base = len(next(iter(columns.values()), []))
    probes: list[Probe] = []
    for spec in features:
        name = spec.name
        strings = spec.dtype in ("string", "category") and _takes_strings(spec)
        region = MISSING_STRING if strings else MISSING_VALUE
        probes.append((region, f"probe: missing {name!r}", _varied(columns, name, [None] * n_base)))
        if strings:
            unseen = [UNSEEN_CATEGORY] + ([] if "" in (spec.categories or ()) else [""])
            probe = _varied(columns, name, [u for u in unseen for _ in range(n_base)])
            probes.append((UNSEEN, f"probe: unseen category in {name!r}", probe))
        if spec.dtype in ("integer", "float") and spec.min is not None and spec.max is not None:
            beyond = _beyond(spec.min, spec.max, integer=spec.dtype == "integer")
            if beyond:
                probe = _varied(columns, name, [b for b in beyond for _ in range(n_base)])
                probes.append((BEYOND_RANGE, f"probe: beyond the range of {name!r}", probe))
        if spec.dtype == "float":
            midpoints = _midpoints(values[name].to_numpy(dtype=np.float64, na_value=np.nan))
            if midpoints.size:
                probe = _varied(columns, name, midpoints.tolist())
                probes.append((MIDPOINTS, f"probe: midpoints of {name!r}", probe))
    return probes


def _takes_strings(spec: FeatureSpec) -> bool:
    return spec.dtype == "string" or all(isinstance(c, str) for c in spec.categories or ())


def _beyond(low: float, high: float, *, integer: bool) -> list[Any]:
    """Values outside ``[low, high]``: one step, one span and far outside, on each side."""
    span = max(high - low, 1.0)
    if integer:
        lo, hi = math.floor(low), math.ceil(high)
        candidates: list[Any] = [lo - 1, hi + 1, lo - int(span), hi + int(span)]
        candidates += [lo - 1000 * int(span), hi + 1000 * int(span)]
        return [v for v in dict.fromkeys(candidates) if -(2**53) <= v <= 2**53]
    values = [
        float(np.nextafter(low, -np.inf)),
        float(np.nextafter(high, np.inf)),
        low - span,
        high + span,
        low - 1e6 * span,
        high + 1e6 * span,
    ]
    return [v for v in dict.fromkeys(values) if math.isfinite(v)]


def _midpoints(values: np.ndarray) -> np.ndarray:
    """Midpoints between neighbouring distinct values: the closest pairs, then a spread."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size < 2:
        return np.empty(0)
    low, high = distinct[:-1], distinct[1:]
    # Computed as scikit-learn computes its tree thresholds: (a + b) / 2.
    midpoints = (low + high) / 2
    inside = (midpoints > low) & (midpoints < high)  # neighbours one ulp apart have none
    midpoints, gaps = midpoints[inside], (high - low)[inside]
    scale = np.maximum(1.0, np.abs(midpoints))
    closest = np.argsort(gaps / scale, kind="stable")[:CLOSEST_MIDPOINTS]
    spread = np.linspace(0, midpoints.size - 1, num=min(SPREAD_MIDPOINTS, midpoints.size))
    chosen = np.unique(np.concatenate([closest, spread.round().astype(int)]))
    picked: np.ndarray = midpoints[chosen]
    return picked


# ------------------------------------------------------------------------ tree thresholds


def tree_thresholds(estimator: Any) -> dict[int, np.ndarray]:
    """Feature index -> the distinct finite split thresholds of ``estimator``'s trees.

    Reads scikit-learn trees and their ensembles (``estimators_``), histogram gradient
    boosting, XGBoost and LightGBM; anything else has none (an empty dict).
    """
    found: dict[int, list[np.ndarray]] = {}

    def add(features: np.ndarray, thresholds: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.int64)
        thresholds = np.asarray(thresholds, dtype=np.float64)
        for j in np.unique(features[features >= 0]).tolist():
            found.setdefault(int(j), []).append(thresholds[features == j])

    _collect(estimator, add)
    result = {}
    for j, parts in found.items():
        values = np.unique(np.concatenate(parts))
        values = values[np.isfinite(values)]
        if values.size:
            result[j] = values
    return result


def _collect(estimator: Any, add: Callable[[np.ndarray, np.ndarray], None]) -> None:
    module = type(estimator).__module__.split(".")[0]
    if module == "xgboost":
        _xgboost_splits(estimator, add)
    elif module == "lightgbm":
        _lightgbm_splits(estimator, add)
    elif hasattr(estimator, "tree_") and hasattr(estimator.tree_, "threshold"):
        tree = estimator.tree_
        add(tree.feature, tree.threshold)
    elif hasattr(estimator, "_predictors"):  # HistGradientBoosting*
        for predictors in estimator._predictors:
            for predictor in predictors:
                nodes = predictor.nodes
                numeric = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)
                add(nodes["feature_idx"][numeric], nodes["num_threshold"][numeric])
    elif hasattr(estimator, "estimators_"):
        for member in np.asarray(estimator.estimators_, dtype=object).ravel().tolist():
            _collect(member, add)


def _xgboost_splits(estimator: Any, add: Callable[[np.ndarray, np.ndarray], None]) -> None:
    booster = estimator.get_booster()
    names = list(booster.feature_names or [])
    table = booster.trees_to_dataframe()
    splits = table[table["Feature"] != "Leaf"]
    index = {name: i for i, name in enumerate(names)}

    def position(name: str) -> int:
        if name in index:
            return index[name]
        return int(name[1:]) if name.startswith("f") and name[1:].isdigit() else -1

    features = np.array([position(str(f)) for f in splits["Feature"]], dtype=np.int64)
    add(features, splits["Split"].to_numpy(dtype=np.float64))


def _lightgbm_splits(estimator: Any, add: Callable[[np.ndarray, np.ndarray], None]) -> None:
    features: list[int] = []
    thresholds: list[float] = []

    def visit(node: dict[str, Any]) -> None:
        if "split_feature" not in node:
            return
        if node.get("decision_type", "<=") == "<=":
            features.append(int(node["split_feature"]))
            thresholds.append(float(node["threshold"]))
        visit(node["left_child"])
        visit(node["right_child"])

    for tree in estimator.booster_.dump_model()["tree_info"]:
        visit(tree["tree_structure"])
    add(np.array(features, dtype=np.int64), np.array(thresholds, dtype=np.float64))


Inverse = Callable[[np.ndarray], np.ndarray]


def _identity(values: np.ndarray) -> np.ndarray:
    return values


def _raw_columns(model: Any, names: Sequence[str]) -> tuple[Any, dict[int, tuple[str, Inverse]]]:
    """The final estimator and, per input feature of it, the raw column and the inverse.

    A feature reached only through monotone per-column steps maps back to its column; the
    inverse turns a value of the feature into the raw value that becomes it.
    """
    from sklearn.pipeline import Pipeline

    current: dict[int, tuple[str, Inverse]] = {j: (n, _identity) for j, n in enumerate(names)}
    while isinstance(model, Pipeline):
        for _, step in model.steps[:-1]:
            current = _through(step, current)
        model = model.steps[-1][1]
    return model, current


def _through(step: Any, current: dict[int, tuple[str, Inverse]]) -> dict[int, tuple[str, Inverse]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        PowerTransformer,
        QuantileTransformer,
        RobustScaler,
        StandardScaler,
    )

    if step is None or step == "passthrough":
        return current
    if isinstance(step, str):  # "drop"
        return {}
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            current = _through(inner, current)
        return current
    if isinstance(step, ColumnTransformer):
        out: dict[int, tuple[str, Inverse]] = {}
        inputs = getattr(step, "_transformer_to_input_indices", {})
        for name, transformer, _ in step.transformers_:
            if name not in inputs or name not in step.output_indices_:
                continue
            sub = {k: current[i] for k, i in enumerate(inputs[name]) if i in current}
            start = step.output_indices_[name].start
            out.update({start + k: v for k, v in _through(transformer, sub).items()})
        return out
    if isinstance(step, FunctionTransformer) and step.func is None:
        return current
    if isinstance(step, SimpleImputer):
        if step.add_indicator:
            return {}
        kept = np.flatnonzero(~np.isnan(np.asarray(step.statistics_, dtype=np.float64)))
        if step.keep_empty_features or kept.size == len(step.statistics_):
            return current
        return {k: current[int(i)] for k, i in enumerate(kept) if int(i) in current}
    monotone = (
        StandardScaler,
        MinMaxScaler,
        RobustScaler,
        MaxAbsScaler,
        PowerTransformer,
        QuantileTransformer,
    )
    if isinstance(step, monotone):
        width = int(step.n_features_in_)
        return {
            j: (column, _composed(step, j, width, inverse))
            for j, (column, inverse) in current.items()
        }
    return {}


def _composed(step: Any, j: int, width: int, inverse: Inverse) -> Inverse:
    def apply(values: np.ndarray) -> np.ndarray:
        matrix = np.zeros((values.size, width), dtype=np.float64)
        matrix[:, j] = values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = np.asarray(step.inverse_transform(matrix), dtype=np.float64)[:, j]
        return inverse(raw)

    return apply


def _threshold_probes(
    model: Any, features: Sequence[FeatureSpec], columns: dict[str, list[Any]]
) -> tuple[list[Probe], list[str]]:
    """Rows on and one step either side of each (sampled) tree threshold, per raw column."""
    try:
        estimator, mapping = _raw_columns(model, [f.name for f in features])
        thresholds = tree_thresholds(estimator)
    except Exception as exc:  # an unusual model: no threshold probes, said in the report
        return [], [f"tree thresholds not read: {type(exc).__name__}: {exc}"[:200]]
    if not thresholds:
        return [], []
    specs = {f.name: f for f in features}
    per_column: dict[str, list[np.ndarray]] = {}
    unmapped = total = probed = trimmed = 0
    for j, values in sorted(thresholds.items()):
        target = mapping.get(j)
        spec = specs.get(target[0]) if target else None
        if target is None or spec is None or spec.dtype not in ("integer", "float"):
            unmapped += 1
            continue
        column, inverse = target
        chosen = sample_thresholds(values)
        total += values.size
        probed += chosen.size
        around = _steps_around(chosen)
        if (np.abs(chosen) < _NEAR_ZERO).any():
            # LightGBM reads |x| <= 1e-35 (float32) as 0: thresholds there need the values
            # around that bound too, not only around the threshold.
            around = np.concatenate([around, _steps_around(_ZERO_BOUNDS)])
        with np.errstate(all="ignore"):
            raw = inverse(around)
            exact = inverse(chosen)
        raw = np.concatenate([raw, _steps_around(exact[np.isfinite(exact)])])
        raw = raw[np.isfinite(raw)]
        if spec.dtype == "integer":
            raw = np.concatenate([np.floor(raw), np.ceil(raw)])
            raw = raw[np.abs(raw) <= 2.0**53]
        per_column.setdefault(column, []).append(raw)
    probes: list[Probe] = []
    budget = THRESHOLD_ROWS // max(1, len(per_column))
    for column, parts in per_column.items():
        raw = np.unique(np.concatenate(parts))
        if raw.size > budget:  # evenly spread over the sorted values, ends included
            kept = np.unique(np.linspace(0, raw.size - 1, num=budget).round().astype(int))
            trimmed += raw.size - kept.size
            raw = raw[kept]
        if not raw.size:
            continue
        integer = specs[column].dtype == "integer"
        probe_values: list[Any] = [int(v) for v in raw] if integer else raw.tolist()
        probe = _varied(columns, column, probe_values)
        probes.append((TREE_THRESHOLDS, f"probe: tree thresholds of {column!r}", probe))
    notes = []
    if probed < total or trimmed:
        notes.append(
            f"tree thresholds sampled: {probed} of {total} distinct thresholds probed (at "
            f"most {THRESHOLDS_PER_FEATURE} per tree feature, evenly spread over the sorted "
            f"thresholds, plus the one nearest zero)"
            + (f"; {trimmed} probe values over {THRESHOLD_ROWS} rows left out" if trimmed else "")
        )
    if unmapped:
        notes.append(
            f"tree thresholds of {unmapped} of {len(thresholds)} tree feature(s) not probed: "
            "no monotone chain of steps leads to them from one numeric column"
        )
    return probes, notes


_NEAR_ZERO: Final = 1e-30
_ZERO_BOUNDS: Final = np.array(
    [0.0, 1e-35, -1e-35, float(np.float32(1e-35)), -float(np.float32(1e-35))]
)


def sample_thresholds(values: np.ndarray) -> np.ndarray:
    """At most THRESHOLDS_PER_FEATURE: evenly spread, ends and the one closest to 0 kept."""
    if values.size <= THRESHOLDS_PER_FEATURE:
        return values
    spread = np.linspace(0, values.size - 1, num=THRESHOLDS_PER_FEATURE - 1).round().astype(int)
    chosen = np.unique(np.append(spread, int(np.argmin(np.abs(values)))))
    sampled: np.ndarray = values[chosen]
    return sampled


def _steps_around(values: np.ndarray) -> np.ndarray:
    """Each value, its float32 rounding, and one float32 and one float64 step either side."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        single = values.astype(np.float32)
        parts = [
            values,
            np.nextafter(values, -np.inf),
            np.nextafter(values, np.inf),
            single.astype(np.float64),
            np.nextafter(single, np.float32(-np.inf)).astype(np.float64),
            np.nextafter(single, np.float32(np.inf)).astype(np.float64),
        ]
    around = np.concatenate(parts)
    finite: np.ndarray = around[np.isfinite(around)]
    return finite


# ------------------------------------------------------------------------------ outputs


@dataclass
class Expected:
    """The original model's outputs on the rows it accepted."""

    frame: pd.DataFrame
    sources: list[str]
    positions: np.ndarray  # row number within its source
    predictions: np.ndarray
    probabilities: np.ndarray | None
    skipped: list[str]
    counts: dict[str, int]
    regions: list[str] = field(default_factory=list)  # per row
    spans: list[tuple[str, str, int, int]] = field(default_factory=list)  # source, region
    notes: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # region -> rows the original refused


def original_outputs(model: Any, rows: Rows, *, proba: bool) -> Expected:
    """Run the original on each group; a group it refuses is skipped and named.

    Groups whose columns have the same dtypes are run as one batch (a forest's predict
    costs per call as much as per row); a batch the original refuses is run group by group,
    so only the groups it refuses are left out.
    """
    import pandas as pd

    frames, sources, regions, positions, predictions, probabilities = [], [], [], [], [], []
    skipped: list[str] = []
    counts: dict[str, int] = {}
    spans: list[tuple[str, str, int, int]] = []
    refused: dict[str, int] = {}
    start = 0
    batches: dict[tuple[str, ...], list[Group]] = {}
    for group in rows.groups:
        batches.setdefault(tuple(map(str, group.frame.dtypes)), []).append(group)
    for batch in batches.values():
        results = _run_batch(model, batch, proba=proba)
        for group, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                first = str(result).splitlines()[0] if str(result) else ""
                skipped.append(
                    f"{group.source}: the original raised {type(result).__name__}: {first}"
                )
                refused[group.region] = refused.get(group.region, 0) + len(group.frame)
                continue
            predicted, probability = result
            frames.append(group.frame.reset_index(drop=True))
            n = len(group.frame)
            sources.extend([group.source] * n)
            regions.extend([group.region] * n)
            spans.append((group.source, group.region, start, start + n))
            start += n
            positions.append(np.arange(n))
            predictions.append(predicted)
            if probability is not None:
                probabilities.append(probability)
            key = group.source.split(":")[0]
            counts[key] = counts.get(key, 0) + n
    if not frames:
        raise ValueError("the original model refused every row compared")
    return Expected(
        frame=pd.concat(frames, ignore_index=True),
        sources=sources,
        positions=np.concatenate(positions),
        predictions=np.concatenate(predictions),
        probabilities=np.concatenate(probabilities) if proba else None,
        skipped=skipped,
        counts=counts,
        regions=regions,
        spans=spans,
        notes=list(rows.notes),
        refused=refused,
    )


_Outputs = tuple[np.ndarray, np.ndarray | None]


def _run_batch(model: Any, batch: list[Group], *, proba: bool) -> list[_Outputs | BaseException]:
    """The original's outputs per group of ``batch`` (same dtypes), or what it raised."""
    import pandas as pd

    if len(batch) > 1:
        try:
            frame = pd.concat([g.frame for g in batch], ignore_index=True)
            predicted, probability = _predict(model, frame, proba=proba)
        except Exception:  # some group is refused: find which, one by one
            pass
        else:
            bounds = np.cumsum([0] + [len(g.frame) for g in batch])
            return [
                (
                    predicted[a:b],
                    None if probability is None else probability[a:b],
                )
                for a, b in itertools.pairwise(bounds.tolist())
            ]
    results: list[_Outputs | BaseException] = []
    for group in batch:
        try:
            results.append(_predict(model, group.frame, proba=proba))
        except Exception as exc:  # whatever the original raises, it refused these rows
            results.append(exc)
    return results


def _predict(model: Any, frame: pd.DataFrame, *, proba: bool) -> _Outputs:
    from modelkeep._golden import model_input

    data = model_input(model, frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. unknown categories found during transform
        predicted = np.asarray(model.predict(data))
        probability = np.asarray(model.predict_proba(data), np.float64) if proba else None
    return predicted, probability


def measure(
    expected: Expected,
    runtime: OnnxRuntime,
    *,
    features: Sequence[FeatureSpec],
    classes: Sequence[Scalar] | None,
    labels: Sequence[str] | None,
    task: str,
    strategy: str,
    thresholds: ParityThresholds,
) -> ParityReport:
    """Compare the converted model with the original's outputs on the same rows.

    Each group is fed through the converted model's input check on its own: a probe or
    validation group it refuses (:class:`SchemaError`) is named in the report's
    ``refused`` and not compared; a refused golden group raises.
    """

    parts: list[dict[str, np.ndarray]] = []
    fed: list[tuple[str, str]] = []  # source and region of each part
    keep = np.ones(len(expected.frame), dtype=bool)
    narrowed: list[str] = []
    narrowed_rows: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        for source, region, start, stop in expected.spans or [("", "", 0, len(expected.frame))]:
            try:
                feeds, _ = runtime.feeds(expected.frame.iloc[start:stop])
            except SchemaError as exc:
                if region in ("", GOLDEN):
                    raise
                keep[start:stop] = False
                first = str(exc).splitlines()[0]
                narrowed.append(f"{source}: the converted model refuses it: {first}"[:300])
                narrowed_rows[region] = narrowed_rows.get(region, 0) + stop - start
                continue
            parts.append(feeds)
            fed.append((source, region))
    if not parts:
        raise ValueError("the converted model refused every row compared")
    if not keep.all():
        expected = _subset(expected, keep)
    feeds = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    try:
        out = runtime.run(feeds)
    except Exception:  # onnxruntime failed on some rows: say which region's
        _raise_failing_group(runtime, parts, fed)
        raise
    if classes is None:
        report = _measure_regression(expected, out, features, strategy, thresholds, task)
    else:
        report = _measure_classifier(
            expected,
            out,
            runtime,
            features,
            list(classes),
            list(labels or []),
            strategy,
            thresholds,
            task,
        )
    regions = [
        r.model_copy(update={"refused": narrowed_rows.get(r.region, 0)}) for r in report.regions
    ]
    seen = {r.region for r in regions}
    for region in REGIONS:  # regions with no row compared are listed too
        if region not in seen and (region in narrowed_rows or region in expected.refused):
            regions.append(
                RegionCheck(
                    region=region,
                    rows=0,
                    refused=narrowed_rows.get(region, 0),
                    skipped=expected.refused.get(region, 0),
                    passed=True,
                )
            )
    regions.sort(key=lambda r: REGIONS.index(r.region) if r.region in REGIONS else len(REGIONS))
    return report.model_copy(
        update={"regions": regions, "refused": narrowed, "notes": list(expected.notes)}
    )


def _raise_failing_group(
    runtime: OnnxRuntime, parts: list[dict[str, np.ndarray]], fed: list[tuple[str, str]]
) -> None:
    """Run the groups one by one; raise for the first the converted model fails on."""
    for (source, region), feeds in zip(fed, parts, strict=True):
        try:
            runtime.run(feeds)
        except Exception as exc:  # onnxruntime's errors share no useful base class
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(
                f"region {region or 'all'!r} ({source or 'every row'}): the converted model "
                f"raised where the original answered: {type(exc).__name__}: {first}"
            ) from exc


def _subset(expected: Expected, keep: np.ndarray) -> Expected:
    index = np.flatnonzero(keep)
    counts: dict[str, int] = {}
    for i in index.tolist():
        key = expected.sources[i].split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return Expected(
        frame=expected.frame.iloc[index].reset_index(drop=True),
        sources=[expected.sources[i] for i in index],
        positions=expected.positions[index],
        predictions=expected.predictions[index],
        probabilities=None if expected.probabilities is None else expected.probabilities[index],
        skipped=expected.skipped,
        counts=counts,
        regions=[expected.regions[i] for i in index] if expected.regions else [],
        spans=[],
        notes=expected.notes,
        refused=expected.refused,
    )


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _region_checks(
    expected: Expected,
    difference: np.ndarray,
    bad: np.ndarray,
    mismatched: np.ndarray | None,
) -> list[RegionCheck]:
    """Per region: rows, worst difference and where, label mismatches, verdict."""
    regions = np.asarray(expected.regions or [""] * len(difference), dtype=object)
    checks = []
    for region in dict.fromkeys(regions.tolist()):
        where = np.flatnonzero(regions == region)
        ranking = difference[where]
        if mismatched is not None:  # a label flip first, then the largest difference
            order = np.lexsort((-ranking, ~mismatched[where]))
        else:
            order = np.argsort(-ranking, kind="stable")
        worst = int(where[order[0]]) if where.size else None
        worst_diff = float(ranking.max()) if where.size else 0.0
        shown = None
        if worst is not None and (bad[where].any() or worst_diff > 0):
            shown = f"{expected.sources[worst]} row {int(expected.positions[worst])}"
        checks.append(
            RegionCheck(
                region=str(region) or "all",
                rows=int(where.size),
                skipped=expected.refused.get(str(region), 0),
                label_mismatches=int(mismatched[where].sum()) if mismatched is not None else 0,
                max_difference=_finite(worst_diff),
                worst_row=shown,
                passed=not bool(bad[where].any()),
            )
        )
    return checks


def _region_failures(checks: list[RegionCheck]) -> list[str]:
    """One failure per region beyond the thresholds, naming its worst row."""
    failures = []
    for check in checks:
        if check.passed:
            continue
        parts = [f"{check.label_mismatches} label(s) differ"] if check.label_mismatches else []
        shown = "inf" if check.max_difference is None else f"{check.max_difference:.3g}"
        parts.append(f"largest difference {shown}")
        failures.append(f"region {check.region!r}: {', '.join(parts)} (worst: {check.worst_row})")
    return failures


def _measure_regression(
    expected: Expected,
    out: dict[str, np.ndarray],
    features: Sequence[FeatureSpec],
    strategy: str,
    thresholds: ParityThresholds,
    task: str,
) -> ParityReport:
    want = np.asarray(expected.predictions, dtype=np.float64).ravel()
    got = np.asarray(out[VALUE], dtype=np.float64).ravel()
    absolute = np.abs(got - want)
    relative = absolute / np.maximum(1.0, np.abs(want))
    relative = np.where(np.isnan(relative), np.inf, relative)
    worst_rel = float(relative.max()) if relative.size else 0.0
    bad_rows = ~(relative <= thresholds.regression_rtol)
    failures = []
    if bad_rows.any():
        failures.append(
            f"{int(bad_rows.sum())} prediction(s) differ by more than "
            f"{thresholds.regression_rtol:g} (relative), at most {worst_rel:.3g}"
        )
    checks = _region_checks(expected, relative, bad_rows, None)
    failures.extend(_region_failures(checks))
    order = np.argsort(-relative, kind="stable")[:WORST_ROWS]
    worst = [
        _worst_row(expected, features, int(i), want[i].item(), got[i].item(), relative[i])
        for i in order
        if relative[i] > 0
    ]
    return ParityReport(
        passed=not failures,
        strategy=strategy,
        task=task,  # type: ignore[arg-type]
        thresholds=thresholds,
        rows=int(want.size),
        sources=expected.counts,
        skipped=expected.skipped,
        outputs=[
            OutputDifference(
                output="prediction",
                max_abs_diff=_finite(float(np.nanmax(absolute))) if absolute.size else 0.0,
                mean_abs_diff=_finite(float(np.nanmean(absolute))) if absolute.size else 0.0,
            )
        ],
        max_rel_diff=_finite(worst_rel),
        failures=failures,
        worst_rows=worst,
        regions=checks,
    )


def _measure_classifier(
    expected: Expected,
    out: dict[str, np.ndarray],
    runtime: OnnxRuntime,
    features: Sequence[FeatureSpec],
    classes: list[Scalar],
    labels: list[str],
    strategy: str,
    thresholds: ParityThresholds,
    task: str,
) -> ParityReport:
    want = np.asarray(expected.probabilities, dtype=np.float64)
    got = np.asarray(out[PROBABILITIES], dtype=np.float64)
    n = len(want)
    lookup = {onnx_label(c): i for i, c in enumerate(classes)}
    want_pos = np.array(
        [lookup[onnx_label(plain_value(p))] for p in expected.predictions], dtype=int
    )
    got_pos = runtime.positions(out[LABEL])
    if got.shape != want.shape:
        raise ValueError(f"probabilities of shape {got.shape}, expected {want.shape}")
    diff = np.abs(got - want)
    diff = np.where(np.isnan(diff), np.inf, diff)
    top = np.sort(want, axis=1)
    ties = (
        (top[:, -1] - top[:, -2] <= thresholds.tie_tol) if want.shape[1] > 1 else np.zeros(n, bool)
    )
    differ = got_pos != want_pos
    mismatched = differ & ~ties
    mismatches = int(mismatched.sum())
    row_diff = diff.max(axis=1) if n else np.zeros(0)
    worst_diff = float(row_diff.max()) if n else 0.0
    failures = []
    if mismatches:
        failures.append(f"{mismatches} label(s) differ")
    if not worst_diff <= thresholds.proba_atol:
        bad = int((row_diff > thresholds.proba_atol).sum())
        failures.append(
            f"{bad} row(s) with a probability difference above {thresholds.proba_atol:g}, "
            f"at most {worst_diff:.3g}"
        )
    checks = _region_checks(
        expected, row_diff, mismatched | ~(row_diff <= thresholds.proba_atol), mismatched
    )
    failures.extend(_region_failures(checks))
    rank = np.lexsort((-row_diff, ~mismatched))[:WORST_ROWS]
    names = labels or [str(c) for c in classes]
    worst = [
        _worst_row(
            expected,
            features,
            int(i),
            names[want_pos[i]],
            names[got_pos[i]],
            row_diff[i],
            want[i].tolist(),
            got[i].tolist(),
            bool(ties[i]),
        )
        for i in rank
        if differ[i] or row_diff[i] > 0
    ]
    return ParityReport(
        passed=not failures,
        strategy=strategy,
        task=task,  # type: ignore[arg-type]
        thresholds=thresholds,
        rows=n,
        sources=expected.counts,
        skipped=expected.skipped,
        label_agreement=float((~differ).mean()) if n else 1.0,
        label_mismatches=mismatches,
        ties=int(ties.sum()),
        tie_mismatches=int((differ & ties).sum()),
        outputs=[
            OutputDifference(
                output=name,
                max_abs_diff=_finite(float(diff[:, j].max())) if n else 0.0,
                mean_abs_diff=_finite(float(diff[:, j].mean())) if n else 0.0,
            )
            for j, name in enumerate(names)
        ],
        failures=failures,
        worst_rows=worst,
        regions=checks,
    )


def _worst_row(
    expected: Expected,
    features: Sequence[FeatureSpec],
    i: int,
    want: Any,
    got: Any,
    difference: float,
    want_proba: list[float] | None = None,
    got_proba: list[float] | None = None,
    tie: bool = False,
) -> WorstRow:
    from modelkeep._schema import to_json_columns

    inputs = {k: v[0] for k, v in to_json_columns(expected.frame.iloc[[i]], features).items()}
    return WorstRow(
        source=expected.sources[i],
        row=int(expected.positions[i]),
        inputs=inputs,
        expected=want,
        got=got,
        difference=_finite(float(difference)),
        expected_probabilities=want_proba,
        got_probabilities=[v if math.isfinite(v) else -1.0 for v in got_proba]
        if got_proba
        else None,
        tie=tie,
    )
