"""Measure a converted model against the original before it is written.

The rows compared come from three sources:

- ``golden``: the bundle's golden samples;
- ``validation``: the ``sample`` given to ``save`` (or ``validation=`` given to
  ``convert``), at most :data:`VALIDATION_ROWS` rows spread evenly over it;
- ``probe``: generated rows at the inputs that break conversions: an unseen category in
  each string and category column, a missing value in each nullable column, and values
  exactly on the midpoints between neighbouring values of each float column (where tree
  thresholds sit): the :data:`CLOSEST_MIDPOINTS` midpoints of the closest neighbours,
  where float32 rounding decides the branch, and :data:`SPREAD_MIDPOINTS` spread over the
  range. Integer columns get no midpoints: an integer input cannot take them.

Both models see the same rows, coerced to the schema as a prediction would be; the
original through scikit-learn, the converted one through onnxruntime fed by
:mod:`modelkeep.onnx.inputs` (the serving path). A probe group the original itself
refuses (an unseen category under ``handle_unknown="error"``) is left out and named in
the report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from modelkeep.errors import SchemaWarning
from modelkeep.manifest import FeatureSpec, GoldenSamples, Scalar
from modelkeep.onnx.report import OutputDifference, ParityReport, ParityThresholds, WorstRow
from modelkeep.onnx.runtime import LABEL, PROBABILITIES, VALUE, OnnxRuntime, onnx_label

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLOSEST_MIDPOINTS",
    "SPREAD_MIDPOINTS",
    "UNSEEN_CATEGORY",
    "VALIDATION_ROWS",
    "Expected",
    "Rows",
    "evaluation_rows",
    "measure",
    "original_outputs",
]

VALIDATION_ROWS: Final = 10_000
CLOSEST_MIDPOINTS: Final = 100
SPREAD_MIDPOINTS: Final = 100
PROBE_BASE_ROWS: Final = 8
UNSEEN_CATEGORY: Final = "modelkeep-unseen-category"
WORST_ROWS: Final = 5


@dataclass
class Group:
    """Consecutive rows of one source: ``golden``, ``validation`` or a probe."""

    source: str
    frame: pd.DataFrame


@dataclass
class Rows:
    """Every row to compare, as groups of frames coerced to the schema."""

    groups: list[Group] = field(default_factory=list)


def evaluation_rows(
    features: Sequence[FeatureSpec], golden: GoldenSamples, validation: Any
) -> Rows:
    """The golden, validation and probe rows, each group coerced to the schema."""
    from modelkeep.schema import prepare, to_json_columns

    rows = Rows()
    with warnings.catch_warnings():
        # Probes are unusual on purpose; validation data may hold unseen values too.
        warnings.simplefilter("ignore", SchemaWarning)
        if golden.rows:
            rows.groups.append(Group("golden", prepare(golden.inputs, features)))
        if validation is not None:
            frame = _spread(prepare(_schema_columns(validation, features), features))
            rows.groups.append(Group("validation", frame))
        # Probes vary one column of a few base rows: golden rows when there are some, else
        # the first validation rows without an infinity (JSON cannot hold one). Midpoints
        # come from the largest set of values at hand.
        values = rows.groups[-1].frame if rows.groups else None
        base = _finite_rows(rows.groups[0].frame).iloc[:PROBE_BASE_ROWS] if rows.groups else None
        if base is not None and values is not None and len(base):
            columns = to_json_columns(base, features)
            for source, probe in _probes(values, features, columns):
                rows.groups.append(Group(source, prepare(probe, features)))
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


def _probes(
    values: pd.DataFrame, features: Sequence[FeatureSpec], columns: dict[str, list[Any]]
) -> list[tuple[str, dict[str, list[Any]]]]:
    n_base = len(next(iter(columns.values()), []))

    def rows(n: int) -> dict[str, list[Any]]:
        return {name: [values[i % n_base] for i in range(n)] for name, values in columns.items()}

    probes = []
    for spec in features:
        if spec.dtype in ("string", "category") and _takes_strings(spec):
            probe = rows(n_base)
            probe[spec.name] = [UNSEEN_CATEGORY] * n_base
            probes.append((f"probe: unseen category in {spec.name!r}", probe))
        if spec.nullable:
            probe = rows(n_base)
            probe[spec.name] = [None] * n_base
            probes.append((f"probe: missing {spec.name!r}", probe))
        if spec.dtype == "float":
            midpoints = _midpoints(values[spec.name].to_numpy(dtype=np.float64, na_value=np.nan))
            if midpoints.size:
                probe = rows(midpoints.size)
                probe[spec.name] = midpoints.tolist()
                probes.append((f"probe: midpoints of {spec.name!r}", probe))
    return probes


def _takes_strings(spec: FeatureSpec) -> bool:
    return spec.dtype == "string" or all(isinstance(c, str) for c in spec.categories or ())


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


def original_outputs(model: Any, rows: Rows, *, proba: bool) -> Expected:
    """Run the original on each group; a group it refuses is skipped and named."""
    import pandas as pd

    from modelkeep.golden import model_input

    frames, sources, positions, predictions, probabilities = [], [], [], [], []
    skipped: list[str] = []
    counts: dict[str, int] = {}
    for group in rows.groups:
        data = model_input(model, group.frame)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. unknown categories found during transform
                predicted = np.asarray(model.predict(data))
                probability = np.asarray(model.predict_proba(data), np.float64) if proba else None
        except Exception as exc:  # whatever the original raises, it refused these rows
            first = str(exc).splitlines()[0] if str(exc) else ""
            skipped.append(f"{group.source}: the original raised {type(exc).__name__}: {first}")
            continue
        frames.append(group.frame.reset_index(drop=True))
        n = len(group.frame)
        sources.extend([group.source] * n)
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
    )


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
    """Compare the converted model with the original's outputs on the same rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)
        feeds, _ = runtime.feeds(expected.frame)
    out = runtime.run(feeds)
    if classes is None:
        return _measure_regression(expected, out, features, strategy, thresholds, task)
    return _measure_classifier(
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


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


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
    failures = []
    if not worst_rel <= thresholds.regression_rtol:
        bad = int((relative > thresholds.regression_rtol).sum())
        failures.append(
            f"{bad} prediction(s) differ by more than {thresholds.regression_rtol:g} "
            f"(relative), at most {worst_rel:.3g}"
        )
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
    want_pos = np.array([lookup[onnx_label(_item(p))] for p in expected.predictions], dtype=int)
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
    mismatches = int((differ & ~ties).sum())
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
    rank = np.lexsort((-row_diff, ~(differ & ~ties)))[:WORST_ROWS]
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
    )


def _item(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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
    from modelkeep.schema import to_json_columns

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
