"""What the registry tests do to a registry's stores, on either backend.

A local registry keeps its index in ``registry.db`` and its bundles in folders; a team
registry keeps them in PostgreSQL and S3 (``tests/registry/team.py``). The tests that
damage, lose or plant things call these, and assert the same outcome on both.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import modelkeep
from modelkeep.manifest import MANIFEST_NAME
from modelkeep.registry.artifacts import remove_tree
from modelkeep.registry.refs import parse_reference
from modelkeep.registry.remote import ObjectArtifacts
from modelkeep.registry.store import alias_log, aliases, names, sqlite_url, versions

_TABLES = (names, versions, aliases, alias_log)  # in the order foreign keys need


def objects(registry: modelkeep.Registry) -> ObjectArtifacts:
    """A team registry's artifact store."""
    store = registry._folders
    if not isinstance(store, ObjectArtifacts):
        raise TypeError(f"{registry!r} keeps its bundles in folders, not objects")
    return store


def published(registry: modelkeep.Registry) -> list[str]:
    """The ids of the bundles the store holds (folders, or listings in S3)."""
    return registry._folders.published()


def folder_of(registry: modelkeep.Registry, ref: str) -> str:
    """The folder id (listing id on S3) the index records for ``ref``."""
    store = registry._open(create=False)
    assert store is not None
    return store.resolve(parse_reference(ref), ref).record.folder


def record_entry(registry: modelkeep.Registry, folder: str) -> str:
    """Where ``folder``'s registration record lives, as ``gc()`` names it."""
    return f"records/{folder}.json" if registry.team else f"bundles/{folder}.json"


# ------------------------------------------------------------------------------ bundles


def _writable(path: Path) -> None:
    for directory, _, files in os.walk(path):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def _listing(registry: modelkeep.Registry, folder: str) -> dict[str, Any]:
    store = objects(registry)
    data: dict[str, Any] = json.loads(store._fs.cat_file(store._key("bundles", f"{folder}.json")))
    return data


def damage_artifact(registry: modelkeep.Registry, ref: str) -> None:
    """One more byte at the end of ``ref``'s stored ``artifacts/pipeline.skops`` (on S3,
    its blob: shared by every bundle holding the same bytes)."""
    name = "artifacts/pipeline.skops"
    if not registry.team:
        bundle = registry._folders.path(folder_of(registry, ref))
        _writable(bundle)
        (bundle / name).write_bytes((bundle / name).read_bytes() + b"x")
        return
    store = objects(registry)
    key = store._key("blobs", _listing(registry, folder_of(registry, ref))["files"][name]["sha256"])
    store._fs.pipe_file(key, store._fs.cat_file(key) + b"x")


def rewrite_manifest(registry: modelkeep.Registry, ref: str) -> None:
    """A space after ``ref``'s stored manifest (on S3: a new manifest blob, and the
    bundle's listing rewritten to name it, as a hand edit of the bucket would)."""
    folder = folder_of(registry, ref)
    if not registry.team:
        bundle = registry._folders.path(folder)
        _writable(bundle)
        manifest = bundle / MANIFEST_NAME
        manifest.write_text(manifest.read_text() + " ")
        return
    import hashlib

    store = objects(registry)
    listing = _listing(registry, folder)
    data = store._fs.cat_file(store._key("blobs", listing["manifest_sha256"])) + b" "
    sha = hashlib.sha256(data).hexdigest()
    store._fs.pipe_file(store._key("blobs", sha), data)
    listing["files"][MANIFEST_NAME] = {"size": len(data), "sha256": sha}
    listing["manifest_sha256"] = sha
    store._fs.pipe_file(store._key("bundles", f"{folder}.json"), json.dumps(listing).encode())


def remove_bundle(registry: modelkeep.Registry, ref: str) -> None:
    """Remove ``ref``'s stored folder (on S3, its listing)."""
    folder = folder_of(registry, ref)
    if not registry.team:
        bundle = registry._folders.path(folder)
        _writable(bundle)
        shutil.rmtree(bundle)
        return
    store = objects(registry)
    store._fs.rm_file(store._key("bundles", f"{folder}.json"))


def forget_downloads(registry: modelkeep.Registry) -> None:
    """Empty a team registry's download cache (the next use downloads from S3)."""
    remove_tree(registry.root / "cache")


def plant_bundle(registry: modelkeep.Registry, folder: str, source: Path) -> None:
    """A complete copy of the bundle ``source`` in the store as ``folder``, with no record
    and no index row: what a registration killed before its record leaves."""
    if not registry.team:
        shutil.copytree(source, registry.root / "bundles" / folder)
        return
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / folder
        shutil.copytree(source, staged)
        assert objects(registry).publish(staged) == folder  # uploaded and read back


def read_record(registry: modelkeep.Registry, folder: str) -> dict[str, Any]:
    if not registry.team:
        text = (registry.root / "bundles" / f"{folder}.json").read_text()
        data: dict[str, Any] = json.loads(text)
        return data
    store = objects(registry)
    found: dict[str, Any] = json.loads(store._fs.cat_file(store._key("records", f"{folder}.json")))
    return found


def write_record(registry: modelkeep.Registry, folder: str, record: dict[str, Any]) -> None:
    if not registry.team:
        (registry.root / "bundles" / f"{folder}.json").write_text(json.dumps(record))
        return
    store = objects(registry)
    store._fs.pipe_file(store._key("records", f"{folder}.json"), json.dumps(record).encode())


