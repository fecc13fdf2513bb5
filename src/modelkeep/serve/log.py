"""The prediction log: every prediction's request, model, inputs, outputs and latency,
appended to rotating files by a background writer, and :func:`read_log` to read them back.

A request hands its rows to :meth:`PredictionLog.submit`, which puts them on a bounded queue
and returns: it never waits for the disk and never raises. One writer thread drains the
queue into a buffer of plain columns and finishes a file when the buffer holds
``rotate_rows`` rows or its oldest row is ``rotate_seconds`` old (and at :meth:`close`).

Each file is written whole to a temporary name beside it, fsynced and renamed into place
(:func:`modelkeep._fs.write_file`), so a reader never sees half a file and a killed process
loses only what was still queued or buffered, never a finished file. Names carry the times
of their first and last rows, the process id and a sequence number
(``predictions-20260101T120000.000000Z-20260101T120059.998000Z-4242-000003.parquet``), so
several server workers can share one directory and :func:`read_log` skips files outside
``since``/``until`` without opening them.

Columns: ``request_id``, ``time`` (UTC), ``model``, ``version``, ``manifest_hash``,
``inputs`` and ``outputs`` (stored as JSON text, read back as dicts: missing values stay
``None``, NaN stays NaN), ``latency_ms``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from modelkeep import _fs
from modelkeep._optional import require
from modelkeep.errors import InvalidArgumentError, InvalidChoiceError, ModelkeepError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "LogFormat", "LogReadError", "PredictionLog", "read_log"]

logger = logging.getLogger("modelkeep.serve.log")

LogFormat = Literal["parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl")
COLUMNS: tuple[str, ...] = (
    "request_id",
    "time",
    "model",
    "version",
    "manifest_hash",
    "inputs",
    "outputs",
    "latency_ms",
)
_TEXT_COLUMNS = ("request_id", "model", "version", "manifest_hash")
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(
    r"^predictions-(?P<first>\d{8}T\d{6}\.\d{6}Z)-(?P<last>\d{8}T\d{6}\.\d{6}Z)"
    r"-\d+-\d+\.(?P<ext>parquet|jsonl)$"
)
_EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl"}
# close()'s wake-up call to the writer (compared by identity, never written).
_WAKE: Mapping[str, Any] = {}
# How long the writer waits for a row before it looks at the clock (rotation by age, close).
_TICK_SECONDS = 0.2


class LogReadError(ModelkeepError, ValueError):
    """A prediction-log file that cannot be read (``path`` names it)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"Prediction log {path!r}: expected a file written by modelkeep serve --log, "
            f"got one that cannot be read ({reason}). Move it out of the log directory."
        )


