"""``modelkeep import MODEL_FILE --sample DATA --name NAME``: a legacy file into a bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelkeep.cli._common import check_trusted, errors_exit, printable, stdout


def import_command(
    model_file: Annotated[Path, typer.Argument(help="The legacy .joblib or .pkl file.")],
    sample: Annotated[
        Path, typer.Option("--sample", help="Training data (or rows of it): .csv or .parquet.")
    ],
    name: Annotated[str, typer.Option("--name", help="The model's name in the bundle.")],
    labels: Annotated[
        str | None,
        typer.Option("--labels", help='Business labels as JSON: {"0": "No Churn", "1": "Churn"}.'),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The bundle directory (default: NAME).")
    ] = None,
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact name to trust while loading; repeatable."),
    ] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option("--format", help="An artifact format (default: the file's own); repeatable."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing bundle at the path.")
    ] = False,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Quarantine conversion: load and convert the file in a sandboxed worker; "
            "only the ONNX artifact leaves it (see `modelkeep doctor`).",
        ),
    ] = False,
    to: Annotated[
        str | None,
        typer.Option("--to", help="With --isolate: the format to convert to (onnx)."),
    ] = None,
) -> None:
    """Load a legacy model file safely (allowlist scan, restricted unpickler) and save it as a
    bundle with a schema, golden samples and hashes."""
    from modelkeep._importing import import_model

    label_map = None
    if labels is not None:
        try:
            label_map = json.loads(labels)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"expected a JSON object, got {labels!r} ({exc})") from exc
        if not isinstance(label_map, dict):
            raise typer.BadParameter(f"expected a JSON object, got {labels!r}")
    target = out if out is not None else Path(name)
    check_trusted(trusted)
    if isolate or to is not None:
        _check_quarantine(isolate, to, formats)
    with errors_exit():  # a missing model file or sample is an error, never a traceback
        if isolate:
            from modelkeep.sandbox._quarantine import quarantine_import

            manifest = quarantine_import(
                model_file,
                sample,
                name=name,
                out=target,
                labels=label_map,
                trusted=trusted,
                overwrite=overwrite,
            )
        else:
            manifest = import_model(
                model_file,
                sample,
                name=name,
                labels=label_map,
                out=target,
                trusted=trusted,
                formats=formats,
                overwrite=overwrite,
            )
    artifacts = ", ".join(f"{a.path} ({a.format})" for a in manifest.artifacts)
    stdout.print(
        printable(
            f"Imported {str(model_file)!r} as bundle {str(target)!r}: {manifest.name} version "
            f"{manifest.version}, {manifest.task}, {len(manifest.features)} features, "
            f"{len(manifest.golden.rows)} golden samples; {artifacts}"
        ),
        markup=False,
    )


def _check_quarantine(isolate: bool, to: str | None, formats: list[str] | None) -> None:
    """--isolate converts (to ONNX, the only format that leaves the worker); --to needs it."""
    if not isolate:
        raise typer.BadParameter("--to is for the quarantine conversion: add --isolate")
    if to not in (None, "onnx"):
        raise typer.BadParameter(f"expected onnx, got {to!r}", param_hint="--to")
    if formats:
        raise typer.BadParameter(
            "--format does not combine with --isolate, whose bundle holds only ONNX"
        )
