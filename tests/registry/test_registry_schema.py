"""Feature-schema versions, schema migrations (Alembic) and `registry copy`."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import modelkeep
from modelkeep.errors import RegistryIndexError, UnknownReferenceError
from modelkeep.registry.store import SCHEMA_REVISION, SqlStore

from .helpers import save_tiny, tiny_frame
from .team import fresh_team


def _wider(path: Path) -> Path:
    """A tiny model with a third feature: another feature schema."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    frame, target = tiny_frame()
    frame["c"] = np.arange(len(frame), dtype=float)
    modelkeep.save(
        LogisticRegression().fit(frame, target), path, sample=frame, name="tiny", golden_rows=5
    )
    return path


@pytest.fixture(scope="module")
def wider_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wider(tmp_path_factory.mktemp("wider") / "tiny")


def _fill(registry: modelkeep.Registry, tiny: Path, wider: Path) -> None:
    for bundle in (tiny, tiny, wider, wider, tiny):
        registry.register(bundle, "tiny")


def test_the_schema_version_goes_up_only_when_the_feature_schema_changes(
    registry: modelkeep.Registry, tiny_bundle: Path, wider_bundle: Path
) -> None:
    _fill(registry, tiny_bundle, wider_bundle)
    assert [(v.version, v.schema_version) for v in registry.versions("tiny")] == [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),  # back to the first schema: still a change from the previous version
    ]
    assert registry.get("tiny?schema=2").version == 4
    assert registry.get("tiny?schema=1").version == 2
    assert registry.get("tiny:3").to_dict()["schema_version"] == 2
    assert registry.diff("tiny:2", "tiny:3")["schema_version"] == {"from": 1, "to": 2}
    assert "- **feature schema version**: v3" in registry.card("tiny:5")
    with pytest.raises(
        UnknownReferenceError,
        match=re.escape(
            "Reference 'tiny?schema=7': no version of 'tiny' with feature-schema version 7"
        ),
    ):
        registry.get("tiny?schema=7")


def _make_old(root: Path) -> None:
    """Turn the SQLite index at ``root`` into one as modelkeep 0.1 wrote it (store format
    1, no schema versions, no alembic_version table)."""
    with sqlite3.connect(root / "registry.db") as db:
        db.execute("ALTER TABLE versions DROP COLUMN schema_version")
        db.execute("DROP TABLE alembic_version")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'store_format'")


def test_an_old_sqlite_index_is_upgraded_in_place_and_a_newer_one_refused(
    registry: modelkeep.Registry, tiny_bundle: Path, wider_bundle: Path
) -> None:
    _fill(registry, tiny_bundle, wider_bundle)
    registry.close()
    _make_old(registry.root)
    with modelkeep.Registry(registry.root) as reopened:  # upgraded when opened
        assert [v.schema_version for v in reopened.versions("tiny")] == [1, 1, 2, 2, 3]
        assert reopened.register(tiny_bundle, "tiny").schema_version == 3
        assert reopened.migrate() == (SCHEMA_REVISION, SCHEMA_REVISION)
    with sqlite3.connect(registry.root / "registry.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(
        RegistryIndexError,
        match=re.escape(
            "index schema version 0099 is newer than this modelkeep's "
            f"{SCHEMA_REVISION}; it was written by a later modelkeep release"
        ),
    ):
        modelkeep.Registry(registry.root).versions()


def test_a_server_index_is_upgraded_only_by_registry_migrate(
    tiny_bundle: Path, wider_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    for key, value in fresh_team().items():
        monkeypatch.setenv(key, value)
    url = os.environ["MODELKEEP_REGISTRY_URI"]
    with modelkeep.Registry() as team:
        _fill(team, tiny_bundle, wider_bundle)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE versions DROP COLUMN schema_version")
        connection.exec_driver_sql("DROP TABLE alembic_version")
        connection.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'store_format'")
    engine.dispose()
    with pytest.raises(
        RegistryIndexError,
        match=re.escape(
            f"index schema version 0001 is older than this modelkeep's {SCHEMA_REVISION}; "
            "run `modelkeep registry migrate` to upgrade it in place"
        ),
    ):
        modelkeep.Registry().versions()
    migrated = subprocess.run(
        [sys.executable, "-m", "modelkeep", "registry", "migrate", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["from"] == "0001"
    assert json.loads(migrated.stdout)["to"] == SCHEMA_REVISION
    with modelkeep.Registry() as team:
        assert [v.schema_version for v in team.versions("tiny")] == [1, 1, 2, 2, 3]
    store = SqlStore(url, location="x")
    assert store.revision() == SCHEMA_REVISION
    store.close()


def test_registry_copy_moves_versions_aliases_and_history_to_a_team_registry(
    registry: modelkeep.Registry,
    tiny_bundle: Path,
    wider_bundle: Path,
    tmp_path: Path,
) -> None:
    _fill(registry, tiny_bundle, wider_bundle)
    other = save_tiny(tmp_path / "other", name="other")
    registry.register(other)
    registry.set_alias("tiny", "production", 2, reason="first", by="alice")
    registry.set_alias("tiny", "production", 4, reason="wider", by="bob")
    registry.set_alias("tiny", "staging", 5, by="bob")
    registry.delete("tiny:3")
    registry.close()
    team_env = fresh_team()
    env = {**os.environ, **team_env}
    copied = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelkeep",
            "registry",
            "copy",
            str(registry.root),
            team_env["MODELKEEP_REGISTRY_URI"],
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout) == ["other:1", "tiny:1", "tiny:2", "tiny:4", "tiny:5"]
    with modelkeep.Registry(
        team_env["MODELKEEP_REGISTRY_URI"], artifacts=team_env["MODELKEEP_ARTIFACTS_URI"]
    ) as team:
        assert [(v.version, v.schema_version) for v in team.versions("tiny")] == [
            (1, 1),
            (2, 1),
            (4, 2),
            (5, 3),
        ]
        assert team.aliases("tiny") == {"production": 4, "staging": 5}
        moves = [(e.alias, e.from_version, e.to_version, e.by) for e in team.history("tiny")]
        assert moves == [
            ("production", None, 2, "alice"),
            ("production", 2, 4, "bob"),
            ("staging", None, 5, "bob"),
        ]
        assert team.register(tiny_bundle, "tiny").version == 6  # numbers never restart
        assert team.load("tiny@production").predict({"a": 1.0, "b": 0.0, "c": 1.0}).tolist() == [1]
        again = subprocess.run(
            [
                sys.executable,
                "-m",
                "modelkeep",
                "registry",
                "copy",
                str(registry.root),
                team_env["MODELKEEP_REGISTRY_URI"],
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert again.returncode == 1
        assert "the target already holds 'other', 'tiny'" in again.stderr
