"""Quarantine conversion: ``modelkeep import ... --isolate --to onnx`` converts a pickle in
the sandboxed worker; the host gets an ONNX bundle that records its provenance, and a
hostile pickle gets a refusal with nothing written."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.pipeline import Pipeline

import modelkeep
from cli_runner import run
from modelkeep.errors import SandboxBlockedError
from modelkeep.sandbox._quarantine import quarantine_import


def test_a_benign_pickle_becomes_an_onnx_bundle_that_passes_parity(
    tmp_path: Path, fitted: Callable[[str], Pipeline], data: Any
) -> None:
    frame, _ = data
    pipeline = fitted("logistic")
    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps(pipeline, protocol=5))
    sample = tmp_path / "data.csv"
    frame.to_csv(sample, index=False)
    out = tmp_path / "churn_onnx"
    ran = run(
        "import", str(legacy), "--sample", str(sample), "--name", "churn", "--out", str(out),
        "--labels", json.dumps({"0": "Stay", "1": "Leave"}), "--isolate", "--to", "onnx",
    )  # fmt: skip
    assert ran.returncode == 0, ran.output
    assert "artifacts/pipeline.onnx (onnx)" in ran.stdout
    manifest = json.loads((out / "modelkeep.json").read_text())
    (artifact,) = manifest["artifacts"]
    assert artifact["format"] == "onnx"
    assert artifact["details"]["parity"]["passed"] is True
    provenance = artifact["details"]["quarantine"]
    assert provenance["source"] == "legacy.pkl"
    assert provenance["source_sha256"] == hashlib.sha256(legacy.read_bytes()).hexdigest()
    assert provenance["parity_passed"] is True
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == ["pipeline.onnx"]
    model = modelkeep.load(out)
    assert model.format == "onnx"
    expected = np.where(pipeline.predict(frame) == 1, "Leave", "Stay")
    agree = np.mean(model.predict(frame) == expected)
    assert agree >= 0.99
    checked = run("verify", str(out), "--isolate")
    assert checked.returncode == 0, checked.output
    assert "PASS golden samples" in checked.stdout
    assert "PASS parity" in checked.stdout


def test_a_hostile_pickle_is_refused_and_nothing_is_written(tmp_path: Path, data: Any) -> None:
    frame, _ = data
    sample = tmp_path / "data.csv"
    frame.to_csv(sample, index=False)
    written = tmp_path / "written-by-the-pickle"

    class Run:
        def __reduce__(self) -> tuple[object, ...]:
            return (open, (str(written), "w"))

    hostile = tmp_path / "hostile.joblib"
    joblib.dump({"model": Run()}, hostile)
    out = tmp_path / "out"
    before = sorted(tmp_path.iterdir())
    # The proofs are off (test-only switch), so only the sandbox stands in the way.
    with pytest.raises(SandboxBlockedError, match="open for writing") as info:
        quarantine_import(hostile, sample, name="churn", out=out, _proofs=False)
    assert any(str(written) in a for a in info.value.attempts)
    assert not written.exists()
    assert not out.exists()
    assert sorted(tmp_path.iterdir()) == before
    # (With the proofs on, the first wall refuses it inside the worker: see
    # test_isolated_model's safe_load test.) --to without --isolate is misuse.
    ran = run(
        "import", str(hostile), "--sample", str(sample), "--name", "churn", "--out", str(out),
        "--to", "onnx",
    )  # fmt: skip
    assert ran.returncode == 2
    assert "--to is for the quarantine conversion: add --isolate" in ran.stderr
    assert not out.exists()
    assert not written.exists()
