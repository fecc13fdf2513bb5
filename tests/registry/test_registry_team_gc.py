"""A team registry's check and gc on S3: blobs shared by many bundles, alias moves as
objects, and what a rolled-back move leaves.

Blobs are content-addressed: every bundle holding the same bytes names the same blob, so
removing a blob that one live listing still names would break that version for everyone.
These tests hold gc to the rule: a blob goes only when no listing names it, every listing
could be read, and it is older than the hour a registration on another machine may take.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelkeep
from modelkeep.errors import IndexLostError
from modelkeep.registry import Problem
from modelkeep.registry.records import AliasEvent
from modelkeep.registry.remote import REFRESH_S, ObjectArtifacts

from . import stores
from .helpers import save_tiny
from .team import fresh_team

_OLD = 7200.0  # two hours: past the hour of grace


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[modelkeep.Registry]:
    """A fresh team registry (this file is in conftest's _TEAM_FILES: its tests hold the
    team tests' shared lock, so the PostgreSQL restart test never runs meanwhile)."""
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    for key, value in fresh_team().items():
        monkeypatch.setenv(key, value)
    with modelkeep.Registry() as registry:
        yield registry


def _blobs_of(registry: modelkeep.Registry, ref: str) -> dict[str, str]:
    """Path -> blob SHA-256 of the files ``ref``'s listing names."""
    listing = stores.objects(registry).listing(stores.folder_of(registry, ref))
    return {path: entry.sha256 for path, entry in listing.files.items()}


def test_gc_on_s3_removes_only_blobs_no_listing_names(
    team: modelkeep.Registry, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.objects(team)
    # tiny:1 and tiny:2 are the same bundle (their listings name the same blobs); tiny:3
    # is another, with blobs of its own.
    for _ in range(2):
        team.register(tiny_bundle, "tiny")
    team.register(save_tiny(tmp_path / "other", description="retrained"), "tiny")
    one, two, three = (_blobs_of(team, f"tiny:{n}") for n in (1, 2, 3))
    assert one == two and not set(three.values()) & set(two.values())
    team.delete("tiny:1")  # every blob it named is still named by tiny:2
    team.delete("tiny:3")  # its listing goes; its blobs stay until gc
    stray = b"left by a registration that died after uploading"
    stray_sha = hashlib.sha256(stray).hexdigest()
    store._fs.pipe_file(store._key("blobs", stray_sha), stray)
    unreferenced = sorted([*three.values(), stray_sha])
    assert set(store.blobs()) == {*two.values(), *unreferenced}

    # Young: a registration on another machine may be about to name them.
    assert team.check() == []
    assert team.gc() == []
    assert set(store.blobs()) == {*two.values(), *unreferenced}

    stores.backdate_blobs(team, monkeypatch, _OLD)
    # A listing nobody can read: no blob is provably unreferenced, so none goes.
    store._fs.pipe_file(store._key("bundles", "broken.json"), b"{")
    assert team.gc() == []
    assert set(store.blobs()) == {*two.values(), *unreferenced}
    store._fs.rm_file(store._key("bundles", "broken.json"))

    assert [(p.kind, p.subject) for p in team.check()] == [
        ("unreferenced", f"blobs/{sha}") for sha in unreferenced
    ]
    assert team.gc() == [f"blobs/{sha}" for sha in unreferenced]
    # Every blob the deleted tiny:1 shared with tiny:2 is still there: tiny:2 loads from
    # S3 alone.
    assert set(store.blobs()) == set(two.values())
    assert team.check() == []
    stores.forget_downloads(team)
    assert team.load("tiny:2").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]

    # check() hashes S3, not the download cache: a blob gone from S3 is reported though
    # the cache still holds the file.
    store._fs.rm_file(store._key("blobs", two["artifacts/pipeline.skops"]))
    assert [(p.kind, p.subject) for p in team.check()] == [("artifact_changed", "tiny:2")]
    assert team.check()[0].detail == "artifacts/pipeline.skops: its blob is missing"
    assert team.gc() == []  # an indexed version is never garbage, damaged or not


def test_a_registration_uploads_again_a_stored_blob_older_than_the_refresh_age(
    team: modelkeep.Registry, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registration that relies on a stored blob restarts its age when it is old, so gc
    # (which waits an hour) never takes it for an unreferenced one before the listing
    # that names it is written.
    store = stores.objects(team)
    team.register(tiny_bundle, "tiny")
    written = store.blobs()  # the server's own times (whole seconds)
    time.sleep(1.1)
    team.register(tiny_bundle, "tiny")  # young blobs: relied on as they are
    assert store.blobs() == written
    stores.backdate_blobs(team, monkeypatch, REFRESH_S + 60)
    team.register(tiny_bundle, "tiny")  # old blobs: uploaded again
    again = ObjectArtifacts.blobs(store)  # the server's times, not the shifted ones
    assert set(again) == set(written)
    for sha, stamp in written.items():
        assert stamp is not None and (again[sha] or 0) > stamp, sha


def test_alias_moves_are_objects_in_s3_and_a_rolled_back_one_is_removed_by_gc(
    team: modelkeep.Registry, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores.objects(team)
    for _ in range(2):
        team.register(tiny_bundle, "tiny")
    first = team.set_alias("tiny", "production", 1, reason="first", by="alice")
    assert first is not None
    assert store.read_alias_moves() == [first.to_dict()]

    # A move whose transaction rolls back after its object was written (the commit
    # failed): PostgreSQL never gives its id again, so the object is an orphan.
    index = team._writer()

    def fail_after_logging(event: AliasEvent) -> None:
        team._log_move(event)
        raise RuntimeError("the commit failed")

    with pytest.raises(RuntimeError, match="the commit failed"):
        index.set_alias(
            "tiny", "production", 2, by="bob", reason=None, before_commit=fail_after_logging
        )
    second = team.set_alias("tiny", "production", 2, reason="better", by="carol")
    assert second is not None and second.id == first.id + 2
    orphan = first.id + 1
    assert [m["id"] for m in store.read_alias_moves()] == [first.id, orphan, second.id]
    assert team.check() == []  # young: its transaction might still have been open
    stores.backdate_alias_moves(team, monkeypatch, _OLD)
    assert team.check() == [
        Problem(
            "unreferenced",
            f"aliases/{orphan}.json",
            "an alias move the index does not hold, though it holds a later one (its "
            "transaction rolled back), older than an hour; gc() removes it",
        )
    ]
    assert team.gc() == [f"aliases/{orphan}.json"]
    assert store.read_alias_moves() == [first.to_dict(), second.to_dict()]

    # A move the store lacks (written by an older modelkeep): check names it, gc writes it.
    store.remove_alias_move(second.id)
    (problem,) = team.check()
    assert (problem.kind, problem.subject) == ("alias_log_missing", "aliases/")
    assert re.match(r"1 alias move\(s\) of the index are not in it", problem.detail)
    assert team.gc() == []
    assert store.read_alias_moves() == [first.to_dict(), second.to_dict()]
    assert team.check() == []

    # So a lost index comes back with its aliases and history.
    stores.lose_index(team, "emptied")
    assert [v.ref for v in team.rebuild()] == ["tiny:1", "tiny:2"]
    assert team.aliases("tiny") == {"production": 2}
    assert team.history("tiny") == [first, second]


def test_a_postgresql_index_over_local_folders_is_rebuilt_with_its_aliases(
    team: modelkeep.Registry, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The team fixture's index with no artifact store named: bundles go to folders under
    # MODELKEEP_HOME, alias moves to its alias-log.jsonl, so rebuild() restores them too.
    monkeypatch.delenv("MODELKEEP_ARTIFACTS_URI")
    with modelkeep.Registry() as registry:
        assert registry.team and not isinstance(registry._folders, ObjectArtifacts)
        for _ in range(2):
            registry.register(tiny_bundle, "tiny")
        registry.set_alias("tiny", "production", 2, reason="go")
        history = registry.history("tiny")
        stores.lose_index(registry, "deleted")
        with pytest.raises(IndexLostError, match=re.escape("got a database without the")):
            registry.versions()
        assert [v.ref for v in registry.rebuild()] == ["tiny:1", "tiny:2"]
        assert registry.aliases("tiny") == {"production": 2}
        assert registry.history("tiny") == history
        assert registry.check() == []
