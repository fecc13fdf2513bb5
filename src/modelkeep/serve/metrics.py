"""Prometheus metrics (prometheus-client), safe with several workers.

With ``--workers N`` the server sets ``PROMETHEUS_MULTIPROC_DIR`` (a temporary folder it
creates and removes) before any worker imports prometheus-client; each worker then writes
its samples there and ``/metrics`` aggregates every worker's. The ``model`` label only ever
holds a served name (a request for an unknown model is counted under ``""``), so clients
cannot grow the series without bound.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 10000)


class Metrics:
    """Every metric the server exports; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "modelkeep_requests",
            "Requests answered, by endpoint, model and HTTP status",
            ["endpoint", "model", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "modelkeep_errors",
            "Refused or failed requests, by endpoint, model and kind of error",
            ["endpoint", "model", "kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "modelkeep_request_duration_seconds",
            "Time from the request's arrival to its response, by endpoint and model",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rows = Counter(
            "modelkeep_rows_predicted",
            "Rows predicted, by model and version",
            ["model", "version"],
            registry=registry,
        )
        self.labels = Counter(
            "modelkeep_predicted_labels",
            "Predicted labels, by model and label",
            ["model", "label"],
            registry=registry,
        )
        self.batch_rows = Histogram(
            "modelkeep_batch_rows",
            "Rows per runtime call (one batch of coalesced requests), by model",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "modelkeep_model_info",
            "1 for the version each model serves (0 once swapped out)",
            ["model", "version", "manifest_hash", "format"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.swaps = Counter(
            "modelkeep_swaps",
            "Hot swaps by model and result (accepted, refused)",
            ["model", "result"],
            registry=registry,
        )
        self.log_dropped = Gauge(
            "modelkeep_log_dropped_rows",
            "Prediction-log rows dropped because the log's queue was full",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.log_written = Gauge(
            "modelkeep_log_written_rows",
            "Prediction-log rows written",
            multiprocess_mode="livesum",
            registry=registry,
        )

    def serving(self, name: str, version: str, manifest_hash: str, format: str) -> None:
        self.model_info.labels(name, version, manifest_hash, format).set(1)

    def retired(self, name: str, version: str, manifest_hash: str, format: str) -> None:
        self.model_info.labels(name, version, manifest_hash, format).set(0)

    def render(self) -> bytes:
        """The exposition text, aggregated over every worker in multiprocess mode."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    def observe(self, endpoint: str, model: str, status: int, seconds: float, kind: Any) -> None:
        self.requests.labels(endpoint, model, str(status)).inc()
        self.latency.labels(endpoint, model).observe(seconds)
        if kind is not None:
            self.errors.labels(endpoint, model, kind).inc()
