"""save() and load(): round trips, refusals, integrity, environment, golden replay, atomicity."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import modelkeep
from conftest import make_frame, preprocessor
from modelkeep import (
    BundleExistsError,
    BundleLayoutError,
    BundleNotFoundError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    GoldenMismatchError,
    IntegrityError,
    LabelMapError,
    ManifestError,
    NotFittedModelError,
    SampleMismatchError,
    UnknownFormatError,
    UnsupportedFormatVersionError,
    UntrustedTypesError,
)
from modelkeep.manifest import MANIFEST_NAME


def _edit_manifest(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    file = path / MANIFEST_NAME
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("kind", ["logistic", "random_forest", "hist_gradient_boosting"])
def test_round_trip_reproduces_predictions(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any, kind: str
) -> None:
    frame, _ = data
    pipeline = fitted(kind)
    manifest = modelkeep.save(
        pipeline, tmp_path / "m", sample=frame, name="churn", labels={0: "Stay", 1: "Leave"}
    )
    model = modelkeep.load(tmp_path / "m")

    expected = np.where(pipeline.predict(frame) == 1, "Leave", "Stay")
    assert model.predict(frame).tolist() == expected.tolist()
    proba = model.predict_proba(frame)
    assert list(proba.columns) == ["Stay", "Leave"]
    np.testing.assert_array_equal(proba.to_numpy(), pipeline.predict_proba(frame))
    assert manifest.task == "binary"
    assert manifest.feature_names == list(frame.columns)
    assert model.labels == {0: "Stay", 1: "Leave"}


def test_manifest_records_what_the_issue_lists(saved: Path, data: Any) -> None:
    frame, _ = data
    manifest = modelkeep.load(saved).manifest
    assert (manifest.name, manifest.version, manifest.task) == ("churn", "1", "binary")
    assert manifest.model_type == "sklearn.pipeline.Pipeline"
    assert manifest.metrics == {"f1": 0.7}
    assert manifest.data.data_version == "d1"
    assert manifest.data.n_rows == len(frame)
    assert manifest.data.fingerprint.startswith("sha256:")
    dtypes = {f.name: f.dtype for f in manifest.features}
    assert dtypes == {
        "age": "integer",
        "income": "float",
        "visits": "float",
        "plan": "string",
        "region": "category",
        "autopay": "boolean",
    }
    income = next(f for f in manifest.features if f.name == "income")
    assert income.nullable
    assert income.min == pytest.approx(frame["income"].min())
    env = manifest.environment
    for package in ("numpy", "scipy", "scikit-learn", "pandas", "skops", "joblib"):
        assert package in env.packages
        assert f"{package}=={env.packages[package]}" in env.requirements
    (artifact,) = manifest.artifacts
    assert artifact.path == "artifacts/pipeline.skops"
    assert artifact.size == (saved / artifact.path).stat().st_size
    golden = manifest.golden
    assert len(golden.rows) == 20
    assert golden.probabilities is not None and len(golden.probabilities) == 20
    missing_rows = set(np.flatnonzero(frame.isna().any(axis=1).to_numpy()).tolist())
    assert missing_rows & set(golden.rows), "golden rows must include rows with missing values"


def test_fingerprint_is_stable_and_content_sensitive(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    pipeline = fitted("logistic")
    a = modelkeep.save(pipeline, tmp_path / "a", sample=frame, name="m")
    b = modelkeep.save(pipeline, tmp_path / "b", sample=frame.copy(), name="m")
    changed = frame.copy()
    changed.loc[0, "age"] += 1
    c = modelkeep.save(pipeline, tmp_path / "c", sample=changed, name="m")
    assert a.data.fingerprint == b.data.fingerprint != c.data.fingerprint


def test_multiclass_and_regression_round_trip(
    tmp_path: Path, multiclass_pipeline: Any, regression_pipeline: Any
) -> None:
    multi, frame = multiclass_pipeline
    manifest = modelkeep.save(multi, tmp_path / "multi", sample=frame, name="multi")
    assert manifest.task == "multiclass"
    assert manifest.target.classes == ["high", "low", "mid"]
    model = modelkeep.load(tmp_path / "multi")
    assert model.predict(frame).tolist() == multi.predict(frame).tolist()

    reg, frame = regression_pipeline
    manifest = modelkeep.save(reg, tmp_path / "reg", sample=frame, name="reg")
    assert manifest.task == "regression"
    assert manifest.target.labels is None
    model = modelkeep.load(tmp_path / "reg")
    np.testing.assert_array_equal(model.predict(frame), reg.predict(frame))
    message = (
        "predict_proba: expected a classifier, got a regression model. A regressor has no "
        "class probabilities; use predict()."
    )
    with pytest.raises(modelkeep.InvalidArgumentError, match=re.escape(message)):
        model.predict_proba(frame)


def test_array_sample_needs_feature_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with pytest.raises(
        SampleMismatchError,
        match=re.escape("sample: a 2-D array needs feature_names=[...] naming its columns"),
    ):
        modelkeep.save(model, tmp_path / "m", sample=X, name="m")
    modelkeep.save(model, tmp_path / "m", sample=X, name="m", feature_names=["a", "b", "c"])
    loaded = modelkeep.load(tmp_path / "m")
    assert loaded.predict(X).tolist() == model.predict(X).tolist()  # the classes, typed
    assert not (tmp_path / "m2").exists()


def test_refuses_unfitted_model(tmp_path: Path, data: Any) -> None:
    frame, _ = data
    pipeline = Pipeline([("prep", preprocessor()), ("model", LogisticRegression())])
    with pytest.raises(
        NotFittedModelError,
        match=re.escape("Cannot save Pipeline: it is not fitted. Call fit() before"),
    ):
        modelkeep.save(pipeline, tmp_path / "m", sample=frame, name="m")
    assert _siblings(tmp_path / "m") == []


def test_refuses_sample_with_other_columns(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    wrong = frame.drop(columns=["plan"]).assign(colour="red")
    expected = (
        "sample's columns disagree with the model's feature_names_in_; columns the model "
        "was fitted on but missing from sample: 'plan'; columns in sample the model was not "
        "fitted on: 'colour'. Pass as sample= the data the model was fitted on"
    )
    with pytest.raises(SampleMismatchError, match=re.escape(expected)):
        modelkeep.save(fitted("logistic"), tmp_path / "m", sample=wrong, name="m")
    assert not (tmp_path / "m").exists()


def test_sample_columns_in_another_order_are_reordered(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    manifest = modelkeep.save(
        fitted("logistic"), tmp_path / "m", sample=frame[frame.columns[::-1]], name="m"
    )
    assert manifest.feature_names == list(frame.columns)


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        ({0: "Stay"}, "missing 1"),
        ({0: "Stay", 1: "Leave", 2: "Other"}, "not classes of the model 2"),
        ({"0": "Stay", "1": "Leave"}, "missing 0, 1; not classes of the model '0', '1'"),
    ],
    ids=["missing-class", "extra-class", "string-keys-for-int-classes"],
)
def test_label_map_keys_must_be_the_classes(
    tmp_path: Path,
    fitted: Callable[[str], Pipeline],
    data: Any,
    labels: dict[Any, str],
    detail: str,
) -> None:
    frame, _ = data
    with pytest.raises(LabelMapError, match=re.escape(f"({detail}). Give one business label")):
        modelkeep.save(fitted("logistic"), tmp_path / "m", sample=frame, name="m", labels=labels)


def test_unknown_format_is_refused(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    with pytest.raises(
        UnknownFormatError,
        match=re.escape(
            "formats: expected one of 'joblib', 'joblib:gzip', 'joblib:lzma', 'joblib:xz', "
            "'joblib:zlib', 'onnx', 'pickle', 'skops', got 'h5'."
        ),
    ):
        modelkeep.save(fitted("logistic"), tmp_path / "m", sample=frame, name="m", formats=["h5"])


def test_existing_target_refused_then_overwritten(
    saved: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    with pytest.raises(BundleExistsError, match=re.escape("Pass overwrite=True")):
        modelkeep.save(fitted("logistic"), saved, sample=frame, name="churn")
    manifest = modelkeep.save(fitted("logistic"), saved, sample=frame, name="churn", overwrite=True)
    assert manifest.version == "2"
    assert modelkeep.load(saved).estimator[-1].__class__ is LogisticRegression
    assert _siblings(saved) == ["churn"]


def test_overwrite_never_deletes_a_directory_that_is_not_a_bundle(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(BundleExistsError, match="it is not a modelkeep bundle"):
        modelkeep.save(fitted("logistic"), precious, sample=frame, name="m", overwrite=True)
    assert (precious / "thesis.txt").read_text() == "years of work"


def _failing_dump(self: Any, model: Any, path: Path, *, context: Any = None) -> dict[str, Any]:
    path.write_bytes(b"half a file")
    raise OSError("disk full (simulated)")


def test_failed_save_leaves_no_trace(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any, monkeypatch: Any
) -> None:
    from modelkeep._formats.skops import SkopsFormat

    frame, _ = data
    monkeypatch.setattr(SkopsFormat, "dump", _failing_dump)
    with pytest.raises(OSError, match="disk full"):
        modelkeep.save(fitted("logistic"), tmp_path / "m", sample=frame, name="m")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_bundle(
    saved: Path, fitted: Callable[[str], Pipeline], data: Any, monkeypatch: Any
) -> None:
    from modelkeep._formats.skops import SkopsFormat

    frame, _ = data
    before = (saved / MANIFEST_NAME).read_bytes()
    monkeypatch.setattr(SkopsFormat, "dump", _failing_dump)
    with pytest.raises(OSError, match="disk full"):
        modelkeep.save(fitted("logistic"), saved, sample=frame, name="m", overwrite=True)
    assert (saved / MANIFEST_NAME).read_bytes() == before
    assert _siblings(saved) == ["churn"]
    monkeypatch.undo()
    assert modelkeep.load(saved).manifest.version == "1"


def test_readers_see_old_or_new_bundle_never_a_mix(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    path = tmp_path / "m"
    models = [fitted("logistic"), fitted("random_forest")]
    modelkeep.save(models[0], path, sample=frame, name="m")
    errors: list[BaseException] = []
    loaded: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                loaded.append(type(modelkeep.load(path).estimator[-1]).__name__)
            except BaseException as exc:  # any failure is the bug this test looks for
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            modelkeep.save(models[(i + 1) % 2], path, sample=frame, name="m", overwrite=True)
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert loaded and set(loaded) <= {"LogisticRegression", "RandomForestClassifier"}
    assert _siblings(path) == ["m"]


def test_flipped_byte_raises_integrity_error(saved: Path) -> None:
    artifact = saved / "artifacts" / "pipeline.skops"
    raw = bytearray(artifact.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    artifact.write_bytes(bytes(raw))
    with pytest.raises(
        IntegrityError,
        match=r"^Artifact 'artifacts/pipeline\.skops': sha256 expected [0-9a-f]{64}, got "
        r"[0-9a-f]{64}\. The file changed after it was saved; restore it or save the model "
        r"again\.$",
    ):
        modelkeep.load(saved)


def test_truncated_and_missing_artifacts(saved: Path) -> None:
    artifact = saved / "artifacts" / "pipeline.skops"
    size = artifact.stat().st_size
    artifact.write_bytes(artifact.read_bytes()[:100])
    with pytest.raises(
        IntegrityError,
        match=re.escape(f"size expected {size} bytes, got 100 bytes"),
    ):
        modelkeep.load(saved)
    artifact.unlink()
    with pytest.raises(
        IntegrityError,
        match=re.escape("Artifact 'artifacts/pipeline.skops': file expected present, got missing"),
    ):
        modelkeep.load(saved)


def test_swapped_artifact_with_updated_hash_fails_golden_replay(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    modelkeep.save(fitted("random_forest"), tmp_path / "a", sample=frame, name="a")
    impostor = Pipeline([("prep", preprocessor()), ("model", RandomForestClassifier(3))])
    impostor.fit(*make_frame(seed=7))
    other_manifest = modelkeep.save(impostor, tmp_path / "b", sample=frame, name="b")
    (tmp_path / "a/artifacts/pipeline.skops").write_bytes(
        (tmp_path / "b/artifacts/pipeline.skops").read_bytes()
    )

    def adopt_hash(data: dict[str, Any]) -> None:
        data["artifacts"][0].update(
            sha256=other_manifest.artifacts[0].sha256, size=other_manifest.artifacts[0].size
        )

    _edit_manifest(tmp_path / "a", adopt_hash)
    with pytest.raises(
        GoldenMismatchError,
        match=r"^Golden samples: (predict|predict_proba) does not match what the model gave at "
        r"save time: \d+ of 20 golden rows differ \(rows \d+",
    ):
        modelkeep.load(tmp_path / "a")


def test_golden_tolerance_is_applied(saved: Path) -> None:
    def nudge(data: dict[str, Any]) -> None:
        row = data["golden"]["probabilities"][0]
        row[0] += 1e-4
        row[1] -= 1e-4

    _edit_manifest(saved, nudge)
    with pytest.raises(GoldenMismatchError, match=r"largest difference 0\.0001, tolerance 1e-06"):
        modelkeep.load(saved)
    assert modelkeep.load(saved, atol=1e-3).manifest.name == "churn"


def _pretend_old_sklearn(data: dict[str, Any]) -> None:
    data["environment"]["packages"]["scikit-learn"] = "0.0.1"


def test_environment_difference_warns_or_raises(saved: Path) -> None:
    import sklearn

    _edit_manifest(saved, _pretend_old_sklearn)
    difference = f"scikit-learn: recorded 0.0.1, installed {sklearn.__version__}"
    with pytest.warns(EnvironmentMismatchWarning, match=re.escape(difference)) as record:
        modelkeep.load(saved)
    assert [str(d) for d in record[0].message.differences] == [difference]  # type: ignore[union-attr]
    with pytest.raises(EnvironmentMismatchError, match=re.escape(difference)):
        modelkeep.load(saved, env="strict")
    modelkeep.load(saved, env="ignore")


def test_environment_mode_is_checked(saved: Path) -> None:
    with pytest.raises(
        modelkeep.InvalidChoiceError,
        match=re.escape("env: expected one of 'ignore', 'strict', 'warn', got 'loose'."),
    ):
        modelkeep.load(saved, env="loose")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (
            lambda d: d.update(format_version=99),
            UnsupportedFormatVersionError,
            "format_version expected one of 1, got 99. The bundle was written by a different "
            "modelkeep release; upgrade modelkeep to read it.",
        ),
        (
            lambda d: d.pop("features"),
            ManifestError,
            "field 'features': Field required (1 problem(s) in all)",
        ),
        (
            lambda d: d["artifacts"][0].update(path="../../etc/passwd"),
            ManifestError,
            "field 'artifacts.0.path': String should match pattern",
        ),
    ],
    ids=["unknown-format-version", "missing-field", "path-escaping-bundle"],
)
def test_bad_manifests(
    saved: Path, edit: Callable[[dict[str, Any]], None], error: type, message: str
) -> None:
    _edit_manifest(saved, edit)
    with pytest.raises(error, match=re.escape(message)):
        modelkeep.load(saved)


def test_manifest_not_json_and_no_bundle(saved: Path, tmp_path: Path) -> None:
    (saved / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        modelkeep.load(saved)
    with pytest.raises(BundleNotFoundError, match=re.escape("no such directory")):
        modelkeep.load(tmp_path / "nowhere")


class Doubler:
    """A custom transformer skops cannot know: loading it needs an explicit trust."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return X * 2


