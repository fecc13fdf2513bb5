"""The Dask engine: the same scoring as the local engine, one task per part of the input.

The model is loaded and verified once per worker process, not once per partition: each
process keeps the models it loaded in :data:`_MODELS`, keyed by the reference, the format
and the manifest SHA-256 the client saw (a bundle replaced meanwhile is refused, not
silently scored with). :func:`load_count` says how many loads a process made, which a
test reads on every worker through ``client.run``.

``predict_file(engine="dask")`` cuts the input into parts the client can number rows of
(Parquet: row groups; CSV: byte ranges ending at line ends, counted once by the client,
or one part per file when a file holds a quote character, since a quoted value may hold
a line break); each task reads its part with the local engine's reader options, scores
it with the local engine's :class:`~modelkeep.batch._scoring.Scorer` and writes
``part.NNNNN.parquet`` (and its rejected rows) into a staging directory, which becomes
the output in one rename. Parts are numbered in input order, so reading the output
directory gives the local engine's rows in the local engine's order.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from modelkeep._optional import require
from modelkeep.batch._errors import BatchInputError
from modelkeep.batch._io import (
    AtomicFile,
    InputFile,
    block_size_for,
    check_columns,
    check_output,
    csv_options,
    import_pyarrow,
    rejected_path,
)
from modelkeep.batch._scoring import OnError, Scorer, manifest_sha256
from modelkeep.batch._summary import Summary

if TYPE_CHECKING:
    import dask.dataframe as dd

    from modelkeep._model import Model
    from modelkeep.batch._local import Options

__all__ = ["load_count", "predict_dask", "predict_dask_file"]

_MODELS: dict[tuple[str, str | None, str, str], Model] = {}
_LOADS: Counter[str] = Counter()
_LOCK: Final = threading.Lock()
_SCAN_BLOCK: Final = 1 << 24
_MIN_PART_BYTES: Final = 1 << 22


def import_dask() -> Any:
    """dask.dataframe (with distributed), or the error naming the extra to install."""
    return require(
        "dask",
        "dask.dataframe",
        "distributed",
        feature="The Dask engine",
        packages="dask[dataframe], distributed",
    )


def load_count() -> int:
    """How many models this process has loaded (and verified) to score Dask partitions."""
    with _LOCK:
        return sum(_LOADS.values())


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the client's model: sent with every task (small)."""

    ref: str
    format: str | None
    sha256: str
    load_options: tuple[tuple[str, Any], ...]
    keep: tuple[str, ...]
    proba: bool
    meta_columns: bool

    def scorer(self) -> Scorer:
        """This process's scorer for the spec; the model is loaded on first use only."""
        key = (self.ref, self.format, self.sha256, repr(self.load_options))
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                from modelkeep._load import load

                options = dict(self.load_options)
                if self.format:
                    options["format"] = self.format
                model = load(self.ref, **options)
                got = manifest_sha256(model)
                if got != self.sha256:
                    raise BatchInputError(
                        self.ref,
                        f"the bundle changed while scoring: its manifest sha256 was "
                        f"{self.sha256} on the client and is {got} on this worker",
                        "Score again once the bundle stays put (a registry reference names "
                        "a version that never changes).",
                    )
                _MODELS[key] = model
                _LOADS[self.ref] += 1
        return Scorer(model, keep=self.keep, proba=self.proba, meta_columns=self.meta_columns)


def _spec(
    ref: str | os.PathLike[str],
    model: Model,
    format: str | None,
    load_options: dict[str, Any],
    scorer: Scorer,
) -> ModelSpec:
    text = os.fspath(ref)
    if os.path.lexists(text):  # a path: absolute, so a worker with another cwd finds it
        text = str(Path(text).resolve())
    return ModelSpec(
        text,
        format,
        manifest_sha256(model),
        tuple(sorted(load_options.items())),
        tuple(scorer.keep),
        scorer.proba,
        scorer.meta_columns,
    )


# ------------------------------------------------------------------------------ predict_dask


