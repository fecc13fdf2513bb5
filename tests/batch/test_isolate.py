"""``modelkeep predict --isolate``: the model is loaded, and scores every chunk, in a
sandboxed worker; the output equals in-process scoring, rejected rows included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cli_runner import run
from modelkeep.batch import predict_file
from modelkeep.errors import InvalidArgumentError

from .conftest import customers


def test_isolated_scoring_equals_in_process_scoring(bundle: Path, tmp_path: Path) -> None:
    frame = customers(300)
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[7, "tenure"] = "forty"  # one row the schema refuses
    given = tmp_path / "in.csv"
    frame.to_csv(given, index=False)
    plain = predict_file(
        bundle, given, tmp_path / "plain.csv", format="skops", on_error="skip", chunk_size=64
    )
    isolated = predict_file(
        bundle,
        given,
        tmp_path / "isolated.csv",
        format="skops",
        on_error="skip",
        chunk_size=64,
        load_options={"isolate": True},
    )
    assert (isolated.scored, isolated.rejected) == (plain.scored, plain.rejected) == (299, 1)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "isolated.csv"), pd.read_csv(tmp_path / "plain.csv")
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "isolated.rejected.csv"),
        pd.read_csv(tmp_path / "plain.rejected.csv"),
    )
    # The option reaches the sandboxed load (which alone checks it), not the plain one.
    with pytest.raises(InvalidArgumentError, match="isolate"):
        predict_file(bundle, given, tmp_path / "never.csv", load_options={"isolate": "yes"})
    assert not (tmp_path / "never.csv").exists()


def test_isolate_is_refused_with_the_dask_engine(bundle: Path, tmp_path: Path) -> None:
    given = tmp_path / "in.parquet"
    customers(20).to_parquet(given)
    with pytest.raises(InvalidArgumentError, match="isolate"):
        predict_file(bundle, given, tmp_path / "out", engine="dask", load_options={"isolate": True})
    result = run(
        "predict",
        str(bundle),
        str(given),
        "-o",
        str(tmp_path / "out2"),
        "--engine",
        "dask",
        "--isolate",
    )
    assert result.returncode == 2, result.output
    assert "--engine local --isolate" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