def backdate(
    registry: modelkeep.Registry, monkeypatch: pytest.MonkeyPatch, folder: str, seconds: float
) -> None:
    """Make ``folder`` look ``seconds`` old to ``check()`` and ``gc()``.

    A folder's time is set with ``os.utime``; an S3 server sets an object's LastModified
    itself and lets no client change it, so on S3 the store's answer for that listing is
    shifted instead (the only place these tests bend time).
    """
    if not registry.team:
        then = time.time() - seconds
        os.utime(registry.root / "bundles" / folder, (then, then))
        return
    store = objects(registry)
    modified = store.modified

    def older(name: str) -> float | None:
        stamp = modified(name)
        return stamp - seconds if stamp is not None and name == folder else stamp

    monkeypatch.setattr(store, "modified", older)


def backdate_blobs(
    registry: modelkeep.Registry, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    """Make every blob in S3 look ``seconds`` old to ``check()`` and ``gc()`` (see
    :func:`backdate`)."""
    store = objects(registry)
    blobs, modified = store.blobs, store.blob_modified

    def older() -> dict[str, float | None]:
        return {sha: None if t is None else t - seconds for sha, t in blobs().items()}

    def older_one(sha: str) -> float | None:
        stamp = modified(sha)
        return None if stamp is None else stamp - seconds

    monkeypatch.setattr(store, "blobs", older)
    monkeypatch.setattr(store, "blob_modified", older_one)


def backdate_alias_moves(
    registry: modelkeep.Registry, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> None:
    """Make every alias move object in S3 look ``seconds`` old (see :func:`backdate`)."""
    store = objects(registry)
    ages = store.alias_ages

    def older() -> dict[int, float | None]:
        return {i: None if t is None else t - seconds for i, t in ages().items()}

    monkeypatch.setattr(store, "alias_ages", older)


# -------------------------------------------------------------------------------- index


@contextmanager
def raw_index(registry: modelkeep.Registry) -> Iterator[sa.Connection]:
    """A connection to the registry's index (SQLite or PostgreSQL), in a transaction
    committed at the end: the tests change rows behind the registry's back."""
    registry.close()
    url = registry._index_url or sqlite_url(str(registry.root / "registry.db"), read_only=False)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def lose_index(registry: modelkeep.Registry, how: str) -> None:
    """Lose the index: ``emptied`` (an empty registry.db; every row of the tables removed)
    or ``deleted`` (no registry.db; the tables dropped)."""
    registry.close()
    if not registry.team:
        index = registry.root / "registry.db"
        if how == "emptied":
            index.write_bytes(b"")
        else:
            index.unlink()
        return
    with raw_index(registry) as connection:
        tables = ", ".join(t.name for t in reversed(_TABLES))
        if how == "emptied":
            connection.exec_driver_sql(f"TRUNCATE {tables}")
        else:
            connection.exec_driver_sql(f"DROP TABLE {tables}, meta, alembic_version")


def lost_state(registry: modelkeep.Registry, how: str) -> str:
    """What ``IndexLostError`` says it found after ``lose_index(registry, how)``."""
    if registry.team:
        return {
            "emptied": "an index without versions or version counters",
            "deleted": "a database without the registry's tables",
        }[how]
    return {"emptied": "an empty file", "deleted": "no such file"}[how]


def lost_message(registry: modelkeep.Registry, state: str, bundles: int) -> str:
    """The whole message of ``IndexLostError``."""
    if registry.team:
        return (
            f"Registry at {registry.location!r}: expected an index (the registry's tables in "
            f"that database) of the {bundles} bundle(s) its artifact store holds, got {state}. "
            "Nothing was changed: read as empty, the registry would hide them and gc would "
            "delete them. Recreate the index from the store with `modelkeep registry "
            "rebuild`, or restore the database from a backup."
        )
    return (
        f"Registry at {str(registry.root)!r}: expected an index (registry.db) of the {bundles} "
        f"bundle(s) its store holds, got {state}. Nothing was changed: read as empty, the "
        "registry would hide them and gc would delete them. Recreate the index from the "
        "store with `modelkeep registry rebuild`, or restore registry.db from a backup."
    )


def backup_index(registry: modelkeep.Registry) -> Any:
    """A copy of the index as it is now (a file copy; on PostgreSQL, its rows)."""
    registry.close()
    if not registry.team:
        backup = registry.root.parent / "backup.db"
        shutil.copy(registry.root / "registry.db", backup)
        return backup
    with raw_index(registry) as connection:
        return {t.name: [r._asdict() for r in connection.execute(sa.select(t))] for t in _TABLES}


def restore_index(registry: modelkeep.Registry, backup: Any) -> None:
    """Put back an index copied by :func:`backup_index` (and its alias id sequence)."""
    registry.close()
    if not registry.team:
        shutil.copy(backup, registry.root / "registry.db")
        return
    with raw_index(registry) as connection:
        for table in reversed(_TABLES):
            connection.execute(sa.delete(table))
        for table in _TABLES:
            if backup[table.name]:
                connection.execute(sa.insert(table), backup[table.name])
        connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('alias_log', 'id'), "
            "COALESCE((SELECT MAX(id) FROM alias_log), 0) + 1, false)"
        )