def test_untrusted_types_are_listed_and_trusted_by_exact_name(tmp_path: Path) -> None:
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50)})
    target = (frame["a"] > 0).astype(int)
    model = make_pipeline(Doubler(), LogisticRegression()).fit(frame, target)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    name = f"{Doubler.__module__}.Doubler"
    with pytest.raises(
        UntrustedTypesError,
        match=re.escape(
            f"Artifact 'artifacts/pipeline.skops' references 1 untrusted type(s): {name}. "
            "modelkeep did not load it."
        ),
    ):
        modelkeep.load(tmp_path / "m")
    assert modelkeep.load(tmp_path / "m", trusted=[name]).predict(frame).shape == (50,)


def test_choosing_a_format_the_bundle_lacks(saved: Path) -> None:
    with pytest.raises(
        UnknownFormatError,
        match=re.escape(
            "format (the formats this bundle holds): expected one of 'skops', got 'onnx'."
        ),
    ):
        modelkeep.load(saved, format="onnx")


def test_the_load_remembers_how_many_trees_it_proved(saved: Path) -> None:
    from modelkeep.safety.state import prove_state, proven_trees

    model = modelkeep.load(saved)
    assert proven_trees(model.estimator) == 15
    assert proven_trees(RandomForestClassifier()) is None  # never proven
    assert proven_trees(np.zeros(3)) is None  # cannot be remembered: asked, not raised
    fitted = RandomForestClassifier(n_estimators=3, random_state=0).fit([[0.0], [1.0]], [0, 1])
    assert prove_state(fitted) == proven_trees(fitted) == 3


