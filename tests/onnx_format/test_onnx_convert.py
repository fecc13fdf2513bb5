"""convert() and `modelkeep convert`: an ONNX artifact added to an existing bundle."""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx_cases import fit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

import modelkeep
from cli_runner import run
from conftest import CATEGORICAL, NUMERIC, make_frame, preprocessor
from modelkeep import (
    InvalidChoiceError,
    ParityError,
    ParityThresholds,
    SchemaWarning,
    UnconvertibleModelError,
)
from modelkeep.manifest import MANIFEST_NAME, read_manifest
from modelkeep.onnx import ParityReport


def _files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def skops_bundle(tmp_path: Path) -> Path:
    model, frame = fit("hist_gradient_boosting_nan")
    path = tmp_path / "churn"
    modelkeep.save(model, path, sample=frame, name="churn", labels={0: "Stay", 1: "Leave"})
    return path


def test_convert_adds_the_artifact_and_keeps_the_others_byte_for_byte(
    skops_bundle: Path,
) -> None:
    before = _files(skops_bundle)
    old = read_manifest(skops_bundle)
    frame, _ = make_frame(300, seed=0)

    done = modelkeep.convert(skops_bundle, to="onnx", validation=frame)
    manifest = done.manifest

    after = _files(skops_bundle)
    assert after["artifacts/pipeline.skops"] == before["artifacts/pipeline.skops"]
    assert set(after) == {MANIFEST_NAME, "artifacts/pipeline.skops", "artifacts/pipeline.onnx"}
    assert manifest == read_manifest(skops_bundle)
    assert manifest.artifacts[0] == old.artifacts[0]
    assert manifest.model_copy(update={"artifacts": old.artifacts}) == old
    added = manifest.artifacts[1]
    assert (added.path, added.format) == ("artifacts/pipeline.onnx", "onnx")
    assert added.sha256 == hashlib.sha256(after["artifacts/pipeline.onnx"]).hexdigest()
    assert done.artifact == added
    report = done.parity
    assert report is not None and report.passed
    assert report == ParityReport.model_validate(added.details["parity"])
    assert report.sources == {"golden": 20, "validation": 300, "probe": report.sources["probe"]}
    # No stray staging directories beside the bundle.
    assert [p.name for p in skops_bundle.parent.iterdir()] == ["churn"]

    served = modelkeep.load(skops_bundle, format="onnx")
    original = modelkeep.load(skops_bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaWarning)  # values outside the training range
        np.testing.assert_array_equal(served.predict(frame), original.predict(frame))


def test_without_validation_rows_golden_samples_and_probes_are_compared(
    skops_bundle: Path,
) -> None:
    report = modelkeep.convert(skops_bundle).parity
    assert report is not None
    assert set(report.sources) == {"golden", "probe"}


def test_a_refused_conversion_leaves_the_bundle_untouched(skops_bundle: Path) -> None:
    before = _files(skops_bundle)
    with pytest.raises(ParityError):
        modelkeep.convert(skops_bundle, parity=ParityThresholds(proba_atol=1e-15))
    assert _files(skops_bundle) == before
    assert [p.name for p in skops_bundle.parent.iterdir()] == ["churn"]


def test_converting_twice_is_refused(skops_bundle: Path) -> None:
    modelkeep.convert(skops_bundle)
    with pytest.raises(
        InvalidChoiceError,
        match=re.escape(
            f"to (bundle {str(skops_bundle)!r} already holds 'onnx'): expected one of 'a "
            "format the bundle does not hold yet', got 'onnx'."
        ),
    ):
        modelkeep.convert(skops_bundle)


def test_the_command_converts_inspect_and_verify_show_the_report(
    skops_bundle: Path, tmp_path: Path
) -> None:
    frame, _ = make_frame(200, seed=1)
    csv = tmp_path / "validation.csv"
    frame.assign(target=0).to_csv(csv, index=False)  # extra columns are ignored

    converted = run("convert", str(skops_bundle), "--to", "onnx", "--validation", str(csv))
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.startswith("Parity passed (strategy double)\n")
    assert "rows compared:" in converted.stdout
    assert f"Added artifacts/pipeline.onnx to {skops_bundle}" in converted.stdout

    inspected = run("inspect", str(skops_bundle))
    assert inspected.returncode == 0, inspected.stderr
    assert "Conversion artifacts/pipeline.onnx" in inspected.stdout
    assert "Parity passed (strategy double)" in inspected.stdout

    verified = run("verify", str(skops_bundle), "--format", "onnx")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS parity: artifacts/pipeline.onnx: strategy double, " in verified.stdout


