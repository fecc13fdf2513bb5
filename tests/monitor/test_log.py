"""A report over a real prediction-service log: ``modelkeep serve --log`` in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import modelkeep
from modelkeep import monitor
from serve.conftest import Server, post_json, records

from .conftest import FEATURES, TARGET, fresh

REQUESTS, ROWS = 12, 40


@pytest.fixture(scope="module")
def logged(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A log of REQUESTS x ROWS churn predictions, and the rows sent with their request ids."""
    folder = tmp_path_factory.mktemp("log")
    server = Server(str(bundle), "--log", str(folder)).start()
    sent = []
    try:
        with server.client() as client:
            for index in range(REQUESTS):
                rows = fresh(ROWS, seed=500 + index)
                response = post_json(
                    client,
                    "/v1/models/churn/predict",
                    {"instances": records(rows[FEATURES])},
                )
                assert response.status_code == 200, response.text
                rows["request_id"] = response.headers["X-Request-Id"]
                sent.append(rows)
    finally:
        assert server.stop() == 0, server.output
    return folder, pd.concat(sent, ignore_index=True)


def test_a_log_directory_is_read_with_its_outputs_and_times(
    bundle: Path, model: modelkeep.Model, logged: tuple[Path, pd.DataFrame]
) -> None:
    folder, sent = logged
    report = monitor.drift(bundle, folder, window="1h")
    assert report.source.startswith("the prediction log")
    assert report.rows == REQUESTS * ROWS
    assert len(report.windows) in (1, 2)  # the requests take seconds; an hour may turn
    # The outputs came from the log, and are the model's own on the rows sent.
    again = monitor.drift(model, sent[FEATURES], outputs="model")
    assert [o.psi for o in report.outputs] == pytest.approx([o.psi for o in again.outputs])
    assert [f.psi for f in report.features] == pytest.approx([f.psi for f in again.features])


def test_labels_joined_on_the_logged_request_ids(
    bundle: Path, model: modelkeep.Model, logged: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, sent = logged
    sent[["request_id", TARGET]].to_csv(tmp_path / "labels.csv", index=False)
    report = monitor.drift(bundle, folder, labels=tmp_path / "labels.csv")
    expected = monitor.drift(model, sent, labels=TARGET)
    assert report.performance is not None and report.performance.rows == REQUESTS * ROWS
    assert report.performance.metrics == pytest.approx(expected.performance.metrics)  # type: ignore[union-attr]
    flipped = sent.assign(**{TARGET: 1 - sent[TARGET]})
    flipped[["request_id", TARGET]].to_parquet(tmp_path / "flipped.parquet")
    dropped = monitor.drift(bundle, folder, labels=tmp_path / "flipped.parquet")
    assert dropped.performance is not None and dropped.performance.dropped and dropped.drifted
