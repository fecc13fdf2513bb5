"""``modelkeep serve --isolate``: each model is loaded, and predicts, in a sandboxed worker.

Answers through the server equal the in-process model's; the server itself never
deserializes the artifact (the worker does), and a request the schema refuses is a 422
here, before the worker sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import modelkeep
from serve.conftest import Server, post_json, records


def _workers_of(pid: int) -> list[int]:
    """The sandbox workers among ``pid``'s children (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == pid and b"modelkeep.sandbox._worker" in command:
            found.append(int(entry.name))
    return found


def test_isolated_models_answer_as_the_in_process_ones(
    bundles: dict[str, Path], churn_data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = churn_data
    rows = pd.concat([frame.head(6), frame[frame.isna().any(axis=1)].head(3)])
    server = Server(str(bundles["lr"]), str(bundles["rf"]), "--format", "skops", "--isolate")
    server.start()
    try:
        with server.client() as client:
            for name, key in (("churn_lr", "lr"), ("churn_rf", "rf")):
                model = modelkeep.load(bundles[key], format="skops")
                response = post_json(
                    client, f"/v1/models/{name}/predict", {"instances": records(rows)}
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert [p["label"] for p in body["predictions"]] == list(model.predict(rows))
                got = np.array(
                    [
                        [p["probabilities"]["No Churn"], p["probabilities"]["Churn"]]
                        for p in body["predictions"]
                    ]
                )
                np.testing.assert_allclose(
                    got, np.asarray(model.predict_proba(rows), dtype=float), rtol=0, atol=1e-12
                )
            bad = post_json(
                client,
                "/v1/models/churn_lr/predict",
                {"instances": [{**records(rows)[0], "age": "old"}]},
            )
            assert bad.status_code == 422
            assert bad.json()["problems"][0]["column"] == "age"
        # The models live in the server's sandboxed workers, one per model.
        assert server.process is not None
        assert len(_workers_of(server.process.pid)) == 2
    finally:
        assert server.stop() == 0
