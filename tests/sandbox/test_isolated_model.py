"""load(isolate=True) and safe_load(isolate=True): the same answers as in-process, the
first wall still in force inside the worker, and the machine's capabilities reported."""

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
from sklearn.pipeline import Pipeline

import modelkeep
from cli_runner import run
from modelkeep.errors import InvalidArgumentError, SchemaError, UntrustedTypesError
from modelkeep.sandbox import MECHANISMS, IsolatedModel, Limits, probe


@pytest.mark.parametrize("kind", ["random_forest", "logistic"])
def test_predictions_through_the_worker_equal_in_process(
    kind: str, tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    path = tmp_path / kind
    modelkeep.save(fitted(kind), path, sample=frame, name="churn", labels={0: "Stay", 1: "Leave"})
    local = modelkeep.load(path)
    with modelkeep.load(path, isolate=True) as isolated:
        assert isinstance(isolated, IsolatedModel)
        assert isolated.confinement["landlock"].startswith("ABI ")
        assert set(isolated.confinement) == set(MECHANISMS)
        assert isolated.estimator is None
        assert isolated.manifest == local.manifest
        assert isolated.labels == local.labels
        assert isolated.schema == local.schema
        np.testing.assert_array_equal(isolated.predict(frame), local.predict(frame))
        pd.testing.assert_frame_equal(isolated.predict_proba(frame), local.predict_proba(frame))
        record = frame.iloc[3].to_dict()
        np.testing.assert_array_equal(isolated.predict(record), local.predict(record))
        # Input is validated here, in the caller, with the same error.
        with pytest.raises(SchemaError, match="age"):
            isolated.predict(frame.drop(columns=["age"]))
        if kind == "random_forest":  # once is enough: each worker costs a start-up
            # A worker that is gone is replaced on the next call.
            isolated.close()
            np.testing.assert_array_equal(isolated.predict(frame[:5]), local.predict(frame[:5]))


def test_safe_load_isolated_predicts_and_keeps_the_first_wall(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    model = fitted("random_forest")
    benign = tmp_path / "legacy.joblib"
    joblib.dump(model, benign)
    with modelkeep.safe_load(benign, isolate=True) as isolated:
        assert isolated.type == "sklearn.pipeline.Pipeline"
        assert list(isolated.feature_names_in_) == list(frame.columns)
        np.testing.assert_array_equal(isolated.predict(frame), model.predict(frame))
        np.testing.assert_array_equal(isolated.predict_proba(frame), model.predict_proba(frame))
        with pytest.raises(InvalidArgumentError, match="transform"):
            isolated.transform(frame)

    marker = tmp_path / "ran"

    class Run:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps(Run(), protocol=4))
    message = str(UntrustedTypesError(str(hostile), ["posix.system"]))
    with pytest.raises(UntrustedTypesError, match=re.escape(message)) as info:
        modelkeep.safe_load(hostile, isolate=True, limits=Limits(timeout=120))
    assert info.value.types == ("posix.system",)
    assert not marker.exists()


def test_isolate_takes_only_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape("isolate: expected True or False")):
        modelkeep.load(tmp_path, isolate="yes")


def test_probe_and_doctor_list_every_mechanism() -> None:
    found = probe()
    assert [c.mechanism for c in found] == list(MECHANISMS)
    assert all(c.supported for c in found), found
    ran = run("doctor")
    assert ran.returncode == 0, ran.output
    for mechanism in MECHANISMS:
        assert re.search(rf"^(yes|no)\s+{mechanism}\b", ran.stdout, re.MULTILINE), ran.stdout
    assert "isolate=True: available" in ran.stdout