def predict_dask(
    ddf: dd.DataFrame,
    ref: str | os.PathLike[str],
    *,
    format: str | None = None,
    keep_columns: Sequence[str] = (),
    proba: bool | None = None,
    on_error: str = "fail",
    load_options: dict[str, Any] | None = None,
) -> dd.DataFrame:
    """Score a Dask DataFrame with a verified model, lazily, partition by partition.

    The model is loaded here once (to check it and learn the output's columns) and once
    per worker process, never once per partition. The result has the columns of
    :func:`~modelkeep.batch.predict_file`'s Parquet output (``keep_columns``,
    ``prediction``, ``proba_<label>``), one row per valid input row, in order.

    ``on_error="fail"`` raises :class:`~modelkeep.batch.RejectedRowError` naming the
    partition (``"partition 3"``) and the row's 1-based position in it; ``"skip"`` leaves
    such rows out (``predict_file`` writes them, with reasons, to a file).

    Example:
        >>> import dask.dataframe as dd
        >>> scores = predict_dask(dd.read_parquet("customers/"), "churn@production",
        ...                       keep_columns=["customer_id"])
        >>> scores.to_parquet("scores/")
    """
    import_dask()
    from modelkeep._load import load
    from modelkeep.batch._local import Options

    options = Options.check(
        chunk_size=1, on_error=on_error, keep_columns=keep_columns, engine="dask", workers=1
    )
    extra = dict(load_options or {})
    model = load(ref, **extra, **({"format": format} if format else {}))
    scorer = Scorer(model, keep=options.keep, proba=proba)
    missing = [name for name in scorer.read_columns if name not in ddf.columns]
    if missing:
        raise BatchInputError(
            "the Dask DataFrame",
            f"has no column(s) {', '.join(map(repr, missing))}",
            "Every feature the model was fitted on (and every kept column) must be there.",
        )
    pa = import_pyarrow()
    kept = (
        pa.Schema.from_pandas(ddf._meta[scorer.keep], preserve_index=False) if scorer.keep else None
    )
    kept_types = [kept.field(n).type for n in scorer.keep] if kept is not None else []
    meta = scorer.output_schema(kept_types).empty_table().to_pandas()
    spec = _spec(ref, model, format, extra, scorer)
    scored: dd.DataFrame = ddf[scorer.read_columns].map_partitions(
        _score_partition, spec, options.on_error, meta=meta, enforce_metadata=False
    )
    return scored


def _score_partition(
    frame: Any, spec: ModelSpec, on_error: OnError, partition_info: dict[str, Any] | None = None
) -> Any:
    pa = import_pyarrow()
    number = partition_info["number"] if partition_info else 0
    scorer = spec.scorer()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    scored = scorer.score(table, file=f"partition {number}", first_row=1, on_error=on_error)
    return scored.table.to_pandas()


# ------------------------------------------------------------------------------ the engine


@dataclass(frozen=True)
class Part:
    """One task's share of the input: a file's row groups or byte range, and the 1-based
    number of its first data row."""

    number: int
    path: str
    format: str
    first_row: int
    row_groups: tuple[int, ...] = ()
    start: int = 0
    end: int = 0


def plan_parts(inputs: Sequence[InputFile], workers: int) -> list[Part]:
    """Cut the input into parts, at least a few per worker where the files allow it."""
    pa = import_pyarrow()
    parts: list[Part] = []
    total = sum(source.size for source in inputs)
    part_bytes = max(math.ceil(total / (workers * 4)), _MIN_PART_BYTES)
    for source in inputs:
        if source.format == "parquet":
            metadata = pa.parquet.ParquetFile(source.path).metadata
            first = 1
            for group in range(metadata.num_row_groups):
                parts.append(
                    Part(len(parts), str(source.path), "parquet", first, row_groups=(group,))
                )
                first += metadata.row_group(group).num_rows
            continue
        for start, end, first in _csv_ranges(source.path, part_bytes):
            parts.append(Part(len(parts), str(source.path), "csv", first, start=start, end=end))
    return parts


