"""The Registry API on a real SQLite index and real bundles."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

import modelkeep
from modelkeep.errors import (
    BundleLayoutError,
    BundleNotFoundError,
    BundleRejectedError,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    GoldenMismatchError,
    IntegrityError,
    InvalidReferenceError,
    RegistryError,
    UnknownFormatError,
    UnknownReferenceError,
    VersionInUseError,
)
from modelkeep.registry import Problem, Registry

from . import stores
from .helpers import published, save_tiny


def _writable(path: Path) -> None:
    for directory, _, files in os.walk(path):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def _stored_state(registry: Registry) -> tuple[list[str], list[str], list[str]]:
    refs = [v.ref for v in registry.versions()]
    bundles = (
        sorted(os.listdir(registry.root / "bundles"))
        if (registry.root / "bundles").exists()
        else []
    )
    staging = (
        sorted(os.listdir(registry.root / "staging"))
        if (registry.root / "staging").exists()
        else []
    )
    return refs, bundles, staging


def test_register_indexes_what_the_issue_lists(registry: Registry, tmp_path: Path) -> None:
    bundle = save_tiny(
        tmp_path / "b",
        description="Churn in the north",
        tags=["churn", "eu"],
        metrics={"f1": 0.8, "auc": 0.9},
    )
    v = registry.register(bundle, registered_by="alice")
    manifest = v.manifest()
    assert (v.name, v.version, v.ref) == ("tiny", 1, "tiny:1")
    assert v.manifest_sha256 == hashlib.sha256((bundle / "modelkeep.json").read_bytes()).hexdigest()
    assert v.created_at == manifest.created_at.isoformat()
    assert v.registered_at > v.created_at
    assert v.registered_by == "alice"
    assert (v.task, v.model_type) == ("binary", "sklearn.linear_model._logistic.LogisticRegression")
    assert v.metrics == {"f1": 0.8, "auc": 0.9}
    assert (v.data_version, v.data_fingerprint) == ("d1", manifest.data.fingerprint)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", v.schema_hash)
    assert v.label_map == [[0, "No"], [1, "Yes"]]
    assert v.environment["python"].split()[0] == manifest.environment.python_implementation
    assert (
        v.environment["packages"]["scikit-learn"] == manifest.environment.packages["scikit-learn"]
    )
    assert [(f["format"], f["path"], f["parity"]) for f in v.formats] == [
        ("skops", "artifacts/pipeline.skops", None)
    ]
    assert (v.parent, v.git_commit, v.aliases) == (None, None, [])
    assert (v.tags, v.description, v.source) == (["churn", "eu"], "Churn in the north", str(bundle))
    # The stored copy is byte-identical, inside the registry (a team registry's in its
    # download cache, keyed by the manifest's hash), and read-only.
    if registry.team:
        assert v.path == registry.root / "cache" / v.manifest_sha256
    else:
        assert v.path.parent == registry.root / "bundles"
        assert published(registry) == [v.path.name]
    assert len(published(registry)) == 1
    assert (v.path / "modelkeep.json").read_bytes() == (bundle / "modelkeep.json").read_bytes()
    assert stat.S_IMODE((v.path / "artifacts" / "pipeline.skops").stat().st_mode) == 0o444
    assert json.loads(json.dumps(v.to_dict()))["version"] == 1
    assert registry.get("tiny") == v


def test_registered_by_defaults_to_the_os_user(registry: Registry, tiny_bundle: Path) -> None:
    assert registry.register(tiny_bundle).registered_by == getpass.getuser()


def test_version_numbers_count_up_and_are_never_reused(
    registry: Registry, tiny_bundle: Path
) -> None:
    assert [registry.register(tiny_bundle).version for _ in range(3)] == [1, 2, 3]
    stored = published(registry)
    deleted = registry.delete("tiny:3")
    assert deleted.ref == "tiny:3" and len(published(registry)) == len(stored) - 1
    if not registry.team:  # a team registry's download cache is shared by identical bundles
        assert not deleted.path.exists()
    assert registry.register(tiny_bundle).version == 4
    registry.delete("tiny:2")
    assert registry.register(tiny_bundle, "tiny").version == 5
    assert [v.version for v in registry.versions("tiny")] == [1, 4, 5]
    assert registry.register(tiny_bundle, "other").ref == "other:1"
    assert [v.ref for v in registry.models()] == ["other:1", "tiny:5"]
    assert registry.names() == ["other", "tiny"]
    assert registry.check() == []


def test_references_resolve_to_versions(registry: Registry, tiny_bundle: Path) -> None:
    for _ in range(3):
        registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 2)
    assert registry.get("tiny").version == 3
    assert registry.get("tiny:1").version == 1
    production = registry.get("tiny@production")
    assert (production.version, production.aliases) == (2, ["production"])
    assert registry.path("tiny@production") == production.path


def test_aliases_move_and_every_move_is_logged(registry: Registry, tiny_bundle: Path) -> None:
    for _ in range(3):
        registry.register(tiny_bundle)
    first = registry.set_alias("tiny", "production", 1, reason="first release", by="alice")
    assert first is not None
    assert (first.alias, first.from_version, first.to_version, first.by, first.reason) == (
        "production",
        None,
        1,
        "alice",
        "first release",
    )
    assert registry.set_alias("tiny", "production", 1, by="bob") is None  # no move, no entry
    registry.set_alias("tiny", "production", 3, reason="better f1", by="bob")
    registry.set_alias("tiny", "staging", 2, by="carol")
    removed = registry.delete_alias("tiny", "staging", reason="done", by="carol")
    assert (removed.from_version, removed.to_version) == (2, None)
    assert registry.aliases("tiny") == {"production": 3}
    history = registry.history("tiny")
    assert [(e.alias, e.from_version, e.to_version, e.by) for e in history] == [
        ("production", None, 1, "alice"),
        ("production", 1, 3, "bob"),
        ("staging", None, 2, "carol"),
        ("staging", 2, None, "carol"),
    ]
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert [e.to_version for e in registry.history("tiny", "production")] == [1, 3]
    assert all(e.at.endswith("+00:00") for e in history)


def test_delete_refuses_an_aliased_version_and_an_inexact_reference(
    registry: Registry, tiny_bundle: Path
) -> None:
    registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    registry.set_alias("tiny", "canary", 1)
    with pytest.raises(
        VersionInUseError,
        match=re.escape(
            "Cannot delete 'tiny:1': expected a version no alias points to, got alias(es) "
            "'canary', 'production'. Move or remove them first (`modelkeep registry alias "
            "set` / `alias rm`), then delete."
        ),
    ):
        registry.delete("tiny:1")
    with pytest.raises(
        InvalidReferenceError,
        match=re.escape(
            "Reference 'tiny@production': delete needs the exact version. Expected "
            "NAME:VERSION, e.g. 'churn:3'; correct it and try again."
        ),
    ):
        registry.delete("tiny@production")
    assert registry.get("tiny:1").path.is_dir()


def test_unknown_references_are_clear_errors(registry: Registry, tiny_bundle: Path) -> None:
    where = registry.location  # the folder, or the index's URL without its password
    with pytest.raises(
        UnknownReferenceError,
        match=re.escape(
            f"Reference 'tiny': no model named 'tiny' in the registry at {where!r}; it holds "
            "no model. List models with `modelkeep registry list`, or register the bundle first."
        ),
    ):
        registry.get("tiny")
    assert not registry.root.exists()  # reading never creates the registry
    registry.register(tiny_bundle)
    registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    cases = [
        (
            "churn",
            f"Reference 'churn': no model named 'churn' in the registry at {where!r}; it holds "
            "'tiny'. List models with `modelkeep registry list`, or register the bundle first.",
        ),
        (
            "tiny:7",
            f"Reference 'tiny:7': no version 7 of 'tiny' in the registry at {where!r}; its "
            "versions are 1, 2. List them with `modelkeep registry list tiny`.",
        ),
        (
            "tiny@staging",
            f"Reference 'tiny@staging': no alias 'staging' on 'tiny' in the registry at "
            f"{where!r}; its aliases are 'production'. Set it with `modelkeep registry alias "
            "set tiny staging VERSION`.",
        ),
    ]
    for ref, message in cases:
        with pytest.raises(UnknownReferenceError, match=re.escape(message)):
            registry.get(ref)
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny:9': no version 9")):
        registry.set_alias("tiny", "production", 9)
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny@canary': no alias")):
        registry.delete_alias("tiny", "canary")
    assert registry.aliases("tiny") == {"production": 1}
    assert len(registry.history("tiny")) == 1


def _tamper_artifact(bundle: Path) -> None:
    artifact = bundle / "artifacts" / "pipeline.skops"
    artifact.write_bytes(artifact.read_bytes() + b"x")


def _tamper_golden(bundle: Path) -> None:
    manifest = bundle / "modelkeep.json"
    data = json.loads(manifest.read_text())
    data["golden"]["predictions"] = [1 - p for p in data["golden"]["predictions"]]
    manifest.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("tamper", "cause"),
    [(_tamper_artifact, IntegrityError), (_tamper_golden, GoldenMismatchError)],
    ids=["changed-artifact", "wrong-golden-outputs"],
)
def test_a_bundle_failing_verification_is_refused_and_nothing_is_written(
    registry: Registry, tiny_bundle: Path, tmp_path: Path, tamper: object, cause: type
) -> None:
    registry.register(tiny_bundle)
    before = _stored_state(registry)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    tamper(bad)  # type: ignore[operator]
    with pytest.raises(BundleRejectedError) as caught:
        registry.register(bad)
    assert isinstance(caught.value.cause, cause)
    assert str(caught.value) == (
        f"Cannot register {str(bad)!r}: expected a bundle that passes every load check, got "
        f"{cause.__name__}: {caught.value.cause} Nothing was added to the registry; repair "
        "or save the bundle again, then register it."
    )
    assert _stored_state(registry) == before
    assert registry.check() == []


def test_other_bad_input_writes_nothing(
    registry: Registry, tiny_bundle: Path, tmp_path: Path
) -> None:
    registry.register(tiny_bundle)
    before = _stored_state(registry)
    with pytest.raises(
        BundleNotFoundError,
        match=re.escape(f"No modelkeep bundle at {str(tmp_path / 'none')!r}: no such directory."),
    ):
        registry.register(tmp_path / "none")
    with pytest.raises(InvalidReferenceError, match=re.escape("Name 'my model': it contains ' '.")):
        registry.register(tiny_bundle, "my model")
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny:5': no version 5")):
        registry.register(tiny_bundle, parent="tiny:5")
    odd = save_tiny(tmp_path / "odd", name="my churn!")
    with pytest.raises(
        InvalidReferenceError, match=re.escape("Name 'my churn!': it contains ' ', '!'.")
    ):
        registry.register(odd)
    assert _stored_state(registry) == before
    assert registry.register(odd, "churn").ref == "churn:1"


@pytest.mark.parametrize(
    "relative", ["artifacts", "artifacts/pipeline.skops", "notes.txt"], ids=str
)
def test_a_bundle_holding_a_symlink_is_refused_and_nothing_is_written(
    registry: Registry, tiny_bundle: Path, tmp_path: Path, relative: str
) -> None:
    registry.register(tiny_bundle)
    before = _stored_state(registry)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    outside = tmp_path / "outside"
    if (bad / relative).exists():  # the same bytes, moved out of the bundle
        (bad / relative).rename(outside)
    else:
        outside.write_text("not part of the bundle")
    (bad / relative).symlink_to(outside)
    message = (
        f"Bundle {str(bad)!r}: expected only regular files and directories, got {relative!r}, "
        "a symbolic link. A bundle never holds links or special files (a link could point "
        "outside it); replace it with a copy of what it stands for or remove it, or get an "
        "intact copy of the bundle."
    )
    with pytest.raises(BundleLayoutError, match=re.escape(message)):
        registry.register(bad)
    assert _stored_state(registry) == before


def test_check_reports_a_symlink_planted_in_a_stored_bundle(
    registry: Registry, tiny_bundle: Path, tmp_path: Path
) -> None:
    version = registry.register(tiny_bundle)
    _writable(version.path)
    (version.path / "artifacts").rename(tmp_path / "outside")
    shutil.copytree(tiny_bundle / "artifacts", tmp_path / "intact")
    (version.path / "artifacts").symlink_to(tmp_path / "intact")  # hashes would all match
    (problem,) = registry.check()
    assert (problem.kind, problem.subject) == ("artifact_changed", "tiny:1")
    assert problem.detail.startswith(
        f"Bundle {str(version.path)!r}: expected only regular files and directories, got "
        "'artifacts', a symbolic link."
    )


def test_environment_differences_warn_by_default_and_strict_refuses(
    registry: Registry, tiny_bundle: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-env"
    shutil.copytree(tiny_bundle, other)
    data = json.loads((other / "modelkeep.json").read_text())
    data["environment"]["packages"]["numpy"] = "1.0.0"
    (other / "modelkeep.json").write_text(json.dumps(data))
    with pytest.raises(BundleRejectedError) as caught:
        registry.register(other, env="strict")
    assert isinstance(caught.value.cause, EnvironmentMismatchError)
    with pytest.warns(
        EnvironmentMismatchWarning, match=re.escape("numpy: recorded 1.0.0, installed")
    ):
        version = registry.register(other)
    assert version.environment["packages"]["numpy"] == "1.0.0"


def test_lineage_records_the_parent(registry: Registry, tiny_bundle: Path) -> None:
    registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    child = registry.register(tiny_bundle, parent="tiny@production")
    assert child.parent == "tiny:1"


def test_modelkeep_load_resolves_references_through_the_default_registry(
    registry: Registry, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(tiny_bundle)
    second = registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    model = modelkeep.load("tiny@production")
    assert model.source == str(registry.get("tiny:1").path)
    assert model.predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
    assert modelkeep.load("tiny").source == str(second.path)
    assert modelkeep.load(str(tiny_bundle)).source == str(tiny_bundle)
    # Options reach the bundle loader unchanged.
    with pytest.raises(UnknownFormatError, match=re.escape("got 'onnx'")):
        modelkeep.load("tiny:1", format="onnx")
    # An existing path wins over a registry name.
    monkeypatch.chdir(tmp_path)
    save_tiny(tmp_path / "tiny", metrics={"f1": 0.1})
    assert modelkeep.load("tiny").manifest.metrics == {"f1": 0.1}
    with pytest.raises(
        BundleNotFoundError,
        match=re.escape(
            f"No modelkeep bundle at 'ghost': no such directory, and no model of that name in "
            f"{registry!r}. Expected a directory"
        ),
    ):
        modelkeep.load("ghost")
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny:9': no version 9")):
        modelkeep.load("tiny:9")


def test_load_of_an_unknown_name_never_creates_the_default_registry(home: Path) -> None:
    with pytest.raises(BundleNotFoundError, match=re.escape("No modelkeep bundle at 'ghost'")):
        modelkeep.load("ghost")
    assert not home.exists()


def test_check_reports_damage_and_never_fixes_it(registry: Registry, tiny_bundle: Path) -> None:
    for _ in range(3):
        registry.register(tiny_bundle)
    # On S3 the damage is done to the objects, behind the download cache's back: check()
    # hashes what the store holds, not what this machine cached.
    stores.damage_artifact(registry, "tiny:1")
    stores.rewrite_manifest(registry, "tiny:2")
    stores.remove_bundle(registry, "tiny:3")
    expected = [
        ("artifact_changed", "tiny:1"),
        ("manifest_changed", "tiny:2"),
        ("missing_folder", "tiny:3"),
    ]
    for _ in range(2):  # reported again: check() changes nothing
        problems = registry.check()
        assert [(p.kind, p.subject) for p in problems] == expected
    assert problems[0].detail.startswith("Artifact 'artifacts/pipeline.skops': size expected")
    assert registry.gc() == []  # indexed folders are never garbage, damaged or not
    assert [v.version for v in registry.versions()] == [1, 2, 3]


def test_check_reports_an_index_out_of_step(registry: Registry, tiny_bundle: Path) -> None:
    registry.register(tiny_bundle)
    registry.register(tiny_bundle)
    registry.set_alias("tiny", "production", 1)
    with stores.raw_index(registry) as index:
        index.exec_driver_sql("UPDATE aliases SET version = 2")
        index.exec_driver_sql("UPDATE names SET next_version = 2")
    assert registry.check() == [
        Problem("counter_behind", "tiny", "next version counter 2 is not above version 2"),
        Problem("alias_log_broken", "tiny@production", "alias points to 2, the log ends at 1"),
    ]


def test_gc_removes_only_unreferenced_folders(
    registry: Registry, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = registry.register(tiny_bundle)
    (registry.root / "staging" / "abandoned" / "artifacts").mkdir(parents=True)
    # A copy of the registered bundle: on S3 its listing names the very blobs the kept
    # version's listing names, so removing the orphan must leave every one of them.
    stores.plant_bundle(registry, "orphan", tiny_bundle)
    stores.backdate(registry, monkeypatch, "orphan", 7200)  # past S3's hour of grace
    blobs = set(stores.objects(registry).blobs()) if registry.team else set()
    assert [(p.kind, p.subject) for p in registry.check()] == [
        ("unreferenced", "bundles/orphan"),
        ("unreferenced", "staging/abandoned"),
    ]
    assert registry.gc() == ["bundles/orphan", "staging/abandoned"]
    assert stores.published(registry) == [stores.folder_of(registry, kept.ref)]
    if registry.team:
        assert set(stores.objects(registry).blobs()) == blobs  # shared: all still named
    assert registry.check() == []
    assert registry.gc() == []
    stores.forget_downloads(registry)  # so a team registry's load downloads every blob
    assert registry.load(kept.ref).predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]


def test_an_absent_registry_reads_as_empty(tmp_path: Path) -> None:
    with Registry(tmp_path / "nowhere") as empty:
        assert (empty.versions(), empty.models(), empty.names()) == ([], [], [])
        assert (empty.check(), empty.gc(), empty.exists) == ([], [], False)
        assert empty.aliases("tiny") == {}
    assert not (tmp_path / "nowhere").exists()


def test_a_damaged_index_is_a_registry_error(tmp_path: Path) -> None:
    root = tmp_path / "damaged"
    root.mkdir()
    (root / "registry.db").write_bytes(b"not a database " * 20)
    with pytest.raises(
        RegistryError,
        match=re.escape(
            f"Registry at {str(root)!r}: opening the index failed: DatabaseError: file is not "
            "a database. Nothing was changed by this operation. If another process holds the "
            "index locked, retry; otherwise the index may be damaged: run `modelkeep registry "
            "check`, or restore registry.db from a backup."
        ),
    ):
        Registry(root).versions()
