"""The Dask engine on a real LocalCluster of two worker processes: the local engine's
output row for row, the model loaded once per worker, both error modes."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from modelkeep.batch import (
    BatchOutputError,
    RejectedRowError,
    load_count,
    predict_dask,
    predict_file,
)
from modelkeep.batch._dask import _csv_ranges, _read_part, plan_parts
from modelkeep.batch._io import find_inputs

from .conftest import customers


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never a clash with another cluster
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _address(client: Client) -> str:
    return str(client.scheduler.address)


def test_same_output_as_the_local_engine_and_one_load_per_worker(
    bundle: Path, tmp_path: Path, client: Client
) -> None:
    frame = customers(1200, seed=7)
    source = tmp_path / "customers.parquet"
    frame.to_parquet(source, index=False, row_group_size=100)  # 12 parts
    local = predict_file(
        bundle, source, tmp_path / "local.parquet", keep_columns=["customer_id"], format="onnx"
    )
    output = tmp_path / "scores"
    summary = predict_file(
        bundle,
        source,
        output,
        keep_columns=["customer_id"],
        format="onnx",
        engine="dask",
        scheduler=_address(client),
        chunk_size=64,
    )
    got = pd.read_parquet(output)
    pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / "local.parquet"))
    assert (summary.engine, summary.rows, summary.scored) == ("dask", 1200, 1200)
    assert summary.label_counts == local.label_counts
    assert summary.manifest_sha256 == local.manifest_sha256
    parts = sorted(output.iterdir())
    assert [p.name for p in parts] == [f"part.{n:05d}.parquet" for n in range(12)]
    assert pq.read_metadata(parts[0]).metadata[b"modelkeep.model_name"] == b"churn"
    # Twelve partitions, two workers, each of which loaded (and verified) the model once.
    assert sorted(client.run(load_count).values()) == [1, 1]
    # predict_dask on the same cluster: still one load per worker (the process's cache).
    ddf = dd.from_pandas(frame, npartitions=5)
    scored = client.compute(
        predict_dask(ddf, bundle, keep_columns=["customer_id"], format="onnx"), sync=True
    )
    pd.testing.assert_frame_equal(scored.reset_index(drop=True), got)
    assert sorted(client.run(load_count).values()) == [1, 1]


def test_skip_mode_over_several_csv_files_matches_the_local_engine(
    bundle: Path, tmp_path: Path, client: Client
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for number in range(3):
        frame = customers(200, seed=20 + number).astype({"tenure": object})
        frame.loc[number * 10 + 5, "tenure"] = "n/a?"
        frame.to_csv(folder / f"part-{number}.csv", index=False)
    local = predict_file(bundle, folder, tmp_path / "local.parquet", on_error="skip", format="onnx")
    summary = predict_file(
        bundle,
        folder,
        tmp_path / "scores",
        on_error="skip",
        format="onnx",
        engine="dask",
        scheduler=_address(client),
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "scores"), pd.read_parquet(tmp_path / "local.parquet")
    )
    assert (summary.scored, summary.rejected) == (local.scored, local.rejected) == (597, 3)
    ours = pd.read_parquet(tmp_path / "scores.rejected.parquet")
    theirs = pd.read_parquet(tmp_path / "local.rejected.parquet")
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours["rejected_row"].tolist() == [6, 16, 26]


def test_fail_mode_names_the_file_and_row_and_writes_nothing(
    bundle: Path, tmp_path: Path, client: Client
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    customers(100, seed=8).to_csv(folder / "a.csv", index=False)
    frame = customers(300, seed=9).astype({"monthly_charges": object})
    frame.loc[211, "monthly_charges"] = "lots"
    frame.to_csv(folder / "b.csv", index=False)
    output = tmp_path / "scores"
    with pytest.raises(RejectedRowError) as caught:
        predict_file(
            bundle, folder, output, format="onnx", engine="dask", scheduler=_address(client)
        )
    assert (caught.value.path, caught.value.line) == (str(folder / "b.csv"), 212)
    assert caught.value.problem.column == "monthly_charges"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    with pytest.raises(BatchOutputError, match="writes a directory of Parquet parts, not CSV"):
        predict_file(bundle, folder, tmp_path / "scores.csv", engine="dask")


def test_csv_parts_end_at_line_ends_and_know_their_first_row(tmp_path: Path) -> None:
    frame = customers(500, seed=3)
    source = tmp_path / "customers.csv"
    frame.to_csv(source, index=False)
    ranges = _csv_ranges(source, 2000)
    assert len(ranges) > 5
    data = source.read_bytes()
    header = data.index(b"\n") + 1
    assert ranges[0][0] == header and ranges[-1][1] == len(data)
    for (start, end, first), (following, _, after) in itertools.pairwise(ranges):
        assert end == following and data[end - 1 : end] == b"\n"
        assert after == first + data[start:end].count(b"\n")
    inputs = find_inputs(source, None)
    parts = plan_parts(inputs, workers=2)
    assert [p.first_row for p in parts] == [1]  # a small file is one part
    columns = ["customer_id", "tenure"]
    pieces: list[Any] = []
    for start, end, first in ranges:
        part = type(parts[0])(0, str(source), "csv", first, start=start, end=end)
        pieces.append(_read_part(part, columns, 100))
    whole = pa.concat_tables(pieces).to_pandas()
    assert whole["customer_id"].tolist() == frame["customer_id"].tolist()
    assert whole["tenure"].tolist() == frame["tenure"].astype(str).tolist()
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,b\n1,"x\ny"\n2,z\n')
    assert _csv_ranges(quoted, 1) == [(4, quoted.stat().st_size, 1)]
