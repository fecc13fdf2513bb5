"""The modelkeep command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelkeep", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inspect_shows_the_bundle(saved: Path) -> None:
    result = run("inspect", str(saved))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "churn version 1",
        "binary",
        "income",
        "float",
        "basic, plus, premium",
        "Leave",
        "f1: 0.7",
        "data version: d1",
        "golden samples: 20 rows",
        "scikit-learn",
        "artifacts/pipeline.skops",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"


def test_inspect_shows_the_whole_artifact_hash(saved: Path) -> None:
    digest = json.loads((saved / "modelkeep.json").read_text())["artifacts"][0]["sha256"]
    out = run("inspect", str(saved)).stdout
    folded = "".join(line.split("│")[-2].strip() for line in out.splitlines() if "│" in line)
    assert digest in folded


def test_inspect_json_is_the_manifest(saved: Path) -> None:
    result = run("inspect", str(saved), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == json.loads((saved / "modelkeep.json").read_text())


def test_inspect_missing_bundle_is_an_error(tmp_path: Path) -> None:
    result = run("inspect", str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert result.stderr.startswith("Error: No modelkeep bundle at ")
    assert result.stdout == ""


def test_verify_passes_then_fails_on_tampering(saved: Path) -> None:
    result = run("verify", str(saved))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "PASS manifest",
        "PASS integrity",
        "PASS environment",
        "PASS artifact",
        "PASS golden samples",
    ]
    artifact = saved / "artifacts" / "pipeline.skops"
    artifact.write_bytes(artifact.read_bytes() + b"!")
    result = run("verify", str(saved))
    assert result.returncode == 1
    assert "FAIL integrity: Artifact 'artifacts/pipeline.skops': size expected" in result.stdout


def test_verify_strict_environment(saved: Path) -> None:
    manifest = saved / "modelkeep.json"
    data = json.loads(manifest.read_text())
    data["environment"]["packages"]["numpy"] = "1.0.0"
    manifest.write_text(json.dumps(data))
    warned = run("verify", str(saved))
    assert warned.returncode == 0
    assert "PASS environment: differs (warning): numpy: recorded 1.0.0" in warned.stdout
    strict = run("verify", str(saved), "--env", "strict")
    assert strict.returncode == 1
    assert "FAIL environment: Environment differs" in strict.stdout


@pytest.mark.parametrize(
    "args", [("verify",), ("verify", ".", "--env", "loose"), ("frobnicate",)], ids=str
)
def test_misuse_exits_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stdout + result.stderr
