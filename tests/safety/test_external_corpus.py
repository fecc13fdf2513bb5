"""picklescan's own hostile test files (tests/corpora/picklescan, see its README).

Every hostile file is flagged by scan and refused by safe_load with nothing run; the benign
files load; the corrupt one errors cleanly. They are never given to a plain unpickler.
"Nothing run" is checked in a child process with a Python audit hook installed before any
file is touched: no process, exec, compile, socket, ctypes or find_class event fires and no
new module is imported while the files are refused.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import modelkeep
from modelkeep.errors import CorruptPickleError, UnsafePickleError, UntrustedTypesError

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "picklescan"
BENIGN = ("benign0_v0.pkl", "benign0_v3.pkl", "benign0_v4.pkl")
CORRUPT = "broken_model.pkl"


def _files() -> list[Path]:
    assert CORPUS.is_dir(), f"the picklescan corpus is missing: expected it at {CORPUS}"
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".pkl", ".pickle"))


def _hostile() -> list[Path]:
    return [p for p in _files() if p.name not in (*BENIGN, CORRUPT)]


def test_corpus_is_complete() -> None:
    # A shrunken corpus would pass the tests below vacuously.
    assert len(_hostile()) == 83
    assert {p.name for p in _files()} >= {*BENIGN, CORRUPT}


@pytest.mark.parametrize("path", _hostile(), ids=lambda p: p.name)
def test_hostile_file_is_flagged_and_refused(path: Path) -> None:
    report = modelkeep.scan(path)
    assert not report.safe
    assert report.untrusted or report.issues
    with pytest.raises((UntrustedTypesError, UnsafePickleError, CorruptPickleError)) as info:
        modelkeep.safe_load(path)
    if report.errors:
        assert isinstance(info.value, CorruptPickleError)
        assert info.value.untrusted == report.untrusted
    else:
        assert isinstance(info.value, UntrustedTypesError)
        assert info.value.types == report.untrusted


@pytest.mark.parametrize("name", BENIGN)
def test_benign_file_loads(name: str) -> None:
    assert modelkeep.scan(CORPUS / name).safe
    assert modelkeep.safe_load(CORPUS / name) == ["a", "b", "c"]


def test_corrupt_file_errors_cleanly() -> None:
    path = CORPUS / CORRUPT
    report = modelkeep.scan(path)
    assert [(e.offset, e.problem) for e in report.errors] == [
        (16, "BINUNICODE: declares a string of 543,558,206 bytes, only 63 remain")
    ]
    with pytest.raises(
        CorruptPickleError,
        match=re.escape(
            f"Artifact {str(path)!r}: byte 16: BINUNICODE: declares a string of 543,558,206 "
            "bytes, only 63 remain. Expected a complete, well-formed pickle stream; the file is "
            "truncated, corrupt or crafted, and modelkeep did not load it. Before that point "
            "it references untrusted name(s): 'builtins.exec'. Restore the file from a copy "
            "or save the model again."
        ),
    ):
        modelkeep.safe_load(path)


def test_known_bypasses_are_named() -> None:
    """Files built to slip past denylist scanners are refused by name."""
    expected = {
        "malicious21.pkl": ("timeit.timeit",),
        "GHSA-vvpj-8cmc-gx39.pkl": ("pkgutil.resolve_name",),
        "GHSA-84r2-jw7c-4r5q.pkl": ("operator.methodcaller", "pydoc.locate"),
        "malicious-invalid-bytes.pkl": ("os.system",),
        "malicious6.pkl": ("requests.api.get",),
        "keyerror-exploit.pkl": ("os.system",),
    }
    assert {n: modelkeep.scan(CORPUS / n).untrusted for n in expected} == expected


_AUDITED = textwrap.dedent(
    """
    import json, sys
    import modelkeep
    from modelkeep.errors import ModelkeepError

    modelkeep.safe_load(sys.argv[2])  # warm up: every module the loader needs is imported
    events = []
    WATCHED = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.startfile",
               "subprocess.Popen", "exec", "compile", "socket.", "ctypes.", "pickle.find_class",
               "urllib.Request", "webbrowser.open", "pty.spawn", "os.remove", "shutil.")

    def hook(event, args):
        if event.startswith(WATCHED):
            events.append(event)

    before = set(sys.modules)
    sys.addaudithook(hook)
    outcome = {}
    for path in json.loads(sys.argv[1]):
        try:
            modelkeep.safe_load(path)
            outcome[path] = "loaded"
        except ModelkeepError as exc:
            outcome[path] = type(exc).__name__
    imported = sorted(set(sys.modules) - before)
    refused_events = list(events)
    # Control: the hook sees a plain unpickler resolve a (harmless) global.
    import collections, pickle
    pickle.loads(pickle.dumps(collections.OrderedDict))
    print(json.dumps({"outcome": outcome, "events": refused_events, "imported": imported,
                      "control": events[len(refused_events):]}))
    """
)


def test_refusing_the_corpus_runs_nothing() -> None:
    paths = [str(p) for p in _hostile()]
    result = subprocess.run(
        [sys.executable, "-c", _AUDITED, json.dumps(paths), str(CORPUS / BENIGN[0])],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(result.stdout)
    assert found["control"] == ["pickle.find_class"]
    assert found["events"] == []
    assert found["imported"] == []
    assert set(found["outcome"].values()) <= {"UntrustedTypesError", "CorruptPickleError"}
    assert len(found["outcome"]) == len(paths)
