"""The registry's seams: the same behaviour from every metadata store.

Each test runs on the SQLite store (``SqlStore``, a real database file), on the same store
on PostgreSQL (the server ``scripts/services.sh`` starts) and on the in-memory store
(``MemoryStore``); a new store joins the ``store`` fixture's list.
The store-level tests need no bundle and are fast; the last ones drive a whole
``Registry`` over each store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelkeep.errors import RegistryError, UnknownReferenceError, VersionInUseError
from modelkeep.registry import Problem, Registry, journal
from modelkeep.registry.backends import MetadataStore
from modelkeep.registry.memory import MemoryStore
from modelkeep.registry.records import AliasEvent, IndexedVersion, VersionRecord
from modelkeep.registry.refs import parse_reference
from modelkeep.registry.store import SqlStore, sqlite_url

from .team import fresh_team

LOCATION = "/registry/under/test"


def _sql(tmp_path: Path) -> SqlStore:
    return SqlStore(sqlite_url(str(tmp_path / "index.db"), read_only=False), location=LOCATION)


def _memory(tmp_path: Path) -> MemoryStore:
    return MemoryStore(LOCATION)


def _postgres(tmp_path: Path) -> SqlStore:
    """The same SqlStore on PostgreSQL (scripts/services.sh), in a schema of its own."""
    return SqlStore(fresh_team()["MODELKEEP_REGISTRY_URI"], location=LOCATION)


@pytest.fixture(params=[_sql, _memory, _postgres], ids=["sqlite", "memory", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    make: Callable[[Path], MetadataStore] = request.param
    made = make(tmp_path)
    yield made
    made.close()


def _record(folder: str, **changes: object) -> VersionRecord:
    fields: dict[str, object] = {
        "folder": folder,
        "manifest_sha256": "ab" * 32,
        "created_at": "2026-01-01T00:00:00+00:00",
        "registered_at": "2026-01-02T00:00:00.000000+00:00",
        "registered_by": "alice",
        "task": "binary",
        "model_type": "sklearn.linear_model.LogisticRegression",
        "metrics": {"f1": 0.8},
        "data_version": "d1",
        "data_fingerprint": "sha256:00",
        "schema_hash": "sha256:11",
        "label_map": [[0, "No"], [1, "Yes"]],
        "environment": {"python": "CPython 3.12.0", "platform": "linux", "packages": {}},
        "formats": [
            {
                "format": "skops",
                "path": "artifacts/pipeline.skops",
                "size": 1,
                "sha256": "cd" * 32,
                "parity": None,
            }
        ],
        "parent": None,
        "git_commit": None,
        "tags": ["eu"],
        "description": None,
        "source": "/bundles/tiny",
    }
    fields.update(changes)
    return VersionRecord.from_row(fields)


def _add(store: MetadataStore, name: str, folder: str) -> int:
    return store.add_version(name, _record(folder), before_commit=lambda _: None)


def _move(store: MetadataStore, name: str, alias: str, version: int | None) -> AliasEvent | None:
    return store.set_alias(
        name, alias, version, by="bob", reason="why", before_commit=lambda _: None
    )


def _resolve(store: MetadataStore, text: str) -> IndexedVersion:
    return store.resolve(parse_reference(text), text)


def test_records_round_trip_and_resolve_by_number_alias_and_latest(
    store: MetadataStore,
) -> None:
    assert [_add(store, "tiny", f"f{i}") for i in range(3)] == [1, 2, 3]
    assert _add(store, "other", "g1") == 1
    assert _move(store, "tiny", "production", 2) is not None
    assert _resolve(store, "tiny").version == 3
    assert _resolve(store, "tiny:1") == IndexedVersion("tiny", 1, _record("f0"))
    assert _resolve(store, "tiny@production") == IndexedVersion(
        "tiny", 2, _record("f1"), ("production",)
    )
    assert [v.ref for v in store.versions()] == ["other:1", "tiny:1", "tiny:2", "tiny:3"]
    assert [v.ref for v in store.versions("tiny", latest_only=True)] == ["tiny:3"]
    assert [v.ref for v in store.versions(latest_only=True)] == ["other:1", "tiny:3"]
    assert store.names() == ["other", "tiny"]
    assert store.folders()["f1"] == ("tiny:2", "ab" * 32)


def test_alias_moves_are_logged_and_a_move_to_the_same_version_is_none(
    store: MetadataStore,
) -> None:
    for i in range(3):
        _add(store, "tiny", f"f{i}")
    first = _move(store, "tiny", "production", 1)
    assert first is not None
    assert (first.name, first.from_version, first.to_version, first.by) == ("tiny", None, 1, "bob")
    assert _move(store, "tiny", "production", 1) is None
    _move(store, "tiny", "production", 3)
    _move(store, "tiny", "staging", 2)
    removed = _move(store, "tiny", "staging", None)
    assert removed is not None and removed.to_version is None
    assert store.aliases("tiny") == {"production": 3}
    history = store.history("tiny")
    assert [(e.alias, e.from_version, e.to_version) for e in history] == [
        ("production", None, 1),
        ("production", 1, 3),
        ("staging", None, 2),
        ("staging", 2, None),
    ]
    assert [e.id for e in history] == [1, 2, 3, 4]
    assert [e.to_version for e in store.history("tiny", "production")] == [1, 3]
    assert store.history(None) == history


def test_delete_keeps_the_counter_and_refuses_an_aliased_version(store: MetadataStore) -> None:
    for i in range(3):
        _add(store, "tiny", f"f{i}")
    _move(store, "tiny", "production", 1)
    with pytest.raises(VersionInUseError, match=re.escape("got alias(es) 'production'")):
        store.delete_version("tiny", 1, "tiny:1")
    assert store.delete_version("tiny", 3, "tiny:3") == "f2"
    assert _add(store, "tiny", "f3") == 4
    assert [v.version for v in store.versions("tiny")] == [1, 2, 4]
    assert store.counters() == {"tiny": 5}
    assert store.consistency() == []


def test_unknown_references_say_what_the_store_holds(store: MetadataStore) -> None:
    with pytest.raises(UnknownReferenceError, match=re.escape("it holds no model")):
        _resolve(store, "tiny")
    _add(store, "tiny", "f0")
    _add(store, "tiny", "f1")
    _move(store, "tiny", "production", 1)
    cases = {
        "churn": f"no model named 'churn' in the registry at {LOCATION!r}; it holds 'tiny'.",
        "tiny:7": f"no version 7 of 'tiny' in the registry at {LOCATION!r}; its versions are 1, 2.",
        "tiny@staging": f"no alias 'staging' on 'tiny' in the registry at {LOCATION!r}; its "
        "aliases are 'production'.",
    }
    for text, message in cases.items():
        with pytest.raises(UnknownReferenceError, match=re.escape(message)):
            _resolve(store, text)
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny:9': no version 9")):
        _move(store, "tiny", "production", 9)
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny@canary': no alias")):
        _move(store, "tiny", "canary", None)
    with pytest.raises(UnknownReferenceError, match=re.escape("Reference 'tiny:5': no version 5")):
        store.delete_version("tiny", 5, "tiny:5")


def test_a_failing_before_commit_leaves_nothing(store: MetadataStore) -> None:
    def refuse(_: object) -> None:
        raise OSError("the journal cannot be written")

    with pytest.raises(OSError, match="the journal"):
        store.add_version("tiny", _record("f0"), before_commit=refuse)
    assert (store.versions(), store.counters()) == ([], {})
    _add(store, "tiny", "f1")
    with pytest.raises(OSError, match="the journal"):
        store.set_alias("tiny", "production", 1, by="bob", reason=None, before_commit=refuse)
    assert (store.aliases("tiny"), store.history("tiny")) == ({}, [])
    assert _resolve(store, "tiny").version == 1


def test_restore_fills_a_store_and_consistency_reports_what_is_out_of_step(
    store: MetadataStore,
) -> None:
    moved = AliasEvent(1, "tiny", "production", None, 1, "2026-01-03T00:00:00+00:00", "bob", None)
    store.restore(
        [IndexedVersion("tiny", 1, _record("f0")), IndexedVersion("tiny", 2, _record("f1"))],
        {"tiny": 2},
        {("tiny", "production"): 2},
        [moved],
    )
    assert _resolve(store, "tiny@production").version == 2
    assert store.history("tiny") == [moved]
    assert store.consistency() == [
        Problem("counter_behind", "tiny", "next version counter 2 is not above version 2"),
        Problem("alias_log_broken", "tiny@production", "alias points to 2, the log ends at 1"),
    ]


# ------------------------------------------------------------------- a whole Registry


@pytest.fixture(params=["sqlite", "memory"])
def backed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    root = tmp_path / "home"
    metadata = MemoryStore(str(root)) if request.param == "memory" else None
    with Registry(root, metadata=metadata) as registry:
        yield registry


def test_a_registry_behaves_the_same_over_either_store(backed: Registry, tiny_bundle: Path) -> None:
    assert [backed.register(tiny_bundle).version for _ in range(3)] == [1, 2, 3]
    backed.set_alias("tiny", "production", 2, by="alice")
    assert backed.get("tiny@production").aliases == ["production"]
    assert backed.get("tiny").version == 3
    backed.delete("tiny:3")
    assert backed.register(tiny_bundle).version == 4
    assert [v.ref for v in backed.versions()] == ["tiny:1", "tiny:2", "tiny:4"]
    assert [(e.from_version, e.to_version) for e in backed.history("tiny")] == [(None, 2)]
    assert backed.get("tiny:2").path.is_dir() and backed.get("tiny:2").metrics == {"f1": 0.8}
    assert backed.check() == []
    # The artifact store journals whatever the metadata store: a record per bundle, the
    # deleted version's kept as a tombstone.
    records = journal.read_records(backed.root / "bundles")
    assert sorted((r["version"], r["state"]) for r in records.values()) == [
        (1, "committed"),
        (2, "committed"),
        (3, "deleted"),
        (4, "committed"),
    ]


def test_rebuild_refuses_a_metadata_store_it_did_not_make(tmp_path: Path) -> None:
    store = MemoryStore("memory")
    with pytest.raises(
        RegistryError,
        match=re.escape(
            "rebuilding the index failed: ValueError: rebuild() writes the default SQLite "
            "index; this registry's metadata store is MemoryStore('memory'), restore it "
            "with its own tools."
        ),
    ):
        Registry(tmp_path / "home", metadata=store).rebuild()
