"""A team registry (PostgreSQL + S3) attacked the way a careless team or a hostile bucket
would: two machines sharing one index and one bucket, planted and damaged objects, a
tampered download cache, a bucket that does not exist.

The worst outcomes are a model lost or a wrong model served, so every test ends by
asserting what is stored and what is served, on the real servers. Two "machines" are two
``Registry`` objects with different ``MODELKEEP_HOME`` roots: their file locks do not see
each other, as two computers' would not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelkeep
from modelkeep.errors import ModelkeepError
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry.artifacts import remove_tree

from . import stores
from .helpers import tiny_frame
from .team import fresh_team

_OLD = 7200.0  # two hours: past the hour of grace


@pytest.fixture
def team_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh team registry's variables (schema + S3 prefix), set in this process."""
    env = fresh_team()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _machine(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> modelkeep.Registry:
    """A registry on the team backends with its own local root (locks, staging, cache)."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / name))
    return modelkeep.Registry()


@pytest.fixture
def two_machines(
    team_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[modelkeep.Registry, modelkeep.Registry]]:
    first = _machine("machine-a", tmp_path, monkeypatch)
    second = _machine("machine-b", tmp_path, monkeypatch)
    with first, second:
        yield first, second


def _missing_blobs(registry: modelkeep.Registry) -> list[str]:
    """``name:version`` -> a blob its listing names that the bucket lacks, for every
    indexed version."""
    store = stores.objects(registry)
    held = set(store.blobs())
    missing = []
    for version in registry.versions():
        listing = store.listing(stores.folder_of(registry, version.ref))
        missing += [
            f"{version.ref}: {path}"
            for path, entry in listing.files.items()
            if entry.sha256 not in held
        ]
    return missing


# ------------------------------------------------------------------ two machines, one gc


def test_gc_on_one_machine_never_removes_a_blob_another_just_registered_again(
    two_machines: tuple[modelkeep.Registry, modelkeep.Registry],
    tiny_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registering, collecting = two_machines
    registering.register(tiny_bundle, "tiny")
    registering.delete("tiny:1")  # its blobs stay, named by no listing
    # Two hours old to both machines: machine A uploads them again (they are older than
    # REFRESH_S), machine B's gc finds them unreferenced and past the grace period.
    stores.backdate_blobs(registering, monkeypatch, _OLD)
    stores.backdate_blobs(collecting, monkeypatch, _OLD)
    store = stores.objects(collecting)
    listed = store.blobs
    registered: list[str] = []

    def blobs_then_a_registration() -> dict[str, float | None]:
        # gc() on B has read the listings (none names the blobs) and now lists the blobs;
        # meanwhile machine A registers the same bytes again, to the end.
        found = listed()
        if not registered:
            registered.append(registering.register(tiny_bundle, "tiny").ref)
        return found

    monkeypatch.setattr(store, "blobs", blobs_then_a_registration)
    collecting.gc()
    assert registered == ["tiny:2"]
    assert _missing_blobs(registering) == []
    stores.forget_downloads(registering)
    assert registering.load("tiny:2").predict(_frame()).tolist() == _expected(tiny_bundle)
    assert registering.check() == []


def _frame() -> Any:
    return tiny_frame(5)[0]


def _expected(bundle: Path) -> list[Any]:
    """What the registered bundle predicts for ``_frame()``: a served copy must agree."""
    return list(modelkeep.load(bundle).predict(_frame()).tolist())


# ---------------------------------------------------------------------- download cache


def _cache_entry(registry: modelkeep.Registry, ref: str) -> Path:
    path = registry.get(ref).path
    assert path.parent == registry.root / "cache"
    return path


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` -> (mode, bytes of a file)."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode & 0o777
        found[path.relative_to(root).as_posix()] = (
            mode,
            path.read_bytes() if path.is_file() else None,
        )
    return found


def _outside_copy(entry: Path, target: Path, *, damage: bool) -> Path:
    """A read-only copy of the cache entry ``entry`` outside the cache; with ``damage``
    its pipeline has one byte changed (same size)."""
    shutil.copytree(entry, target)
    for directory, _, files in os.walk(target):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    if damage:
        pipeline = target / "artifacts" / "pipeline.skops"
        data = bytearray(pipeline.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pipeline.write_bytes(bytes(data))
    for directory, _, files in os.walk(target, topdown=False):
        for name in files:
            os.chmod(os.path.join(directory, name), 0o444)
        os.chmod(directory, 0o555)
    return target


@pytest.mark.parametrize("damage", [False, True], ids=["same-bytes", "damaged"])
def test_a_cache_entry_replaced_by_a_symlink_is_fetched_again_and_its_target_untouched(
    team_env: dict[str, str],
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: bool,
) -> None:
    with _machine("home", tmp_path, monkeypatch) as registry:
        registry.register(tiny_bundle, "tiny")
        entry = _cache_entry(registry, "tiny:1")
        outside = _outside_copy(entry, tmp_path / "elsewhere", damage=damage)
        before = _tree(outside)
        remove_tree(entry)
        entry.symlink_to(outside, target_is_directory=True)

        served = registry.get("tiny:1").path
        assert served == entry and not served.is_symlink() and served.is_dir()
        assert _tree(outside) == before  # nothing outside cache/ changed
        assert registry.load("tiny:1").predict(_frame()).tolist() == _expected(tiny_bundle)


@pytest.mark.parametrize("full_check", [False, True], ids=["quick", "full_check"])
def test_a_swapped_artifact_in_the_cache_is_never_served_and_heals(
    team_env: dict[str, str],
    tiny_bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    full_check: bool,
) -> None:
    with _machine("home", tmp_path, monkeypatch) as registry:
        registry.register(tiny_bundle, "tiny")
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    with modelkeep.Registry(full_check=full_check) as registry:
        entry = _cache_entry(registry, "tiny:1")
        pipeline = entry / "artifacts" / "pipeline.skops"
        data = bytearray(pipeline.read_bytes())
        data[len(data) // 2] ^= 0xFF
        os.chmod(pipeline.parent, 0o755)
        os.chmod(pipeline, 0o644)
        pipeline.write_bytes(bytes(data))  # same size, other bytes: the manifest matches
        os.chmod(pipeline, 0o444)
        os.chmod(pipeline.parent, 0o555)

        model = registry.load("tiny:1")
        assert model.predict(_frame()).tolist() == _expected(tiny_bundle)
        assert pipeline.read_bytes() != bytes(data)  # the entry was fetched again


def test_a_file_in_a_cache_entry_replaced_by_a_symlink_is_fetched_again(
    team_env: dict[str, str], tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _machine("home", tmp_path, monkeypatch) as registry:
        registry.register(tiny_bundle, "tiny")
        entry = _cache_entry(registry, "tiny:1")
        pipeline = entry / "artifacts" / "pipeline.skops"
        outside = tmp_path / "pipeline.skops"
        shutil.copyfile(pipeline, outside)
        os.chmod(pipeline.parent, 0o755)
        pipeline.unlink()
        pipeline.symlink_to(outside)
        os.chmod(pipeline.parent, 0o555)

        assert registry.load("tiny:1").predict(_frame()).tolist() == _expected(tiny_bundle)
        assert not pipeline.is_symlink() and pipeline.is_file()
        assert outside.is_file()


# ------------------------------------------------------------------------ hostile bucket


def _hostile_listings(good: dict[str, Any]) -> dict[str, Any]:
    files = good["files"]
    manifest = files[MANIFEST_NAME]
    some = next(v for k, v in files.items() if k != MANIFEST_NAME)

    def with_file(name: str, entry: Any = None) -> dict[str, Any]:
        return {**good, "files": {**files, name: some if entry is None else entry}}

    return {
        "dotdot": with_file("../../escaped"),
        "absolute": with_file("/tmp/escaped-absolute"),
        "dot": with_file("."),
        "dot-inside": with_file("artifacts/./pipeline.skops"),
        "backslash": with_file("..\\..\\escaped"),
        "empty-name": with_file(""),
        "not-hex": with_file("artifacts/x", {"size": 1, "sha256": "../" * 21 + "x"}),
        "huge-size": with_file("artifacts/x", {**some, "size": 10**40}),
        "negative-size": with_file("artifacts/x", {**some, "size": -1}),
        "bool-size": with_file("artifacts/x", {**some, "size": True}),
        "list": [good],
        "no-manifest": {**good, "files": {k: v for k, v in files.items() if k != MANIFEST_NAME}},
        "other-manifest": {**good, "manifest_sha256": some["sha256"]},
        "manifest-size": with_file(MANIFEST_NAME, {**manifest, "size": manifest["size"] + 1}),
        "deep": b'{"x":' * 100_000 + b"{}" + b"}" * 100_000,  # beyond any parser's stack
    }


_HOSTILE = [
    "dotdot",
    "absolute",
    "dot",
    "dot-inside",
    "backslash",
    "empty-name",
    "not-hex",
    "huge-size",
    "negative-size",
    "bool-size",
    "list",
    "no-manifest",
    "other-manifest",
    "manifest-size",
    "deep",
]


def test_hostile_listings_are_refused_and_nothing_is_written_outside_the_cache(
    team_env: dict[str, str], tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path that escaped would land here
    with _machine("home", tmp_path, monkeypatch) as registry:
        registry.register(tiny_bundle, "tiny")
        store = stores.objects(registry)
        folder = stores.folder_of(registry, "tiny:1")
        key = store._key("bundles", f"{folder}.json")
        good = json.loads(store._fs.cat_file(key))
        listings = _hostile_listings(good)
        assert sorted(listings) == sorted(_HOSTILE)
        before = {p for p in tmp_path.rglob("*") if "cache" not in p.parts}
        outcomes: dict[str, str] = {}
        for name in _HOSTILE:
            stores.forget_downloads(registry)
            hostile = listings[name]
            data = hostile if isinstance(hostile, bytes) else json.dumps(hostile).encode()
            store._fs.pipe_file(key, data)
            try:
                registry.get("tiny:1")
            except ModelkeepError as exc:
                outcomes[name] = type(exc).__name__
            else:
                outcomes[name] = "served"
        # Refused when read; a listing that passes is stopped by the download's hashing.
        downloaded = {"huge-size", "manifest-size"}
        assert outcomes == {
            name: "IntegrityError" if name in downloaded else "ListingError" for name in _HOSTILE
        }
        after = {p for p in tmp_path.rglob("*") if "cache" not in p.parts}
        assert after == before
        cache = registry.root / "cache"
        assert not os.path.lexists("/tmp/escaped-absolute")
        # No partial download is left behind either.
        assert [p.name for p in cache.iterdir()] == [] if cache.is_dir() else True
        # The real listing back: the version is served again.
        store._fs.pipe_file(key, json.dumps(good).encode())
        assert registry.load("tiny:1").predict(_frame()).tolist() == _expected(tiny_bundle)


# --------------------------------------------------------------------------- rebuild


_DEEP = b"[" * 100_000 + b"]" * 100_000  # nested beyond any JSON parser's stack


def _state(registry: modelkeep.Registry) -> tuple[list[str], dict[str, int], list[Any]]:
    return (
        [v.ref for v in registry.versions()],
        registry.aliases("tiny"),
        [e.to_dict() for e in registry.history("tiny")],
    )


def test_rebuild_on_postgresql_skips_planted_records_and_moves_and_reuses_no_number(
    team_env: dict[str, str], tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _machine("home", tmp_path, monkeypatch) as registry:
        for _ in range(3):
            registry.register(tiny_bundle, "tiny")
        registry.set_alias("tiny", "production", 2, reason="the best")
        registry.delete("tiny:3")  # its number stays taken
        store = stores.objects(registry)
        planted = {
            ("records", "deep.json"): _DEEP,
            ("records", "a-list.json"): b"[1, 2]",
            ("aliases", "90.json"): _DEEP,
            ("aliases", "91.json"): b"[]",
            ("bundles", "deep.json"): _DEEP,
        }
        for parts, data in planted.items():
            store._fs.pipe_file(store._key(*parts), data)
        before = _state(registry)
        assert before[0] == ["tiny:1", "tiny:2"]

        stores.lose_index(registry, "emptied")
        registry.rebuild()
        assert _state(registry) == before
        registry.rebuild()  # twice: the same index
        assert _state(registry) == before
        assert registry.register(tiny_bundle, "tiny").ref == "tiny:4"
        problems = registry.check()
        assert [(p.kind, p.subject) for p in problems] == [("unreferenced", "bundles/deep")]
        assert registry.load("tiny@production").predict(_frame()).tolist() == _expected(tiny_bundle)


# ------------------------------------------------------------------ a bucket that is not


def test_a_bucket_that_does_not_exist_gives_a_clear_error_and_indexes_nothing(
    team_env: dict[str, str], tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    missing = "s3://modelkeep-no-such-bucket-7f3a/team"
    with modelkeep.Registry(team_env["MODELKEEP_REGISTRY_URI"], artifacts=missing) as registry:
        with pytest.raises(ModelkeepError) as raised:
            registry.register(tiny_bundle, "tiny")
        assert type(raised.value).__name__ == "ArtifactStoreError"
        assert "modelkeep-no-such-bucket-7f3a" in str(raised.value)
        assert registry.versions() == []
        assert list((registry.root / "staging").iterdir()) == []
    # The same index with the real bucket: nothing half-written, numbering starts at 1.
    with modelkeep.Registry() as registry:
        assert registry.versions() == []
        assert registry.register(tiny_bundle, "tiny").ref == "tiny:1"


def test_a_blob_removed_by_gc_elsewhere_before_the_listing_is_written_is_uploaded_again(
    two_machines: tuple[modelkeep.Registry, modelkeep.Registry],
    tiny_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The narrowest window: machine B's gc() read a blob's age, then machine A uploaded
    # it again, then B removed it (an S3 delete has no condition on the object's time),
    # before A's listing named it. Backdating makes B take A's fresh upload for an old
    # one, which is what B saw a moment before the upload.
    registering, collecting = two_machines
    registering.register(tiny_bundle, "tiny")
    registering.delete("tiny:1")
    stores.backdate_blobs(collecting, monkeypatch, _OLD)
    store = stores.objects(registering)
    write_json = store._write_json
    collected: list[str] = []

    def collect_then_write(key: str, data: Any) -> None:
        if "/bundles/" in key and not collected:
            collected.extend(collecting.gc())  # B's gc lands just before A's listing
        write_json(key, data)

    monkeypatch.setattr(store, "_write_json", collect_then_write)
    assert registering.register(tiny_bundle, "tiny").ref == "tiny:2"
    assert any(path.startswith("blobs/") for path in collected)  # it did remove them
    assert _missing_blobs(registering) == []
    stores.forget_downloads(registering)
    assert registering.load("tiny:2").predict(_frame()).tolist() == _expected(tiny_bundle)


# ------------------------------------------------------- rebuild beside a registering process

_WORKER = Path(__file__).with_name("registry_worker.py")
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_rebuild_while_another_process_registers_drops_and_reuses_nothing(
    team_env: dict[str, str], tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 6
    worker = subprocess.Popen(
        [
            *(sys.executable, str(_WORKER), "loop", team_env["MODELKEEP_REGISTRY_URI"]),
            *(str(tiny_bundle), "tiny", str(count), "elsewhere"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **_ONE_THREAD, **team_env, "MODELKEEP_HOME": str(tmp_path / "w")},
    )
    rebuilds = 0
    with _machine("home", tmp_path, monkeypatch) as registry:
        while worker.poll() is None or rebuilds == 0:
            registry.rebuild()  # a fresh schema: rebuilt from nothing the first time
            rebuilds += 1
        out, err = worker.communicate()
        assert worker.returncode == 0, err
        assert out.split() == [str(n) for n in range(1, count + 1)]
        refs = [f"tiny:{n}" for n in range(1, count + 1)]
        assert [v.ref for v in registry.versions()] == refs
        assert registry.aliases("tiny") == {"production": count}
        moves = registry.history("tiny", "production")
        assert sorted(e.to_version or 0 for e in moves) == list(range(1, count + 1))
        registry.rebuild()
        assert [v.ref for v in registry.versions()] == refs
        assert registry.register(tiny_bundle, "tiny").ref == f"tiny:{count + 1}"
        assert registry.check() == []


def test_a_first_registration_on_another_machine_is_not_taken_for_a_lost_index(
    two_machines: tuple[modelkeep.Registry, modelkeep.Registry],
    tiny_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by the test above, one run in three: B finds the new index empty, then
    # (before B reads the store) A's first registration commits and writes its record.
    registering, reading = two_machines
    registering.versions()  # the tables exist, empty
    store = stores.objects(reading)
    read_records = store.read_records
    registered: list[str] = []

    def a_registration_then_read() -> Any:
        if not registered:
            registered.append(registering.register(tiny_bundle, "tiny").ref)
        return read_records()

    monkeypatch.setattr(store, "read_records", a_registration_then_read)
    assert [v.ref for v in reading.versions()] == ["tiny:1"] == registered
