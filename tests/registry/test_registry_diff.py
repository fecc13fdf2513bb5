"""diff() on handcrafted pairs: every kind of change the registry reports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelkeep
from modelkeep.errors import EnvironmentMismatchWarning
from modelkeep.registry import Registry
from modelkeep.registry.diff import Change, LabelChange, MetricChange


def _pipeline(numeric: list[str], categorical: list[str]) -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=300))])


def _save_a(path: Path) -> Path:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 40),
            "income": rng.normal(50, 10, 40),
            "plan": rng.choice(["basic", "plus"], 40),
            "tenure": rng.integers(0, 60, 40),
        }
    )
    target = (frame["age"] < 40).astype(int).to_numpy()
    model = _pipeline(["age", "income", "tenure"], ["plan"]).fit(frame, target)
    modelkeep.save(
        model,
        path,
        sample=frame,
        name="churn",
        labels={0: "Stay", 1: "Leave"},
        metrics={"f1": 0.70, "auc": 0.80},
        data_version="d1",
        golden_rows=5,
    )
    return path


def _save_b(path: Path) -> Path:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, 60),
            "age": rng.integers(18, 80, 60).astype(float),
            "plan": rng.choice(["basic", "plus", "premium"], 60),
            "region": rng.choice(["north", "south"], 60),
        }
    )
    target = np.array([0, 1, 2])[frame["age"].to_numpy().astype(int) % 3]
    model = _pipeline(["income", "age"], ["plan", "region"]).fit(frame, target)
    modelkeep.save(
        model,
        path,
        sample=frame,
        name="churn",
        labels={0: "Stay", 1: "Churn", 2: "Downgrade"},
        metrics={"f1": 0.75, "precision": 0.6},
        data_version="d2",
        golden_rows=5,
    )
    # Handcrafted: a second artifact with a parity report, and another environment.
    onnx = b"not really onnx, only hashed"
    (path / "artifacts" / "pipeline.onnx").write_bytes(onnx)
    data = json.loads((path / "modelkeep.json").read_text())
    data["artifacts"].append(
        {
            "path": "artifacts/pipeline.onnx",
            "format": "onnx",
            "sha256": hashlib.sha256(onnx).hexdigest(),
            "size": len(onnx),
            "details": {"parity": {"max_abs_diff": 1e-7, "passed": True}},
        }
    )
    packages = data["environment"]["packages"]
    packages["numpy"] = "1.26.0"
    packages["lightgbm"] = "4.3.0"
    del packages["joblib"]
    data["environment"]["python_version"] = "3.99.0"
    (path / "modelkeep.json").write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    return _save_a(root / "a"), _save_b(root / "b")


@pytest.fixture
def diffed(registry: Registry, pair: tuple[Path, Path]) -> dict[str, Any]:
    registry.register(pair[0])
    with pytest.warns(EnvironmentMismatchWarning):  # the edited environment differs
        registry.register(pair[1])
    result = registry.diff("churn:1", "churn:2")
    assert json.loads(json.dumps(result)) == result  # JSON-serializable as it is
    return result


def test_features(diffed: dict[str, Any]) -> None:
    assert diffed["features"] == {
        "added": [{"name": "region", "dtype": "string"}],
        "removed": [{"name": "tenure", "dtype": "integer"}],
        "retyped": [{"name": "age", "from": "integer", "to": "float"}],
        "nullable": [],
        "reordered": {"from": ["age", "income", "plan"], "to": ["income", "age", "plan"]},
    }
    assert diffed["categories"] == {"plan": {"added": ["premium"], "removed": []}}
    assert set(diffed["ranges"]) == {"age", "income"}


def test_labels_task_and_metrics(diffed: dict[str, Any]) -> None:
    assert diffed["labels"] == {
        "added": [{"value": 2, "label": "Downgrade"}],
        "removed": [],
        "changed": [{"value": 1, "from": "Leave", "to": "Churn"}],
    }
    assert diffed["task"] == {"from": "binary", "to": "multiclass"}
    assert diffed["model_type"] is None
    metrics = diffed["metrics"]
    assert metrics["f1"]["delta"] == pytest.approx(0.05)
    assert metrics["auc"] == {"from": 0.8, "to": None, "delta": None}
    assert metrics["precision"] == {"from": None, "to": 0.6, "delta": None}


def test_data_environment_and_formats(diffed: dict[str, Any]) -> None:
    assert diffed["data"]["data_version"] == {"from": "d1", "to": "d2"}
    assert diffed["data"]["n_rows"] == {"from": 40, "to": 60}
    env = diffed["environment"]
    assert env["python"]["to"].endswith(" 3.99.0")
    assert env["packages"]["added"] == {"lightgbm": "4.3.0"}
    assert list(env["packages"]["removed"]) == ["joblib"]
    assert env["packages"]["changed"]["numpy"]["to"] == "1.26.0"
    assert diffed["formats"]["added"] == ["onnx"]
    assert diffed["formats"]["removed"] == []
    assert diffed["formats"]["changed"] == ["skops"]
    assert diffed["formats"]["parity"] == {
        "onnx": {"from": None, "to": {"max_abs_diff": 1e-7, "passed": True}}
    }
    assert diffed["changes"] == [
        "features",
        "categories",
        "ranges",
        "labels",
        "task",
        "metrics",
        "data",
        "environment",
        "formats",
    ]
    assert (diffed["a"], diffed["b"]) == ("churn:1", "churn:2")


def test_a_version_against_itself_has_no_changes(
    registry: Registry, pair: tuple[Path, Path]
) -> None:
    registry.register(pair[0])
    result = registry.diff("churn", "churn:1")
    assert result["changes"] == []
    assert result["features"]["reordered"] is None
    assert result["metrics"]["f1"] == {"from": 0.7, "to": 0.7, "delta": 0.0}


def test_the_reverse_diff_mirrors(diffed: dict[str, Any], registry: Registry) -> None:
    back = registry.diff("churn:2", "churn:1")
    assert back["features"]["added"] == diffed["features"]["removed"]
    assert back["formats"]["removed"] == ["onnx"]
    assert back["labels"]["removed"] == [{"value": 2, "label": "Downgrade"}]


def test_compare_gives_the_same_diff_as_typed_sections(
    diffed: dict[str, Any], registry: Registry
) -> None:
    result = registry.compare("churn:1", "churn:2")
    assert result.to_dict() == diffed
    sections = result.sections
    assert sections.features.retyped == {"age": Change("integer", "float")}
    assert [(f.name, f.dtype) for f in sections.features.added] == [("region", "string")]
    assert sections.labels.changed == [LabelChange(1, "Leave", "Churn")]
    assert sections.metrics["f1"].delta == pytest.approx(0.05)
    assert sections.metrics["auc"] == MetricChange(0.8, None)
    assert sections.data.n_rows == Change(40, 60)
    assert sections.environment.packages.changed["numpy"].after == "1.26.0"
    assert sections.changes == diffed["changes"]
