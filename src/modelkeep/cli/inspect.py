"""``modelkeep inspect PATH``: what a bundle holds, without loading its model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelkeep.cli._common import errors_exit, stdout
from modelkeep.errors import BundleNotFoundError
from modelkeep.manifest import Manifest, dump_manifest, read_manifest


def inspect_command(
    path: Annotated[Path, typer.Argument(help="The bundle directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show a bundle's identity, task, schema, labels, metrics, data, environment, artifacts."""
    with errors_exit():
        if not path.is_dir():
            raise BundleNotFoundError(str(path))
        manifest = read_manifest(path)
    if as_json:
        print(dump_manifest(manifest), end="")
        return
    _print(manifest)


def _print(m: Manifest) -> None:
    stdout.print(f"[bold]{m.name}[/bold] version {m.version}  ({m.task}, {m.model_type})")
    stdout.print(f"created {m.created_at.isoformat()} with modelkeep {m.modelkeep_version}")
    if m.description:
        stdout.print(m.description, markup=False)
    if m.tags:
        stdout.print("tags: " + ", ".join(m.tags), markup=False)

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
        schema.add_row(str(i), f.name, f.dtype, "yes" if f.nullable else "no", values)
    stdout.print(schema)

    if m.target.labels:
        labels = Table(title="Labels", title_justify="left")
        labels.add_column("output")
        labels.add_column("label")
        for entry in m.target.labels:
            labels.add_row(repr(entry.value), entry.label)
        stdout.print(labels)

    stdout.print("[bold]Metrics[/bold]")
    for key, value in m.metrics.items() or [("(none)", None)]:
        stdout.print(f"  {key}: {'' if value is None else f'{value:g}'}", markup=False)
    stdout.print("[bold]Data[/bold]")
    stdout.print(f"  data version: {m.data.data_version or '(not given)'}", markup=False)
    stdout.print(f"  rows in sample: {m.data.n_rows}  fingerprint: {m.data.fingerprint}")
    stdout.print(f"  golden samples: {len(m.golden.rows)} rows")
    env = m.environment
    stdout.print("[bold]Environment[/bold]")
    stdout.print(f"  {env.python_implementation} {env.python_version} on {env.platform}")
    stdout.print("  " + json.dumps(env.packages)[1:-1].replace('"', ""), markup=False)

    artifacts = Table(title="Artifacts", title_justify="left")
    for column in ("path", "format", "size"):
        artifacts.add_column(column)
    artifacts.add_column("sha256", overflow="fold")  # whole, so it can be compared
    for a in m.artifacts:
        artifacts.add_row(a.path, a.format, f"{a.size:,}", a.sha256)
    stdout.print(artifacts)
    _print_conversions(m)


def _print_conversions(m: Manifest) -> None:
    """For each converted artifact (ONNX): how it was converted and its parity report."""
    from modelkeep.onnx.report import ParityReport, render_report

    for a in m.artifacts:
        parity, conversion = a.details.get("parity"), a.details.get("conversion")
        if not isinstance(parity, dict):
            continue
        stdout.print(f"[bold]Conversion[/bold] {a.path}", highlight=False)
        if isinstance(conversion, dict):
            packages = ", ".join(f"{k} {v}" for k, v in conversion.get("packages", {}).items())
            stdout.print(
                f"  opset {conversion.get('opset')}, ai.onnx.ml {conversion.get('ml_opset')}; "
                f"{packages}",
                markup=False,
            )
        try:
            text = render_report(ParityReport.model_validate(parity))
        except ValueError as exc:
            text = f"Parity report unreadable: {exc}"
        stdout.print("  " + text.replace("\n", "\n  "), markup=False)
