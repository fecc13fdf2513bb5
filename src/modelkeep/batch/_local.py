"""``predict_file``: the argument checks, and the local engine (one process, streaming)."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from modelkeep.batch._errors import BatchInputError, BatchOutputError
from modelkeep.batch._io import (
    AtomicFile,
    FileFormat,
    InputFile,
    check_columns,
    check_output,
    find_inputs,
    format_of,
    import_pyarrow,
    read_chunks,
    rejected_path,
)
from modelkeep.batch._scoring import OnError, Scorer
from modelkeep.batch._summary import Summary
from modelkeep.errors import InvalidArgumentError, InvalidChoiceError

if TYPE_CHECKING:
    from modelkeep._model import Model

__all__ = ["DEFAULT_CHUNK_SIZE", "Options", "predict_file"]

DEFAULT_CHUNK_SIZE: Final = 16_384
_ENGINES: Final = ("local", "dask")
_ON_ERROR: Final = ("fail", "skip")


def predict_file(
    ref: str | os.PathLike[str],
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    format: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_error: str = "fail",
    keep_columns: Sequence[str] = (),
    proba: bool | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
    load_options: dict[str, Any] | None = None,
) -> Summary:
    """Score every row of CSV or Parquet input with a verified model; write the scores.

    The input is read in chunks of ``chunk_size`` rows (memory is bounded by the chunk
    size, whatever the input's), each chunk validated against the model's schema and
    scored; the output is written to a temporary file beside ``output`` and renamed into
    place at the end, so ``output`` never holds part of a run.

    Output columns: ``keep_columns`` (copied from the input), ``prediction`` (the business
    label, or the value of a regressor), ``proba_<label>`` per business label (``proba``;
    default: for classifiers with probabilities); for CSV also ``model_name``,
    ``model_version`` and ``manifest_sha256``, which Parquet output carries as file
    metadata (keys ``modelkeep.model_name``, ``modelkeep.model_version``,
    ``modelkeep.manifest_sha256``).

    Args:
        ref: a bundle directory or a registry reference (``churn@production``), loaded
            once with every check of :func:`modelkeep.load`.
        input: a CSV or Parquet file, a directory of them, or a glob (``"data/*.csv"``);
            files are read in name order.
        output: the file to write (``.csv``, ``.parquet``/``.pq``); with
            ``engine="dask"`` a directory of Parquet parts.
        format: which artifact of the bundle scores (``"onnx"``, ``"skops"`` ...).
        chunk_size: rows per chunk (at least 1).
        on_error: ``"fail"``: a row that fails validation stops the run with its file,
            row number and reason (``RejectedRowError``), and nothing is written;
            ``"skip"``: such rows are written with their reasons to
            ``<output stem>.rejected<suffix>`` beside ``output`` (always written in skip
            mode, possibly with no rows) and the rest is scored. A column missing from a
            file is refused in both modes.
        keep_columns: input columns to copy to the output (an id, say).
        proba: write probability columns (True for a regressor is an error).
        input_format, output_format: ``"csv"`` or ``"parquet"`` when the extension does
            not say.
        overwrite: replace an existing output (and rejected file); otherwise refused.
        progress: show a progress bar on stderr; default: when stderr is a terminal.
        engine: ``"local"`` (this process) or ``"dask"`` (needs ``modelkeep[dask]``).
        scheduler: ``"tcp://HOST:PORT"`` of a Dask scheduler; default: a LocalCluster of
            ``workers`` processes.
        load_options: passed to :func:`modelkeep.load` (``env``, ``trusted``,
            ``public_key`` ...).

    Returns:
        A :class:`Summary` (rows scored and rejected, label counts, time, rows/s).

    Raises:
        BatchInputError: no such input, an empty glob or directory, an unknown
            extension, a file lacking a feature column or unreadable.
        BatchOutputError: the output exists (without ``overwrite``), its folder is
            missing or not writable, or it is one of the inputs.
        RejectedRowError: ``on_error="fail"`` and a row fails validation.
        InvalidArgumentError, InvalidChoiceError: a bad option.
        and every error of :func:`modelkeep.load`.

    Example:
        >>> summary = predict_file("churn@production", "customers.parquet", "scores.parquet",
        ...                        keep_columns=["customer_id"], on_error="skip")
        >>> summary.scored, summary.rejected
        (999_988, 12)
    """
    options = Options.check(
        chunk_size=chunk_size,
        on_error=on_error,
        keep_columns=keep_columns,
        engine=engine,
        workers=workers,
    )
    started = time.perf_counter()
    target = Path(output)
    inputs = find_inputs(input, input_format)
    if options.engine == "dask":
        from modelkeep.batch._dask import predict_dask_file

        if (load_options or {}).get("isolate"):
            raise InvalidArgumentError(
                "isolate",
                "the local engine (one sandboxed worker scores every chunk)",
                "engine='dask'",
                "Score untrusted models with --engine local --isolate.",
            )

        if output_format not in (None, "parquet"):
            raise InvalidChoiceError(
                str(output_format), ["parquet"], "output format (--engine dask)"
            )
        if target.suffix.lower() == ".csv":
            raise BatchOutputError(
                str(target),
                "the Dask engine writes a directory of Parquet parts, not CSV",
                "Name a directory (scores/ or scores.parquet), or use --engine local for CSV.",
            )
        check_output(target, overwrite=overwrite, inputs=inputs)
        return predict_dask_file(
            ref,
            inputs,
            target,
            format=format,
            options=options,
            proba=proba,
            overwrite=overwrite,
            scheduler=scheduler,
            load_options=load_options or {},
            started=started,
        )
    out_format = format_of(target, output_format, "output")
    check_output(target, overwrite=overwrite, inputs=inputs)
    rejected_target = rejected_path(target) if options.on_error == "skip" else None
    if rejected_target is not None:
        check_output(rejected_target, overwrite=overwrite, inputs=inputs)

    from modelkeep._load import load

    extra = dict(load_options or {})
    loading = time.perf_counter()
    model = load(ref, **extra, **({"format": format} if format else {}))
    loaded = time.perf_counter() - loading
    scorer = Scorer(model, keep=options.keep, proba=proba, meta_columns=out_format == "csv")
    for source in inputs:
        check_columns(source, scorer.read_columns, scorer.names)
    return _score_files(
        scorer,
        model,
        inputs,
        target,
        out_format,
        rejected_target,
        options,
        overwrite=overwrite,
        show_progress=sys.stderr.isatty() if progress is None else progress,
        started=started,
        load_seconds=loaded,
    )


class Options:
    """predict_file's checked options, shared with the Dask engine."""

    def __init__(
        self, chunk_size: int, on_error: OnError, keep: list[str], engine: str, workers: int
    ) -> None:
        self.chunk_size = chunk_size
        self.on_error: OnError = on_error
        self.keep = keep
        self.engine = engine
        self.workers = workers

    @classmethod
    def check(
        cls,
        *,
        chunk_size: object,
        on_error: object,
        keep_columns: object,
        engine: object,
        workers: object,
    ) -> Options:
        for name, value in (("chunk_size", chunk_size), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(name, "an integer of at least 1", repr(value))
        if on_error not in _ON_ERROR:
            raise InvalidChoiceError(str(on_error), _ON_ERROR, "on_error")
        if engine not in _ENGINES:
            raise InvalidChoiceError(str(engine), _ENGINES, "engine")
        if isinstance(keep_columns, str) or not isinstance(keep_columns, Sequence):
            raise InvalidArgumentError("keep_columns", "a list of column names", repr(keep_columns))
        keep = [name for name in keep_columns if isinstance(name, str) and name]
        if len(keep) != len(keep_columns):
            raise InvalidArgumentError("keep_columns", "a list of column names", repr(keep_columns))
        mode: OnError = "skip" if on_error == "skip" else "fail"
        return cls(
            cast(int, chunk_size), mode, list(dict.fromkeys(keep)), str(engine), cast(int, workers)
        )


def _score_files(
    scorer: Scorer,
    model: Model,
    inputs: Sequence[InputFile],
    target: Path,
    out_format: FileFormat,
    rejected_target: Path | None,
    options: Options,
    *,
    overwrite: bool,
    show_progress: bool,
    started: float,
    load_seconds: float,
) -> Summary:
    pa = import_pyarrow()
    schema = scorer.output_schema(_kept_types(inputs[0], scorer.keep))
    if out_format == "parquet":
        schema = schema.with_metadata(scorer.file_metadata())
    rows = scored = rejected = 0
    counts: Counter[Any] = Counter()
    out = AtomicFile(target)
    bad = AtomicFile(rejected_target) if rejected_target is not None else None
    try:
        with (
            _writer(out.temporary, schema, out_format) as write,
            _rejected_writer(bad, scorer, out_format) as write_rejected,
            _progress(inputs, show_progress) as advance,
        ):
            for source in inputs:
                done_before = advance.done
                for chunk in read_chunks(source, scorer.read_columns, options.chunk_size):
                    result = scorer.score(
                        chunk.table,
                        file=str(source.path),
                        first_row=chunk.first_row,
                        on_error=options.on_error,
                    )
                    table = _conform(result.table, schema, source)
                    write(table)
                    if result.rejected:
                        write_rejected(scorer.rejected_table(result.rejected))
                    rows += chunk.table.num_rows
                    scored += table.num_rows
                    rejected += len(result.rejected)
                    if scorer.label_values is not None:
                        counts.update(_value_counts(pa, table.column("prediction")))
                    advance(done_before + chunk.progress, rows)
                advance.finish_file(source)
        if bad is not None:
            bad.commit(overwrite=overwrite)
        out.commit(overwrite=overwrite)
    except BaseException:
        out.discard()
        if bad is not None:
            bad.discard()
        raise
    for text, warning in scorer.other_warnings.items():
        import warnings

        warnings.warn(warning if isinstance(warning, Warning) else text, stacklevel=3)
    manifest = model.manifest
    labels = scorer.label_values or []
    return Summary(
        output=target,
        rejected_path=rejected_target,
        files=len(inputs),
        rows=rows,
        scored=scored,
        rejected=rejected,
        label_counts={str(label): counts.get(label, 0) for label in labels},
        seconds=time.perf_counter() - started,
        model_name=manifest.name,
        model_version=str(manifest.version),
        manifest_sha256=scorer.metadata[2],
        format=model.format,
        warnings=_warnings(scorer),
        engine="local",
        load_seconds=load_seconds,
    )


def _warnings(scorer: Scorer) -> dict[str, int]:
    return {
        f"{kind} in {column!r}" if column else kind: n
        for (kind, column), n in sorted(scorer.warnings.items(), key=lambda kv: str(kv[0]))
    }


def _value_counts(pa: Any, column: Any) -> dict[Any, int]:
    counted = pa.compute.value_counts(column)
    values = counted.field("values").to_pylist()
    return dict(zip(values, counted.field("counts").to_pylist(), strict=True))


def _kept_types(source: InputFile, keep: Sequence[str]) -> list[Any]:
    pa = import_pyarrow()
    if source.format == "csv" or not keep:
        return [pa.string() for _ in keep]
    schema = pa.parquet.ParquetFile(source.path).schema_arrow
    return [schema.field(name).type for name in keep]


def _conform(table: Any, schema: Any, source: InputFile) -> Any:
    """``table`` with the output schema (kept columns of another file may differ in type)."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    pa = import_pyarrow()
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BatchInputError(
            str(source.path),
            f"its kept columns have other types than the first file's ({exc})",
            "Give every input file the same column types.",
        ) from exc


@contextmanager
def _writer(path: Path, schema: Any, out_format: FileFormat) -> Iterator[Any]:
    pa = import_pyarrow()
    if out_format == "parquet":
        writer = pa.parquet.ParquetWriter(str(path), schema)
    else:
        writer = pa.csv.CSVWriter(str(path), schema)
    try:
        yield writer.write_table
    finally:
        writer.close()


@contextmanager
def _rejected_writer(
    file: AtomicFile | None, scorer: Scorer, out_format: FileFormat
) -> Iterator[Any]:
    if file is None:

        def ignore(table: Any) -> None:
            return None

        yield ignore
        return
    with _writer(file.temporary, scorer.rejected_schema(), out_format) as write:
        yield write


class _Advance:
    """Moves the progress bar (or nothing): ``advance(done, rows)``."""

    def __init__(self, progress: Any, task: Any, inputs: Sequence[InputFile]) -> None:
        self.progress = progress
        self.task = task
        self.done = 0
        self.started = time.perf_counter()
        self.by_rows = inputs[0].format == "parquet"

    def __call__(self, done: int, rows: int) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.started
        rate = rows / elapsed if elapsed > 0 else 0.0
        self.progress.update(self.task, completed=done, rows=f"{rows:,}", rate=f"{rate:,.0f}")

    def finish_file(self, source: InputFile) -> None:
        self.done += _file_total(source) if self.by_rows else source.size


def _file_total(source: InputFile) -> int:
    pa = import_pyarrow()
    return int(pa.parquet.ParquetFile(source.path).metadata.num_rows)


@contextmanager
def _progress(inputs: Sequence[InputFile], show: bool) -> Iterator[_Advance]:
    """A rich progress bar on stderr when ``show``: rows, rows/s and, from the total
    (Parquet: rows in the footers; CSV: bytes), the time remaining."""
    if not show:
        yield _Advance(None, None, inputs)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    total = (
        sum(_file_total(s) for s in inputs)
        if inputs[0].format == "parquet"
        else sum(s.size for s in inputs)
    )
    progress = Progress(
        TextColumn("Scoring"),
        BarColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TextColumn("{task.fields[rate]} rows/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("score", total=total or None, rows="0", rate="0")
        yield _Advance(progress, task, inputs)
