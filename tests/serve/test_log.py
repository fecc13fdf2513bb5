"""The prediction log: rows written by a background thread, read back faithfully.

Real files in tmp dirs, real threads: nothing is mocked. Waiting on the writer is always for
a condition (a file appears), never for a time.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from modelkeep.errors import InvalidArgumentError, InvalidChoiceError
from modelkeep.serve.log import COLUMNS, LogReadError, PredictionLog, read_log

FORMATS = ["parquet", "jsonl"]
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def row(index: int, *, at: datetime | None = None) -> dict[str, Any]:
    return {
        "request_id": f"req-{index:05d}",
        "time": at if at is not None else START + timedelta(seconds=index),
        "model": "churn",
        "version": "2",
        "manifest_hash": "9f" * 32,
        "inputs": {
            "tenure": index,
            "monthly_charges": None if index % 3 == 0 else 20.5 + index,
            "contract_type": "month-to-month" if index % 2 else None,
            "score": float("nan") if index % 5 == 0 else 0.25,
        },
        "outputs": {"label": "Churn", "probabilities": {"No Churn": 0.25, "Churn": 0.75}},
        "latency_ms": 1.25 + index,
    }


def files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if not path.name.startswith("."))


def wait_for(condition: Any, what: str) -> None:
    """Wait for the writer thread to do something (no time is asserted: 60 s is a hang)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the log writer never {what}")
        time.sleep(0.01)


def same_inputs(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    if got.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            if not (isinstance(got[key], float) and math.isnan(got[key])):
                return False
        elif got[key] != value or type(got[key]) is not type(value):
            return False
    return True


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_row_is_read_back(tmp_path: Path, fmt: Any) -> None:
    rows = [row(i) for i in range(40)]
    log = PredictionLog(tmp_path, format=fmt)
    for start in range(0, 40, 7):  # several requests of several rows
        log.submit(rows[start : start + 7])
    log.close()

    assert (log.written, log.dropped, log.errors) == (40, 0, 0)
    [name] = files(tmp_path)
    assert re.fullmatch(
        r"predictions-20260101T000000\.000000Z-20260101T000039\.000000Z-\d+-000001\." + fmt, name
    )
    frame = read_log(tmp_path)
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert len(frame) == 40
    for index, got in frame.iterrows():
        expected = rows[int(str(index))]
        assert got["request_id"] == expected["request_id"]
        assert got["time"].to_pydatetime() == expected["time"]
        assert (got["model"], got["version"], got["manifest_hash"]) == ("churn", "2", "9f" * 32)
        assert same_inputs(got["inputs"], expected["inputs"]), (got["inputs"], expected["inputs"])
        assert got["outputs"] == expected["outputs"]
        assert got["latency_ms"] == expected["latency_ms"]


def test_formats_read_together_and_regressor_outputs(tmp_path: Path) -> None:
    with PredictionLog(tmp_path, format="jsonl") as log:
        log.submit([{**row(1), "outputs": 41.5}])
    with PredictionLog(tmp_path, format="parquet") as log:
        log.submit([{**row(0), "outputs": 12.0}])
    frame = read_log(tmp_path)
    assert list(frame["request_id"]) == ["req-00000", "req-00001"]  # by time, not by file
    assert list(frame["outputs"]) == [12.0, 41.5]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rotation_by_rows(tmp_path: Path, fmt: Any) -> None:
    log = PredictionLog(tmp_path, format=fmt, rotate_rows=4)
    log.submit([row(i) for i in range(10)])
    log.close()
    assert log.files == 3
    names = files(tmp_path)
    assert len(names) == 3
    assert [name.rsplit("-", 1)[1] for name in names] == [f"00000{i}.{fmt}" for i in (1, 2, 3)]
    assert list(read_log(tmp_path)["request_id"]) == [f"req-{i:05d}" for i in range(10)]


def test_rotation_by_age_finishes_files_while_open(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, format="jsonl", rotate_seconds=0.05)
    log.submit([row(0), row(1)])
    wait_for(lambda: log.files == 1, "finished a file by age")
    # The first file is finished (and readable) while the log is still open.
    assert list(read_log(tmp_path)["request_id"]) == ["req-00000", "req-00001"]
    log.submit([row(2)])
    wait_for(lambda: log.files == 2, "finished a second file")
    log.close()
    assert len(files(tmp_path)) == 2
    assert log.written == 3


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, format="jsonl", queue_size=3)
    # Hold the GIL for the whole submit, so the writer cannot drain the queue meanwhile.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        log.submit([row(i) for i in range(50)])
    finally:
        sys.setswitchinterval(interval)
    log.close()
    assert log.dropped >= 47 - 1  # the writer may have taken one row before the loop
    assert log.written + log.dropped == 50
    assert len(read_log(tmp_path)) == log.written
    assert log.errors == 0