class PredictionLog:
    """Append prediction rows to rotating Parquet (or JSON-lines) files in ``directory``.

    Args:
        directory: where the files go; created if missing.
        format: ``"parquet"`` (needs pyarrow: ``pip install 'modelkeep[parquet]'``) or
            ``"jsonl"``.
        sample: the share of requests kept, in (0, 1]; chosen by a hash of the request id,
            so every row of one request is kept or none, the same way on every worker.
        queue_size: rows that may wait for the writer; beyond it rows are dropped and
            counted (:attr:`dropped`), never waited for.
        rotate_rows: a file is finished when it holds this many rows.
        rotate_seconds: ... or when its first row is this old, so a finished file is never
            more than this behind the requests (and a killed server loses at most that).

    Errors writing a file (a full disk, an unwritable directory) are logged and counted in
    :attr:`errors`, and that file's rows in :attr:`dropped`; they never reach a request.

    Raises:
        InvalidChoiceError: an unknown ``format``.
        InvalidArgumentError: ``sample``, ``queue_size`` or a rotation limit out of range.
        MissingDependencyError: ``format="parquet"`` without pyarrow.

    Example:
        >>> log = PredictionLog(Path("logs"), sample=0.1)
        >>> log.submit([{"request_id": "r1", "time": datetime.now(timezone.utc), ...}])
        >>> log.close()
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        format: LogFormat = "parquet",
        sample: float = 1.0,
        queue_size: int = 10_000,
        rotate_rows: int = 100_000,
        rotate_seconds: float = 60.0,
    ) -> None:
        if format not in FORMATS:
            raise InvalidChoiceError(str(format), FORMATS, "log format")
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 < sample <= 1:
            raise InvalidArgumentError("sample", "a share in (0, 1]", repr(sample))
        for parameter, value in (("queue_size", queue_size), ("rotate_rows", rotate_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(parameter, "a positive integer", repr(value))
        if (
            isinstance(rotate_seconds, bool)
            or not isinstance(rotate_seconds, (int, float))
            or not rotate_seconds > 0
        ):
            raise InvalidArgumentError("rotate_seconds", "a positive number", repr(rotate_seconds))
        if format == "parquet":
            require("parquet", "pyarrow", feature="The Parquet prediction log")
        self.directory = Path(directory)
        self.format: LogFormat = format
        self.sample = float(sample)
        self.rotate_rows = rotate_rows
        self.rotate_seconds = float(rotate_seconds)
        self._queue: queue.Queue[Mapping[str, Any]] = queue.Queue(maxsize=queue_size)
        self._counts = threading.Lock()
        self._dropped = 0
        self._written = 0
        self._errors = 0
        self._files = 0
        self._closed = False
        self._stopping = threading.Event()
        self._buffer = _Columns()
        self._sequence = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # counted and retried at every file: never raised
            self._error(f"cannot create the log directory {str(self.directory)!r}: {exc}")
        self._thread = threading.Thread(
            target=self._run, name="modelkeep-prediction-log", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"PredictionLog({str(self.directory)!r}, format={self.format!r})"

    # ------------------------------------------------------------------------ counters

    @property
    def dropped(self) -> int:
        """Rows submitted but never written: the queue was full, the log was closed, or
        their file could not be written."""
        return self._dropped

    @property
    def written(self) -> int:
        """Rows in finished files."""
        return self._written

    @property
    def errors(self) -> int:
        """Failed attempts to write a file, and rows that could not be encoded."""
        return self._errors

    @property
    def files(self) -> int:
        """Files finished by this log."""
        return self._files

    @property
    def pending(self) -> int:
        """Rows queued for the writer right now."""
        return self._queue.qsize()

    def _count(self, *, dropped: int = 0, written: int = 0, errors: int = 0) -> None:
        with self._counts:
            self._dropped += dropped
            self._written += written
            self._errors += errors

    def _error(self, message: str) -> None:
        self._count(errors=1)
        logger.error("Prediction log: %s", message)

    # -------------------------------------------------------------------------- submit

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Queue ``rows`` for writing; never blocks and never raises.

        Each row: ``request_id`` (str), ``time`` (a UTC datetime; naive ones are taken as
        UTC), ``model``, ``version``, ``manifest_hash``, ``inputs`` (column -> value),
        ``outputs`` (label and probabilities, or a number), ``latency_ms``. Rows that do not
        fit the queue, or come after :meth:`close`, are dropped and counted.
        """
        try:
            for row in rows:
                if self.sample < 1.0 and not _kept(row.get("request_id"), self.sample):
                    continue
                if self._closed:
                    self._count(dropped=1)
                    continue
                try:
                    self._queue.put_nowait(row)
                except queue.Full:
                    self._count(dropped=1)
        except Exception:  # a request must never fail because of its log
            logger.exception("Prediction log: rows could not be queued")
            self._count(errors=1)

    # -------------------------------------------------------------------------- writer

    def _run(self) -> None:
        while True:
            try:
                try:
                    row = self._queue.get(timeout=_TICK_SECONDS)
                except queue.Empty:
                    row = None
                # Read after the wait: close() sets it before it puts its wake-up call.
                stopping = self._stopping.is_set()
                if row is not None:
                    self._take(row)
                    while len(self._buffer) < self.rotate_rows:
                        try:
                            self._take(self._queue.get_nowait())
                        except queue.Empty:
                            break
                if self._due():
                    self._flush()
                if stopping and self._queue.empty():
                    self._flush()
                    return
            except Exception:  # the writer thread outlives any one bad file or row
                logger.exception("Prediction log: writer error")
                self._count(errors=1)

    def _take(self, row: Mapping[str, Any]) -> None:
        if row is _WAKE:
            return
        try:
            self._buffer.append(row)
        except Exception as exc:
            self._count(dropped=1)
            self._error(f"a row could not be encoded and was dropped ({exc})")

    def _due(self) -> bool:
        if not len(self._buffer):
            return False
        if len(self._buffer) >= self.rotate_rows:
            return True
        return time.monotonic() - self._buffer.started >= self.rotate_seconds

    def _flush(self) -> None:
        buffer, self._buffer = self._buffer, _Columns()
        if not len(buffer):
            return
        self._sequence += 1
        first, last = min(buffer.times), max(buffer.times)
        name = (
            f"predictions-{_stamp(first)}-{_stamp(last)}-{os.getpid()}-{self._sequence:06d}"
            f".{_EXTENSIONS[self.format]}"
        )
        try:
            data = buffer.parquet() if self.format == "parquet" else buffer.jsonl()
            self.directory.mkdir(parents=True, exist_ok=True)
            _fs.write_file(self.directory / name, data, exclusive=True)
        except Exception as exc:
            self._count(dropped=len(buffer))
            self._error(f"{len(buffer)} rows lost: cannot write {name!r} ({exc})")
            return
        with self._counts:
            self._written += len(buffer)
            self._files += 1

    # --------------------------------------------------------------------------- close

    def close(self) -> None:
        """Write every queued row, finish the last file and stop the writer.

        Safe to call twice; rows submitted afterwards are dropped and counted.
        """
        with self._counts:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # full: the writer is awake anyway
            self._queue.put_nowait(_WAKE)
        self._thread.join()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Columns:
    """The writer's buffer: the rows of the next file as plain columns."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.request_id: list[str] = []
        self.times: list[datetime] = []
        self.model: list[str] = []
        self.version: list[str] = []
        self.manifest_hash: list[str] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.latency_ms: list[float | None] = []

    def __len__(self) -> int:
        return len(self.request_id)

    def append(self, row: Mapping[str, Any]) -> None:
        # Everything is converted before anything is appended, so a bad row leaves no trace.
        values = (
            str(row["request_id"]),
            _utc(row["time"]),
            str(row["model"]),
            str(row["version"]),
            str(row["manifest_hash"]),
            _json(row.get("inputs")),
            _json(row.get("outputs")),
            _latency(row.get("latency_ms")),
        )
        if not len(self):
            self.started = time.monotonic()
        self.request_id.append(values[0])
        self.times.append(values[1])
        self.model.append(values[2])
        self.version.append(values[3])
        self.manifest_hash.append(values[4])
        self.inputs.append(values[5])
        self.outputs.append(values[6])
        self.latency_ms.append(values[7])

    def parquet(self) -> bytes:
        pa = require("parquet", "pyarrow", feature="The Parquet prediction log")
        pq = require("parquet", "pyarrow.parquet", feature="The Parquet prediction log")

        table = pa.table(
            {
                "request_id": pa.array(self.request_id, pa.string()),
                "time": pa.array(self.times, pa.timestamp("us", tz="UTC")),
                "model": pa.array(self.model, pa.string()),
                "version": pa.array(self.version, pa.string()),
                "manifest_hash": pa.array(self.manifest_hash, pa.string()),
                "inputs": pa.array(self.inputs, pa.string()),
                "outputs": pa.array(self.outputs, pa.string()),
                "latency_ms": pa.array(self.latency_ms, pa.float64()),
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()

    def jsonl(self) -> bytes:
        lines = []
        for index in range(len(self)):
            fields = {
                "request_id": self.request_id[index],
                "time": self.times[index].isoformat(),
                "model": self.model[index],
                "version": self.version[index],
                "manifest_hash": self.manifest_hash[index],
                "latency_ms": self.latency_ms[index],
            }
            # inputs and outputs are JSON text already: spliced in, so each line is one object.
            head = json.dumps(fields, separators=(",", ":"))[:-1]
            lines.append(f'{head},"inputs":{self.inputs[index]},"outputs":{self.outputs[index]}}}')
        return ("\n".join(lines) + "\n").encode("utf-8")


def _kept(request_id: object, share: float) -> bool:
    digest = hashlib.blake2b(str(request_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def _utc(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    raise TypeError(f"time: expected a datetime or a POSIX timestamp, got {type(value).__name__}")


def _json(value: object) -> str:
    # NaN and infinity are kept (as JSON's NaN/Infinity tokens, which json.loads reads back);
    # anything that is not JSON data (numpy scalars ...) is written as its text.
    return json.dumps(value, separators=(",", ":"), default=_plain, allow_nan=True)


def _plain(value: object) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _latency(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(_STAMP)


# ------------------------------------------------------------------------------ reading


def read_log(
    directory: str | os.PathLike[str],
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pd.DataFrame:
    """Every logged prediction in ``directory`` with ``since <= time < until``, by time.

    ``since`` and ``until`` are datetimes or ISO 8601 strings (``"2026-01-01"``,
    ``"2026-01-01T12:00:00+02:00"``); naive ones are UTC. Only finished files are read
    (a file still being written has a temporary name); Parquet and JSON-lines files may sit
    side by side. Columns are :data:`COLUMNS`: ``time`` is a UTC datetime column,
    ``inputs`` and ``outputs`` hold dicts (``pd.DataFrame(list(frame["inputs"]))`` gives
    the inputs as a frame of features).

    Raises:
        InvalidArgumentError: ``directory`` is not a directory, or ``since``/``until`` is not
            a date.
        LogReadError: a log file cannot be read (its name says which).
        MissingDependencyError: Parquet files and no pyarrow.

    Example:
        >>> frame = read_log("logs/", since="2026-01-01", until="2026-02-01")
        >>> frame.groupby("version")["latency_ms"].median()
    """
    import pandas as pd

    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidArgumentError(
            "directory", "a prediction-log directory", f"{str(folder)!r}, which is not one"
        )
    start = _moment("since", since)
    end = _moment("until", until)
    frames: list[pd.DataFrame] = []
    for name in sorted(os.listdir(folder)):
        found = _NAME.match(name)
        if found is None:
            continue
        first = _parse_stamp(found["first"])
        last = _parse_stamp(found["last"])
        if (start is not None and last < start) or (end is not None and first >= end):
            continue
        path = folder / name
        try:
            frame = _read_parquet(path) if found["ext"] == "parquet" else _read_jsonl(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LogReadError(str(path), f"{type(exc).__name__}: {exc}") from exc
        frames.append(frame)
    if not frames:
        return _empty()
    frame = pd.concat(frames, ignore_index=True)
    if start is not None:
        frame = frame.loc[frame["time"] >= start]
    if end is not None:
        frame = frame.loc[frame["time"] < end]
    ordered: pd.DataFrame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    return ordered


def _moment(parameter: str, value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime):
        raise InvalidArgumentError(
            parameter, "a datetime or an ISO 8601 date such as '2026-01-31T12:00:00'", repr(value)
        )
    return _utc(value).astimezone(timezone.utc)


def _parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, _STAMP).replace(tzinfo=timezone.utc)


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    frame["time"] = pd.to_datetime(frame["time"], utc=True).astype("datetime64[us, UTC]")
    for column in _TEXT_COLUMNS:
        frame[column] = frame[column].astype(object)
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    ordered: pd.DataFrame = frame.loc[:, list(COLUMNS)]
    return ordered


def _read_parquet(path: Path) -> pd.DataFrame:
    pq = require("parquet", "pyarrow.parquet", feature="Reading a Parquet prediction log")
    table = pq.read_table(path)
    missing = [column for column in COLUMNS if column not in table.column_names]
    if missing:
        raise KeyError(f"columns {', '.join(missing)} are missing")
    data = {column: table.column(column).to_pylist() for column in COLUMNS}
    data["inputs"] = [json.loads(text) for text in data["inputs"]]
    data["outputs"] = [json.loads(text) for text in data["outputs"]]
    import pandas as pd

    return _finish(pd.DataFrame(data))


def _read_jsonl(path: Path) -> pd.DataFrame:
    import pandas as pd

    records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    for record in records:
        missing = [column for column in COLUMNS if column not in record]
        if missing:
            raise KeyError(f"fields {', '.join(missing)} are missing")
    data = {column: [record[column] for record in records] for column in COLUMNS}
    return _finish(pd.DataFrame(data))


def _empty() -> pd.DataFrame:
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame({c: pd.Series([], dtype=object) for c in COLUMNS})
    frame["time"] = frame["time"].astype("datetime64[us, UTC]")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    return frame
