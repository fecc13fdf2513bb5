"""``modelkeep convert BUNDLE --to onnx``: add a converted artifact with its parity report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep.cli._common import check_trusted, errors_exit, printable, stdout


def convert_command(
    source: Annotated[
        str,
        typer.Argument(
            help="The bundle directory, or a registry reference (churn, churn:3, "
            "churn@production): then the result is registered as a new version."
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="The format to add: onnx.")] = "onnx",
    validation: Annotated[
        Path | None,
        typer.Option(
            "--validation",
            help="A .csv or .parquet file of rows with the model's columns to measure the "
            "conversion on.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write a conversion that fails parity, marked failed."),
    ] = False,
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact type name to trust; repeatable."),
    ] = None,
) -> None:
    """Convert the bundle's model, check parity, and add the artifact to the bundle.

    The bundle is rewritten atomically; its other artifacts are kept byte for byte. A
    conversion that fails its parity check is refused (exit 1) unless --force.
    """
    from modelkeep._conversion import Conversion, convert, read_validation
    from modelkeep._load import resolve_source
    from modelkeep.onnx.report import render_report
    from modelkeep.registry.refs import Reference

    check_trusted(trusted)
    with errors_exit():
        rows = read_validation(validation)
        registered = None
        found = resolve_source(source)
        if isinstance(found, Reference):
            from modelkeep.registry import Registry

            with Registry() as registry:
                registered = registry.convert(
                    str(found), to=to, validation=rows, force=force, trusted=trusted
                )
            done = Conversion.of(registered.manifest())
        else:
            done = convert(found, to=to, validation=rows, force=force, trusted=trusted)
    added, report = done.artifact, done.parity
    if report is not None:
        stdout.print(printable(render_report(report), keep="\n"), markup=False)
    failed = report is not None and not report.passed
    verdict = " (marked FAILED: it did not pass its parity check)" if failed else ""
    if registered is not None:
        stdout.print(
            printable(
                f"Registered {registered.ref} (parent {registered.parent}) with "
                f"{added.path}{verdict}"
            ),
            markup=False,
        )
    else:
        stdout.print(printable(f"Added {added.path} to {source}{verdict}"), markup=False)