def test_sampling_keeps_a_deterministic_share(tmp_path: Path) -> None:
    rows = [row(i) for i in range(2000)]
    kept = []
    for folder in ("a", "b"):
        with PredictionLog(tmp_path / folder, format="jsonl", sample=0.1) as log:
            log.submit(rows)
        kept.append(list(read_log(tmp_path / folder)["request_id"]))
    assert kept[0] == kept[1]  # by request id, the same on every worker
    assert 120 <= len(kept[0]) <= 280
    assert log.dropped == 0  # sampled out is not dropped


def test_since_and_until(tmp_path: Path) -> None:
    hours = [row(i, at=START + timedelta(hours=i)) for i in range(10)]
    with PredictionLog(tmp_path, format="parquet", rotate_rows=3) as log:
        log.submit(hours)

    def ids(**bounds: Any) -> list[int]:
        return [int(text[4:]) for text in read_log(tmp_path, **bounds)["request_id"]]

    assert ids() == list(range(10))
    assert ids(since="2026-01-01T03:00:00", until=START + timedelta(hours=7)) == [3, 4, 5, 6]
    assert ids(since="2026-01-01T05:00:00+02:00") == list(range(3, 10))  # 03:00 UTC
    assert ids(until=datetime(2026, 1, 1, 2)) == [0, 1]  # naive means UTC
    assert ids(since="2026-01-02") == []
    assert list(read_log(tmp_path, since="2026-01-02").columns) == list(COLUMNS)


def test_an_unwritable_directory_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    log = PredictionLog(blocker / "logs", format="parquet")  # no exception
    log.submit([row(i) for i in range(5)])  # no exception
    log.close()
    assert log.written == 0
    assert log.dropped == 5
    assert log.errors >= 2  # the directory at start, then the file


def test_a_bad_row_is_dropped_and_the_writer_goes_on(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, format="jsonl")
    log.submit([row(0), {"request_id": "broken"}, {**row(1), "time": "yesterday"}, row(2)])
    log.close()
    assert (log.written, log.dropped, log.errors) == (2, 2, 2)
    assert list(read_log(tmp_path)["request_id"]) == ["req-00000", "req-00002"]


def test_close_twice_and_submit_after_close(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, format="jsonl")
    log.submit([row(0)])
    log.close()
    log.close()
    log.submit([row(1), row(2)])
    assert (log.written, log.dropped) == (1, 2)


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidChoiceError, match=re.escape("log format: expected one of")):
        PredictionLog(Path("unused"), format="csv")  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgumentError, match=re.escape("sample: expected a share in (0, 1], got 0.")
    ):
        PredictionLog(Path("unused"), sample=0)
    with pytest.raises(
        InvalidArgumentError, match=re.escape("queue_size: expected a positive integer, got 0.")
    ):
        PredictionLog(Path("unused"), queue_size=0)


def test_read_log_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="directory: expected a prediction-log"):
        read_log(tmp_path / "missing")
    with pytest.raises(InvalidArgumentError, match="since: expected a datetime or an ISO"):
        read_log(tmp_path, since="last tuesday")
    bad = tmp_path / "predictions-20260101T000000.000000Z-20260101T000000.000000Z-1-000001.jsonl"
    bad.write_text('{"request_id": "x"}\n')
    with pytest.raises(LogReadError, match=re.escape(f"Prediction log {str(bad)!r}: expected")):
        read_log(tmp_path)


KILLED_WRITER = """
import sys, itertools
from datetime import datetime, timezone
from modelkeep.serve.log import PredictionLog
log = PredictionLog(sys.argv[1], format=sys.argv[2], rotate_rows=50, queue_size=100_000)
for i in itertools.count():
    log.submit([{"request_id": f"r{i}", "time": datetime.now(timezone.utc), "model": "m",
                 "version": "1", "manifest_hash": "h", "inputs": {"a": i},
                 "outputs": {"label": "x"}, "latency_ms": 1.0}])
"""


def test_a_killed_writer_leaves_only_whole_files(tmp_path: Path) -> None:
    # Both formats finish files through the same write-then-rename; Parquet is checked.
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), "parquet"])
    try:
        wait_for(lambda: len(files(tmp_path)) >= 3, "finished three files")
    finally:
        child.kill()
        child.wait()
    names = files(tmp_path)
    frame = read_log(tmp_path)  # every finished file reads whole
    assert len(frame) == 50 * len(names)
    assert frame["request_id"].is_unique