def _csv_ranges(path: Path, part_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, first data row) of byte ranges of a CSV file, each ending at a line
    end; the header line is not in any range. One range when the file quotes anything."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        header = stream.readline()
        data_start = len(header)
        cuts = [data_start]
        rows_before = [1]
        lines = 0  # line ends seen after the header
        offset = data_start
        next_cut = data_start + part_bytes
        quoted = b'"' in header
        while not quoted:
            block = stream.read(_SCAN_BLOCK)
            if not block:
                break
            if b'"' in block:
                quoted = True
                break
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + offset
            while next_cut < offset + len(block):
                index = int(np.searchsorted(ends, next_cut))
                if index >= ends.size:
                    break
                cut = int(ends[index]) + 1
                if cut >= size:
                    break
                cuts.append(cut)
                rows_before.append(lines + index + 2)
                next_cut = cut + part_bytes
            lines += ends.size
            offset += len(block)
    if quoted:
        return [(data_start, size, 1)]
    bounds = [*cuts, size]
    return [(bounds[i], bounds[i + 1], rows_before[i]) for i in range(len(cuts))]


def _read_part(part: Part, columns: Sequence[str], chunk_size: int) -> Any:
    pa = import_pyarrow()
    if part.format == "parquet":
        return pa.parquet.ParquetFile(part.path).read_row_groups(
            list(part.row_groups), columns=list(columns)
        )
    with open(part.path, "rb") as stream:
        header = stream.readline()
        stream.seek(part.start)
        data = stream.read(part.end - part.start)
    read, parse, convert = csv_options(columns, block_size_for(Path(part.path), chunk_size))
    return pa.csv.read_csv(
        pa.BufferReader(header + data),
        read_options=read,
        parse_options=parse,
        convert_options=convert,
    )


def _run_part(part: Part, spec: ModelSpec, on_error: OnError, chunk_size: int, staging: str) -> Any:
    """Read, score and write one part; its counts as a one-row frame."""
    import pandas as pd

    pa = import_pyarrow()
    scorer = spec.scorer()
    try:
        table = _read_part(part, scorer.read_columns, chunk_size)
    except (pa.ArrowException, OSError) as exc:
        raise BatchInputError(part.path, f"cannot be read ({exc})") from exc
    kept_types = [table.schema.field(name).type for name in scorer.keep]
    schema = scorer.output_schema(kept_types).with_metadata(scorer.file_metadata())
    counts: Counter[Any] = Counter()
    scored = rejected = 0
    name = f"part.{part.number:05d}.parquet"
    with pa.parquet.ParquetWriter(os.path.join(staging, name), schema) as writer:
        rejected_writer = None
        try:
            for start in range(0, max(table.num_rows, 1), chunk_size):
                chunk = table.slice(start, chunk_size)
                if chunk.num_rows == 0:
                    break
                result = scorer.score(
                    chunk, file=part.path, first_row=part.first_row + start, on_error=on_error
                )
                writer.write_table(result.table.replace_schema_metadata(schema.metadata))
                scored += result.table.num_rows
                if result.rejected:
                    if rejected_writer is None:
                        rejected_writer = pa.parquet.ParquetWriter(
                            os.path.join(staging, "_rejected", name), scorer.rejected_schema()
                        )
                    rejected_writer.write_table(scorer.rejected_table(result.rejected))
                    rejected += len(result.rejected)
                if scorer.label_values is not None:
                    column = result.table.column("prediction")
                    counted = pa.compute.value_counts(column)
                    counts.update(
                        dict(
                            zip(
                                counted.field("values").to_pylist(),
                                counted.field("counts").to_pylist(),
                                strict=True,
                            )
                        )
                    )
        finally:
            if rejected_writer is not None:
                rejected_writer.close()
    warned = {f"{k}|{c or ''}": n for (k, c), n in scorer.warnings.items()}
    return pd.DataFrame(
        {
            "part": [part.number],
            "rows": [table.num_rows],
            "scored": [scored],
            "rejected": [rejected],
            "labels": [json.dumps([[str(k), v] for k, v in counts.items()])],
            "warnings": [json.dumps(warned)],
        }
    )


