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


# Tests of the Registry's behaviour through its API only: each runs on the local backend
# (SQLite + a folder) and on the team backend (PostgreSQL + S3, tests/registry/team.py),
# unchanged. The other tests look inside the local folder (bundles/, registry.db), or are
# about it (a deleted version's folder is gone; a team registry's download cache is keyed
# by manifest hash and shared by identical bundles), and run on the local backend only;
# test_registry_team.py covers the team one.
BOTH_BACKENDS = {
    "test_registered_by_defaults_to_the_os_user",
    "test_references_resolve_to_versions",
    "test_aliases_move_and_every_move_is_logged",
    "test_delete_refuses_an_aliased_version_and_an_inexact_reference",
    "test_lineage_records_the_parent",
    "test_card_of_a_version_no_alias_touched",
    "test_convert_unknown_reference_registers_nothing",
    "test_features",
    "test_the_reverse_diff_mirrors",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "registry" in metafunc.fixturenames and metafunc.function.__name__ in BOTH_BACKENDS:
        metafunc.parametrize("backend_kind", ["local", "team"])


@pytest.fixture
def backend_kind() -> str:
    return "local"


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
_TEAM_FILES = ("test_registry_team.py", "test_registry_schema.py")


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
