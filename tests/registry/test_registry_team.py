"""A registry for teams: the index on PostgreSQL, bundles on S3-compatible storage.

The behaviour tests run on both backends (a local registry: SQLite and a folder; a team
registry: PostgreSQL and S3 on the servers ``scripts/services.sh`` starts), as does the
rest of tests/registry (see LOCAL_ONLY in conftest.py), including 8 concurrent
registering processes (test_registry_concurrency.py) and SIGKILL at random points
(test_registry_faults.py). The tests here are about the team backend only: the S3 server
stopped mid-upload, PostgreSQL restarted between two calls, content-addressed uploads,
and the download cache's verification.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelkeep
from modelkeep.errors import (
    IndexLostError,
    IntegrityError,
    RegistryIndexError,
    UnknownReferenceError,
)
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry.artifacts import remove_tree
from modelkeep.registry.remote import ArtifactStoreError, ObjectArtifacts

from .team import PROJECT, fresh_team

WORKER = Path(__file__).with_name("registry_worker.py")
ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(params=["local", "team"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[modelkeep.Registry]:
    """``modelkeep.Registry()`` on a fresh registry of either backend."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    if request.param == "team":
        for key, value in fresh_team().items():
            monkeypatch.setenv(key, value)
    with modelkeep.Registry() as registry:
        yield registry


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modelkeep.Registry]:
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    for key, value in fresh_team().items():
        monkeypatch.setenv(key, value)
    with modelkeep.Registry() as registry:
        yield registry


def _store(registry: modelkeep.Registry) -> ObjectArtifacts:
    folders = registry._folders
    assert isinstance(folders, ObjectArtifacts)
    return folders


# ------------------------------------------------------------------ on both backends


def test_register_alias_load_diff_delete(backend: modelkeep.Registry, tiny_bundle: Path) -> None:
    v1 = backend.register(tiny_bundle, "tiny", registered_by="alice")
    v2 = backend.register(tiny_bundle, "tiny", registered_by="bob")
    assert (v1.version, v2.version) == (1, 2)
    assert backend.set_alias("tiny", "production", 1, reason="first", by="alice") is not None
    assert backend.get("tiny@production").version == 1
    model = backend.load("tiny@production")
    assert model.predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
    assert modelkeep.load("tiny:2").predict({"a": -1.0, "b": 0.0}).tolist() == ["No"]
    assert [v.version for v in backend.versions("tiny")] == [1, 2]
    assert [v.ref for v in backend.models()] == ["tiny:2"]
    assert backend.names() == ["tiny"]
    assert backend.diff("tiny:1", "tiny:2")["a"] == "tiny:1"
    assert "tiny" in backend.card("tiny:1")
    backend.delete("tiny:2")
    assert backend.register(tiny_bundle, "tiny").version == 3  # numbers never restart
    backend.set_alias("tiny", "production", 3, by="bob")
    moves = [(e.from_version, e.to_version, e.by) for e in backend.history("tiny")]
    assert moves == [(None, 1, "alice"), (1, 3, "bob")]
    problems = [p for p in backend.check() if p.kind != "unreferenced"]
    assert problems == []


def test_an_unknown_reference_lists_what_is_there(
    backend: modelkeep.Registry, tiny_bundle: Path
) -> None:
    backend.register(tiny_bundle, "tiny")
    with pytest.raises(UnknownReferenceError, match=r"tiny@staging.*no alias"):
        backend.get("tiny@staging")
    with pytest.raises(UnknownReferenceError, match=re.escape("tiny:9")):
        backend.get("tiny:9")


# ------------------------------------------------------------------------- team only