def predict_dask_file(
    ref: str | os.PathLike[str],
    inputs: Sequence[InputFile],
    target: Path,
    *,
    format: str | None,
    options: Options,
    proba: bool | None,
    overwrite: bool,
    scheduler: str | None,
    load_options: dict[str, Any],
    started: float,
) -> Summary:
    """``predict_file(engine="dask")``: score ``inputs`` on a cluster into the directory
    ``target`` of Parquet parts (``part.00000.parquet`` ...), atomically."""
    import pandas as pd

    dd = import_dask()
    from modelkeep._fs import atomic_directory
    from modelkeep._load import load

    rejected_target = rejected_path(target) if options.on_error == "skip" else None
    if rejected_target is not None:
        check_output(rejected_target, overwrite=overwrite, inputs=inputs)
    loading = time.perf_counter()
    model = load(ref, **load_options, **({"format": format} if format else {}))
    loaded = time.perf_counter() - loading
    scorer = Scorer(model, keep=options.keep, proba=proba)
    for source in inputs:
        check_columns(source, scorer.read_columns, scorer.names)
    spec = _spec(ref, model, format, load_options, scorer)
    parts = plan_parts(inputs, options.workers)
    stats_meta = pd.DataFrame(
        {
            "part": pd.Series(dtype="int64"),
            "rows": pd.Series(dtype="int64"),
            "scored": pd.Series(dtype="int64"),
            "rejected": pd.Series(dtype="int64"),
            "labels": pd.Series(dtype=object),
            "warnings": pd.Series(dtype=object),
        }
    )
    bad = AtomicFile(rejected_target) if rejected_target is not None else None
    try:
        with (
            _Client(scheduler, options.workers) as client,
            atomic_directory(target, replace=overwrite and target.exists()) as staging,
        ):
            (staging / "_rejected").mkdir()
            stats_ddf = dd.from_map(
                _run_part,
                parts,
                args=(spec, options.on_error, options.chunk_size, str(staging)),
                meta=stats_meta,
                enforce_metadata=False,
            )
            stats = client.compute(stats_ddf, sync=True)
            if bad is not None:
                _gather_rejected(staging / "_rejected", bad, scorer)
            _remove_tree(staging / "_rejected")
        if bad is not None:
            bad.commit(overwrite=overwrite)
    except BaseException:
        if bad is not None:
            bad.discard()
        raise
    labels: Counter[str] = Counter()
    warned: Counter[str] = Counter()
    for text in stats["labels"]:
        labels.update({k: v for k, v in json.loads(text)})
    for text in stats["warnings"]:
        for key, n in json.loads(text).items():
            kind, _, column = key.partition("|")
            warned[f"{kind} in {column!r}" if column else kind] += n
    manifest = model.manifest
    return Summary(
        output=target,
        rejected_path=rejected_target,
        files=len(inputs),
        rows=int(stats["rows"].sum()),
        scored=int(stats["scored"].sum()),
        rejected=int(stats["rejected"].sum()),
        label_counts={str(v): labels.get(str(v), 0) for v in scorer.label_values or []},
        seconds=time.perf_counter() - started,
        model_name=manifest.name,
        model_version=str(manifest.version),
        manifest_sha256=spec.sha256,
        format=model.format,
        warnings=dict(sorted(warned.items())),
        engine="dask",
        load_seconds=loaded,
    )


def _gather_rejected(folder: Path, bad: AtomicFile, scorer: Scorer) -> None:
    """The parts' rejected rows, in part order, as one Parquet file."""
    pa = import_pyarrow()
    with pa.parquet.ParquetWriter(str(bad.temporary), scorer.rejected_schema()) as writer:
        for path in sorted(folder.iterdir()):
            writer.write_table(pa.parquet.read_table(path))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class _Client:
    """A distributed Client on ``scheduler``, or on a LocalCluster of ``workers``
    processes (one thread each) started and closed here."""

    def __init__(self, scheduler: str | None, workers: int) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> Any:
        import logging

        from distributed import Client, LocalCluster

        if self.scheduler is None:
            self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never a clash with another cluster
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        else:
            try:
                self.client = Client(  # type: ignore[no-untyped-call]
                    self.scheduler, set_as_default=False, timeout="20s"
                )
            except OSError as exc:
                raise BatchInputError(
                    self.scheduler,
                    f"no Dask scheduler answers there ({exc})",
                    "Check --scheduler tcp://HOST:PORT, or leave it out to start a local cluster.",
                ) from exc
        return self.client

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
