"""``modelkeep scan FILE_OR_BUNDLE...``: every global each file references, judged, none run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from modelkeep.cli._common import check_trusted, markup_safe, printable, stdout
from modelkeep.errors import ModelkeepError

# Exit statuses, worst wins.
TRUSTED, UNTRUSTED, UNREADABLE = 0, 1, 2
_STATUS = {TRUSTED: "trusted", UNTRUSTED: "UNTRUSTED", UNREADABLE: "UNREADABLE"}
_EXIT = {"trusted": TRUSTED, "untrusted": UNTRUSTED, "unreadable": UNREADABLE}


def scan_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Model files (.pkl, .joblib, .skops), bundle directories or registry "
            "references (churn@production).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact name to count as trusted; repeatable."),
    ] = None,
) -> None:
    """Report the globals each file references, trusted or not. Nothing is loaded.

    Exit status 0 when everything is trusted, 1 when anything is not, 2 when a file cannot
    be read.
    """
    from modelkeep.cli._common import bundle_path
    from modelkeep.safety.report import ScanReport, scan

    check_trusted(trusted)  # exit 2, as UNREADABLE
    results: list[dict[str, Any]] = []
    worst = TRUSTED
    for path in paths:
        report: ScanReport | None = None
        error: str | None = None
        try:
            report = scan(bundle_path(path), trusted=trusted)
        except (OSError, ModelkeepError) as exc:
            status, error = UNREADABLE, f"{type(exc).__name__}: {exc}"
        else:
            status = _EXIT[report.status]
        worst = max(worst, status)
        entry: dict[str, Any] = {"path": str(path), "status": _STATUS[status].lower()}
        if report is not None:
            entry.update(report.to_dict())
        if error is not None:
            entry["error"] = error
        results.append(entry)
        if not as_json:
            _print(path, status, report, error)
    if as_json:
        print(json.dumps(results, indent=2))
    raise typer.Exit(worst)


def _print(path: str, status: int, report: Any, error: str | None) -> None:
    colour = {TRUSTED: "green", UNTRUSTED: "red", UNREADABLE: "yellow"}[status]
    kind = f" ({report.kind})" if report is not None else ""
    label = _STATUS[status]
    if report is not None and report.state == "refused" and status == UNTRUSTED:
        label = "REFUSED"  # every name allowed, the state refused by the proofs
    if report is not None and report.state != "not checked":
        label += f", state {report.state}"
    # Names, sources and problems come from the file scanned: shown through printable().
    stdout.print(
        f"[bold]{markup_safe(path)}[/bold]{markup_safe(kind)}: [{colour}]{label}[/{colour}]"
    )
    if error is not None:
        stdout.print(f"  cannot be read: {printable(error)}", markup=False)
        return
    if not report.references:
        stdout.print("  no globals referenced")
    # Plain aligned lines, never truncated: a name cut short would hide what matters.
    width = max((len(r.verdict) for r in report.references), default=0)
    name_width = max((len(printable(r.name)) for r in report.references), default=0)
    bundle = report.kind == "bundle"
    for ref in report.references:
        verdict = ref.verdict.ljust(width)
        shown = f"[green]{verdict}[/green]" if ref.trusted else f"[red]{verdict}[/red]"
        where = "" if ref.offset is None else f" at byte {ref.offset}"
        if ref.stream not in ("main", "schema.json"):
            where += f" ({ref.stream})"
        source = f"  [{ref.source}]" if bundle else ""
        stdout.print(f"  {shown}  ", end="")
        name = printable(ref.name).ljust(name_width)
        stdout.print(
            f"{name}  {printable(f'{ref.opcode}{where}, {ref.count}x{source}')}", markup=False
        )
    for label, entries in (
        ("[red]unsafe[/red]", report.issues),
        ("[yellow]unreadable[/yellow]", report.errors),
    ):
        for entry in entries:
            where = f"{entry.source}: " if bundle else ""
            if entry.offset is not None:
                where += f"byte {entry.offset}: "
            stdout.print(f"  {label}  ", end="")
            stdout.print(printable(f"{where}{entry.problem}"), markup=False)
