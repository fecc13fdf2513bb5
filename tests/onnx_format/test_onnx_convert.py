"""convert() and `modelkeep convert`: an ONNX artifact added to an existing bundle."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx_cases import fit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import modelkeep
from conftest import NUMERIC, make_frame
from modelkeep import InvalidChoiceError, ParityError, ParityThresholds, SchemaWarning
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

    manifest = modelkeep.convert(skops_bundle, to="onnx", validation=frame)

    after = _files(skops_bundle)
    assert after["artifacts/pipeline.skops"] == before["artifacts/pipeline.skops"]
    assert set(after) == {MANIFEST_NAME, "artifacts/pipeline.skops", "artifacts/pipeline.onnx"}
    assert manifest == read_manifest(skops_bundle)
    assert manifest.artifacts[0] == old.artifacts[0]
    assert manifest.model_copy(update={"artifacts": old.artifacts}) == old
    added = manifest.artifacts[1]
    assert (added.path, added.format) == ("artifacts/pipeline.onnx", "onnx")
    assert added.sha256 == hashlib.sha256(after["artifacts/pipeline.onnx"]).hexdigest()
    report = ParityReport.model_validate(added.details["parity"])
    assert report.passed
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
    manifest = modelkeep.convert(skops_bundle)
    report = ParityReport.model_validate(manifest.artifacts[1].details["parity"])
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


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelkeep", *args], capture_output=True, text=True, timeout=300
    )


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
