"""Conversion to ONNX is measured before it is written: parity, probes, refusals, force."""

from __future__ import annotations

import functools
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx_cases import KINDS, fit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

import modelkeep
from conftest import CATEGORICAL, NUMERIC, make_frame, preprocessor
from modelkeep import ArtifactSkippedWarning, ParityError, ParityThresholds, ParityWarning
from modelkeep._golden import record_golden
from modelkeep._schema import infer_schema
from modelkeep.manifest import read_manifest
from modelkeep.onnx import ParityReport
from modelkeep.onnx.export import build_graph, check_convertible
from modelkeep.onnx.parity import (
    THRESHOLDS_PER_FEATURE,
    UNSEEN_CATEGORY,
    evaluation_rows,
    measure,
    original_outputs,
    sample_thresholds,
    tree_thresholds,
)
from modelkeep.onnx.report import render_report
from modelkeep.onnx.runtime import OnnxRuntime
from modelkeep.onnx.strategies import strategy_named

ROOT = Path(__file__).resolve().parents[2]


def _report(path: Path) -> ParityReport:
    artifact = read_manifest(path).artifact("onnx")
    assert artifact is not None
    return ParityReport.model_validate(artifact.details["parity"])


def _parity_message(report: ParityReport) -> str:
    return (
        "The onnx conversion failed its parity check against the original model, so it "
        f"was not written.\n{render_report(report)}\nIf these differences are acceptable, "
        "loosen the thresholds (parity=ParityThresholds(...)) or pass force=True to write "
        "the artifact marked as failed."
    )


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_every_kind_converts_within_the_thresholds(kind: str, tmp_path: Path) -> None:
    model, frame = fit(kind)
    modelkeep.save(model, tmp_path / "m", sample=frame, name=kind, formats=("onnx",))
    report = _report(tmp_path / "m")
    assert report.passed, render_report(report)
    assert set(report.sources) == {"golden", "validation", "probe"}
    assert report.rows == sum(report.sources.values()) > len(frame)
    if KINDS[kind][2]:  # regression
        assert report.max_rel_diff is not None and report.max_rel_diff <= 1e-5
    else:
        assert report.label_mismatches == 0
        assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-5

    # Served through onnxruntime, fresh rows get the original's answers.
    fresh, _ = make_frame(60, seed=7)
    served = modelkeep.load(tmp_path / "m", format="onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelkeep.SchemaWarning)  # values outside training
        got = served.predict(fresh)
    if KINDS[kind][2]:
        np.testing.assert_allclose(got, model.predict(fresh), rtol=1e-5)
    else:
        proba = model.predict_proba(fresh)
        top = np.sort(proba, axis=1)
        decided = top[:, -1] - top[:, -2] > 1e-6  # exact ties may go either way
        # Saved without labels=: the model's own classes, with their type.
        want = model.predict(fresh)
        assert (got[decided] == want[decided]).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", modelkeep.SchemaWarning)
            np.testing.assert_allclose(served.predict_proba(fresh).to_numpy(), proba, atol=1e-5)


@functools.cache
def _churn(classifier: str) -> tuple[Any, pd.DataFrame]:
    sys.path.insert(0, str(ROOT / "examples" / "churn"))
    try:
        from data import generate
        from train import train
    finally:
        sys.path.pop(0)
    pipeline, _, x_train = train(generate(2000, seed=3), classifier, n_estimators=40, seed=3)
    return pipeline, x_train


@pytest.mark.parametrize("classifier", ["random_forest", "hist_gradient_boosting"])
def test_churn_pipelines_with_a_scaler_pass_the_gate(classifier: str, tmp_path: Path) -> None:
    pipeline, x_train = _churn(classifier)
    modelkeep.save(pipeline, tmp_path / "m", sample=x_train, name="churn", formats=("onnx",))
    report = _report(tmp_path / "m")
    assert report.passed
    assert report.strategy == "double"
    assert report.label_mismatches == 0


@pytest.mark.parametrize("classifier", ["random_forest", "hist_gradient_boosting"])
def test_float32_alone_fails_the_churn_gate(classifier: str) -> None:
    """Why float32 is the last resort: behind a scaler, trees take other branches."""
    pipeline, x_train = _churn(classifier)
    features = infer_schema(x_train)
    golden = record_golden(pipeline, x_train, features, 20, proba=True)
    expected = original_outputs(pipeline, evaluation_rows(features, golden, x_train), proba=True)
    graph = build_graph(
        pipeline, features, check_convertible(pipeline, features), strategy_named("float32")
    )
    runtime = OnnxRuntime(
        graph.SerializeToString(), artifact="float32", features=features, classes=[0, 1]
    )
    report = measure(
        expected,
        runtime,
        features=features,
        classes=[0, 1],
        labels=["No Churn", "Churn"],
        task="binary",
        strategy="float32",
        thresholds=ParityThresholds(),
    )
    assert not report.passed
    assert report.max_abs_diff is not None and report.max_abs_diff > 1e-3


def test_native_categorical_splits_are_caught(tmp_path: Path) -> None:
    """skl2onnx converts categorical splits of HistGradientBoosting without error, wrongly."""
    frame, _ = make_frame(400)
    y = ((frame["plan"] == "plus") ^ (frame["region"] == "south")).astype(int)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OrdinalEncoder(), CATEGORICAL), ("num", "passthrough", NUMERIC)]
                ),
            ),
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=20, categorical_features=[0, 1], random_state=0
                ),
            ),
        ]
    ).fit(frame, y)
    with pytest.raises(ParityError) as caught:
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    report = caught.value.report
    assert str(caught.value) == _parity_message(report)
    assert report.label_mismatches > report.rows // 5
    assert "worst rows:" in str(caught.value)
    # The OrdinalEncoder refuses unseen categories: those probes are named, not compared.
    assert any(
        s.startswith("probe: unseen category in 'plan': the original raised")
        for s in report.skipped
    )
    assert not (tmp_path / "m").exists()


