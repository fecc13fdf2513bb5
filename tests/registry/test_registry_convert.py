"""Converting a registered reference registers the result as a new version with a parent."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import modelkeep
from modelkeep import UnknownReferenceError

from .test_registry_cli import run


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_convert_registers_a_child_version(registry: modelkeep.Registry, tiny_bundle: Path) -> None:
    original = registry.register(tiny_bundle)
    before = _digests(original.path)
    converted = registry.convert("tiny:1", to="onnx")

    assert (converted.ref, converted.parent) == ("tiny:2", "tiny:1")
    assert [f["format"] for f in converted.formats] == ["skops", "onnx"]
    assert _digests(original.path) == before, "the stored original must not change"
    model = modelkeep.load("tiny:2", format="onnx")
    assert model.predict({"a": 1.0, "b": 0.5}).tolist() == ["Yes"]


def test_convert_unknown_reference_registers_nothing(registry: modelkeep.Registry) -> None:
    with pytest.raises(
        UnknownReferenceError,
        match=r"^Reference 'tiny:1': no model named 'tiny' in the registry at '[^']+'; it holds "
        + re.escape("no model. List models with `modelkeep registry list`"),
    ):
        registry.convert("tiny:1", to="onnx")
    assert registry.versions() == []


def test_cli_convert_of_a_reference(backend_env: dict[str, str], tiny_bundle: Path) -> None:
    assert run(backend_env, "registry", "register", str(tiny_bundle)).returncode == 0
    result = run(backend_env, "convert", "tiny@missing", "--to", "onnx")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    result = run(backend_env, "convert", "tiny:1", "--to", "onnx")
    assert result.returncode == 0, result.stderr
    assert "Registered tiny:2 (parent tiny:1) with artifacts/pipeline.onnx" in result.stdout
