"""Startup refuses a model that fails its checks; SIGTERM drains, then exits 0."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from serve.conftest import Server, free_port, records


def test_a_model_failing_its_checks_stops_startup(bundles: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "tampered"
    shutil.copytree(bundles["lr"], bad)
    artifact = next((bad / "artifacts").iterdir())
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0xFF
    artifact.write_bytes(bytes(data))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelkeep",
            "serve",
            str(bad),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "sha256 expected" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Uvicorn running" not in result.stderr


def test_misuse_exits_2(bundles: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelkeep", "serve", str(bundles["lr"]), "--max-batch", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "--max-batch: expected a positive integer, got 0" in result.stderr


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, rest


def test_sigterm_drains_in_flight_requests_then_exits_0(
    bundles: dict[str, Path], churn_data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, _ = churn_data
    server = Server(str(bundles["lr"])).start()
    body = json.dumps({"instances": records(frame.head(3))}).encode()
    half = len(body) // 2
    assert server.process is not None
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        # A request in flight: its headers and half its body sent, the rest held back.
        sock.sendall(
            b"POST /v1/models/churn_lr/predict HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:half]
        )
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
            server.process.send_signal(15)
            deadline = time.monotonic() + 60  # a hang, not a speed
            while client.get("/readyz").status_code != 503:
                if time.monotonic() > deadline:
                    pytest.fail("/readyz never turned 503 after SIGTERM")
                time.sleep(0.02)
            refused = client.post(
                "/v1/models/churn_lr/predict",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 503
            assert refused.json()["error"] == "draining"
            assert client.get("/livez").status_code == 200
        assert server.process.poll() is None  # still draining: one request is in flight
        sock.sendall(body[half:])
        status, answer = _read_response(sock)
    assert status == 200
    assert len(json.loads(answer)["predictions"]) == 3
    assert server.stop() == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/livez", timeout=5)


def test_workers_share_one_metrics_view_and_drain_to_exit_0(
    bundles: dict[str, Path], churn_data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    """--workers 2: each worker loads the model; /metrics adds up every worker's counts."""
    frame, _ = churn_data
    body = json.dumps({"instances": records(frame.head(1))})
    server = Server(str(bundles["lr"]), "--workers", "2").start()
    try:
        for _ in range(20):
            with server.client() as client:  # a new connection each: either worker
                response = client.post(
                    "/v1/models/churn_lr/predict",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code == 200
        with server.client() as client:
            text = client.get("/metrics").text
        line = 'modelkeep_requests_total{endpoint="v1_predict",model="churn_lr",status="200"} 20.0'
        assert line in text
    finally:
        status = server.stop()
    assert status == 0
    assert server.output.count("Application startup complete") == 2