def test_verify_reports_each_check(saved: Path) -> None:
    checks = modelkeep.verify(saved)
    assert [c.name for c in checks] == [
        "manifest",
        "integrity",
        "environment",
        "artifact",
        "manifest claims",
        "golden samples",
    ]
    assert all(c.passed for c in checks)
    assert "15 tree(s) validated" in checks[3].detail
    assert checks[5].detail == "20 golden row(s) reproduced"

    _edit_manifest(saved, _pretend_old_sklearn)
    checks = modelkeep.verify(saved, env="strict")
    assert [(c.name, c.passed) for c in checks] == [
        ("manifest", True),
        ("integrity", True),
        ("environment", False),
    ]


def test_categorical_hist_gradient_boosting_loads_without_trusted(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame, target = make_frame()
    frame = frame[["age", "income", "region"]]
    model = HistGradientBoostingClassifier(max_iter=10, categorical_features="from_dtype")
    model.fit(frame, target)
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    loaded = modelkeep.load(tmp_path / "m")
    assert loaded.predict(frame).tolist() == model.predict(frame).tolist()


def test_trusting_partial_does_not_trust_the_function_inside(tmp_path: Path) -> None:
    import functools
    import os

    import skops.io as sio

    from modelkeep._formats.skops import SkopsFormat

    payload = tmp_path / "payload.skops"
    sio.dump(functools.partial(os.system, "echo owned"), payload)
    with (
        payload.open("rb") as stream,
        pytest.raises(UntrustedTypesError, match=re.escape("untrusted type(s): posix.system.")),
    ):
        SkopsFormat().load(stream, artifact="payload.skops", trusted=[])


def test_golden_rows_skip_infinite_values(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    frame = frame.copy()
    frame.loc[: len(frame) // 2, "income"] = np.inf
    manifest = modelkeep.save(fitted("random_forest"), tmp_path / "m", sample=frame, name="m")
    assert all(row > len(frame) // 2 for row in manifest.golden.rows)
    assert len(manifest.golden.rows) == 20
    modelkeep.load(tmp_path / "m")


def test_format_version_1_bundle_still_loads() -> None:
    """A bundle written at format version 1 and kept in the repository (tests/fixtures)."""
    fixture = Path(__file__).parent / "fixtures" / "bundle_v1"
    model = modelkeep.load(fixture, env="ignore")
    manifest = model.manifest
    assert (manifest.format_version, manifest.name, manifest.modelkeep_version) == (
        1,
        "churn-v1",
        "0.1.0",
    )
    record = {"tenure": 3, "charges": 99.5, "contract": "month-to-month"}
    assert model.predict(record).tolist() == ["Churn"]


# ------------------------------------------------------------ no symlink anywhere in a bundle


def _layout_message(bundle: Path, entry: str, kind: str = "a symbolic link") -> str:
    return re.escape(
        f"Bundle {str(bundle)!r}: expected only regular files and directories, got {entry!r}, "
        f"{kind}. A bundle never holds links or special files (a link could point outside "
        "it); replace it with a copy of what it stands for or remove it, or get an intact "
        "copy of the bundle."
    )


def _link_in_place(bundle: Path, relative: str, outside: Path) -> None:
    """Move ``relative`` out of the bundle and leave a symlink to it: same bytes, elsewhere."""
    (bundle / relative).rename(outside)
    (bundle / relative).symlink_to(outside)


def _link_extra(bundle: Path, relative: str, outside: Path) -> None:
    outside.write_text("not part of the bundle")
    (bundle / relative).symlink_to(outside)


# Each layout keeps every byte the manifest records, so only the link itself is wrong.
LINKS = {
    "artifacts-folder": (_link_in_place, "artifacts"),
    "artifact-file": (_link_in_place, "artifacts/pipeline.skops"),
    "manifest": (_link_in_place, MANIFEST_NAME),
    "extra-root-entry": (_link_extra, "notes.txt"),
    "inside-artifacts": (_link_extra, "artifacts/extra.txt"),
}


def _convert(path: Path) -> object:
    return modelkeep.convert(path, to="onnx")


def _read_manifest(path: Path) -> object:
    from modelkeep.manifest import read_manifest

    return read_manifest(path)


READERS: dict[str, Callable[[Path], object]] = {
    "load": modelkeep.load,
    "scan": modelkeep.scan,
    "read_manifest": _read_manifest,
    "convert": _convert,
}


@pytest.mark.parametrize("reader", list(READERS), ids=list(READERS))
@pytest.mark.parametrize("layout", list(LINKS), ids=list(LINKS))
def test_a_symlink_anywhere_is_refused_by_every_reader(
    saved: Path, tmp_path: Path, layout: str, reader: str
) -> None:
    make, relative = LINKS[layout]
    make(saved, relative, tmp_path / "outside")
    with pytest.raises(BundleLayoutError, match=_layout_message(saved, relative)):
        READERS[reader](saved)


def test_verify_reports_a_symlinked_artifacts_folder(saved: Path, tmp_path: Path) -> None:
    _link_in_place(saved, "artifacts", tmp_path / "outside")
    (check,) = modelkeep.verify(saved)
    assert (check.name, check.passed) == ("bundle", False)
    assert re.fullmatch(_layout_message(saved, "artifacts"), check.detail)


def test_a_special_file_in_a_bundle_is_refused(saved: Path) -> None:
    os.mkfifo(saved / "artifacts" / "pipe")
    with pytest.raises(BundleLayoutError, match=_layout_message(saved, "artifacts/pipe", "a FIFO")):
        modelkeep.load(saved)


def test_a_link_planted_after_the_walk_is_not_followed(saved: Path, tmp_path: Path) -> None:
    from modelkeep._reader import BundleReader

    reader = BundleReader(saved)
    try:
        _link_in_place(saved, "artifacts", tmp_path / "outside")
        with pytest.raises(BundleLayoutError, match=_layout_message(saved, "artifacts")):
            reader.read("artifacts/pipeline.skops")
    finally:
        reader.close()


def test_the_bundle_path_itself_may_be_a_link(saved: Path, tmp_path: Path) -> None:
    # The caller chose that path; only what is inside the bundle must be plain.
    (tmp_path / "alias").symlink_to(saved)
    assert modelkeep.load(tmp_path / "alias").manifest.name == "churn"


def test_saving_over_a_bundle_holding_a_link_replaces_it(
    saved: Path, tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    _link_in_place(saved, "artifacts", tmp_path / "outside")
    modelkeep.save(fitted("logistic"), saved, sample=data[0], name="churn", overwrite=True)
    assert not (saved / "artifacts").is_symlink()
    modelkeep.load(saved)
