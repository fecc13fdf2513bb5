"""Where the current data comes from, read in chunks: never all rows at once.

A DataFrame is sliced; a Parquet file is read batch by batch (``ParquetFile.iter_batches``,
only the columns needed); a CSV file in chunks of rows; a directory file by file (a
prediction-service log when it holds ``predictions-*`` files, else every ``.parquet`` and
``.csv`` file in name order). Each chunk is a DataFrame of the columns asked for that the
source has; a log's chunks hold its ``time``, ``request_id`` and the inputs as columns, and
its outputs as ``prediction`` and ``probability:<label>`` columns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelkeep._optional import require
from modelkeep._profile import PREDICTION, probability_name
from modelkeep.errors import InvalidArgumentError, InvalidChoiceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHUNK_ROWS", "Source", "open_source"]

CHUNK_ROWS = 65_536
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class Source:
    """A readable description of the current data, and how to read its chunks."""

    kind: str  # "frame", "parquet", "csv", "directory", "log"
    description: str
    files: tuple[Path, ...]
    frame: Any = None
    rows: int | None = None  # known ahead (frames, Parquet), for a progress bar

    def chunks(self, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        """The source's rows in chunks, holding those of ``columns`` it has."""
        if self.kind == "frame":
            frame = self.frame
            keep = [c for c in columns if c in frame.columns]
            for start in range(0, len(frame), CHUNK_ROWS):
                yield frame.iloc[start : start + CHUNK_ROWS][keep]
            return
        for path in self.files:
            yield from _file_chunks(path, columns, log=self.kind == "log")


def open_source(current: Any) -> Source:
    """``current`` as a :class:`Source`: a DataFrame, a file, a directory or a log directory.

    Raises:
        InvalidArgumentError: a path that does not exist, or a directory without data files.
        InvalidChoiceError: a file that is neither ``.csv`` nor ``.parquet``.
    """
    import pandas as pd

    if isinstance(current, pd.DataFrame):
        return Source("frame", f"a DataFrame of {len(current):,} rows", (), current, len(current))
    if not isinstance(current, str | os.PathLike):
        raise InvalidArgumentError(
            "current",
            "a DataFrame, a .csv or .parquet file, a directory of them, or a prediction-log "
            "directory",
            type(current).__name__,
        )
    path = Path(current)
    if path.is_dir():
        from modelkeep.serve.log import _NAME

        names = sorted(os.listdir(path))
        logged = tuple(path / n for n in names if _NAME.match(n))
        if logged:
            return Source("log", f"the prediction log {str(path)!r}", logged)
        files = tuple(path / n for n in names if Path(n).suffix.lower() in _SUFFIXES)
        if not files:
            raise InvalidArgumentError(
                "current",
                "a directory holding .parquet or .csv files, or a prediction log",
                f"{str(path)!r}, which holds none",
            )
        return Source("directory", f"{len(files)} files in {str(path)!r}", files)
    if not path.exists():
        raise InvalidArgumentError(
            "current", "an existing file or directory", f"{str(path)!r}, which does not exist"
        )
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidChoiceError(str(path), [".csv", ".parquet"], "current file type")
    rows = None
    if kind == "parquet":
        pq = require("parquet", "pyarrow.parquet", feature="Reading Parquet data")
        try:
            rows = int(pq.ParquetFile(path).metadata.num_rows)
        except Exception as exc:  # pyarrow's errors share no useful base class
            raise _unreadable(path, exc) from exc
    return Source(kind, repr(str(path)), (path,), rows=rows)


def _unreadable(path: Path, exc: Exception) -> InvalidArgumentError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return InvalidArgumentError(
        "current",
        "a readable .csv or .parquet file",
        f"{str(path)!r}, which cannot be read ({type(exc).__name__}: {first})",
    )


def _file_chunks(path: Path, columns: Sequence[str], *, log: bool) -> Iterator[pd.DataFrame]:
    if log:
        yield _log_chunk(path)
        return
    kind = _SUFFIXES.get(path.suffix.lower())
    try:
        if kind == "parquet":
            pq = require("parquet", "pyarrow.parquet", feature="Reading Parquet data")
            pa = require("parquet", "pyarrow", feature="Reading Parquet data")
            schema = pq.ParquetFile(path).schema_arrow
            keep = [c for c in columns if c in set(schema.names)]
            # Text columns are read dictionary-encoded (pandas categoricals): each distinct
            # value is decoded once per batch, so counting them is cheap in time and memory.
            text = [
                f.name
                for f in schema
                if f.name in keep
                and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            ]
            handle = pq.ParquetFile(path, read_dictionary=text)
            for batch in handle.iter_batches(batch_size=CHUNK_ROWS, columns=keep):
                yield batch.to_pandas()
        else:
            import pandas as pd

            wanted = set(columns)
            reader = pd.read_csv(path, chunksize=CHUNK_ROWS, usecols=lambda c: c in wanted)
            with reader:
                yield from reader
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid is a ValueError, others not)
        if type(exc).__module__.startswith(("pyarrow", "pandas")):
            raise _unreadable(path, exc) from exc
        raise


def _log_chunk(path: Path) -> pd.DataFrame:
    """One prediction-log file as rows: time, request_id, inputs as columns, outputs."""
    import numpy as np
    import pandas as pd

    from modelkeep.serve.log import LogReadError, _read_jsonl, _read_parquet

    try:
        logged = _read_parquet(path) if path.suffix == ".parquet" else _read_jsonl(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LogReadError(str(path), f"{type(exc).__name__}: {exc}") from exc
    frame: pd.DataFrame = pd.DataFrame(list(logged["inputs"]), index=range(len(logged)))
    frame["time"] = logged["time"].to_numpy()
    frame["request_id"] = logged["request_id"].to_numpy()
    predictions: list[Any] = []
    probabilities: dict[str, list[float]] = {}
    for position, output in enumerate(logged["outputs"]):
        output = output if isinstance(output, dict) else {}
        predictions.append(output.get("label"))
        for name, value in (output.get("probabilities") or {}).items():
            column = probabilities.setdefault(str(name), [np.nan] * len(logged))
            column[position] = np.nan if value is None else float(value)
    frame[PREDICTION] = pd.Series(predictions, dtype=object)
    for name, values in probabilities.items():
        frame[probability_name(name)] = np.asarray(values, dtype=np.float64)
    return frame