def test_the_environment_points_registry_and_cli_at_the_team_backends(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    env = {**os.environ, **ENV}
    team.register(tiny_bundle)
    listed = subprocess.run(
        [sys.executable, "-m", "modelkeep", "registry", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert [(v["name"], v["version"]) for v in json.loads(listed.stdout)] == [("tiny", 1)]
    assert team.location.startswith("postgresql+psycopg://")
    assert [v.ref for v in team.versions()] == ["tiny:1"]
    # Nothing of it is in the local folder but the lock and the download cache.
    assert not (team.root / "registry.db").exists()
    assert not (team.root / "bundles").exists()


def test_uploads_are_content_addressed_and_read_back(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    store = _store(team)
    version = team.register(tiny_bundle, "tiny")
    listing = store.listing(_folder(team, "tiny:1"))
    blobs = {e.sha256 for e in listing.files.values()}
    stored = {Path(k).name for k in store._fs.ls(store._key("blobs"), detail=False)}
    assert blobs == stored
    assert listing.manifest_sha256 == version.manifest_sha256
    team.register(tiny_bundle, "tiny")  # the same bytes: no new blob
    assert {Path(k).name for k in store._fs.ls(store._key("blobs"), detail=False)} == stored
    assert not any((team.root / "staging").iterdir())  # staged copies are removed


def _folder(registry: modelkeep.Registry, ref: str) -> str:
    from modelkeep.registry.refs import parse_reference

    store = registry._open(create=False)
    assert store is not None
    return store.resolve(parse_reference(ref), ref).record.folder


def test_the_cache_is_keyed_by_manifest_hash_and_re_verified(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    team.register(tiny_bundle, "tiny")
    remove_tree(team.root / "cache")  # register's own get() fetched it: start cold
    listed = team.versions("tiny")[0]
    cached = team.root / "cache" / listed.manifest_sha256
    assert listed.path == cached and not cached.exists()  # listing downloads nothing
    path = team.path("tiny:1")
    assert path == cached and (cached / MANIFEST_NAME).is_file()

    # A cached file of another size: found at the next use, and fetched again.
    artifact = next(p for p in (cached / "artifacts").iterdir())
    original = artifact.read_bytes()
    os.chmod(artifact.parent, 0o755)
    os.chmod(artifact, 0o644)
    artifact.write_bytes(original + b"x")
    assert team.load("tiny:1").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
    assert artifact.read_bytes() == original

    # The same size, other bytes: only a full check sees it; it then fetches again.
    os.chmod(artifact.parent, 0o755)
    os.chmod(artifact, 0o644)
    artifact.write_bytes(bytes(len(original)))
    with modelkeep.Registry(full_check=True) as strict:
        assert strict.path("tiny:1") == cached
    assert artifact.read_bytes() == original


def test_a_blob_changed_in_the_store_is_refused_on_download(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    team.register(tiny_bundle, "tiny")
    remove_tree(team.root / "cache")
    store = _store(team)
    listing = store.listing(_folder(team, "tiny:1"))
    name, entry = next((n, e) for n, e in listing.files.items() if n.startswith("artifacts/"))
    key = store._key("blobs", entry.sha256)
    store._fs.pipe_file(key, bytes(entry.size))
    with pytest.raises(IntegrityError, match=re.escape(f"Artifact {name!r}: downloaded sha256")):
        team.load("tiny:1")
    assert not (team.root / "cache" / listing.manifest_sha256).exists()


def test_postgresql_restarted_between_two_calls_is_survived(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    team.register(tiny_bundle, "tiny")
    restarted = subprocess.run(
        [str(PROJECT / "scripts" / "services.sh"), "restart-postgres"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert [v.ref for v in team.versions("tiny")] == ["tiny:1"]  # a pooled connection died
    assert team.register(tiny_bundle, "tiny").version == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_s3(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(300):
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/outage", method="PUT")
            urllib.request.urlopen(request, timeout=2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def test_the_s3_server_stopped_mid_upload_leaves_no_version_and_a_clear_error(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private S3 server, killed once the first blob of a registration is stored."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))  # never ~/.modelkeep
    team_env = fresh_team()
    port = _free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, team_env[key])
    index = team_env["MODELKEEP_REGISTRY_URI"]
    failure: list[BaseException] = []
    completed: list[str] = []  # attempts whose registration beat the kill
    registry = None
    # The kill races the registration (a tiny bundle uploads in milliseconds): an attempt
    # that finished first is tried again with another name, on a fresh server.
    for attempt in range(5):
        name = f"other{attempt}"
        server = _start_s3(port)
        try:
            if registry is None:
                registry = modelkeep.Registry(index, artifacts="s3://outage/r")
                registry._require_writable("test")
                registry.register(tiny_bundle, "tiny")  # a complete version before the outage
            store = _store(registry)

            def register(name: str = name, target: modelkeep.Registry = registry) -> None:
                try:
                    target.register(tiny_bundle, name)
                except BaseException as exc:
                    failure.append(exc)

            store._fs.invalidate_cache()
            before = _blobs(store)
            thread = threading.Thread(target=register)
            thread.start()
            # Kill the server once the registration has started writing to it.
            while thread.is_alive():
                store._fs.invalidate_cache()
                if _blobs(store) != before or _listed(store):
                    break
                time.sleep(0.005)
            server.kill()
            server.wait()
            thread.join(timeout=120)
        finally:
            server.kill()
            server.wait()
        if failure:
            break
        completed.append(name)
    assert registry is not None
    assert failure, "every registration finished before the server was stopped"
    assert isinstance(failure[0], ArtifactStoreError), repr(failure[0])
    assert re.match(
        # Killed while a blob was written (or read back for its check, or its time read
        # before reusing it), or the record.
        r"Artifact store 's3://outage/r': "
        r"(uploading bundle \w+|reading blob [0-9a-f]{64}|writing the record of other\d:1) "
        r"failed: EndpointConnectionError",
        str(failure[0]),
    ), failure[0]
    assert "Nothing was made visible by this operation" in str(failure[0])
    # The index never saw the interrupted registration.
    assert registry.names() == sorted(["tiny", *completed]), failure[0]
    assert [v.ref for v in registry.versions()] == sorted(
        ["tiny:1", *(f"{name}:1" for name in completed)]
    )
    assert not any((registry.root / "staging").iterdir())
    registry.close()


def _blobs(store: ObjectArtifacts) -> set[str]:
    """The blobs in the store (none yet on a fresh server)."""
    try:
        return set(store._fs.ls(store._key("blobs"), detail=False))
    except FileNotFoundError:
        return set()


def _listed(store: ObjectArtifacts) -> bool:
    return len(store.published()) > 1


def test_an_unreachable_index_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{_free_port()}/none"
    registry = modelkeep.Registry(url, artifacts=tmp_path / "store")
    assert "secret" not in repr(registry)
    with pytest.raises(
        RegistryIndexError,
        match=re.escape("Registry at 'postgresql+psycopg://nobody:***@127.0.0.1:")
        + r"\d+/none': opening the index failed: OperationalError: ",
    ):
        registry.versions()


def test_a_local_folder_works_as_an_fsspec_artifact_store(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    """The same ObjectArtifacts on a local folder: blobs, listings and records as files."""
    index = f"sqlite:///{tmp_path / 'index.db'}"
    with modelkeep.Registry(index, artifacts=tmp_path / "store") as registry:
        version = registry.register(tiny_bundle, "tiny")
        assert version.path.parent == registry.root / "cache"
        assert registry.load("tiny").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
        assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [
            "blobs",
            "bundles",
            "records",
        ]
        assert [p for p in registry.check() if p.kind != "unreferenced"] == []


def test_a_registry_dropped_without_close_leaves_no_open_connection(
    tiny_bundle: Path, home: Path
) -> None:
    import gc
    import warnings

    with warnings.catch_warnings():  # what earlier tests left to the collector is not ours
        warnings.simplefilter("ignore")
        gc.collect()
    team = fresh_team()
    registry = modelkeep.Registry(
        team["MODELKEEP_REGISTRY_URI"], artifacts=team["MODELKEEP_ARTIFACTS_URI"]
    )
    registry.register(tiny_bundle, "tiny")
    assert [v.ref for v in registry.versions()] == ["tiny:1"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del registry
        gc.collect()
    unclosed = [w for w in caught if "was deleted while still open" in str(w.message)]
    assert unclosed == []  # psycopg's warning for a connection nobody closed


def test_a_long_lived_registry_sees_what_other_processes_registered_since(
    team: modelkeep.Registry, tiny_bundle: Path
) -> None:
    """s3fs caches each listing it makes, and then answers "no such file" for a key the
    cached listing lacks: a server's registry that had listed the store once could not
    read versions other processes registered later."""
    team.register(tiny_bundle, "tiny")
    assert team.check() == [] and len(team._folders.published()) == 1  # listed, cached
    with modelkeep.Registry() as other:
        other.register(tiny_bundle, "tiny")
        other.set_alias("tiny", "production", 2)
    # Read first, without listing again (as a server following an alias does).
    assert team.load("tiny@production").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
    assert len(team._folders.published()) == 2
    assert team.check() == []


def test_a_record_that_cannot_be_read_fails_rebuild_rather_than_leaving_its_version_out(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    """Only a record that is gone is skipped: one the store holds but cannot hand over (a
    server error, a permission) fails rebuild(), which would otherwise restore an index
    without that version. Shown on an fsspec folder, where a record can be made unreadable:
    it is a directory."""
    index = f"sqlite:///{tmp_path / 'index.db'}"
    store = tmp_path / "store"
    with modelkeep.Registry(index, artifacts=store) as registry:
        for _ in range(2):
            registry.register(tiny_bundle, "tiny")
    (tmp_path / "index.db").unlink()
    record = sorted((store / "records").iterdir())[0]
    kept = record.read_bytes()
    record.unlink()
    (record / "inside").mkdir(parents=True)  # records/<id>.json/ : listed, not readable
    with (
        modelkeep.Registry(index, artifacts=store) as registry,
        pytest.raises(ArtifactStoreError, match="reading registration records failed: "),
    ):
        registry.rebuild()
    shutil.rmtree(record)
    record.write_bytes(kept)
    with (
        modelkeep.Registry(index, artifacts=store) as registry,
        pytest.raises(IndexLostError),
    ):
        registry.versions()  # nothing was restored halfway: the index is still lost
    with modelkeep.Registry(index, artifacts=store) as registry:
        assert [v.ref for v in registry.rebuild()] == ["tiny:1", "tiny:2"]
