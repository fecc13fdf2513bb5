"""load(path, format="onnx"): the Model interface over onnxruntime, without the training stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx_cases import fit

import modelkeep
from conftest import make_frame
from modelkeep import (
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    GoldenMismatchError,
    InvalidChoiceError,
    Model,
    SchemaError,
    SchemaWarning,
)
from modelkeep.manifest import MANIFEST_NAME, read_manifest
from modelkeep.onnx import SessionOptions
from modelkeep.onnx.model import OnnxModel

LABELS = {0: "Stay", 1: "Leave"}
RECORD = {
    "age": 30,
    "income": 52000.5,
    "visits": 2.0,
    "plan": "basic",
    "region": "north",
    "autopay": False,
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, frame = fit("random_forest")
    path = tmp_path_factory.mktemp("serving") / "churn"
    modelkeep.save(
        model, path, sample=frame, name="churn", labels=LABELS, formats=("skops", "onnx")
    )
    return path


@pytest.fixture(scope="module")
def served(bundle: Path) -> OnnxModel:
    model = modelkeep.load(bundle, format="onnx")
    assert isinstance(model, OnnxModel)
    return model


@pytest.fixture(scope="module")
def original(bundle: Path) -> Model:
    return modelkeep.load(bundle)


def _rows(n: int = 12) -> pd.DataFrame:
    frame, _ = make_frame(300, seed=0)
    return frame.iloc[:n].reset_index(drop=True)


def test_the_onnx_model_has_the_model_interface(served: OnnxModel, original: Model) -> None:
    assert isinstance(served, Model)
    assert (served.format, original.format) == ("onnx", "skops")
    assert served.labels == original.labels == LABELS
    assert served.schema == original.schema
    assert served.task == "binary"
    assert repr(served) == "<Model 'churn' version 1 (binary, 6 features, onnx)>"


@pytest.mark.parametrize(
    "shape", ["frame", "records", "columns", "array", "one_record"], ids=lambda s: s
)
def test_every_input_shape_gets_the_original_answers(
    shape: str, served: OnnxModel, original: Model
) -> None:
    frame = _rows()
    inputs: dict[str, Any] = {
        "frame": frame,
        "records": frame.to_dict(orient="records"),
        "columns": {c: frame[c].tolist() for c in frame.columns},
        "array": frame.to_numpy(dtype=object),
        "one_record": frame.iloc[0].to_dict(),
    }
    X = inputs[shape]
    want = original.predict(frame.iloc[:1] if shape == "one_record" else frame)
    np.testing.assert_array_equal(served.predict(X), want)
    proba = served.predict_proba(X)
    expected = original.predict_proba(frame.iloc[:1] if shape == "one_record" else frame)
    if shape == "frame":
        assert isinstance(proba, pd.DataFrame)
        assert list(proba.columns) == ["Stay", "Leave"]
        proba = proba.to_numpy()
    else:  # no pandas needed: an array, columns in the order of model.labels
        assert isinstance(proba, np.ndarray) and proba.dtype == np.float64
    np.testing.assert_allclose(proba, expected.to_numpy(), atol=1e-5)


def test_a_missing_column_is_an_error_as_in_the_original(served: OnnxModel) -> None:
    record = {k: v for k, v in RECORD.items() if k != "plan"}
    message = (
        "Input is missing 1 of the model's 6 columns: 'plan'. Add every feature the model "
        "was fitted on, with null for unknown values."
    )
    with pytest.raises(SchemaError, match=re.escape(message)):
        served.predict(record)


def test_an_unconvertible_value_is_named(served: OnnxModel) -> None:
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "Column 'age': row 0: expected integer, got '30' (str). Send a whole number "
            "(a JSON number, not a string)."
        ),
    ):
        served.predict({**RECORD, "age": "30"})


def test_unusual_values_warn_or_with_strict_raise(served: OnnxModel) -> None:
    record = {**RECORD, "plan": "gold", "coupon": "X1"}
    with pytest.warns(SchemaWarning) as caught:
        served.predict(record)
    assert [(w.message.kind, w.message.column) for w in caught] == [  # type: ignore[union-attr]
        ("extra_columns", None),
        ("unseen_categories", "plan"),
    ]
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "Column 'plan': expected values seen in training, got 1 unseen value(s): 'gold'. "
            "Fix the input, or pass strict=False to accept it with a warning."
        ),
    ):
        served.predict({**RECORD, "plan": "gold"}, strict=True)


def test_a_missing_value_in_a_complete_integer_column_is_refused(served: OnnxModel) -> None:
    """The graph takes integers as int64, which has no missing value."""
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "Column 'age': row 1: expected an integer (the ONNX model takes this column as "
            "int64, which cannot hold a missing value), got None (NoneType). Send a value: "
            "the training data had none missing in this column."
        ),
    ):
        served.predict([RECORD, {**RECORD, "age": None}])
    # A missing value in a column that had some is what the pipeline imputes.
    assert served.predict({**RECORD, "income": None}).shape == (1,)


def test_session_options_are_applied_and_checked(bundle: Path) -> None:
    model = modelkeep.load(
        bundle, format="onnx", session_options=SessionOptions(intra_op_threads=2)
    )
    assert isinstance(model, OnnxModel)
    options = model.runtime.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    with pytest.raises(
        InvalidChoiceError,
        match=re.escape("intra_op_threads: expected one of 'an integer >= 0', got '-1'."),
    ):
        modelkeep.load(bundle, format="onnx", session_options=SessionOptions(intra_op_threads=-1))
    with pytest.raises(
        InvalidChoiceError,
        match=re.escape(
            "session_options (format 'skops'): expected one of 'None for a non-ONNX "
            "artifact', got 'session_options=...'."
        ),
    ):
        modelkeep.load(bundle, session_options=SessionOptions())


def _edit_manifest(path: Path, change: Any) -> None:
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    change(manifest)
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))


def _copy(bundle: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def test_only_the_onnxruntime_version_is_compared(bundle: Path, tmp_path: Path) -> None:
    path = _copy(bundle, tmp_path)

    def older_runtime(manifest: dict[str, Any]) -> None:
        manifest["artifacts"][1]["details"]["conversion"]["packages"]["onnxruntime"] = "1.0.0"
        manifest["environment"]["packages"]["scikit-learn"] = "0.1"  # irrelevant to ONNX

    _edit_manifest(path, older_runtime)
    with pytest.warns(EnvironmentMismatchWarning) as caught:
        modelkeep.load(path, format="onnx")
    [difference] = caught[0].message.differences  # type: ignore[union-attr]
    assert (difference.name, difference.recorded) == ("onnxruntime", "1.0.0")
    with pytest.raises(EnvironmentMismatchError, match=r"onnxruntime: recorded 1\.0\.0"):
        modelkeep.load(path, format="onnx", env="strict")


def test_the_golden_replay_allows_the_parity_threshold(bundle: Path, tmp_path: Path) -> None:
    path = _copy(bundle, tmp_path)

    def nudge(by: float) -> Any:
        def change(manifest: dict[str, Any]) -> None:
            row = manifest["golden"]["probabilities"][0]
            row[0], row[1] = row[0] + by, row[1] - by

        return change

    _edit_manifest(path, nudge(4e-6))  # beyond the skops replay's 1e-6, within 1e-5
    assert modelkeep.load(path, format="onnx").predict(RECORD).shape == (1,)
    with pytest.raises(GoldenMismatchError, match="tolerance 1e-06"):
        modelkeep.load(path)
    _edit_manifest(path, nudge(1e-3))
    with pytest.raises(
        GoldenMismatchError,
        match=re.escape("predict_proba does not match what the model gave at save time: 1 of"),
    ) as caught:
        modelkeep.load(path, format="onnx")
    assert caught.value.rows == (read_manifest(path).golden.rows[0],)


def test_verify_reports_the_onnx_artifact_and_its_parity(bundle: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checks = modelkeep.verify(bundle, format="onnx")
    assert [(c.name, c.passed) for c in checks] == [
        ("manifest", True),
        ("integrity", True),
        ("environment", True),
        ("artifact", True),
        ("manifest claims", True),
        ("golden samples", True),
        ("parity", True),
    ]
    assert re.fullmatch(
        r"artifacts/pipeline\.onnx loaded \(onnx, opset \d+, strategy double\) in "
        r"onnxruntime \S+",
        checks[3].detail,
    )
    assert checks[-1].detail.startswith("artifacts/pipeline.onnx: strategy double, ")
    assert checks[-1].detail.endswith(": passed")


BLOCKER = """
import importlib.abc, json, sys

