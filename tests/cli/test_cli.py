"""The modelkeep command, run in this process through its real code (``cli_runner``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelkeep
from cli_runner import Ran, run


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
        "PASS manifest claims",
        "PASS golden samples",
        "NOTE manifest text",
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


# ------------------------------------------------ no control character reaches a terminal

# An OSC title change (ended by BEL), a clear-screen CSI, and a C1 one-byte CSI.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m"
# Every C0/C1 control but the newline that ends each printed line.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def run_wide(*args: str) -> Ran:
    return run(*args, columns=250)


@pytest.fixture
def hostile(tmp_path: Path, fitted: Callable[[str], Any], data: Any) -> Path:
    """A bundle whose manifest text carries terminal escape sequences everywhere it can."""
    frame, _ = data
    path = tmp_path / "hostile"
    modelkeep.save(
        fitted("logistic"),
        path,
        sample=frame,
        name="churn" + HOSTILE,
        labels={0: "Stay" + HOSTILE, 1: "Leave"},
        metrics={"f1" + HOSTILE: 0.7},
        data_version="d1" + HOSTILE,
        description="about" + HOSTILE,
        tags=["tag" + HOSTILE],
    )
    manifest = path / "modelkeep.json"
    recorded = json.loads(manifest.read_text())  # what save() does not take from the caller
    recorded["features"][0]["name"] += HOSTILE
    recorded["model_type"] += HOSTILE
    recorded["environment"]["platform"] += HOSTILE
    recorded["environment"]["packages"]["numpy"] = "0.0" + HOSTILE
    manifest.write_text(json.dumps(recorded, ensure_ascii=False))
    return path


def test_printable_renders_every_control_character_visibly() -> None:
    from modelkeep._text import json_text, printable

    assert printable(HOSTILE) == SHOWN
    assert printable("a\tb\nc\x00\x7f\x85") == "a\\x09b\\x0ac\\x00\\x7f\\x85"
    assert printable("line\nnext\x1b", keep="\n") == "line\nnext\\x1b"
    assert printable("é — ✓") == "é — ✓"  # printable text is left alone
    text = json.dumps({"k": HOSTILE + "é"}, ensure_ascii=False)
    assert CONTROL.search(json_text(text)) is None
    assert json.loads(json_text(text)) == {"k": HOSTILE + "é"}


def test_inspect_shows_manifest_text_without_control_characters(hostile: Path) -> None:
    result = run_wide("inspect", str(hostile))
    assert result.returncode == 0, result.stderr
    assert CONTROL.search(result.stdout) is None, repr(result.stdout)
    for shown in (
        f"churn{SHOWN} version 1",
        f"about{SHOWN}",
        f"tags: tag{SHOWN}",
        f"f1{SHOWN}: 0.7",
        f"data version: d1{SHOWN}",
        f"numpy: 0.0{SHOWN}",
    ):
        assert shown in result.stdout, f"{shown!r} missing from:\n{result.stdout}"


def test_inspect_json_stays_the_manifest_without_raw_controls(hostile: Path) -> None:
    result = run_wide("inspect", str(hostile), "--json")
    assert result.returncode == 0, result.stderr
    assert CONTROL.search(result.stdout) is None, repr(result.stdout)
    assert json.loads(result.stdout) == json.loads((hostile / "modelkeep.json").read_text())


def test_verify_shows_environment_differences_without_control_characters(
    hostile: Path,
) -> None:
    result = run_wide("verify", str(hostile))
    assert CONTROL.search(result.stdout + result.stderr) is None, repr(result.stdout)
    assert f"numpy: recorded 0.0{SHOWN}" in result.stdout


def test_an_error_quoting_manifest_text_has_no_control_characters(saved: Path) -> None:
    manifest = saved / "modelkeep.json"
    recorded = json.loads(manifest.read_text())
    recorded["metrics"] = {"f1" + HOSTILE: "high"}
    manifest.write_text(json.dumps(recorded))
    result = run_wide("inspect", str(saved))
    assert result.returncode == 1
    assert CONTROL.search(result.stderr) is None, repr(result.stderr)
    assert result.stderr.startswith("Error: Manifest ")
    assert f"field 'metrics.f1{SHOWN}'" in result.stderr


def test_scan_shows_names_from_a_pickle_without_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "names.pkl"
    # A GLOBAL opcode naming a module and a name that carry escape sequences.
    path.write_bytes(b"c" + f"os{HOSTILE}\nsystem{HOSTILE}\n".encode() + b".")
    result = run_wide("scan", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert CONTROL.search(result.stdout) is None, repr(result.stdout)
    assert f"os{SHOWN}.system{SHOWN}" in result.stdout


def test_a_warning_quoting_the_manifest_has_no_control_characters(hostile: Path) -> None:
    # convert loads the bundle first: the environment differences warn, quoting the manifest.
    result = run_wide("convert", str(hostile), "--to", "onnx")
    assert CONTROL.search(result.stdout + result.stderr) is None, repr(result.stderr)
    assert f"numpy: recorded 0.0{SHOWN}" in result.stderr
    assert result.stderr.startswith("Warning: ")


def test_the_installed_console_script_runs(saved: Path) -> None:
    """The one subprocess test: the real entry point, as a user starts it."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("modelkeep")
    shown = subprocess.run(
        [str(script), "inspect", str(saved)], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "churn version 1" in shown.stdout
    misuse = subprocess.run(
        [str(script), "verify", str(saved), "--env", "loose"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert misuse.returncode == 2
    assert "Traceback" not in misuse.stderr


def test_an_argument_outside_its_choices_exits_2_with_the_library_message(saved: Path) -> None:
    """The library decides (InvalidChoiceError.exit_code); the command only renders."""
    result = run("convert", str(saved), "--to", "nope")
    assert result.returncode == 2, result.output
    assert result.stderr.startswith("Error: to: expected one of 'joblib', ")
    assert result.stderr.rstrip().endswith("got 'nope'.")
    assert modelkeep.errors.InvalidChoiceError.exit_code == 2
    assert modelkeep.errors.ManifestError.exit_code == 1
