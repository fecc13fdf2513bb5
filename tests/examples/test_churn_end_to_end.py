"""The demo's own steps, as `make demo` runs them: train and save, inspect, verify, predict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "examples" / "churn"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_demo_steps_end_to_end(tmp_path: Path) -> None:
    bundle = tmp_path / "churn_model"
    trained = _run(
        str(CHURN / "train.py"), "--rows", "1200", "--n-estimators", "40", "--out", str(bundle)
    )
    assert "roc_auc" in trained.stdout
    assert (bundle / "modelkeep.json").is_file()

    verified = _run("-m", "modelkeep", "verify", str(bundle))
    assert verified.stdout.count("PASS") == 6
    assert "40 tree(s) validated" in verified.stdout

    predicted = _run(str(CHURN / "predict.py"), str(bundle))
    lines = predicted.stdout.strip().splitlines()
    rows = [line for line in lines if line.split()[:1] and "-" in line.split()[0][1:]]
    customers = [line for line in rows if not set(line) <= {"-", " "}]
    assert len(customers) == 5, predicted.stdout
    for line in customers:
        assert ("No Churn" in line) or (" Churn " in line + " "), line
        probability = float(line.split()[-1])
        assert 0.0 <= probability <= 1.0
