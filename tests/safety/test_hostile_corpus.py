"""The hostile corpus built in tests/safety/payloads.py: scan flags every payload, safe_load
refuses it, and its marker never appears. A control run proves each payload is live."""

from __future__ import annotations

import importlib
import json
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from payloads import PAYLOADS, Payload, extension, touch

import modelkeep
from modelkeep.errors import UntrustedTypesError

# Every untrusted name each payload references, as safe_load must list them.
EXPECTED_UNTRUSTED = {
    "builtins-eval": ("builtins.eval",),
    "builtins-exec": ("builtins.exec",),
    "getattr-import-chain": ("builtins.__import__", "builtins.getattr"),
    "pickle-loads-embedded": ("pickle.loads",),
    "inst": ("os.system",),
    "obj": ("os.system",),
    "dotted-name-through-allowed-module": ("joblib.numpy_pickle.os.system",),
}


def _write(payload: Payload, tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / f"marker-{payload.id}"
    name, data = payload.build(marker)
    path = tmp_path / name
    path.write_bytes(data)
    return path, marker


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.id for p in PAYLOADS])
def test_scan_flags_it_safe_load_refuses_it_nothing_runs(payload: Payload, tmp_path: Path) -> None:
    path, marker = _write(payload, tmp_path)
    expected = EXPECTED_UNTRUSTED.get(payload.id, ("posix.system",))
    with extension(payload):
        report = modelkeep.scan(path)
        assert not report.safe
        assert report.untrusted == expected
        assert payload.untrusted in report.untrusted
        message = str(UntrustedTypesError(str(path), expected))
        with pytest.raises(UntrustedTypesError, match=re.escape(message)):
            modelkeep.safe_load(path)
    assert not marker.exists()


def test_untrusted_message_in_full(tmp_path: Path) -> None:
    payload = next(p for p in PAYLOADS if p.id == "global-protocol-4")
    path, marker = _write(payload, tmp_path)
    with pytest.raises(
        UntrustedTypesError,
        match=re.escape(
            f"Artifact {str(path)!r} references 1 untrusted type(s): posix.system. modelkeep "
            "did not load it. If you know where this file came from and trust these exact "
            "types, pass them as trusted=[...]."
        ),
    ) as info:
        modelkeep.safe_load(path)
    assert info.value.types == ("posix.system",)
    assert info.value.artifact == str(path)
    assert not marker.exists()


def test_scan_reports_where_each_name_hides(tmp_path: Path) -> None:
    found = {}
    for payload_id in (
        "stack-global-from-memo",
        "ext-ext2",
        "joblib-object-array",
        "second-stream-after-stop",
        "binbytes-past-frame",
        "joblib-xz",
    ):
        payload = next(p for p in PAYLOADS if p.id == payload_id)
        path, _ = _write(payload, tmp_path)
        with extension(payload):
            report = modelkeep.scan(path)
        (ref,) = [r for r in report.references if r.name == "posix.system"]
        found[payload_id] = (report.kind, ref.opcode, ref.stream, ref.verdict)
        if payload_id == "second-stream-after-stop":
            first = len(pickle.dumps({"coef": [0.5, 1.5]}, protocol=4))
            trailing = len(path.read_bytes()) - first
            assert [(i.offset, i.problem) for i in report.issues] == [
                (
                    first,
                    f"{trailing:,} byte(s) of data after the stream's STOP; a reader that "
                    "calls load() again would run them",
                )
            ]
        if payload_id == "binbytes-past-frame":
            assert report.issues[0].offset == 11
            assert report.issues[0].problem.startswith(
                "BINBYTES runs past the end of its frame at byte 17 (to byte 19)"
            )
    object_stream = found["joblib-object-array"][2]
    assert re.fullmatch(r"object array at byte \d+", object_stream)
    assert found == {
        "stack-global-from-memo": ("pickle", "STACK_GLOBAL", "main", "never allowed"),
        "ext-ext2": ("pickle", f"EXT2 {0x1F2}", "main", "never allowed"),
        "joblib-object-array": ("joblib", "STACK_GLOBAL", object_stream, "never allowed"),
        "second-stream-after-stop": ("pickle", "STACK_GLOBAL", "stream 2", "never allowed"),
        "binbytes-past-frame": ("pickle", "GLOBAL", "main", "never allowed"),
        "joblib-xz": ("joblib (xz)", "STACK_GLOBAL", "main", "never allowed"),
    }


def test_refusal_happens_before_anything_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit is a string comparison: make importing fail, and a hostile file is still
    refused, by name, with nothing imported."""
    imported: list[str] = []

    def refuse(name: str, package: str | None = None) -> object:
        imported.append(name)
        raise AssertionError(f"import_module({name!r}) called while refusing a file")

    monkeypatch.setattr(importlib, "import_module", refuse)
    path = tmp_path / "never.pkl"
    path.write_bytes(
        b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00cmodelkeep_never_imported\nrun\n)R."
    )
    with pytest.raises(UntrustedTypesError, match=re.escape("modelkeep_never_imported.run")):
        modelkeep.safe_load(path)
    assert imported == []
    assert "modelkeep_never_imported" not in sys.modules


_CONTROL = textwrap.dedent(
    """
    import copyreg, json, pickle, sys
    import joblib
    for path, loader, code in json.loads(sys.argv[1]):
        if code is not None:
            copyreg.add_extension("posix", "system", code)
        try:
            if loader == "joblib":
                joblib.load(path)
            elif loader == "pickle-stream":
                with open(path, "rb") as stream:
                    while True:
                        pickle.load(stream)
            else:
                with open(path, "rb") as stream:
                    pickle.loads(stream.read())
        except Exception:
            pass
        finally:
            if code is not None:
                copyreg.remove_extension("posix", "system", code)
    """
)


def test_payloads_are_live(tmp_path: Path) -> None:
    """Run every payload through the plain loader it targets, in a child process: each
    marker appears, so the tests above would notice if modelkeep ran one."""
    jobs, markers = [], []
    for payload in PAYLOADS:
        marker = tmp_path / f"marker-{payload.id}"
        name, data = payload.build(marker)
        path = tmp_path / name
        path.write_bytes(data)
        jobs.append([str(path), payload.loader, payload.extension])
        markers.append(marker)
    assert all(touch(m).startswith("touch ") for m in markers)
    subprocess.run(
        [sys.executable, "-c", _CONTROL, json.dumps(jobs)], check=True, timeout=120, cwd=tmp_path
    )
    missing = [p.id for p, m in zip(PAYLOADS, markers, strict=True) if not m.exists()]
    assert missing == []