def test_imputer_indicator_columns_are_caught(tmp_path: Path) -> None:
    """skl2onnx drops SimpleImputer's indicator columns."""
    frame, y = make_frame(400)
    model = Pipeline(
        [
            ("prep", ColumnTransformer([("num", SimpleImputer(add_indicator=True), NUMERIC)])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, y)
    with pytest.raises(ParityError) as caught:
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    report = caught.value.report
    assert str(caught.value) == _parity_message(report)
    assert report.label_mismatches > 0
    assert [a.summary for a in report.attempts[:2]] == [
        "no usable graph: NotImplementedError: SimpleImputer(add_indicator=True) has no converter"
    ] * 2
    assert report.strategy == "float32"


def test_an_artificially_tight_threshold_refuses_the_artifact(tmp_path: Path) -> None:
    model, frame = fit("random_forest")
    tight = ParityThresholds(proba_atol=1e-12)
    with pytest.raises(ParityError) as caught:
        modelkeep.save(
            model, tmp_path / "m", sample=frame, name="m", formats=("onnx",), parity=tight
        )
    report = caught.value.report
    assert str(caught.value) == _parity_message(report)
    assert report.thresholds == tight
    assert [a.strategy for a in report.attempts] == ["double", "double-preprocessing", "float32"]
    assert not any(a.passed for a in report.attempts)
    assert not (tmp_path / "m").exists()


def test_with_other_formats_a_refused_conversion_is_left_out_with_a_warning(
    tmp_path: Path,
) -> None:
    model, frame = fit("random_forest")
    with pytest.warns(ArtifactSkippedWarning) as caught:
        manifest = modelkeep.save(
            model,
            tmp_path / "m",
            sample=frame,
            name="m",
            formats=("skops", "onnx"),
            parity=ParityThresholds(proba_atol=1e-12),
        )
    warning = caught[0].message
    assert isinstance(warning, ArtifactSkippedWarning)
    assert warning.format == "onnx"
    assert isinstance(warning.error, ParityError)
    assert str(warning) == (
        f"Format 'onnx' was left out of the bundle, which holds 'skops': {warning.error}"
    )
    assert [a.format for a in manifest.artifacts] == ["skops"]
    assert sorted(p.name for p in (tmp_path / "m" / "artifacts").iterdir()) == ["pipeline.skops"]


def test_force_writes_a_failed_conversion_marked_and_every_load_warns(tmp_path: Path) -> None:
    model, frame = fit("random_forest")
    modelkeep.save(
        model,
        tmp_path / "m",
        sample=frame,
        name="m",
        formats=("skops", "onnx"),
        parity=ParityThresholds(proba_atol=1e-12),
        force=True,
    )
    report = _report(tmp_path / "m")
    assert (report.passed, report.forced) == (False, True)
    for _ in range(2):
        with pytest.warns(ParityWarning) as caught:
            modelkeep.load(tmp_path / "m", format="onnx", atol=1e-5)
        assert len(caught) == 1
        warning = caught[0].message
        assert isinstance(warning, ParityWarning)
        assert warning.artifact == "artifacts/pipeline.onnx"
        assert re.fullmatch(
            r"Artifact 'artifacts/pipeline\.onnx' failed its parity check against the original "
            r"model and was written anyway \(force=True\): strategy \S+, \d+ rows in 8 regions, "
            r".*: FAILED: "
            r".* \(written with force=True\)\. Its predictions may differ from the "
            r"original's; convert again, or load another format\.",
            str(warning),
        )
    # The skops artifact loads quietly, but the bundle does not verify.
    modelkeep.load(tmp_path / "m")
    checks = modelkeep.verify(tmp_path / "m")
    assert [(c.name, c.passed) for c in checks][-1] == ("parity", False)
    assert checks[-1].detail.startswith("artifacts/pipeline.onnx: strategy ")


def test_exact_ties_are_counted_not_failed(tmp_path: Path) -> None:
    frame, y = make_frame(400)
    # Four neighbours often vote 2 to 2: probabilities 0.5 and 0.5.
    model = Pipeline([("prep", preprocessor()), ("model", KNeighborsClassifier(4))]).fit(frame, y)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    report = _report(tmp_path / "m")
    assert report.passed
    assert report.ties > 0
    assert report.label_mismatches == 0


def test_probe_set_covers_every_region_the_schema_admits() -> None:
    frame, _ = make_frame(100)
    features = infer_schema(frame)
    model, _ = fit("logistic_regression")
    golden = record_golden(model, frame, features, 20, proba=True)
    rows = evaluation_rows(features, golden, frame, model=model)
    sources = [group.source for group in rows.groups]
    assert sources[:2] == ["golden", "validation"]
    columns = ["age", "income", "visits", "plan", "region", "autopay"]
    assert sorted(sources[2:]) == sorted(
        # A missing value in every column, nullable in training or not (non-strict
        # prediction accepts one anywhere).
        [f"probe: missing {c!r}" for c in columns]
        + ["probe: unseen category in 'plan'", "probe: unseen category in 'region'"]
        + [f"probe: beyond the range of {c!r}" for c in ("age", "income", "visits")]
        + ["probe: midpoints of 'income'", "probe: midpoints of 'visits'"]
    )
    regions = {group.source: group.region for group in rows.groups}
    assert regions["probe: missing 'plan'"] == "missing string"
    assert regions["probe: missing 'age'"] == "missing value"
    assert regions["probe: beyond the range of 'age'"] == "beyond the training range"
    by_source = {group.source: group.frame for group in rows.groups}
    assert set(by_source["probe: unseen category in 'plan'"]["plan"]) == {UNSEEN_CATEGORY, ""}
    for column in columns:
        assert by_source[f"probe: missing {column!r}"][column].isna().all()
    # Beyond each side: one step, one span and far outside.
    income = frame["income"].dropna()
    beyond = by_source["probe: beyond the range of 'income'"]["income"].to_numpy()
    assert (beyond < income.min()).sum() == (beyond > income.max()).sum() > 0
    assert np.nextafter(income.max(), np.inf) in beyond
    ages = set(by_source["probe: beyond the range of 'age'"]["age"])
    assert {frame["age"].min() - 1, frame["age"].max() + 1} <= ages
    # Every midpoint sits strictly between two neighbouring training values, no value on it.
    values = np.unique(frame["income"].dropna().to_numpy())
    midpoints = by_source["probe: midpoints of 'income'"]["income"].to_numpy()
    assert len(midpoints) == min(len(values) - 1, 200)
    slots = np.searchsorted(values, midpoints)
    np.testing.assert_array_equal(midpoints, (values[slots - 1] + values[slots]) / 2)
    assert not np.isin(midpoints, values).any()
    # Integer columns get none: an integer input cannot take a midpoint.
    assert "probe: midpoints of 'age'" not in by_source
    # A linear model has no tree thresholds.
    assert "tree thresholds" not in regions.values()
    assert all(isinstance(g.frame, pd.DataFrame) for g in rows.groups)


def test_tree_threshold_probes_straddle_every_threshold_behind_the_scaler() -> None:
    model, frame = fit("random_forest")
    features = infer_schema(frame)
    golden = record_golden(model, frame, features, 20, proba=True)
    rows = evaluation_rows(features, golden, frame, model=model)
    by_source = {group.source: group for group in rows.groups}
    probed = [s for s, g in by_source.items() if g.region == "tree thresholds"]
    # The numeric columns reach the forest through imputer and scaler; the one-hot and
    # boolean columns do not, and are said to be left out.
    assert sorted(probed) == [
        f"probe: tree thresholds of {c!r}" for c in ("age", "income", "visits")
    ]
    assert [note.split(":")[0].split(" of ")[0] for note in rows.notes] == [
        "tree thresholds sampled",  # the forest has more than THRESHOLDS_PER_FEATURE
        "tree thresholds",  # the one-hot and boolean features: "tree thresholds of 7 ..."
    ]
    assert rows.notes[1].endswith(
        "no monotone chain of steps leads to them from one numeric column"
    )
    scaler = model.named_steps["prep"].named_transformers_["num"].named_steps["standardscaler"]
    thresholds = tree_thresholds(model.named_steps["model"])
    for j, column in enumerate(["income", "visits"], start=1):
        raw = by_source[f"probe: tree thresholds of {column!r}"].frame[column].to_numpy()
        matrix = np.zeros((raw.size, 3))
        matrix[:, j] = raw
        scaled = scaler.transform(matrix)[:, j].astype(np.float32)  # as the trees see it
        sampled = sample_thresholds(thresholds[j])
        assert 0 < sampled.size <= THRESHOLDS_PER_FEATURE
        for t in sampled:
            below = np.nextafter(np.float32(t), np.float32(-np.inf))
            above = np.nextafter(np.nextafter(np.float32(t), np.float32(np.inf)), np.inf)
            # A probe on the threshold (or the float32 value just below it) and one just
            # above: each side of the split is reached.
            assert ((scaled <= t) & (scaled >= below)).any(), (column, t)
            assert ((scaled > t) & (scaled <= above)).any(), (column, t)
    ages = by_source["probe: tree thresholds of 'age'"].frame["age"]
    assert ages.dtype == np.int64


def test_the_report_counts_rows_and_the_worst_difference_per_region(tmp_path: Path) -> None:
    model, frame = fit("random_forest")
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m", formats=("onnx",))
    report = _report(tmp_path / "m")
    assert [r.region for r in report.regions] == [
        "golden",
        "validation",
        "missing value",
        "missing string",
        "unseen category",
        "beyond the training range",
        "midpoints",
        "tree thresholds",
    ]
    assert all(r.passed and r.rows > 0 for r in report.regions)
    assert sum(r.rows for r in report.regions) == report.rows
    by_region = {r.region: r for r in report.regions}
    # 'age' (int64) and 'autopay' (bool) inputs cannot hold a missing value: the converted
    # model refuses those rows with an error, named, not compared.
    assert by_region["missing value"].refused == 2 * 8
    assert sorted(r.split(": the converted")[0] for r in report.refused) == [
        "probe: missing 'age'",
        "probe: missing 'autopay'",
    ]
    text = render_report(report)
    assert "  regions (rows compared, largest difference, worst row):" in text
    assert re.search(r"\n    tree thresholds +\d+ +\S+ +ok", text)
    assert re.search(
        r"\n    missing value +16 +\S+ +ok, worst probe: missing '\w+' row \d+ "
        r"\(16 refused by the converted model's input check\)\n",
        text,
    )
    assert "\n  refused by the converted model: probe: missing 'age': " in text
    assert "\n  notes: tree thresholds sampled: " in text


def test_a_report_written_before_regions_still_reads() -> None:
    old = {
        "passed": True,
        "strategy": "double",
        "task": "binary",
        "thresholds": {"proba_atol": 1e-5, "regression_rtol": 1e-5, "tie_tol": 1e-6},
        "rows": 10,
        "sources": {"golden": 10},
        "outputs": [{"output": "a", "max_abs_diff": 0.0, "mean_abs_diff": 0.0}],
    }
    report = ParityReport.model_validate(old)
    assert (report.regions, report.refused, report.notes) == ([], [], [])
    assert "regions" not in render_report(report)


def test_a_failing_region_is_named_with_its_worst_row() -> None:
    """float32 alone behind a scaler fails: each failing region says where it is worst."""
    pipeline, x_train = _churn("random_forest")
    features = infer_schema(x_train)
    golden = record_golden(pipeline, x_train, features, 20, proba=True)
    rows = evaluation_rows(features, golden, x_train, model=pipeline)
    expected = original_outputs(pipeline, rows, proba=True)
    graph = build_graph(
        pipeline, features, check_convertible(pipeline, features), strategy_named("float32")
    )
    runtime = OnnxRuntime(
        graph.SerializeToString(), artifact="float32", features=features, classes=[0, 1]
    )
    report = measure(
        expected,
        runtime,
        features=features,
        classes=[0, 1],
        labels=["No Churn", "Churn"],
        task="binary",
        strategy="float32",
        thresholds=ParityThresholds(),
    )
    failed = [r for r in report.regions if not r.passed]
    assert failed and not report.passed
    for region in failed:
        assert region.worst_row is not None
        source = region.worst_row.rsplit(" row ", 1)[0]
        assert source == region.region or source.startswith("probe: ")
        assert any(
            f.startswith(f"region {region.region!r}: ")
            and f.endswith(f"(worst: {region.worst_row})")
            for f in report.failures
        )
    for region in report.regions:
        if region.passed:
            assert not any(f.startswith(f"region {region.region!r}") for f in report.failures)
