"""drift(): synthetic shifts on the churn data flagged with the right feature and kind,
unshifted samples not flagged, and every source read alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

import modelkeep
from modelkeep import monitor
from modelkeep.errors import InvalidArgumentError, InvalidChoiceError

from .conftest import FEATURES, TARGET, fresh

CURRENT_ROWS = 3000


def _only(report: monitor.DriftReport, feature: str, kind: str) -> None:
    assert report.drifted_features == [feature], [(f.name, f.psi, f.kinds) for f in report.features]
    assert kind in report.feature(feature).kinds


def test_monthly_charges_up_30_percent_is_distribution_drift(model: modelkeep.Model) -> None:
    current = fresh(CURRENT_ROWS, seed=11)
    current["monthly_charges"] *= 1.3
    report = monitor.drift(model, current, labels=TARGET)
    _only(report, "monthly_charges", "distribution")
    result = report.feature("monthly_charges")
    assert result.status == "major" and result.psi is not None and result.psi >= 0.25
    assert result.ks is not None and result.ks > 0.2 and result.js is None
    assert result.out_of_range is not None and result.out_of_range > 0.05
    assert "out_of_range" in result.kinds
    assert result.method.startswith("PSI on the reference's quantile bins")
    assert result.thresholds["psi_major"] == 0.25
    assert not report.dataset_drift  # one feature of six: below the 0.5 share
    assert not report.drifted


def test_a_new_contract_type_is_unseen_categories(model: modelkeep.Model) -> None:
    current = fresh(CURRENT_ROWS, seed=12)
    current.loc[current.index[::5], "contract_type"] = "three-year"
    report = monitor.drift(model, current)
    _only(report, "contract_type", "unseen")
    result = report.feature("contract_type")
    assert result.unseen_values == ["three-year"]
    assert result.unseen == pytest.approx(0.2, abs=0.001)
    assert result.js is not None and result.js > 0.1 and result.ks is None
    assert "(unseen)" in result.bins


def test_three_times_the_missing_values_is_missing_drift(model: modelkeep.Model) -> None:
    current = fresh(CURRENT_ROWS, seed=13)
    rng = np.random.default_rng(0)
    # The generator blanks 2 %; blank another 4 % for 6 %.
    current.loc[rng.random(CURRENT_ROWS) < 0.04, "usage_change"] = np.nan
    report = monitor.drift(model, current)
    _only(report, "usage_change", "missing")
    result = report.feature("usage_change")
    assert result.kinds == ["missing"]  # the values present are distributed as before
    assert result.current_missing == pytest.approx(3 * result.reference_missing, rel=0.35)


def test_flipped_labels_are_a_performance_drop(model: modelkeep.Model) -> None:
    current = fresh(CURRENT_ROWS, seed=14)
    current[TARGET] = 1 - current[TARGET]
    report = monitor.drift(model, current, labels=TARGET)
    assert report.drifted_features == []
    perf = report.performance
    assert perf is not None and perf.dropped and report.drifted
    assert perf.dropped_metrics == ["accuracy", "f1", "roc_auc"]
    assert perf.rows == CURRENT_ROWS
    assert perf.drops["roc_auc"] > 0.5


def test_fresh_unshifted_samples_are_not_flagged_in_95_percent_of_40_seeds(
    model: modelkeep.Model,
) -> None:
    flagged = []
    for seed in range(100, 140):
        report = monitor.drift(model, fresh(CURRENT_ROWS, seed=seed), labels=TARGET)
        assert report.performance is not None and report.outputs
        if report.drifted or report.output_drift or report.drifted_features:
            flagged.append(seed)
    assert len(flagged) <= 2, flagged


def test_performance_matches_scikit_learn(model: modelkeep.Model) -> None:
    current = fresh(CURRENT_ROWS, seed=15)
    report = monitor.drift(model, current, labels=current[TARGET].to_numpy())
    proba = model.estimator.predict_proba(current[FEATURES])[:, 1]
    truth = current[TARGET].to_numpy()
    predicted = (proba >= 0.5).astype(int)
    perf = report.performance
    assert perf is not None
    assert perf.metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-6)
    assert perf.metrics["f1"] == pytest.approx(f1_score(truth, predicted), abs=1e-6)
    # ROC-AUC from 1,000-bin score histograms: close to the exact one.
    assert perf.metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, proba), abs=0.002)
    assert set(perf.reference) == {"accuracy", "f1", "roc_auc"}


def test_every_source_gives_the_same_report(model: modelkeep.Model, tmp_path: Path) -> None:
    current = fresh(CURRENT_ROWS, seed=16)
    current["monthly_charges"] *= 1.3
    current.to_parquet(tmp_path / "current.parquet")
    current.to_csv(tmp_path / "current.csv", index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    current.iloc[:1000].to_parquet(folder / "a.parquet")
    current.iloc[1000:].to_csv(folder / "b.csv", index=False)
    expected = monitor.drift(model, current, outputs="none").to_dict()
    for source in (tmp_path / "current.parquet", tmp_path / "current.csv", folder):
        found = monitor.drift(model.manifest, source, outputs="none").to_dict()
        assert found["features"] == expected["features"], source
        assert found["rows"] == CURRENT_ROWS


def test_windows_since_and_until(model: modelkeep.Model) -> None:
    current = fresh(2400, seed=17)
    current["time"] = pd.date_range("2026-03-01", periods=2400, freq="1min", tz="UTC")
    # The second day's charges are up 30 %.
    current.loc[current["time"] >= "2026-03-02", "monthly_charges"] *= 1.3
    report = monitor.drift(model, current, window="1d", labels=TARGET)
    assert [w.start for w in report.windows] == ["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"]
    assert [w.end for w in report.windows] == ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]
    assert [w.rows for w in report.windows] == [1440, 960]
    assert sum(w.rows for w in report.windows) == report.rows
    first, second = report.windows
    assert not [f.name for f in first.features if f.drifted]
    assert [f.name for f in second.features if f.drifted] == ["monthly_charges"]
    assert first.performance is not None and first.performance.rows == 1440
    assert report.window == "1d"
    later = monitor.drift(model, current, since="2026-03-01T12:00", until="2026-03-01T18:00")
    assert later.rows == 360 and later.windows == []
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["drifted"] is False and len(data["windows"]) == 2


def test_labels_file_joined_on_request_id_or_row_order(
    model: modelkeep.Model, tmp_path: Path
) -> None:
    current = fresh(1000, seed=18)
    current["request_id"] = [f"r{i}" for i in range(1000)]
    labels = current[["request_id", TARGET]].iloc[::-1]  # another order: joined on the id
    labels.to_csv(tmp_path / "labels.csv", index=False)
    by_id = monitor.drift(model, current, labels=tmp_path / "labels.csv")
    by_column = monitor.drift(model, current, labels=TARGET)
    assert by_id.performance == by_column.performance
    current[[TARGET]].to_parquet(tmp_path / "order.parquet")
    by_order = monitor.drift(
        model, current.drop(columns="request_id"), labels=tmp_path / "order.parquet"
    )
    assert by_order.performance == by_column.performance
    # Business labels work as well as classes.
    named = current[TARGET].map({0: "No Churn", 1: "Churn"})
    assert monitor.drift(model, current, labels=named).performance == by_column.performance


def test_outputs_from_the_data_columns(model: modelkeep.Model, bundle: Path) -> None:
    current = fresh(2000, seed=19)
    proba = model.estimator.predict_proba(current[FEATURES])
    current["prediction"] = np.where(proba[:, 1] > proba[:, 0], "Churn", "No Churn")
    current["probability:No Churn"] = proba[:, 0]
    current["probability:Churn"] = proba[:, 1]
    from_data = monitor.drift(bundle, current, outputs="data")
    from_model = monitor.drift(model, current[FEATURES], outputs="model")
    assert [o.psi for o in from_data.outputs] == pytest.approx([o.psi for o in from_model.outputs])
    assert [o.name for o in from_data.outputs] == [
        "prediction",
        "probability:No Churn",
        "probability:Churn",
    ]
    assert monitor.drift(bundle, current[FEATURES], outputs="none").outputs == []


def test_thresholds_are_arguments_and_recorded(model: modelkeep.Model) -> None:
    current = fresh(2000, seed=20)
    current["monthly_charges"] *= 1.3
    strict = monitor.Thresholds(psi_minor=0.0001, psi_major=0.001, dataset=0.2)
    report = monitor.drift(model, current, thresholds=strict, outputs="none")
    assert report.dataset_drift and report.drifted
    assert report.to_dict()["thresholds"]["psi_major"] == 0.001
    with pytest.raises(InvalidArgumentError, match=re.escape("psi_minor: expected at most")):
        monitor.Thresholds(psi_minor=0.5, psi_major=0.2)


def test_bad_arguments_are_clear_errors(model: modelkeep.Model, tmp_path: Path) -> None:
    current = fresh(100, seed=21)
    with pytest.raises(InvalidArgumentError, match=re.escape("window: expected a positive length")):
        monitor.drift(model, current, window="fortnight")
    with pytest.raises(InvalidArgumentError, match="with a time column"):
        monitor.drift(model, current, window="1h")
    with pytest.raises(InvalidChoiceError, match="outputs: expected one of"):
        monitor.drift(model, current, outputs="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="which does not exist"):
        monitor.drift(model, tmp_path / "nothing.parquet")
    with pytest.raises(InvalidChoiceError, match="current file type"):
        (tmp_path / "x.txt").write_text("a")
        monitor.drift(model, tmp_path / "x.txt")
    with pytest.raises(InvalidArgumentError, match="holds none"):
        (tmp_path / "empty").mkdir()
        monitor.drift(model, tmp_path / "empty")
    with pytest.raises(InvalidArgumentError, match="since: expected a datetime"):
        monitor.drift(model, current, since="yesterday")
    with pytest.raises(InvalidArgumentError, match="'nope', which is neither"):
        monitor.drift(model, current, labels="nope")


def test_rows_the_model_refuses_still_count_for_feature_drift(
    model: modelkeep.Model, tmp_path: Path
) -> None:
    good = fresh(600, seed=22)
    bad = fresh(400, seed=23).astype({"tenure": object})
    bad.loc[bad.index[0], "tenure"] = "unknown"  # text in a numeric column: refused
    good.to_parquet(tmp_path / "a.parquet")
    bad.to_csv(tmp_path / "b.csv", index=False)
    report = monitor.drift(model, tmp_path, labels=TARGET)
    assert report.rows == 1000
    assert report.feature("tenure").rows == 1000
    assert report.feature("tenure").current_missing == pytest.approx(0.001)
    assert report.performance is not None and report.performance.rows == 600
    assert report.outputs[0].rows == 600
    assert report.notes and report.notes[0].startswith("400 rows in chunks the model refused")
    assert "tenure" in report.notes[0]
