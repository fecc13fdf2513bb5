"""Shared fixtures of the serve tests: real bundles, and real ``modelkeep serve`` processes.

- ``churn_data``: the mixed-dtype frame of ``tests/conftest.py`` (integers, floats with NaN,
  strings, a pandas category, booleans) and its target.
- ``bundles``: ``{"lr": path, "rf": path}``, a logistic regression ("churn_lr", skops) and a
  15-tree random forest ("churn_rf", ONNX first, then skops), saved once per session.
- ``Server``: ``modelkeep serve ARGS`` on 127.0.0.1 and a free port, in a subprocess;
  ``start()`` waits for ``/readyz``; ``stop()`` sends SIGTERM and returns the exit status.
- ``served``: one session-wide server with both bundles (each from its first artifact: the
  logistic regression through scikit-learn, the forest through ONNX), a small body and
  row limit (``--max-body 100000 --max-rows 50``).
- ``records(frame)``: rows as JSON-ready dicts (NaN as None, numpy scalars as Python ones).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import modelkeep
from conftest import make_frame, preprocessor

LABELS = {0: "No Churn", 1: "Churn"}
STARTUP_SECONDS = 180  # a hang, not a speed: startup on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as JSON can carry them: NaN as None, numpy scalars as Python's."""
    rows = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            row[str(key)] = value
        rows.append(row)
    return rows


class Server:
    """``modelkeep serve`` in a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--port", str(self.port)]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.output = ""  # what the server wrote (stdout and stderr), once it has exited
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())

    def command(self) -> list[str]:
        return [sys.executable, "-m", "modelkeep", "serve", *self.args]

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}: {self.read()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("the server never became ready")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, then the exit status (the server drains and exits 0)."""
        process = self.process
        if process is None:
            self._log.close()
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the server did not exit within 60 s of SIGTERM")
        self.read()
        self._log.close()
        return process.returncode

    def read(self) -> str:
        """Everything the server has written so far."""
        self._log.seek(0)
        self.output = self._log.read()
        return self.output

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="session")
def churn_data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(300, seed=0)


@pytest.fixture(scope="session")
def bundles(
    tmp_path_factory: pytest.TempPathFactory, churn_data: tuple[pd.DataFrame, np.ndarray]
) -> dict[str, Path]:
    frame, target = churn_data
    root = tmp_path_factory.mktemp("serve-bundles")
    lr = Pipeline([("prep", preprocessor()), ("model", LogisticRegression(max_iter=500))])
    rf = Pipeline([("prep", preprocessor()), ("model", RandomForestClassifier(15, random_state=0))])
    paths = {"lr": root / "lr", "rf": root / "rf"}
    modelkeep.save(
        lr.fit(frame, target),
        paths["lr"],
        sample=frame,
        name="churn_lr",
        labels=LABELS,
        metrics={"f1": 0.7},
    )
    modelkeep.save(
        rf.fit(frame, target),
        paths["rf"],
        sample=frame,
        name="churn_rf",
        labels=LABELS,
        formats=("onnx", "skops"),  # served from ONNX by default; --format skops for scikit-learn
    )
    return paths


@pytest.fixture(scope="session")
def served(bundles: dict[str, Path]) -> Iterator[Server]:
    server = Server(
        str(bundles["lr"]),
        str(bundles["rf"]),
        "--max-body",
        "100000",
        "--max-rows",
        "50",
    )
    yield server.start()
    server.stop()


def post_json(client: httpx.Client, url: str, body: Any, **params: Any) -> httpx.Response:
    return client.post(
        url,
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
        params=params,
    )
