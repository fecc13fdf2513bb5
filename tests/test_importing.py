"""modelkeep.import_model: a legacy joblib/pickle file into a bundle, loaded only safely."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

import modelkeep
from modelkeep._importing import match_labels
from modelkeep.errors import InvalidChoiceError, LabelMapError, UntrustedTypesError


def test_import_a_compressed_joblib_with_a_csv_sample(
    tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    frame, _ = data
    model = fitted("random_forest")
    legacy = tmp_path / "legacy.joblib"
    joblib.dump(model, legacy, compress=("zlib", 3))
    frame.to_csv(tmp_path / "train.csv", index=False)
    manifest = modelkeep.import_model(
        legacy,
        tmp_path / "train.csv",
        name="churn",
        labels={"0": "Stay", "1": "Leave"},  # JSON keys are strings
        out=tmp_path / "churn",
        data_version="2019-export",
    )
    assert [(e.value, e.label) for e in manifest.target.labels] == [(0, "Stay"), (1, "Leave")]
    (artifact,) = manifest.artifacts
    assert (artifact.format, artifact.details["compression"]) == ("joblib", "zlib")
    assert manifest.data.data_version == "2019-export"
    loaded = modelkeep.load(tmp_path / "churn")
    expected = np.where(model.predict(frame.head(5)) == 1, "Leave", "Stay")
    assert loaded.predict(frame.head(5)).tolist() == expected.tolist()


def test_import_a_pickle_with_a_parquet_sample(
    tmp_path: Path, regression_pipeline: tuple[Any, pd.DataFrame]
) -> None:
    model, frame = regression_pipeline
    legacy = tmp_path / "model.pkl"
    legacy.write_bytes(pickle.dumps(model, protocol=4))
    frame.to_parquet(tmp_path / "sample.parquet")
    manifest = modelkeep.import_model(
        legacy, tmp_path / "sample.parquet", name="price", out=tmp_path / "price", formats=["skops"]
    )
    assert [a.format for a in manifest.artifacts] == ["skops"]
    assert manifest.task == "regression"
    assert [f.name for f in manifest.features] == list(frame.columns)


def test_a_hostile_file_is_never_imported(tmp_path: Path, data: Any) -> None:
    frame, _ = data

    class Run:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {tmp_path / 'marker'}",))

    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps(Run(), protocol=4))
    with pytest.raises(UntrustedTypesError, match=re.escape("untrusted type(s): posix.system.")):
        modelkeep.import_model(legacy, frame, name="x", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "marker").exists()


def test_label_keys_are_matched_to_classes(multiclass_pipeline: tuple[Any, Any]) -> None:
    model, _ = multiclass_pipeline
    assert match_labels(model, {"low": "L", "mid": "M", "high": "H"}) == {
        "low": "L",
        "mid": "M",
        "high": "H",
    }

    class Bools:
        classes_ = np.array([False, True])

    assert match_labels(Bools(), {"false": "no", "True": "yes"}) == {False: "no", True: "yes"}


def test_a_label_naming_no_class_is_reported(
    tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    frame, _ = data
    legacy = tmp_path / "m.joblib"
    joblib.dump(fitted("logistic"), legacy)
    with pytest.raises(
        LabelMapError,
        match=re.escape(
            "labels: keys expected exactly the model's classes [0, 1], got [0, '2'] "
            "(missing 1; not classes of the model '2'). Give one business label per class."
        ),
    ):
        modelkeep.import_model(
            legacy, frame, name="m", labels={"0": "a", "2": "b"}, out=tmp_path / "m"
        )


def test_the_sample_must_be_a_frame_or_a_csv_or_parquet_path(
    tmp_path: Path, fitted: Callable[[str], Any]
) -> None:
    legacy = tmp_path / "m.joblib"
    joblib.dump(fitted("logistic"), legacy)
    sample = str(tmp_path / "s.xlsx")
    with pytest.raises(
        InvalidChoiceError,
        match=re.escape(f"sample file type: expected one of '.csv', '.parquet', got {sample!r}."),
    ):
        modelkeep.import_model(legacy, sample, name="m", out=tmp_path / "m")
