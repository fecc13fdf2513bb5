"""``modelkeep inspect SOURCE``: what a bundle holds, without loading its model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelkeep.cli._common import (
    bundle_path,
    cell,
    errors_exit,
    json_text,
    markup_safe,
    printable,
    stdout,
)
from modelkeep.manifest import Manifest, dump_manifest, read_manifest


def inspect_command(
    source: Annotated[
        str,
        typer.Argument(
            help="The bundle directory, or a registry reference (churn, churn:3, "
            "churn@production).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show a bundle's identity, task, schema, labels, metrics, data, environment, artifacts."""
    with errors_exit():
        manifest = read_manifest(bundle_path(source))
    if as_json:
        print(json_text(dump_manifest(manifest)), end="")
        return
    _print(manifest)


def _print(m: Manifest) -> None:
    # Every value comes from the manifest: shown through printable(), never raw.
    stdout.print(
        f"[bold]{markup_safe(m.name)}[/bold] version {markup_safe(m.version)}  "
        f"({markup_safe(m.task)}, {markup_safe(m.model_type)})"
    )
    stdout.print(
        f"created {m.created_at.isoformat()} with modelkeep {printable(m.modelkeep_version)}",
        markup=False,
    )
    if m.description:
        stdout.print(printable(m.description), markup=False)
    if m.tags:
        stdout.print(printable("tags: " + ", ".join(m.tags)), markup=False)

    schema = Table(title="Features", title_justify="left")
    for column in ("#", "name", "dtype", "nullable", "categories / range"):
        schema.add_column(column)
    for i, f in enumerate(m.features):
        if f.categories is not None:
            shown = ", ".join(map(str, f.categories[:8]))
            extra = f" (+{len(f.categories) - 8})" if len(f.categories) > 8 else ""
            values = shown + extra
        elif f.min is not None and f.max is not None:
            values = f"{f.min:g} .. {f.max:g}"
        else:
            values = ""
        schema.add_row(
            str(i), cell(f.name), cell(f.dtype), "yes" if f.nullable else "no", cell(values)
        )
    stdout.print(schema)

    if m.target.labels:
        labels = Table(title="Labels", title_justify="left")
        labels.add_column("output")
        labels.add_column("label")
        for entry in m.target.labels:
            labels.add_row(cell(repr(entry.value)), cell(entry.label))
        stdout.print(labels)

    stdout.print("[bold]Metrics[/bold]")
    for key, value in m.metrics.items() or [("(none)", None)]:
        shown = "" if value is None else f"{value:g}"
        stdout.print(f"  {printable(key)}: {shown}", markup=False)
    stdout.print("[bold]Data[/bold]")
    stdout.print(f"  data version: {printable(m.data.data_version or '(not given)')}", markup=False)
    stdout.print(
        f"  rows in sample: {m.data.n_rows}  fingerprint: {printable(m.data.fingerprint)}",
        markup=False,
    )
    stdout.print(f"  golden samples: {len(m.golden.rows)} rows")
    env = m.environment
    stdout.print("[bold]Environment[/bold]")
    stdout.print(
        printable(f"  {env.python_implementation} {env.python_version} on {env.platform}"),
        markup=False,
    )
    packages = ", ".join(f"{name}: {version}" for name, version in env.packages.items())
    stdout.print("  " + printable(packages), markup=False)

    artifacts = Table(title="Artifacts", title_justify="left")
    for column in ("path", "format", "size"):
        artifacts.add_column(column)
    artifacts.add_column("sha256", overflow="fold")  # whole, so it can be compared
    for a in m.artifacts:
        artifacts.add_row(cell(a.path), cell(a.format), f"{a.size:,}", cell(a.sha256))
    stdout.print(artifacts)
    _print_conversions(m)


def _print_conversions(m: Manifest) -> None:
    """For each converted artifact (ONNX): how it was converted and its parity report."""
    from modelkeep.onnx.report import ParityReport, render_report

    for a in m.artifacts:
        parity, conversion = a.details.get("parity"), a.details.get("conversion")
        if not isinstance(parity, dict):
            continue
        stdout.print(f"[bold]Conversion[/bold] {markup_safe(a.path)}", highlight=False)
        if isinstance(conversion, dict):
            packages = ", ".join(f"{k} {v}" for k, v in conversion.get("packages", {}).items())
            stdout.print(
                printable(
                    f"  opset {conversion.get('opset')}, ai.onnx.ml "
                    f"{conversion.get('ml_opset')}; {packages}"
                ),
                markup=False,
            )
        try:
            text = render_report(ParityReport.model_validate(parity))
        except ValueError as exc:
            text = f"Parity report unreadable: {exc}"
        lines = [printable(line) for line in text.split("\n")]
        stdout.print("  " + "\n  ".join(lines), markup=False)
