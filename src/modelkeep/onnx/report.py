"""The parity report: how far a converted model is from the original, as manifest data.

Pydantic only (no numpy, no pandas), so the serving path can read a report back from the
manifest: the thresholds for the golden replay, and the summary a failed artifact warns with.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Attempt",
    "OutputDifference",
    "ParityReport",
    "ParityThresholds",
    "RegionCheck",
    "WorstRow",
    "render_report",
    "summarize",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParityThresholds(_Frozen):
    """When a converted model counts as the same model.

    Attributes:
        proba_atol: largest absolute difference allowed in any class probability.
        regression_rtol: largest difference allowed in a regression output, relative to
            the original's value (at least 1: ``|a - b| / max(1, |a|)``).
        tie_tol: a row whose two highest probabilities (in the original) are within this
            is a tie; its label may differ without failing the check.
    """

    proba_atol: float = Field(default=1e-5, ge=0)
    regression_rtol: float = Field(default=1e-5, ge=0)
    tie_tol: float = Field(default=1e-6, ge=0)


class OutputDifference(_Frozen):
    """Differences in one output: a class probability (by business label) or the prediction."""

    output: str
    max_abs_diff: float | None
    mean_abs_diff: float | None


class WorstRow(_Frozen):
    """One of the rows where the two models differ most, with its inputs."""

    source: str
    row: int
    inputs: dict[str, Any]
    expected: Any
    got: Any
    difference: float | None
    expected_probabilities: list[float] | None = None
    got_probabilities: list[float] | None = None
    tie: bool = False


class RegionCheck(_Frozen):
    """The rows of one region of the input space and how the converted model fared on them.

    Regions (``golden``, ``validation``, ``missing value``, ``missing string``, ``unseen
    category``, ``beyond the training range``, ``midpoints``, ``tree thresholds``) are
    listed in :mod:`modelkeep.onnx.parity`. ``rows`` were compared; ``skipped`` rows the
    original itself refused; ``refused`` rows the converted model's input check refused
    (a narrowing: it raises on such input rather than answer differently).
    ``max_difference`` is the largest probability difference (classifiers) or relative
    difference (regressors) and ``worst_row`` where it is (``"<source> row <n>"``).
    """

    region: str
    rows: int
    skipped: int = 0
    refused: int = 0
    label_mismatches: int = 0
    max_difference: float | None = 0.0
    worst_row: str | None = None
    passed: bool


class Attempt(_Frozen):
    """One conversion strategy tried, and how it fared."""

    strategy: str
    passed: bool
    summary: str


class ParityReport(_Frozen):
    """The measured agreement of a converted model with the original.

    ``passed`` says whether every threshold held; ``forced`` that the artifact was written
    anyway (``force=True``). ``sources`` counts the rows compared by where they came from
    (``golden``, ``validation``, ``probe``); ``skipped`` names probe groups the original
    model itself refused (for example unseen categories with ``handle_unknown="error"``).
    For classifiers, ``label_agreement`` is the share of rows with the same label,
    ``label_mismatches`` the differing labels that are not ties, ``ties`` the rows whose two
    highest probabilities are within ``thresholds.tie_tol``. ``outputs`` holds the
    largest and mean absolute difference per class probability (or of the prediction).
    ``regions`` counts the rows and the worst difference per region of the input space
    (empty in reports written before regions existed); ``refused`` names the groups the
    converted model's input check refused; ``notes`` what the probes could not cover.
    """

    passed: bool
    forced: bool = False
    strategy: str
    task: Literal["binary", "multiclass", "regression"]
    thresholds: ParityThresholds
    rows: int
    sources: dict[str, int]
    skipped: list[str] = Field(default_factory=list)
    label_agreement: float | None = None
    label_mismatches: int = 0
    ties: int = 0
    tie_mismatches: int = 0
    outputs: list[OutputDifference]
    max_rel_diff: float | None = None
    failures: list[str] = Field(default_factory=list)
    worst_rows: list[WorstRow] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    regions: list[RegionCheck] = Field(default_factory=list)
    refused: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def max_abs_diff(self) -> float | None:
        values = [o.max_abs_diff for o in self.outputs if o.max_abs_diff is not None]
        return max(values) if values else None


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def summarize(report: ParityReport, *, strategy: bool = True) -> str:
    """One line: strategy (unless ``strategy=False``), rows, labels, largest difference, verdict."""
    parts = [f"strategy {report.strategy}"] if strategy else []
    checked = f" in {len(report.regions)} regions" if report.regions else ""
    parts.append(f"{report.rows} rows{checked}")
    if report.task == "regression":
        parts.append(
            f"max relative difference {_g(report.max_rel_diff)} "
            f"(tolerance {report.thresholds.regression_rtol:g})"
        )
    else:
        equal = report.rows - report.label_mismatches - report.tie_mismatches
        parts.append(f"labels {equal}/{report.rows} equal ({report.ties} ties)")
        parts.append(
            f"max probability difference {_g(report.max_abs_diff)} "
            f"(tolerance {report.thresholds.proba_atol:g})"
        )
    verdict = "passed" if report.passed else "FAILED: " + "; ".join(report.failures)
    if report.forced:
        verdict += " (written with force=True)"
    return ", ".join(parts) + f": {verdict}"


def render_report(report: ParityReport, *, worst: int = 5) -> str:
    """The report as indented text: rows, labels, differences per output, worst rows."""
    lines = [f"Parity {'passed' if report.passed else 'FAILED'} (strategy {report.strategy})"]
    order = {"golden": 0, "validation": 1, "probe": 2}
    ordered = sorted(report.sources.items(), key=lambda item: (order.get(item[0], 3), item[0]))
    sources = ", ".join(f"{name} {count}" for name, count in ordered)
    lines.append(f"  rows compared: {report.rows} ({sources})")
    if report.regions:
        lines.append("  regions (rows compared, largest difference, worst row):")
        width = max(len(r.region) for r in report.regions)
        for r in report.regions:
            extra = [f"{r.label_mismatches} label(s) differ"] if r.label_mismatches else []
            if r.skipped:
                extra.append(f"{r.skipped} refused by the original")
            if r.refused:
                extra.append(f"{r.refused} refused by the converted model's input check")
            where = f", worst {r.worst_row}" if r.worst_row and r.max_difference != 0 else ""
            lines.append(
                f"    {r.region:<{width}}  {r.rows:>6}  {_g(r.max_difference):>8}  "
                f"{'ok' if r.passed else 'FAILED'}{where}"
                + (f" ({', '.join(extra)})" if extra else "")
            )
    if report.skipped:
        lines.append("  not compared: " + "; ".join(report.skipped))
    if report.refused:
        lines.append("  refused by the converted model: " + "; ".join(report.refused))
    if report.notes:
        lines.append("  notes: " + "; ".join(report.notes))
    if report.task != "regression":
        equal = report.rows - report.label_mismatches - report.tie_mismatches
        lines.append(
            f"  labels: {equal} of {report.rows} equal, {report.label_mismatches} differ, "
            f"{report.ties} ties (top two probabilities within {report.thresholds.tie_tol:g}, "
            f"{report.tie_mismatches} of them differ)"
        )
        lines.append("  probabilities, max / mean absolute difference per class:")
    else:
        lines.append(
            f"  prediction: max relative difference {_g(report.max_rel_diff)}; "
            "max / mean absolute difference:"
        )
    width = max((len(o.output) for o in report.outputs), default=0)
    for o in report.outputs:
        lines.append(f"    {o.output:<{width}}  {_g(o.max_abs_diff)}  {_g(o.mean_abs_diff)}")
    if report.failures:
        lines.append("  failures: " + "; ".join(report.failures))
    if len(report.attempts) > 1 or (report.attempts and not report.attempts[0].passed):
        lines.append("  strategies tried:")
        lines.extend(f"    {a.strategy}: {a.summary}" for a in report.attempts)
    shown = report.worst_rows[:worst]
    if shown and not report.passed:
        lines.append("  worst rows:")
        for w in shown:
            expected, got = repr(w.expected), repr(w.got)
            if w.expected_probabilities is not None:
                expected += f" {_rounded(w.expected_probabilities)}"
            if w.got_probabilities is not None:
                got += f" {_rounded(w.got_probabilities)}"
            tie = " (tie)" if w.tie else ""
            lines.append(
                f"    {w.source} row {w.row}: original {expected}, converted {got}, "
                f"difference {_g(w.difference)}{tie}; inputs {w.inputs}"
            )
    return "\n".join(lines)


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
