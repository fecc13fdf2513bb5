"""``modelkeep monitor REF CURRENT``: drift and performance of live data, for people and cron.

Exit status: 0 no drift, 1 dataset drift or a performance drop (or an error), 2 misuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelkeep.cli._common import cell, errors_exit, json_text, stderr, stdout

if TYPE_CHECKING:
    from modelkeep.monitor import DriftReport, FeatureDrift, Thresholds


def monitor_command(
    ref: Annotated[
        str,
        typer.Argument(
            help="The reference: a bundle directory or a registry reference "
            "(churn, churn:3, churn@production)."
        ),
    ],
    current: Annotated[
        Path,
        typer.Argument(
            help="The live data: a .csv or .parquet file, a directory of them, or a "
            "prediction-log directory (modelkeep serve --log)."
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="True outcomes for performance: a .csv/.parquet file (joined on request_id "
            "when both have one, else by row order) or a column of CURRENT.",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only rows at or after this ISO 8601 time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only rows before this ISO 8601 time.")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="One result per window of time: 1h, 30min, 1d, 7d ..."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="The column holding each row's time (default: time)."),
    ] = None,
    outputs: Annotated[
        str,
        typer.Option(
            "--outputs",
            help="Output drift from: auto (the data's outputs, else the model's), data, "
            "model, none.",
        ),
    ] = "auto",
    psi_threshold: Annotated[
        float, typer.Option("--psi-threshold", help="PSI from which a feature has drifted.")
    ] = 0.25,
    dataset_threshold: Annotated[
        float,
        typer.Option("--dataset-threshold", help="Share of drifted features for dataset drift."),
    ] = 0.5,
    drop_threshold: Annotated[
        float,
        typer.Option("--drop-threshold", help="Metric drop from training that is a drop."),
    ] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write the report as one standalone HTML file."),
    ] = None,
) -> None:
    """Measure CURRENT against REF's reference profile in one streaming pass.

    Exit status: 0 no drift, 1 dataset drift or a performance drop (or an error), 2 a
    usage error.
    """
    from modelkeep.errors import InvalidArgumentError
    from modelkeep.monitor import Thresholds, write_html

    with errors_exit():
        for option, value, top in (
            ("--psi-threshold", psi_threshold, None),
            ("--dataset-threshold", dataset_threshold, 1.0),
            ("--drop-threshold", drop_threshold, None),
        ):
            if not value >= 0 or (top is not None and not 0 < value <= top):
                expected = "a number >= 0" if top is None else "a share in (0, 1]"
                raise InvalidArgumentError(option, expected, repr(value))
        limits = Thresholds(
            psi_minor=min(0.1, psi_threshold),
            psi_major=psi_threshold,
            dataset=dataset_threshold,
            performance_drop=drop_threshold,
        )
        report = _run(ref, current, labels, window, since, until, time_column, outputs, limits)
        if html is not None:
            write_html(report, html)
    if as_json:
        import json

        stdout.print(
            json_text(json.dumps(report.to_dict(), indent=2, allow_nan=False)),
            markup=False,
            end="\n",
        )
    else:
        _render(report, html)
    raise typer.Exit(1 if report.drifted else 0)


def _run(
    ref: str,
    current: Path,
    labels: str | None,
    window: str | None,
    since: str | None,
    until: str | None,
    time_column: str | None,
    outputs: str,
    limits: Thresholds,
) -> DriftReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from modelkeep.monitor import drift

    with Progress(
        TextColumn("reading"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("reading", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return drift(
            ref,
            current,
            labels=labels,
            window=window,
            since=since,
            until=until,
            time_column=time_column,
            outputs=outputs,  # type: ignore[arg-type]  # checked by drift()
            thresholds=limits,
            progress=progress,
        )


def _verdict(result: FeatureDrift) -> str:
    if result.drifted:
        return "DRIFT (" + ", ".join(result.kinds) + ")"
    return result.status


def _table(title: str, results: list[FeatureDrift]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("column", "PSI", "KS/JS", "missing", "out of range/unseen", "verdict"):
        table.add_column(name)
    for r in results:
        other = r.ks if r.kind == "numeric" else r.js
        extra = r.out_of_range if r.kind == "numeric" else r.unseen
        style = "bold red" if r.drifted else "yellow" if r.status == "minor" else "green"
        table.add_row(
            cell(r.name),
            "-" if r.psi is None else f"{r.psi:.3f}",
            "-" if other is None else f"{other:.3f}",
            f"{r.reference_missing:.1%} -> {r.current_missing:.1%}",
            "-" if extra is None else f"{extra:.1%}",
            cell(_verdict(r)),
            style=style,
        )
    stdout.print(table)


def _render(report: DriftReport, html: Path | None) -> None:
    from modelkeep.cli._common import printable

    _table("Features", report.features)
    if report.outputs:
        _table("Model outputs", report.outputs)
    perf = report.performance
    if perf is not None:
        parts = []
        for name, value in perf.metrics.items():
            recorded = perf.reference.get(name)
            shown = "-" if value is None else f"{value:.3f}"
            parts.append(f"{name} {shown}" + (f" (training {recorded:.3f})" if recorded else ""))
        state = "DROP in " + ", ".join(perf.dropped_metrics) if perf.dropped else "no drop"
        stdout.print(
            printable(f"Performance on {perf.rows:,} labelled rows: {'; '.join(parts)}: {state}"),
            markup=False,
        )
    for window in report.windows:
        drifted = [f.name for f in window.features if f.drifted]
        stdout.print(
            printable(
                f"window {window.start}: {window.rows:,} rows, "
                + (f"drift in {', '.join(drifted)}" if drifted else "no drift")
            ),
            markup=False,
        )
    for note in report.notes:
        stdout.print(printable(f"note: {note}"), markup=False)
    verdict = (
        f"DRIFT: dataset drift ({report.drifted_share:.0%} of features drifted)"
        if report.dataset_drift
        else f"no dataset drift ({report.drifted_share:.0%} of features drifted, threshold "
        f"{report.thresholds.dataset:.0%})"
    )
    if perf is not None and perf.dropped:
        verdict += "; performance dropped"
    stdout.print(printable(f"{report.rows:,} rows: {verdict}"), markup=False)
    if html is not None:
        stdout.print(printable(f"Wrote {html}"), markup=False)
