"""Hot swap end to end: ``modelkeep serve churn@production`` under concurrent HTTP requests
while the alias moves to a new version (swapped in) and then to a tampered one (refused).

A real registry in a tmp dir, a real server process, real clients in threads. Every request
must answer 200, each answer's probabilities must be those of the version it names, and the
prediction log (``--log``) must hold every answered request with that version.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import modelkeep
from modelkeep.serve import read_log

from .conftest import Server, post_json, records

CLIENTS = 6


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for the server to do something (no time is asserted: 120 s means it hangs)."""
    deadline = time.monotonic() + 120
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the server never {what}")
        time.sleep(0.05)


def test_hot_swap_under_load_fails_no_request(
    tmp_path: Path, bundles: dict[str, Path], churn_data: Any
) -> None:
    home = tmp_path / "home"
    with modelkeep.Registry(home) as registry:
        registry.register(bundles["lr"], name="churn")  # 1: logistic regression, skops
        registry.register(bundles["rf"], name="churn")  # 2: random forest, ONNX
        tampered = registry.register(bundles["lr"], name="churn")  # 3: its bytes changed below
        registry.set_alias("churn", "production", 1)
    artifact = tampered.path / "artifacts" / "pipeline.skops"
    artifact.chmod(0o644)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))

    frame, _ = churn_data
    rows = records(frame.iloc[:40])
    expected = {
        "1": modelkeep.load(bundles["lr"]).predict_proba(frame.iloc[:40]),
        "2": modelkeep.load(bundles["rf"]).predict_proba(frame.iloc[:40]),
    }
    log = tmp_path / "log"
    server = Server(
        "churn@production",
        "--poll-interval",
        "0.1",
        "--log",
        str(log),
        "--log-format",
        "jsonl",
        env={"MODELKEEP_HOME": str(home)},
    ).start()
    answers: list[tuple[int, int, Any]] = []  # (row, status, body)
    stop = threading.Event()

    def client(offset: int) -> None:
        with server.client() as http:
            index = offset
            while not stop.is_set():
                row = index % len(rows)
                try:
                    response = post_json(
                        http, "/v1/models/churn/predict", {"instances": [rows[row]]}
                    )
                    answers.append((row, response.status_code, response.json()))
                except (httpx.HTTPError, ValueError) as exc:
                    answers.append((row, -1, repr(exc)))
                index += 1

    def versions() -> set[str]:
        return {body["version"] for _, status, body in list(answers) if status == 200}

    def refused() -> int:
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
        found = re.search(r'modelkeep_swaps_total\{[^}]*result="refused"[^}]*\} (\S+)', text)
        return int(float(found.group(1))) if found else 0

    threads = [threading.Thread(target=client, args=(i * 7,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answers) >= 50, "answered 50 requests")
        with modelkeep.Registry(home) as registry:
            registry.set_alias("churn", "production", 2)
        wait_for(lambda: "2" in versions(), "answered from version 2")
        seen = len(answers)
        with modelkeep.Registry(home) as registry:
            registry.set_alias("churn", "production", 3)
        wait_for(lambda: refused() == 1, "refused the tampered version 3")
        wait_for(lambda: len(answers) >= seen + 100, "kept answering after the refusal")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        status = server.stop()

    failed = [(row, code, body) for row, code, body in answers if code != 200]
    assert failed == []
    order = [body["version"] for _, _, body in answers]
    assert set(order) == {"1", "2"}  # never the refused version 3
    assert order[0] == "1" and order[-1] == "2"
    for row, _, body in answers:
        [prediction] = body["predictions"]
        got = [prediction["probabilities"][label] for label in ("No Churn", "Churn")]
        want = expected[body["version"]].iloc[row]
        assert got == pytest.approx([want["No Churn"], want["Churn"]], abs=1e-6), body
    assert "Refused churn:3" in server.output
    assert "IntegrityError" in server.output
    assert status == 0

    # The prediction log holds every answered request, each with the version that answered.
    logged = read_log(log)
    assert sorted(logged["request_id"]) == sorted(body["request_id"] for _, _, body in answers)
    by_id = {body["request_id"]: body["version"] for _, _, body in answers}
    logged_versions = dict(zip(logged["request_id"], logged["version"], strict=True))
    assert logged_versions == by_id
    assert set(logged["model"]) == {"churn"}
