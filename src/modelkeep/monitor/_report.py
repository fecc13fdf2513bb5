"""The drift report: plain data, built from the counts of :mod:`._accumulate`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modelkeep.errors import InvalidArgumentError
from modelkeep.monitor._accumulate import SCORE_BINS, ColumnCounts, PerformanceCounts
from modelkeep.monitor._stats import js_distance, ks_binned, psi, shares

__all__ = [
    "DriftReport",
    "FeatureDrift",
    "Performance",
    "Thresholds",
    "WindowResult",
]


@dataclass(frozen=True)
class Thresholds:
    """When a result counts as drift; every result records the thresholds it was judged by.

    ``psi_minor``/``psi_major``: a feature's PSI status is ``stable`` below the first,
    ``minor`` below the second, ``major`` (drifted) from it. ``dataset``: dataset drift when
    this share of the features drifted. ``missing``: a change of the missing share by at
    least this much (and at least 3 standard errors) is drift. ``unseen``: this share of
    values never seen in the reference. ``out_of_range``: this share of numeric values
    outside the reference's [min, max]. ``performance_drop``: a metric this much below the
    one recorded at training.
    """

    psi_minor: float = 0.1
    psi_major: float = 0.25
    dataset: float = 0.5
    missing: float = 0.02
    unseen: float = 0.01
    out_of_range: float = 0.02
    performance_drop: float = 0.05

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidArgumentError(name, "a number >= 0", repr(value))
        if self.psi_minor > self.psi_major:
            raise InvalidArgumentError(
                "psi_minor", f"at most psi_major ({self.psi_major})", repr(self.psi_minor)
            )
        if not 0 < self.dataset <= 1:
            raise InvalidArgumentError("dataset", "a share in (0, 1]", repr(self.dataset))


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift in one window (or the whole run).

    ``psi`` on the reference bins with its ``status``; ``js`` (categorical) or ``ks``
    (numeric) besides; ``kinds`` lists what drifted: ``distribution`` (PSI major),
    ``missing``, ``unseen``, ``out_of_range``. ``bins``/``reference``/``current`` are the
    histograms compared (shares), for plots.
    """

    name: str
    kind: str
    rows: int
    psi: float | None
    status: str
    js: float | None
    ks: float | None
    reference_missing: float
    current_missing: float
    out_of_range: float | None
    unseen: float | None
    unseen_values: list[str]
    drifted: bool
    kinds: list[str]
    method: str
    thresholds: dict[str, float]
    bins: list[str] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    current_mean: float | None = None
    reference_mean: float | None = None


@dataclass(frozen=True)
class Performance:
    """Metrics of labelled rows against those recorded at training."""

    rows: int
    metrics: dict[str, float | None]
    reference: dict[str, float]
    drops: dict[str, float]
    dropped: bool
    dropped_metrics: list[str]
    method: str
    threshold: float


@dataclass(frozen=True)
class WindowResult:
    """One time window's results (``start``/``end`` ISO 8601, UTC)."""

    start: str | None
    end: str | None
    rows: int
    features: list[FeatureDrift]
    outputs: list[FeatureDrift]
    performance: Performance | None
    drifted_share: float
    dataset_drift: bool


@dataclass(frozen=True)
class DriftReport:
    """What :func:`modelkeep.monitor.drift` found. Plain data: :meth:`to_dict` is JSON.

    ``features`` and ``outputs`` over all rows read; ``windows`` one result per window
    (empty without ``window=``); ``dataset_drift`` when the share of drifted features
    reached ``thresholds.dataset``; ``performance`` with labels; :attr:`drifted` the
    verdict (dataset drift or a performance drop).
    """

    reference: dict[str, Any]
    source: str
    rows: int
    features: list[FeatureDrift]
    outputs: list[FeatureDrift]
    performance: Performance | None
    windows: list[WindowResult]
    drifted_share: float
    dataset_drift: bool
    output_drift: bool
    thresholds: Thresholds
    window: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """Dataset drift, or a performance drop: what makes ``modelkeep monitor`` exit 1."""
        return self.dataset_drift or (self.performance is not None and self.performance.dropped)

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def feature(self, name: str) -> FeatureDrift:
        for result in [*self.features, *self.outputs]:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serializable data (``json.dumps`` takes it as it is)."""
        data = asdict(self)
        data["drifted"] = self.drifted
        data["drifted_features"] = self.drifted_features
        return data


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def column_drift(counts: ColumnCounts, thresholds: Thresholds) -> FeatureDrift:
    """Judge one column's counts against its reference."""
    ref = counts.reference
    names, reference, current = counts.histograms()
    ref_missing = ref.missing / ref.count if ref.count else 0.0
    cur_missing = counts.missing / counts.count if counts.count else 0.0
    kinds: list[str] = []
    present = counts.present
    limits = {
        "psi_minor": thresholds.psi_minor,
        "psi_major": thresholds.psi_major,
        "missing": thresholds.missing,
    }
    value = js = ks = out = unseen = None
    status = "no data"
    if present and reference.sum():
        value = _round(psi(reference, current))
        status = (
            "major"
            if value >= thresholds.psi_major
            else "minor"
            if value >= thresholds.psi_minor
            else "stable"
        )
        if status == "major":
            kinds.append("distribution")
        if ref.kind == "numeric":
            ks = _round(ks_binned(reference, current))
            out = _round((counts.below + counts.above) / present)
            limits["out_of_range"] = thresholds.out_of_range
            if out >= thresholds.out_of_range and out > 0:
                kinds.append("out_of_range")
        else:
            js = _round(js_distance(reference, current))
            unseen = _round(counts.unseen_rows / present)
            limits["unseen"] = thresholds.unseen
            if unseen >= thresholds.unseen and unseen > 0:
                kinds.append("unseen")
    if counts.count and ref.count and _missing_changed(ref_missing, ref.count, counts, thresholds):
        kinds.append("missing")
    unseen_values = sorted(counts.unseen, key=lambda k: (-counts.unseen[k], k))[:10]
    mean = counts.total / present if present and ref.kind == "numeric" else None
    return FeatureDrift(
        name=ref.name,
        kind=ref.kind,
        rows=counts.count,
        psi=value,
        status=status,
        js=js,
        ks=ks,
        reference_missing=_round(ref_missing),
        current_missing=_round(cur_missing),
        out_of_range=out,
        unseen=unseen,
        unseen_values=unseen_values,
        drifted=bool(kinds),
        kinds=kinds,
        method=(
            "PSI on the reference's quantile bins (KS from the binned CDFs)"
            if ref.kind == "numeric"
            else "PSI on the reference's categories (Jensen-Shannon distance)"
        ),
        thresholds=limits,
        bins=names,
        reference=[_round(float(v)) for v in shares(reference)],
        current=[_round(float(v)) for v in shares(current)],
        current_mean=None if mean is None or not math.isfinite(mean) else _round(mean),
        reference_mean=ref.mean,
    )


