"""The manifest's claims checked against the artifact, and its size and depth bounded."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelkeep
from modelkeep._load import resolve_source
from modelkeep.errors import ManifestError, NeverTrustedError
from modelkeep.manifest import MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH
from modelkeep.registry.refs import Reference

ADVICE = (
    " The bundle is damaged or was not written by modelkeep; save the model again or "
    "restore the bundle from a copy."
)


def _edit(bundle: Path, change: Callable[[dict[str, Any]], None]) -> str:
    """Edit modelkeep.json (an unsigned bundle records no hash of it); its path as shown."""
    manifest = bundle / "modelkeep.json"
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data))
    return str(manifest)


def _claim(source: str, field: str, detail: str) -> str:
    return re.escape(
        f"Manifest {source!r}: field {field!r} disagrees with the artifact: {detail}. The "
        "manifest was edited after the model was saved." + ADVICE
    )


def _drop_visits(data: dict[str, Any]) -> None:
    data["features"] = [f for f in data["features"] if f["name"] != "visits"]


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def _reorder(data: dict[str, Any]) -> None:
    data["features"] = data["features"][::-1]


CLAIMS = [
    (
        _drop_visits,
        "features",
        "expected the 6 feature(s) the model was fitted on (its feature_names_in_), in "
        "order, got 5: missing 'visits'",
    ),
    (
        _reorder,
        "features",
        "expected the 6 feature(s) the model was fitted on (its feature_names_in_), in "
        "order, got 6: the same names in another order",
    ),
    (
        _set(("task",), "regression"),
        "task",
        "expected binary or multiclass (the model, Pipeline, is a classifier), got 'regression'",
    ),
    (
        _set(("task",), "multiclass"),
        "task",
        "expected 'binary' (the model has 2 classes), got 'multiclass'",
    ),
    (
        _set(("target", "classes"), [0, 2]),
        "target.classes",
        "expected the model's classes_ [0, 1], got [0, 2]",
    ),
    (
        _set(("target", "labels"), [{"value": 0, "label": "Stay"}, {"value": 2, "label": "x"}]),
        "target.labels",
        "expected one label for each of the model's classes [0, 1], got labels for [0, 2]",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    CLAIMS,
    ids=[
        "feature-removed",
        "features-reordered",
        "task-regression",
        "task-multiclass",
        "classes",
        "label-keys",
    ],
)
def test_a_claim_the_artifact_contradicts_is_refused_on_load(
    saved: Path, change: Callable[[dict[str, Any]], None], field: str, detail: str
) -> None:
    source = _edit(saved, change)
    with pytest.raises(ManifestError, match=_claim(source, field, detail)):
        modelkeep.load(saved)
    checks = modelkeep.verify(saved)
    assert [(c.name, c.passed) for c in checks][-2:] == [
        ("artifact", True),
        ("manifest claims", False),
    ]


def test_verify_lists_the_claims_the_artifact_confirmed(saved: Path) -> None:
    claims = [c for c in modelkeep.verify(saved) if c.name == "manifest claims"]
    assert claims == [
        modelkeep.Check(
            "manifest claims",
            True,
            "confirmed by the artifact: features (feature_names_in_), task, classes "
            "(classes_), label keys",
        )
    ]


def test_a_regressor_called_a_classifier_is_refused(
    tmp_path: Path, regression_pipeline: tuple[Any, Any]
) -> None:
    model, frame = regression_pipeline
    modelkeep.save(model, tmp_path / "r", sample=frame, name="r")
    source = _edit(tmp_path / "r", _set(("task",), "binary"))
    with pytest.raises(
        ManifestError,
        match=_claim(
            source,
            "task",
            "expected regression (the model, Pipeline, is a regressor), got 'binary'",
        ),
    ):
        modelkeep.load(tmp_path / "r")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[" * 100_000,
            f"expected JSON nested at most {MAX_MANIFEST_DEPTH} levels deep, got 100000 levels; "
            "it was not parsed",
        ),
        (
            '{"a": ' * (MAX_MANIFEST_DEPTH + 1),
            f"expected JSON nested at most {MAX_MANIFEST_DEPTH} levels deep, got "
            f"{MAX_MANIFEST_DEPTH + 1} levels; it was not parsed",
        ),
        (
            " " * (MAX_MANIFEST_BYTES + 1),
            f"expected at most {MAX_MANIFEST_BYTES:,} bytes, got {MAX_MANIFEST_BYTES + 1:,} "
            "bytes or more; it was not parsed",
        ),
    ],
    ids=["nested-lists", "nested-objects", "too-large"],
)
def test_a_manifest_too_deep_or_too_large_is_refused_before_parsing(
    saved: Path, text: str, problem: str
) -> None:
    manifest = saved / "modelkeep.json"
    manifest.write_text(text)
    message = f"Manifest {str(manifest)!r}: {problem}." + ADVICE
    with pytest.raises(ManifestError, match=re.escape(message)):
        modelkeep.load(saved)
    with pytest.raises(ManifestError, match=re.escape(message)):
        modelkeep.manifest.read_manifest(saved)
    assert modelkeep.verify(saved)[0] == modelkeep.Check("manifest", False, message)


def test_brackets_inside_strings_do_not_count(saved: Path) -> None:
    _edit(saved, _set(("description",), '[[[[\\"{{' * 100))
    assert modelkeep.load(saved).manifest.description == '[[[[\\"{{' * 100


NEVER = re.escape(
    "trusted: expected names of classes and functions that only build data, got "
    "'os.system', which can never be trusted"
)


def test_a_never_trusted_name_is_refused_for_a_skops_bundle(saved: Path) -> None:
    with pytest.raises(NeverTrustedError, match=NEVER):
        modelkeep.load(saved, trusted=["os.system"])
    with pytest.raises(NeverTrustedError, match=NEVER):
        modelkeep.verify(saved, trusted=["os.system"])
    from modelkeep._formats.skops import SkopsFormat

    with (
        (saved / "artifacts" / "pipeline.skops").open("rb") as stream,
        pytest.raises(NeverTrustedError, match=NEVER),
    ):
        SkopsFormat().load(stream, artifact="artifacts/pipeline.skops", trusted=["os.system"])


def test_resolve_source_prefers_an_existing_path(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_source("churn@production") == Reference("churn", alias="production")
    assert resolve_source("churn:3") == Reference("churn", version=3)
    assert resolve_source("churn") == Reference("churn")
    assert resolve_source("out/churn") == Path("out/churn")
    (tmp_path / "churn").mkdir()
    assert resolve_source("churn") == Path("churn")
    assert resolve_source(Path("churn@production")) == Path("churn@production")
