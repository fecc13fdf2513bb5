"""The command line, hardened: references everywhere, no traceback for a user's mistake."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import modelkeep
from cli_runner import run
from modelkeep._version import __version__
from modelkeep.cli.verify import UNSIGNED_NOTE


@pytest.fixture
def registered(saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``saved`` registered as churn:1 with alias production, in a temporary MODELKEEP_HOME."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    with modelkeep.Registry() as registry:
        version = registry.register(saved, "churn")
        registry.set_alias("churn", "production", version.version)
        return version.path


def test_inspect_verify_card_and_scan_accept_a_reference(registered: Path) -> None:
    inspected = run("inspect", "churn@production", "--json")
    assert inspected.returncode == 0, inspected.output
    assert json.loads(inspected.stdout) == json.loads((registered / "modelkeep.json").read_text())
    verified = run("verify", "churn@production")
    assert verified.returncode == 0, verified.output
    assert verified.stdout.splitlines()[0].endswith("; sha256 as recorded when registered")
    card = run("card", "churn:1")
    assert card.returncode == 0, card.output
    scanned = run("scan", "churn@production")
    assert scanned.returncode == 0, scanned.output
    assert scanned.stdout.startswith("churn@production (bundle): trusted, state proven")


def test_a_registry_copy_whose_manifest_changed_fails_verify(registered: Path) -> None:
    manifest = registered / "modelkeep.json"
    registered.chmod(0o755)
    manifest.chmod(0o644)
    data = json.loads(manifest.read_text())
    data["target"]["labels"][0]["label"], data["target"]["labels"][1]["label"] = "Leave", "Stay"
    manifest.write_text(json.dumps(data))
    result = run("verify", "churn@production")
    assert result.returncode == 1
    assert result.stdout.startswith(f"FAIL manifest: Manifest {str(manifest)!r}: sha256 expected ")
    assert "(recorded when it was registered)" in result.stdout
    with pytest.raises(modelkeep.ManifestError, match="recorded when it was registered"):
        modelkeep.load("churn@production")


def test_verify_says_what_only_a_signature_protects(saved: Path) -> None:
    # A swapped label map: every check passes, and the note says why it can.
    manifest = saved / "modelkeep.json"
    data = json.loads(manifest.read_text())
    data["target"]["labels"][0]["label"], data["target"]["labels"][1]["label"] = "Leave", "Stay"
    manifest.write_text(json.dumps(data))
    result = run("verify", str(saved))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == UNSIGNED_NOTE
    assert UNSIGNED_NOTE == (
        "NOTE manifest text: not signed. The checks above prove the artifacts are the ones the "
        "manifest lists and that it agrees with what the model confirms, not that its text "
        "(labels, metrics, description) is what was saved: only a signature protects it "
        "(modelkeep sign; verify --public-key). A registry copy is checked against the "
        "manifest hash recorded when it was registered."
    )


def test_a_reference_naming_nothing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for command in ("inspect", "verify"):
        result = run(command, "churn")
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.startswith(
            "Error: No modelkeep bundle at 'churn': no such directory, and no model of that "
            "name in "
        )


NEVER = (
    "Error: trusted: expected names of classes and functions that only build data, got "
    "'os.system', which can never be trusted"
)


@pytest.mark.parametrize("command", ["verify", "convert", "scan"])
def test_a_never_trusted_name_is_misuse_for_every_command(saved: Path, command: str) -> None:
    result = run(command, str(saved), "--trusted", "os.system")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(NEVER)


def test_import_refuses_a_never_trusted_name(tmp_path: Path) -> None:
    args = ["import", "m.pkl", "--sample", "s.csv", "--name", "m", "--trusted", "os.system"]
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith(NEVER)


@pytest.mark.parametrize("command", ["inspect", "verify", "card"])
def test_a_deeply_nested_manifest_is_an_error_not_a_traceback(saved: Path, command: str) -> None:
    (saved / "modelkeep.json").write_text("[" * 100_000)
    result = run(command, str(saved))  # a raw exception would fail here (cli_runner)
    expected = (
        f"Manifest {str(saved / 'modelkeep.json')!r}: expected JSON nested at most 64 levels "
        "deep, got 100000 levels; it was not parsed."
    )
    assert expected in result.stdout + result.stderr
    assert result.returncode == 1


def test_card_to_a_missing_directory_is_an_error(saved: Path) -> None:
    result = run("card", str(saved), "-o", "/nonexistent/dir/x.html")
    assert result.returncode == 1
    assert result.stderr == "Error: No such file or directory: '/nonexistent/dir/x.html'\n"


def test_import_of_missing_files_is_an_error(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_text("a,b\n1,2\n")
    missing = tmp_path / "missing.pkl"
    result = run("import", str(missing), "--sample", str(sample), "--name", "m")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.fullmatch(r"Error: .*\n", result.stderr), result.stderr
    assert str(missing) in result.stderr


def test_version_and_short_help() -> None:
    version = run("--version")
    assert (version.returncode, version.stdout) == (0, f"modelkeep {__version__}\n")
    for args in (["-h"], ["verify", "-h"], ["registry", "-h"], ["registry", "list", "-h"]):
        result = run(*args)
        assert result.returncode == 0, args
        assert "Usage:" in result.stdout
