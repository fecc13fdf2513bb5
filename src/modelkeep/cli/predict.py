"""``modelkeep predict REF INPUT -o OUTPUT``: score CSV or Parquet files with a verified model."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from modelkeep.cli._common import errors_exit, printable, stderr, stdout

# The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


class _OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class _Engine(str, Enum):
    local = "local"
    dask = "dask"


class _FileFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


def predict_command(
    ref: Annotated[
        str,
        typer.Argument(
            help="The bundle directory, or a registry reference (churn, churn:3, churn@production)."
        ),
    ],
    input: Annotated[
        str,
        typer.Argument(
            help="A CSV or Parquet file, a directory of them, or a glob ('data/*.csv')."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="The file to write (.csv, .parquet); with --engine dask a directory of "
            "Parquet parts.",
        ),
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", help="The bundle's artifact to score with: onnx, skops ..."),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Rows per chunk (bounds memory).")
    ] = 16_384,
    on_error: Annotated[
        _OnError,
        typer.Option(
            "--on-error",
            help="fail: stop at the first invalid row, writing nothing; skip: write invalid "
            "rows with their reasons to OUTPUT's stem + .rejected beside it, score the rest.",
        ),
    ] = _OnError.fail,
    keep_columns: Annotated[
        str | None,
        typer.Option(
            "--keep-columns", help="Input columns to copy to the output, comma-separated."
        ),
    ] = None,
    proba: Annotated[
        bool | None,
        typer.Option(
            "--proba/--no-proba",
            help="One probability column per label (default: for classifiers).",
            show_default=False,
        ),
    ] = None,
    input_format: Annotated[
        _FileFormat | None,
        typer.Option("--input-format", help="When the input's extension does not say."),
    ] = None,
    output_format: Annotated[
        _FileFormat | None,
        typer.Option("--output-format", help="When the output's extension does not say."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output, atomically.")
    ] = False,
    engine: Annotated[
        _Engine,
        typer.Option("--engine", help="local (this process) or dask (needs modelkeep[dask])."),
    ] = _Engine.local,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="A Dask scheduler (tcp://HOST:PORT); default: a local cluster.",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Worker processes of the local Dask cluster."),
    ] = 2,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Load the model, and score every chunk, in a sandboxed worker process "
            "(local engine).",
        ),
    ] = False,
) -> None:
    """Score every row of INPUT with the model; write the scores to OUTPUT atomically.

    Output columns: the kept columns, prediction, proba_<label> per label, and (CSV) the
    model's name, version and manifest sha256 (Parquet: file metadata). A progress bar
    shows on a terminal; a summary ends the run. Exit 1 on an invalid row with
    --on-error fail (nothing written), 130 when interrupted (nothing written).
    """
    from modelkeep.batch import predict_file

    keep = (
        [name.strip() for name in keep_columns.split(",") if name.strip()] if keep_columns else []
    )
    try:
        with errors_exit():
            summary = predict_file(
                ref,
                input,
                output,
                format=format,
                chunk_size=chunk_size,
                on_error=on_error.value,
                keep_columns=keep,
                proba=proba,
                input_format=None if input_format is None else input_format.value,
                output_format=None if output_format is None else output_format.value,
                overwrite=overwrite,
                engine=engine.value,
                scheduler=scheduler,
                workers=workers,
                load_options={"isolate": True} if isolate else None,
            )
    except KeyboardInterrupt:
        stderr.print(printable(f"Interrupted: nothing was written to {output}."), markup=False)
        raise typer.Exit(INTERRUPTED) from None
    for line in summary.lines():
        stdout.print(printable(line), markup=False)
