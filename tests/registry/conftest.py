"""Registry fixtures: one tiny bundle saved once per module, a fresh registry per test.

``tests/registry`` is a package so that this conftest is imported as
``registry.conftest`` and does not shadow ``tests/conftest.py``, which other test modules
import by the name ``conftest``.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelkeep

from .helpers import save_tiny


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MODELKEEP_HOME, so the default registry is never the real ~/.modelkeep."""
    root = tmp_path / "home"
    monkeypatch.setenv("MODELKEEP_HOME", str(root))
    return root


# Every test that takes the ``registry`` fixture runs twice, unchanged: on the local
# backend (SQLite + a folder) and on the team backend (PostgreSQL + S3, tests/registry/
# team.py). LOCAL_ONLY names the exceptions and why; each has a team counterpart named in
# its reason, or is about something a team registry does not have.
LOCAL_ONLY: dict[str, str] = {
    "test_check_reports_a_symlink_planted_in_a_stored_bundle": (
        "a symlink exists only in a folder; check() hashes the objects in S3, never the "
        "download cache: test_check_reports_damage_and_never_fixes_it[team], "
        "test_gc_on_s3_removes_only_blobs_no_listing_names"
    ),
    "test_an_old_sqlite_index_is_upgraded_in_place_and_a_newer_one_refused": (
        "a SQLite index is upgraded when opened; on PostgreSQL only `registry migrate` "
        "upgrades: test_a_server_index_is_upgraded_only_by_registry_migrate"
    ),
    "test_registry_copy_moves_versions_aliases_and_history_to_a_team_registry": (
        "its source is the local registry and its target a team one: it runs on both"
    ),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    uses = {"registry", "backend_env"} & set(metafunc.fixturenames)
    if uses and metafunc.function.__name__ not in LOCAL_ONLY:
        metafunc.parametrize("backend_kind", ["local", "team"])


@pytest.fixture
def backend_kind() -> str:
    return "local"


@pytest.fixture
def backend_env(
    tmp_path: Path, backend_kind: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment that points ``modelkeep`` (the CLI, ``Registry()``, a new process)
    at a fresh registry of the test's backend: ``MODELKEEP_HOME``, and for the team
    backend the index and artifact URLs and the AWS variables. Set in this process too."""
    env = {"MODELKEEP_HOME": str(tmp_path / "home")}
    if backend_kind == "team":
        from .team import fresh_team

        env.update(fresh_team())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def registry(
    home: Path, backend_kind: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[modelkeep.Registry]:
    if backend_kind == "team":
        from .team import fresh_team

        for key, value in fresh_team().items():
            monkeypatch.setenv(key, value)
    with modelkeep.Registry() as reg:
        yield reg


# The tests of the team backend share one PostgreSQL and one S3 server, and one of them
# restarts PostgreSQL. Under pytest-xdist (``make test``) they may run in two workers at
# once: each holds a shared lock on a file for its duration, the restart an exclusive one.
_RESTARTS_POSTGRES = {"test_postgresql_restarted_between_two_calls_is_survived"}
_TEAM_FILES = (
    "test_registry_backends.py",  # its stores include PostgreSQL
    "test_registry_team.py",
    "test_registry_team_gc.py",
    "test_registry_team_attacks.py",
    "test_registry_schema.py",
    "test_registry_streaming.py",
)


@pytest.fixture(autouse=True)
def _team_services_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    item = request.node
    callspec = getattr(item, "callspec", None)
    on_team = (callspec is not None and callspec.params.get("backend_kind") == "team") or (
        item.nodeid.split("::")[0].endswith(_TEAM_FILES)
    )
    if not on_team:
        yield
        return
    folder = Path(__file__).resolve().parents[2] / ".services"
    folder.mkdir(exist_ok=True)
    exclusive = getattr(item, "originalname", item.name) in _RESTARTS_POSTGRES
    with (folder / "tests.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