BLOCKED = {"sklearn", "skops", "joblib", "pandas", "scipy"}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed in this deployment")
        return None


sys.meta_path.insert(0, Block())
import modelkeep

model = modelkeep.load(sys.argv[1], format="onnx")
record = json.loads(sys.argv[2])
print(json.dumps({
    "label": model.predict(record).tolist(),
    "proba": model.predict_proba([record, record]).tolist(),
    "imported": sorted({m.split(".")[0] for m in sys.modules} & BLOCKED),
}))
try:
    modelkeep.load(sys.argv[1])
except ImportError as exc:
    print("skops artifact:", exc)
"""


def test_serving_needs_neither_scikit_learn_nor_pandas(bundle: Path, original: Model) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(bundle), json.dumps(RECORD)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    out = json.loads(lines[0])
    assert out["imported"] == []
    assert out["label"] == original.predict(RECORD).tolist()
    np.testing.assert_allclose(
        out["proba"], np.repeat(original.predict_proba(RECORD).to_numpy(), 2, axis=0), atol=1e-5
    )
    # The same process could not have loaded the scikit-learn artifact: the block is real.
    assert lines[1].startswith("skops artifact: ")


def test_predict_proba_keeps_the_input_index(served: OnnxModel, original: Model) -> None:
    frame = _rows(40)
    subset = frame[frame["age"] > 40].sample(frac=1.0, random_state=3)
    proba = served.predict_proba(subset)
    assert proba.index.equals(subset.index)
    assert original.predict_proba(subset).index.equals(subset.index)


def test_strict_must_be_a_bool(served: OnnxModel) -> None:
    message = (
        "strict: expected True or False, got 'no' (str). strict=True raises on unusual "
        "input; strict=False (the default) warns."
    )
    for method in (served.predict, served.predict_proba, served.prepare):
        with pytest.raises(modelkeep.InvalidArgumentError, match=re.escape(message)):
            method(RECORD, strict="no")


def test_without_labels_predictions_are_the_classes_with_their_type(tmp_path: Path) -> None:
    model, frame = fit("random_forest")
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    got = served.predict(frame.head(10)).tolist()
    assert got == model.predict(frame.head(10)).tolist()
    assert all(type(v) is int for v in got)
    assert list(served.predict_proba(frame.head(3)).columns) == [0, 1]
    assert served.predict([]).shape == (0,)