def _missing_changed(
    ref_share: float, ref_rows: int, counts: ColumnCounts, thresholds: Thresholds
) -> bool:
    share = counts.missing / counts.count
    change = abs(share - ref_share)
    if change < thresholds.missing or change == 0:
        return False
    pooled = (ref_share * ref_rows + counts.missing) / (ref_rows + counts.count)
    error = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / ref_rows + 1 / counts.count))
    return change >= 3 * error


def performance(
    counts: PerformanceCounts,
    reference: dict[str, float],
    task: str,
    positive: str | None,
    thresholds: Thresholds,
) -> Performance:
    """Metrics of the labelled rows, and which dropped below the recorded ones."""
    metrics: dict[str, float | None] = {}
    if task == "regression":
        if counts.rows:
            metrics["rmse"] = _round(math.sqrt(counts.errors / counts.rows))
            metrics["mae"] = _round(counts.absolute / counts.rows)
    elif counts.rows:
        total = sum(counts.confusion.values())
        right = sum(n for (t, p), n in counts.confusion.items() if t == p)
        metrics["accuracy"] = _round(right / total)
        metrics["f1"] = _f1(counts, positive if task == "binary" else None)
        metrics["roc_auc"] = _auc(counts, positive if task == "binary" else None)
    drops: dict[str, float] = {}
    for name, value in metrics.items():
        recorded = reference.get(name)
        if recorded is None or value is None or name in ("rmse", "mae"):
            continue
        drops[name] = _round(recorded - value)
    dropped = sorted(n for n, d in drops.items() if d >= thresholds.performance_drop)
    return Performance(
        rows=counts.rows,
        metrics=metrics,
        reference={k: v for k, v in reference.items() if k in metrics},
        drops=drops,
        dropped=bool(dropped),
        dropped_metrics=dropped,
        method="accuracy, F1 (binary: the positive class; else macro) and ROC-AUC (binary; "
        "else one-vs-rest macro, from 1000-bin score histograms) against the metrics "
        "recorded at save",
        threshold=thresholds.performance_drop,
    )


def _f1(counts: PerformanceCounts, positive: str | None) -> float | None:
    classes = [positive] if positive is not None else sorted({t for t, _ in counts.confusion})
    scores = []
    for name in classes:
        tp = counts.confusion.get((name, name), 0)
        fp = sum(n for (t, p), n in counts.confusion.items() if p == name and t != name)
        fn = sum(n for (t, p), n in counts.confusion.items() if t == name and p != name)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return _round(float(np.mean(scores))) if scores else None


def _auc(counts: PerformanceCounts, positive: str | None) -> float | None:
    names = [positive] if positive is not None else sorted(counts.scores)
    values = []
    for name in names:
        hist = counts.scores.get(name)
        if hist is None:
            continue
        negatives, positives = hist[0].astype(np.float64), hist[1].astype(np.float64)
        if not negatives.sum() or not positives.sum():
            continue
        # P(score of a positive > score of a negative), ties (same bin) counted half.
        below = np.cumsum(negatives) - negatives
        wins = float(np.sum(positives * (below + negatives / 2.0)))
        values.append(wins / (positives.sum() * negatives.sum()))
    return _round(float(np.mean(values))) if values else None


__all__ += ["SCORE_BINS", "column_drift", "performance"]
