"""The ONNX graph modelkeep writes, and the steps it refuses to convert."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx_cases import fit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import modelkeep
from conftest import NUMERIC, make_frame, preprocessor
from modelkeep import ArtifactSkippedWarning, MissingDependencyError, UnconvertibleModelError


class Clip(TransformerMixin, BaseEstimator):
    """A user's own transformer: skl2onnx has no converter for it."""

    def fit(self, X: Any, y: Any = None) -> Clip:
        self.bound_ = 3.0
        return self

    def transform(self, X: Any) -> Any:
        return np.clip(X, -self.bound_, self.bound_)


def _with_numeric_step(step: Any) -> Pipeline:
    frame, y = make_frame(200)
    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", Pipeline([("impute", SimpleImputer()), ("extra", step)]), NUMERIC)]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, y)


def _message(step: str, step_type: str, reason: str) -> str:
    return (
        f"Cannot convert to onnx: step {step!r} ({step_type}): expected a step with a "
        f"converter to onnx, got {reason}. Replace the step with a convertible one, or save "
        "without 'onnx' in formats."
    )


@pytest.mark.parametrize(
    ("step", "step_type", "reason"),
    [
        (
            FunctionTransformer(np.log1p),
            "sklearn.preprocessing.FunctionTransformer",
            "a FunctionTransformer running a user function (log1p), which has no ONNX equivalent",
        ),
        (
            Clip(),
            "test_onnx_export.Clip",
            "a custom class with no registered ONNX converter",
        ),
    ],
    ids=["function_transformer", "custom_transformer"],
)
def test_an_unconvertible_step_is_named(
    step: Any, step_type: str, reason: str, tmp_path: Path
) -> None:
    model = _with_numeric_step(step)
    frame, _ = make_frame(200)
    with pytest.raises(
        UnconvertibleModelError,
        match=re.escape(_message("prep/num/extra", step_type, reason)),
    ) as caught:
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    assert (caught.value.step, caught.value.format) == ("prep/num/extra", "onnx")
    assert not (tmp_path / "m").exists()


def test_an_estimator_without_a_converter_is_named(tmp_path: Path) -> None:
    frame, _ = make_frame(200)
    model = Pipeline([("prep", preprocessor()), ("model", KernelRidge())]).fit(
        frame, frame["age"].to_numpy(dtype=float)
    )
    with pytest.raises(
        UnconvertibleModelError,
        match=re.escape(
            _message(
                "model",
                "sklearn.kernel_ridge.KernelRidge",
                "a class with no registered ONNX converter",
            )
        ),
    ):
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))


def test_a_column_no_onnx_input_can_carry_is_named(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"when": pd.date_range("2024-01-01", periods=50, freq="D"), "x": np.arange(50.0)}
    )
    y = np.arange(50) % 2
    model = Pipeline(
        [("prep", ColumnTransformer([("x", "passthrough", ["x"])])), ("m", LogisticRegression())]
    ).fit(frame, y)
    with pytest.raises(UnconvertibleModelError) as caught:
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    assert str(caught.value) == (
        "Cannot convert to onnx: step \"input column 'when'\" "
        f"(datetime ({frame['when'].dtype})): expected a step with a converter to onnx, got a "
        "datetime column, which no ONNX input type can carry. Replace the step with a "
        "convertible one, or save without 'onnx' in formats."
    )


def test_other_formats_are_saved_when_the_conversion_is_impossible(tmp_path: Path) -> None:
    model = _with_numeric_step(FunctionTransformer(np.log1p))
    frame, _ = make_frame(200)
    with pytest.warns(ArtifactSkippedWarning) as caught:
        manifest = modelkeep.save(
            model, tmp_path / "m", sample=frame, name="m", formats=("skops", "onnx")
        )
    warning = caught[0].message
    assert isinstance(warning, ArtifactSkippedWarning)
    assert isinstance(warning.error, UnconvertibleModelError)
    assert str(warning) == (
        "Format 'onnx' was left out of the bundle, which holds 'skops': "
        + _message(
            "prep/num/extra",
            "sklearn.preprocessing.FunctionTransformer",
            "a FunctionTransformer running a user function (log1p), which has no ONNX equivalent",
        )
    )
    assert [a.format for a in manifest.artifacts] == ["skops"]
    assert modelkeep.load(tmp_path / "m").predict(frame.head(3)).shape == (3,)


def test_the_graph_takes_the_schema_columns_and_returns_plain_tensors(tmp_path: Path) -> None:
    model, frame = fit("random_forest")
    manifest = modelkeep.save(
        model, tmp_path / "m", sample=frame, name="m", formats=("skops", "onnx")
    )
    graph = onnx.load(tmp_path / "m" / "artifacts" / "pipeline.onnx").graph
    element = onnx.TensorProto
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [
        ("age", element.INT64),
        ("income", element.DOUBLE),
        ("visits", element.DOUBLE),
        ("plan", element.STRING),
        ("region", element.STRING),
        ("autopay", element.BOOL),
    ]
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    assert "ZipMap" not in {node.op_type for node in graph.node}

    artifact = manifest.artifact("onnx")
    assert artifact is not None
    conversion = artifact.details["conversion"]
    assert conversion["strategy"] == artifact.details["parity"]["strategy"] == "double"
    assert (conversion["opset"], conversion["ml_opset"]) == (
        min(onnx.defs.onnx_opset_version(), 22),
        3,
    )
    assert conversion["packages"] == {
        name: metadata.version(name) for name in ("onnx", "skl2onnx", "onnxmltools", "onnxruntime")
    }
    assert conversion["inputs"]["age"] == "int64"


def test_a_model_fitted_without_a_column_transformer_takes_the_columns_too(
    tmp_path: Path,
) -> None:
    frame, y = make_frame(200)
    numbers = frame[["age", "income"]].fillna(0.0)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(numbers, y)
    modelkeep.save(model, tmp_path / "m", sample=numbers, name="m", formats=("onnx",))
    served = modelkeep.load(tmp_path / "m", format="onnx")
    assert [i.name for i in served.runtime.session.get_inputs()] == ["age", "income"]
    np.testing.assert_allclose(
        served.predict_proba(numbers), model.predict_proba(numbers), atol=1e-6
    )


def test_conversion_without_the_extra_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, frame = fit("logistic_regression")
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # import skl2onnx now fails
    with pytest.raises(
        MissingDependencyError,
        match=re.escape(
            "ONNX conversion needs onnx, skl2onnx, onnxmltools and onnxruntime: "
            "pip install 'modelkeep[onnx]'"
        ),
    ):
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("skops", "onnx"))
    assert not (tmp_path / "m").exists()
