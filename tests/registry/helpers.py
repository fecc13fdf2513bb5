"""Helpers for the registry tests: a tiny bundle that is cheap to verify repeatedly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

import modelkeep


def tiny_frame(n: int = 30, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return frame, (frame["a"] + 0.3 * frame["b"] > 0).astype(int).to_numpy()


def save_tiny(path: Path, **options: object) -> Path:
    """A logistic regression on 30 rows with 5 golden rows: cheap to verify repeatedly."""
    frame, target = tiny_frame()
    settings: dict[str, object] = {
        "name": "tiny",
        "labels": {0: "No", 1: "Yes"},
        "metrics": {"f1": 0.8},
        "data_version": "d1",
        "golden_rows": 5,
    }
    settings.update(options)
    modelkeep.save(LogisticRegression().fit(frame, target), path, sample=frame, **settings)  # type: ignore[arg-type]
    return path


def published(registry: modelkeep.Registry) -> list[str]:
    """The bundles the registry's artifact store holds (folders, or listings on S3)."""
    return registry._folders.published()


def registry_location(env: dict[str, str]) -> str:
    """What a worker process passes to ``Registry(...)``: the folder, or the index URL
    (the artifact store then comes from MODELKEEP_ARTIFACTS_URI)."""
    return env.get("MODELKEEP_REGISTRY_URI") or env["MODELKEEP_HOME"]
