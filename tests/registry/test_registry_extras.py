"""A team registry without its optional drivers: ``modelkeep[postgres]`` (psycopg) and
``modelkeep[s3]`` (s3fs, fsspec) name the extra to install, from the library and the CLI.

Each case runs in a fresh interpreter in which the driver cannot be imported, exactly as
where it was never installed: an import hook finds no such module (``find_spec`` says
so), so ``import psycopg`` raises the same ``ModuleNotFoundError`` it raises there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import save_tiny

_PRELUDE = """
import importlib.abc, runpy, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _run(blocked: list[str], code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    program = f"BLOCKED = {blocked!r}\n{_PRELUDE}\n{code}"
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
    env["MODELKEEP_HOME"] = str(tmp_path / "home")
    return env


POSTGRES = "postgresql+psycopg://someone@127.0.0.1:1/models"
POSTGRES_MESSAGE = "A registry index on PostgreSQL needs psycopg: pip install 'modelkeep[postgres]'"
S3_MESSAGE = "An artifact store on S3 needs s3fs: pip install 'modelkeep[s3]'"


def test_without_psycopg_the_cli_names_the_postgres_extra(base_env: dict[str, str]) -> None:
    env = {**base_env, "MODELKEEP_REGISTRY_URI": POSTGRES, "MODELKEEP_ARTIFACTS_URI": "s3://b/p"}
    ran = _run(
        ["psycopg"],
        'sys.argv = ["modelkeep", "registry", "list"]\n'
        'runpy.run_module("modelkeep", run_name="__main__")',
        env,
    )
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.strip() == f"Error: {POSTGRES_MESSAGE}"
    assert "Traceback" not in ran.stderr


def test_without_psycopg_the_library_raises_missing_dependency(base_env: dict[str, str]) -> None:
    code = f"""
import modelkeep
from modelkeep.errors import MissingDependencyError
try:
    modelkeep.Registry({POSTGRES!r}, artifacts="s3://b/p").versions()
except MissingDependencyError as exc:
    print(json.dumps([str(exc), exc.extra]))
"""
    ran = _run(["psycopg"], "import json\n" + code, base_env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [POSTGRES_MESSAGE, "postgres"]


def test_without_s3fs_registering_names_the_s3_extra_and_writes_nothing(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    bundle = save_tiny(tmp_path / "tiny")
    code = f"""
import modelkeep
from modelkeep.errors import MissingDependencyError
registry = modelkeep.Registry({str(tmp_path / "other")!r}, artifacts="s3://b/p")
try:
    registry.register({str(bundle)!r})
except MissingDependencyError as exc:
    print(json.dumps([str(exc), exc.extra]))
"""
    ran = _run(["s3fs"], "import json\n" + code, base_env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [S3_MESSAGE, "s3"]
    staging = tmp_path / "other" / "staging"
    assert not staging.exists() or not any(staging.iterdir())
    assert not (tmp_path / "other" / "registry.db").exists()
