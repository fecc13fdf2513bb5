"""``modelkeep monitor``: the table, --json, --html, and the exit statuses cron reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cli_runner import run

from .conftest import TARGET, fresh


def test_no_drift_exits_0_with_a_verdict_per_feature(bundle: Path, tmp_path: Path) -> None:
    fresh(2000, seed=60).to_csv(tmp_path / "current.csv", index=False)
    ran = run("monitor", str(bundle), str(tmp_path / "current.csv"), columns=200)
    assert ran.returncode == 0, ran.output
    for name in ("tenure", "monthly_charges", "contract_type", "probability:Churn"):
        assert name in ran.stdout
    assert "2,000 rows: no dataset drift" in ran.stdout
    assert "stable" in ran.stdout and "DRIFT" not in ran.stdout


def test_dataset_drift_exits_1_and_json_is_the_report(bundle: Path, tmp_path: Path) -> None:
    current = fresh(2000, seed=61)
    current["monthly_charges"] *= 1.3
    current["usage_change"] += 25
    current["tenure"] = current["tenure"] // 3
    current.to_parquet(tmp_path / "current.parquet")
    ran = run("monitor", str(bundle), str(tmp_path / "current.parquet"), "--json")
    assert ran.returncode == 1, ran.output
    report = json.loads(ran.stdout)
    assert report["dataset_drift"] is True and report["drifted"] is True
    assert report["drifted_features"] == ["tenure", "monthly_charges", "usage_change"]
    assert report["thresholds"]["dataset"] == 0.5


def test_a_performance_drop_exits_1_and_html_is_written(bundle: Path, tmp_path: Path) -> None:
    current = fresh(2000, seed=62)
    current[TARGET] = 1 - current[TARGET]
    current["time"] = np.datetime64("2026-05-01T00:00:00") + np.arange(2000) * np.timedelta64(
        1, "m"
    )
    current.to_csv(tmp_path / "current.csv", index=False)
    ran = run(
        "monitor",
        str(bundle),
        str(tmp_path / "current.csv"),
        "--labels",
        TARGET,
        "--window",
        "1d",
        "--html",
        str(tmp_path / "report.html"),
        columns=200,
    )
    assert ran.returncode == 1, ran.output
    assert "DROP in accuracy, f1, roc_auc" in ran.stdout
    assert "window 2026-05-01T00:00:00Z: 1,440 rows" in ran.stdout
    assert (tmp_path / "report.html").read_text("utf-8").startswith("<!DOCTYPE html>")


def test_usage_errors_exit_2(bundle: Path, tmp_path: Path) -> None:
    fresh(50, seed=63).to_csv(tmp_path / "current.csv", index=False)
    current = str(tmp_path / "current.csv")
    for args, message in (
        (["--window", "fortnight"], "window: expected a positive length"),
        (["--window", "1h"], "with a time column"),
        (["--outputs", "sometimes"], "outputs: expected one of"),
        (["--psi-threshold", "-1"], "--psi-threshold: expected a number >= 0, got -1.0."),
        (["--bogus"], "No such option"),
    ):
        ran = run("monitor", str(bundle), current, *args)
        assert ran.returncode == 2, (args, ran.output)
        assert message in ran.stderr, (args, ran.stderr)
    ran = run("monitor", str(bundle), str(tmp_path / "missing.parquet"))
    assert ran.returncode == 2 and "which does not exist" in ran.stderr


def test_a_registry_reference_is_a_reference(bundle: Path, tmp_path: Path) -> None:
    from modelkeep.registry import Registry

    home = tmp_path / "home"
    with Registry(home) as registry:
        registry.register(bundle)
    current = fresh(500, seed=64)
    current["monthly_charges"] *= 1.3
    current.to_parquet(tmp_path / "current.parquet")
    ran = run(
        "monitor",
        "churn:1",
        str(tmp_path / "current.parquet"),
        "--json",
        env={"MODELKEEP_HOME": str(home)},
    )
    assert ran.returncode == 0, ran.output  # one drifted feature of six: no dataset drift
    report = json.loads(ran.stdout)
    assert report["reference"]["source"] == "churn:1"
    assert report["drifted_features"] == ["monthly_charges"]
