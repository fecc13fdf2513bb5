"""`modelkeep scan` and `modelkeep import`, run in this process through their real code."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib

from cli_runner import run

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "picklescan"


class _Run:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (self.command,))


def _legacy(tmp_path: Path, fitted: Callable[[str], Any]) -> Path:
    path = tmp_path / "legacy.joblib"
    joblib.dump(fitted("random_forest"), path, compress=3)
    return path


def _hostile(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps(_Run(f"touch {tmp_path / 'marker'}"), protocol=4))
    return path


def test_scan_trusted_file(tmp_path: Path, fitted: Callable[[str], Any]) -> None:
    result = run("scan", str(_legacy(tmp_path, fitted)))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'legacy.joblib'} (joblib (zlib)): trusted, state proven"
    assert any(line.split()[:2] == ["allowlisted", "sklearn.tree._tree.Tree"] for line in lines[1:])
    assert all(line.startswith("  allowlisted  ") for line in lines[1:])


def test_scan_untrusted_file(tmp_path: Path) -> None:
    path = _hostile(tmp_path)
    result = run("scan", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path} (pickle): UNTRUSTED",
        "  never allowed  posix.system  STACK_GLOBAL at byte 28, 1x",
    ]
    assert not (tmp_path / "marker").exists()


def test_scan_says_when_the_state_is_refused(tmp_path: Path) -> None:
    import pickle

    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    model.max_iter = 10**9  # every name allowed; the state is what is wrong
    path = tmp_path / "hostile_state.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    result = run("scan", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path} (pickle): REFUSED, state refused"
    assert lines[-1] == (
        "  unsafe  Refusing model: max_iter: expected at most 100,000 iterations, got "
        "1000000000. A fitted model never has this; the file was crafted or corrupted, and "
        "nothing in it was run. Do not use it; save the model again from its source."
    )


def test_scan_unreadable_files_exit_2(tmp_path: Path, fitted: Callable[[str], Any]) -> None:
    result = run(
        "scan",
        str(_legacy(tmp_path, fitted)),
        str(_hostile(tmp_path)),
        str(CORPUS / "broken_model.pkl"),
        str(tmp_path / "missing.pkl"),
    )
    assert result.returncode == 2
    out = result.stdout
    assert f"{CORPUS / 'broken_model.pkl'} (pickle): UNREADABLE" in out
    assert (
        "  unreadable  byte 16: BINUNICODE: declares a string of 543,558,206 bytes, only 63 "
        "remain" in out
    )
    assert f"{tmp_path / 'missing.pkl'}: UNREADABLE" in out
    assert "  cannot be read: FileNotFoundError: [Errno 2] No such file or directory" in out


def test_scan_json(tmp_path: Path, fitted: Callable[[str], Any]) -> None:
    result = run("scan", "--json", str(_legacy(tmp_path, fitted)), str(_hostile(tmp_path)))
    assert result.returncode == 1
    reports = json.loads(result.stdout)
    assert [(r["status"], r["safe"], r["untrusted"]) for r in reports] == [
        ("trusted", True, []),
        ("untrusted", False, ["posix.system"]),
    ]
    from modelkeep.safety.report import scan

    # The command maps the library's own verdict; it does not judge.
    assert [scan(r["path"]).status for r in reports] == ["trusted", "untrusted"]
    (ref,) = reports[1]["references"]
    assert ref == {
        "name": "posix.system",
        "trusted": False,
        "verdict": "never allowed",
        "opcode": "STACK_GLOBAL",
        "offset": 28,
        "count": 1,
        "source": str(tmp_path / "hostile.pkl"),
        "stream": "main",
    }


def test_scan_with_trusted_names(tmp_path: Path) -> None:
    import collections

    path = tmp_path / "counter.pkl"
    path.write_bytes(pickle.dumps(collections.Counter("ab"), protocol=4))
    assert run("scan", str(path)).returncode == 1
    trusted = run("scan", str(path), "--trusted", "collections.Counter")
    assert trusted.returncode == 0
    assert "  trusted=  collections.Counter  STACK_GLOBAL at byte 35, 1x" in trusted.stdout
    never = run("scan", str(path), "--trusted", "os.system")
    assert never.returncode == 2
    assert never.stderr.startswith(
        "Error: trusted: expected names of classes and functions that only build data, got "
        "'os.system', which can never be trusted"
    )


def test_import(tmp_path: Path, fitted: Callable[[str], Any], data: Any) -> None:
    frame, _ = data
    frame.to_csv(tmp_path / "train.csv", index=False)
    legacy = _legacy(tmp_path, fitted)
    result = run(
        "import",
        str(legacy),
        "--sample",
        "train.csv",
        "--name",
        "churn",
        "--labels",
        '{"0": "Stay", "1": "Leave"}',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"Imported {str(legacy)!r} as bundle 'churn': churn version 1, binary, 6 features, 20 "
        "golden samples; artifacts/pipeline.joblib (joblib)\n"
    )
    verify = run("verify", str(tmp_path / "churn"))
    assert verify.returncode == 0, verify.stdout


def test_import_refuses_hostile_and_bad_labels(tmp_path: Path, data: Any) -> None:
    frame, _ = data
    frame.to_csv(tmp_path / "train.csv", index=False)
    hostile = _hostile(tmp_path)
    result = run("import", str(hostile), "--sample", "train.csv", "--name", "x", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: Artifact {str(hostile)!r} references 1 untrusted type(s): posix.system."
    )
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "marker").exists()
    bad = run(
        "import",
        str(hostile),
        "--sample",
        "train.csv",
        "--name",
        "x",
        "--labels",
        "[1]",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "expected a JSON object, got '[1]'" in bad.stderr