def test_the_command_reports_an_unconvertible_model(tmp_path: Path) -> None:
    frame, y = make_frame(200)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer()),
                                    ("log", FunctionTransformer(np.log1p)),
                                ]
                            ),
                            NUMERIC,
                        )
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, y)
    path = tmp_path / "m"
    modelkeep.save(model, path, sample=frame, name="m")
    before = _files(path)
    result = run("convert", str(path))
    assert result.returncode == 1
    assert result.stderr == (
        "Error: Cannot convert to onnx: step 'prep/num/log' "
        "(sklearn.preprocessing.FunctionTransformer): expected a step with a converter to "
        "onnx, got a FunctionTransformer running a user function (log1p), which has no ONNX "
        "equivalent. Replace the step with a convertible one, or save without 'onnx' in "
        "formats.\n"
    )
    assert _files(path) == before


@pytest.fixture
def forest_bundle(tmp_path: Path) -> Path:
    model, frame = fit("random_forest")
    path = tmp_path / "forest"
    modelkeep.save(model, path, sample=frame, name="forest")
    return path


def test_validation_rows_come_from_a_csv_or_parquet_path(
    forest_bundle: Path, tmp_path: Path
) -> None:
    frame, _ = make_frame(150, seed=2)
    parquet = tmp_path / "validation.parquet"
    frame.to_parquet(parquet)
    report = modelkeep.convert(forest_bundle, validation=parquet).parity
    assert report is not None and report.passed
    assert report.sources["validation"] == 150


def test_the_command_takes_a_parquet_validation_file(forest_bundle: Path, tmp_path: Path) -> None:
    frame, _ = make_frame(120, seed=3)
    parquet = tmp_path / "validation.parquet"
    frame.to_parquet(parquet)
    converted = run("convert", str(forest_bundle), "--validation", str(parquet))
    assert converted.returncode == 0, converted.stderr
    assert re.search(
        r"rows compared: \d+ \(golden 20, validation 120, probe \d+\)", converted.stdout
    )


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "rows.txt",
            b"a,b\n",
            "Error: validation file type: expected one of '.csv', '.parquet', got '{path}'.\n",
        ),
        (
            "absent.csv",
            None,
            "Error: validation: expected a readable CSV file of rows with the model's columns, "
            "got '{path}', which cannot be read (FileNotFoundError: [Errno 2] No such file or "
            "directory: '{path}'). Check the path and the file's contents, or pass a "
            "DataFrame.\n",
        ),
        (
            "broken.parquet",
            b"not a parquet file",
            "Error: validation: expected a readable Parquet file of rows with the model's "
            "columns, got '{path}', which cannot be read (ArrowInvalid: ",
        ),
    ],
    ids=["wrong-type", "missing-file", "not-parquet"],
)
def test_a_validation_file_that_cannot_be_read_is_a_modelkeep_error(
    forest_bundle: Path, tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    before = _files(forest_bundle)
    result = run("convert", str(forest_bundle), "--validation", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(expected.format(path=path))
    assert _files(forest_bundle) == before
    with pytest.raises(modelkeep.ModelkeepError) as caught:
        modelkeep.convert(forest_bundle, validation=path)
    assert f"Error: {caught.value}\n".startswith(expected.format(path=path))


def _string_imputer() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                CATEGORICAL,
            ),
        ]
    )


def _infrequent_encoder() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            (
                "cat",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5),
                CATEGORICAL,
            ),
        ]
    )


@pytest.mark.parametrize(
    ("prep", "step", "step_type"),
    [
        (_string_imputer, "prep/cat/impute", "sklearn.impute.SimpleImputer"),
        (_infrequent_encoder, "prep/cat", "sklearn.preprocessing.OneHotEncoder"),
    ],
    ids=["string-imputer", "infrequent-encoder"],
)
def test_a_refusal_names_the_step_that_caused_it(
    prep: Callable[[], ColumnTransformer], step: str, step_type: str, tmp_path: Path
) -> None:
    frame, y = make_frame(300)
    model = Pipeline([("prep", prep()), ("model", LogisticRegression(max_iter=500))]).fit(frame, y)
    with pytest.raises(UnconvertibleModelError) as caught:
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    assert (caught.value.step, caught.value.step_type) == (step, step_type)
    assert str(caught.value).startswith(
        f"Cannot convert to onnx: step {step!r} ({step_type}): expected a step with a "
        "converter to onnx, got an error from the converter: "
    )
    assert not (tmp_path / "m").exists()


def test_a_classifier_without_predict_proba_is_refused_naming_it(tmp_path: Path) -> None:
    frame, y = make_frame(200)
    model = Pipeline([("prep", preprocessor()), ("svm", LinearSVC())]).fit(frame, y)
    path = tmp_path / "m"
    modelkeep.save(model, path, sample=frame, name="m")
    before = _files(path)
    with pytest.raises(
        UnconvertibleModelError,
        match=re.escape(
            "Cannot convert to onnx: step 'svm' (sklearn.svm.LinearSVC): expected a step with "
            "a converter to onnx, got a classifier without predict_proba (labels only), while "
            "the ONNX model modelkeep writes answers predict_proba with class probabilities. "
            "Replace the step with a convertible one, or save without 'onnx' in formats."
        ),
    ):
        modelkeep.convert(path)
    assert _files(path) == before
