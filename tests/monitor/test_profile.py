"""The reference profile save() records, old bundles without one, and `modelkeep profile`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import modelkeep
from cli_runner import run
from modelkeep import monitor
from modelkeep._profile import PROBABILITY_EDGES, numeric_values
from modelkeep.manifest import dump_manifest, read_manifest

from .conftest import FEATURES, LABELS, pipeline

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundle_v1"


def test_save_records_a_small_profile_of_every_feature_and_output(bundle: Path) -> None:
    manifest = read_manifest(bundle)
    # Parsed and written again, the manifest keeps its bytes: its hash names the bundle.
    assert dump_manifest(manifest) == (bundle / "modelkeep.json").read_text("utf-8")
    profile = manifest.profile
    assert profile is not None
    assert [f.name for f in profile.features] == FEATURES
    assert (profile.rows, profile.bins, profile.category_cap) == (4000, 20, 50)
    for spec in profile.features:
        assert spec.count == 4000
        if spec.kind == "numeric":
            assert spec.edges == sorted(set(spec.edges or []))
            assert len(spec.counts or []) == len(spec.edges or []) + 1
            assert sum(spec.counts or []) == spec.count - spec.missing
            assert spec.min is not None and spec.max is not None and spec.min <= spec.max
    charges = profile.feature("monthly_charges")
    assert charges is not None and charges.kind == "numeric" and len(charges.edges or []) == 19
    assert 0 < charges.missing < 200  # about 2 % of 4,000
    contract = profile.feature("contract_type")
    assert contract is not None and contract.kind == "categorical"
    assert sorted(contract.categories or {}) == ["month-to-month", "one-year", "two-year"]
    assert sum((contract.categories or {}).values()) == 4000
    assert [o.name for o in profile.outputs] == [
        "prediction",
        "probability:No Churn",
        "probability:Churn",
    ]
    prediction = profile.outputs[0]
    assert set(prediction.categories or {}) <= {"No Churn", "Churn"}
    assert profile.outputs[2].edges == PROBABILITY_EDGES
    # A few KB in the canonical manifest (indented JSON), under 2.5 KB compact.
    size = len(json.dumps(profile.model_dump(mode="json"), sort_keys=True, indent=2))
    assert size < 8000
    assert len(profile.model_dump_json()) < 4000


def test_the_same_sample_gives_the_same_profile_bytes(
    training: pd.DataFrame, tmp_path: Path
) -> None:
    fitted = pipeline().fit(training[FEATURES], training["churn"])
    profiles = []
    for name in ("a", "b"):
        manifest = modelkeep.save(
            fitted, tmp_path / name, sample=training[FEATURES], name="churn", labels=LABELS
        )
        assert manifest.profile is not None
        profiles.append(json.dumps(manifest.profile.model_dump(mode="json"), sort_keys=True))
    assert profiles[0] == profiles[1]
    text = (tmp_path / "a" / "modelkeep.json").read_text("utf-8")
    assert '"profile": {' in text


def test_numeric_bins_are_right_closed_with_open_outer_bins() -> None:
    from modelkeep._profile import bin_counts

    values = np.array([-5.0, 1.0, 1.5, 2.0, 99.0, np.nan])
    assert bin_counts(values, [1.0, 2.0]).tolist() == [2, 2, 1]
    dates = numeric_values(pd.Series(pd.to_datetime(["1970-01-02", None])), "datetime")
    assert dates[0] == 86400.0 and np.isnan(dates[1])


def test_a_bundle_saved_before_profiles_loads_and_says_it_has_none(tmp_path: Path) -> None:
    manifest = read_manifest(FIXTURE)
    assert manifest.profile is None
    # Written again, its manifest keeps its exact bytes (and so its hash).
    assert dump_manifest(manifest) == (FIXTURE / "modelkeep.json").read_text("utf-8")
    with pytest.raises(monitor.NoReferenceProfileError, match="no reference profile"):
        monitor.drift(FIXTURE, pd.DataFrame({"tenure": [1]}))
    ran = run("monitor", str(FIXTURE), str(tmp_path))
    assert ran.returncode == 2, ran.output
    assert "no reference profile" in ran.stderr


def _fixture_sample(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n),
            "charges": rng.uniform(20, 120, n).round(2),
            "contract": rng.choice(["month-to-month", "one-year", "two-year"], n),
        }
    )


def test_profile_adds_one_as_a_new_version_with_identical_artifacts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(FIXTURE, old)
    before = read_manifest(old)
    sample = tmp_path / "train.csv"
    _fixture_sample(500, 0).to_csv(sample, index=False)
    ran = run("profile", str(old), "--sample", str(sample), "--env", "ignore")
    assert ran.returncode == 0, ran.output
    assert re.search(r"Profiled churn-v1 as version \d+ in .* bytes of profile\)", ran.stdout)
    after = read_manifest(old)
    assert after.profile is not None and after.profile.rows == 500
    assert int(after.version) == int(before.version) + 1
    assert after.artifacts == before.artifacts
    for artifact in before.artifacts:
        assert (old / artifact.path).read_bytes() == (FIXTURE / artifact.path).read_bytes()
    assert (
        after.model_copy(
            update={"profile": None, "version": before.version, "created_at": before.created_at}
        )
        == before
    )
    modelkeep.load(old, env="ignore")
    report = monitor.drift(old, _fixture_sample(400, 1), outputs="none")
    assert not report.drifted and [f.name for f in report.features] == [
        "tenure",
        "charges",
        "contract",
    ]


def test_profile_to_another_path_and_bad_samples(tmp_path: Path) -> None:
    out = tmp_path / "profiled"
    manifest = monitor.profile(FIXTURE, _fixture_sample(300, 2), output=out, env="ignore")
    assert read_manifest(out) == manifest
    assert read_manifest(FIXTURE).profile is None  # the original is untouched
    with pytest.raises(modelkeep.errors.InvalidArgumentError, match="rows missing contract"):
        monitor.profile(FIXTURE, _fixture_sample(5, 0).drop(columns="contract"), env="ignore")
    ran = run("profile", str(FIXTURE), "--sample", str(tmp_path / "x.txt"))
    assert ran.returncode == 2, ran.output


def test_rows_holding_infinity_are_left_out_of_the_output_profile(
    training: pd.DataFrame, tmp_path: Path
) -> None:
    fitted = pipeline().fit(training[FEATURES], training["churn"])
    sample = training[FEATURES].copy()
    sample.loc[sample.index[:3], "monthly_charges"] = np.inf
    manifest = modelkeep.save(fitted, tmp_path / "m", sample=sample, name="churn")
    profile = manifest.profile
    assert profile is not None and profile.output_rows == 3997
    charges = profile.feature("monthly_charges")
    assert charges is not None and charges.counts is not None
    assert sum(charges.counts) == charges.count - charges.missing  # the infinities: last bin
