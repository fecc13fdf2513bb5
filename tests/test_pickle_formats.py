"""The joblib and pickle formats of a bundle: saved, recorded, loaded only through the scan and
the restricted unpickler, and refused when an artifact is swapped for a hostile one."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelkeep
from modelkeep.errors import ArtifactFormatError, InvalidChoiceError, UntrustedTypesError
from modelkeep.safety import ScanIssue


class _Run:
    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, self.args)


@pytest.mark.parametrize(
    ("fmt", "extension", "compression", "magic"),
    [
        ("pickle", "pkl", None, b"\x80\x05"),
        ("joblib", "joblib", None, b"\x80"),
        ("joblib:zlib", "joblib", "zlib", b"\x78"),
        ("joblib:gzip", "joblib", "gzip", b"\x1f\x8b"),
        ("joblib:lzma", "joblib", "lzma", b"]\x00\x00"),
        ("joblib:xz", "joblib", "xz", b"\xfd7zXZ"),
    ],
)
def test_save_and_load(
    fmt: str,
    extension: str,
    compression: str | None,
    magic: bytes,
    tmp_path: Path,
    fitted: Callable[[str], Any],
    data: Any,
) -> None:
    frame, _ = data
    model = fitted("random_forest")
    path = tmp_path / "bundle"
    manifest = modelkeep.save(model, path, sample=frame, name="churn", formats=[fmt])
    (artifact,) = manifest.artifacts
    assert artifact.path == f"artifacts/pipeline.{extension}"
    assert artifact.format == fmt.partition(":")[0]
    assert (path / artifact.path).read_bytes().startswith(magic)
    details = artifact.details
    assert details["needs_trust"] == []
    assert "sklearn.tree._tree.Tree" in details["references"]
    if artifact.format == "joblib":
        assert details["compression"] == compression
    else:
        assert details["protocol"] == 5
    loaded = modelkeep.load(path)
    assert loaded.format == artifact.format
    np.testing.assert_array_equal(loaded.estimator.predict_proba(frame), model.predict_proba(frame))
    checks = modelkeep.verify(path)
    assert [c.passed for c in checks] == [True] * len(checks)
    assert checks[3].detail == f"{artifact.path} loaded ({artifact.format}), 15 tree(s) validated"


def test_one_artifact_per_format_family(
    tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    frame, _ = data
    with pytest.raises(
        InvalidChoiceError,
        match=re.escape(
            "formats (one joblib artifact per bundle): expected one of 'joblib', got 'joblib:gzip'."
        ),
    ):
        modelkeep.save(
            fitted("logistic"),
            tmp_path / "b",
            sample=frame,
            name="m",
            formats=["joblib", "joblib:gzip"],
        )
    assert not (tmp_path / "b").exists()


def _swap_artifact(bundle: Path, artifact_path: str, data: bytes) -> None:
    """Replace an artifact and fix its hash in the manifest, as an attacker with write access
    to an unsigned bundle could."""
    (bundle / artifact_path).write_bytes(data)
    manifest_path = bundle / "modelkeep.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["artifacts"]:
        if entry["path"] == artifact_path:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
            entry["size"] = len(data)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("fmt", ["pickle", "joblib"])
def test_a_hostile_artifact_is_refused_before_anything_runs(
    fmt: str, tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    frame, _ = data
    bundle = tmp_path / "bundle"
    manifest = modelkeep.save(fitted("logistic"), bundle, sample=frame, name="m", formats=[fmt])
    marker = tmp_path / "marker"
    artifact = manifest.artifacts[0].path
    _swap_artifact(bundle, artifact, pickle.dumps(_Run(os.system, f"touch {marker}"), protocol=4))
    message = re.escape(
        f"Artifact {artifact!r} references 1 untrusted type(s): posix.system. modelkeep did not "
        "load it."
    )
    with pytest.raises(UntrustedTypesError, match=message):
        modelkeep.load(bundle)
    checks = modelkeep.verify(bundle)
    assert [(c.name, c.passed) for c in checks][-1] == ("artifact", False)
    assert re.match(message, checks[-1].detail)
    report = modelkeep.scan(bundle)
    assert (report.kind, report.untrusted) == ("bundle", ("posix.system",))
    assert {r.source for r in report.references} == {artifact}
    assert not marker.exists()


def test_scan_of_a_bundle_covers_every_artifact(
    tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    frame, _ = data
    bundle = tmp_path / "bundle"
    modelkeep.save(
        fitted("hist_gradient_boosting"),
        bundle,
        sample=frame,
        name="m",
        formats=["skops", "joblib:xz", "pickle"],
    )
    report = modelkeep.scan(bundle)
    assert report.safe
    assert {r.source for r in report.references} == {
        "artifacts/pipeline.skops",
        "artifacts/pipeline.joblib",
        "artifacts/pipeline.pkl",
    }
    predictor = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    assert {r.source for r in report.references if r.name == predictor} == {
        "artifacts/pipeline.skops",
        "artifacts/pipeline.joblib",
        "artifacts/pipeline.pkl",
    }


# ------------------------------------------------ an artifact is judged by its content


def _onnx_model() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return bytes(helper.make_model(graph).SerializeToString())


def _relabel(bundle: Path, data: bytes, path: str, fmt: str) -> None:
    """Make the bundle's one artifact ``data`` at ``path``, recorded as format ``fmt``, with
    a correct hash: what an attacker writing an unsigned bundle can do."""
    manifest_path = bundle / "modelkeep.json"
    manifest = json.loads(manifest_path.read_text())
    (entry,) = manifest["artifacts"]
    (bundle / entry["path"]).unlink()
    (bundle / path).write_bytes(data)
    entry.update(
        path=path, format=fmt, sha256=hashlib.sha256(data).hexdigest(), size=len(data), details={}
    )
    manifest_path.write_text(json.dumps(manifest))


def _hostile_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Run(os.system, f"touch {marker}"), protocol=4)


MISLABELLED = {
    "pickle-as-onnx": ("onnx", "artifacts/pipeline.onnx", "pickle", "pickle"),
    "pickle-as-skops": ("skops", "artifacts/pipeline.skops", "pickle", "pickle"),
    "zlib-joblib-as-onnx": ("onnx", "artifacts/pipeline.onnx", "joblib", "joblib (zlib)"),
    "skops-as-pickle": ("pickle", "artifacts/pipeline.pkl", "skops", "skops"),
    "onnx-as-joblib": ("joblib", "artifacts/pipeline.joblib", "onnx", "onnx"),
}


def _content(kind: str, bundle: Path, marker: Path) -> bytes:
    if kind == "pickle":
        return _hostile_pickle(marker)
    if kind == "joblib":
        import io

        import joblib

        buffer = io.BytesIO()
        joblib.dump(_Run(os.system, f"touch {marker}"), buffer, compress=3)
        return buffer.getvalue()
    if kind == "onnx":
        return _onnx_model()
    return (bundle / "artifacts" / "pipeline.skops").read_bytes()


@pytest.mark.parametrize("case", list(MISLABELLED), ids=list(MISLABELLED))
def test_an_artifact_whose_content_is_not_its_recorded_format(
    case: str, tmp_path: Path, fitted: Callable[[str], Any], data: Any
) -> None:
    claimed, path, kind, scanned_as = MISLABELLED[case]
    frame, _ = data
    bundle = tmp_path / "bundle"
    modelkeep.save(fitted("logistic"), bundle, sample=frame, name="m")
    marker = tmp_path / "marker"
    _relabel(bundle, _content(kind, bundle, marker), path, claimed)

    report = modelkeep.scan(bundle)
    assert not report.safe
    problem = (
        f"the manifest records format {claimed!r}, but the content is {scanned_as}: the "
        "manifest misdescribes the file, and load() refuses it"
    )
    assert report.issues[0] == ScanIssue(path, "", None, problem)
    if kind in ("pickle", "joblib"):  # scanned as the pickle it is, not skipped as ONNX
        assert report.untrusted == ("posix.system",)

    found = "skops" if kind == "skops" else "onnx" if kind == "onnx" else "pickle"
    message = (
        f"Artifact {path!r}: expected {claimed} content, as the manifest records, got {found} "
        "content. The manifest misdescribes the file (it was crafted or mislabelled) and "
        "modelkeep did not load it; save the model again or get an intact copy of the bundle."
    )
    with pytest.raises(ArtifactFormatError, match=re.escape(message)):
        modelkeep.load(bundle, env="ignore")
    checks = modelkeep.verify(bundle, env="ignore")
    assert (checks[-1].name, checks[-1].passed, checks[-1].detail) == ("artifact", False, message)
    assert not marker.exists()


def test_an_onnx_file_is_scanned_as_onnx(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"  # the name says nothing: the bytes decide
    path.write_bytes(_onnx_model())
    report = modelkeep.scan(path)
    assert (report.kind, report.safe, report.references) == ("onnx", True, ())


@pytest.mark.parametrize("onnx_installed", [True, False], ids=["onnx", "no-onnx"])
def test_sniffing_tells_onnx_from_pickle_with_or_without_onnx(
    onnx_installed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from modelkeep.safety.sniff import sniff

    model, hostile = _onnx_model(), _hostile_pickle(tmp_path / "marker")
    if not onnx_installed:
        monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert sniff(model) == "onnx"
    assert sniff(model, parse_onnx=False) == "onnx"
    assert sniff(hostile) == "pickle"
    assert sniff(model[:-3]) == "pickle"  # truncated: not a whole protobuf message
    assert sniff(b"PK\x03\x04rest") == "skops"
