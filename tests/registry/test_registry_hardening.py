"""The registry never loses a model: a lost index, a stopped lock holder, read-only use.

Issue 10 ("Hardening"). Each case was found failing: an emptied or deleted index read as
an empty registry whose bundles gc() then deleted; check and gc waited forever behind a
stopped registration; a read-only registry could not even be listed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import modelkeep
from modelkeep.cli import app
from modelkeep.errors import IndexLostError, RegistryLocationError

from . import stores

WORKER = Path(__file__).with_name("registry_worker.py")
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"MODELKEEP_HOME": str(home)})


def three_versions(registry: modelkeep.Registry, bundle: Path) -> None:
    """churn:1..3, production moved 1 -> 2 -> 3, staging set to 1 and removed."""
    for _ in range(3):
        registry.register(bundle, "churn", registered_by="alice")
    registry.set_alias("churn", "production", 1, reason="first", by="alice")
    registry.set_alias("churn", "production", 2, reason="better", by="bob")
    registry.set_alias("churn", "staging", 1, by="bob")
    registry.delete_alias("churn", "staging", reason="done", by="bob")
    registry.set_alias("churn", "production", 3, reason="best", by="carol")


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_index_is_an_error_and_rebuild_restores_versions_aliases_and_history(
    registry: modelkeep.Registry, home: Path, tiny_bundle: Path, how: str
) -> None:
    three_versions(registry, tiny_bundle)
    history = [e.to_dict() for e in registry.history("churn")]
    versions = [v.to_dict() for v in registry.versions("churn")]
    stores.lose_index(registry, how)
    stored = stores.published(registry)

    message = stores.lost_message(registry, stores.lost_state(registry, how), 3)
    for command in (["list"], ["check"], ["gc"], ["history", "churn"]):
        result = cli(home, "registry", *command)
        assert (result.exit_code, result.stdout) == (1, ""), command
        assert result.stderr == f"Error: {message}\n", command
    assert stores.published(registry) == stored  # gc deleted nothing
    with pytest.raises(IndexLostError, match=re.escape(message)):
        registry.register(tiny_bundle, "churn")

    rebuilt = cli(home, "registry", "rebuild")
    assert (rebuilt.exit_code, rebuilt.stdout) == (
        0,
        "Rebuilt the index: 3 version(s) of 1 model(s), 1 alias(es), 5 alias move(s).\n",
    )
    registry.close()
    assert [v.to_dict() for v in registry.versions("churn")] == versions
    assert [e.to_dict() for e in registry.history("churn")] == history
    assert registry.aliases("churn") == {"production": 3}
    assert registry.check() == []
    assert registry.register(tiny_bundle, "churn").version == 4
    assert registry.load("churn@production").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]
    # The alias log goes on after the restored moves (a server's id sequence included).
    assert registry.set_alias("churn", "production", 4, by="dave") == registry.history("churn")[-1]
    assert [e.id for e in registry.history("churn")] == [1, 2, 3, 4, 5, 6]


def test_numbers_never_restart_after_the_highest_version_was_deleted_and_the_index_lost(
    registry: modelkeep.Registry, tiny_bundle: Path
) -> None:
    for _ in range(2):
        registry.register(tiny_bundle, "churn")
    registry.delete("churn:2")
    stores.lose_index(registry, "deleted")

    assert [v.ref for v in registry.rebuild()] == ["churn:1"]
    assert registry.register(tiny_bundle, "churn").version == 3
    assert registry.check() == []


def test_gc_keeps_versions_an_older_index_lacks_and_rebuild_restores_them(
    registry: modelkeep.Registry, tiny_bundle: Path
) -> None:
    registry.register(tiny_bundle, "churn")
    registry.set_alias("churn", "production", 1)
    backup = stores.backup_index(registry)
    for _ in range(2):
        registry.register(tiny_bundle, "churn")
    registry.set_alias("churn", "production", 3)
    folders = {v.ref: stores.folder_of(registry, v.ref) for v in registry.versions("churn")}
    stores.restore_index(registry, backup)  # an index restored from an older backup

    lost = [
        modelkeep.registry.Problem(
            "not_indexed",
            f"bundles/{folders[ref]}",
            f"registered as {ref} but missing from the index; `modelkeep registry rebuild` "
            "restores it (gc() keeps it)",
        )
        for ref in ("churn:2", "churn:3")
    ]
    assert registry.check() == sorted(lost, key=lambda p: p.subject)
    assert registry.gc() == []
    assert sorted(stores.published(registry)) == sorted(folders.values())
    assert [v.ref for v in registry.rebuild()] == ["churn:1", "churn:2", "churn:3"]
    assert registry.aliases("churn") == {"production": 3}  # the move the backup lacked
    assert [(e.from_version, e.to_version) for e in registry.history("churn")] == [
        (None, 1),
        (1, 3),
    ]
    assert registry.check() == []


def test_gc_removes_a_crash_s_debris_but_keeps_a_folder_it_cannot_account_for(
    registry: modelkeep.Registry, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(tiny_bundle, "churn")
    stored = stores.folder_of(registry, "churn:1")
    stores.plant_bundle(registry, "a", tiny_bundle)  # killed before its record
    stores.plant_bundle(registry, "b", tiny_bundle)  # killed before its commit
    record = stores.read_record(registry, stored)
    record.update(state="pending", folder="b", version=2)
    stores.write_record(registry, "b", record)
    stores.plant_bundle(registry, "c", tiny_bundle)  # from before records existed
    stores.backdate(registry, monkeypatch, "c", 2 * 86400)
    expected = ["bundles/a", "bundles/b", stores.record_entry(registry, "b")]
    if registry.team:
        # Past the hour a team registry waits (another machine may be registering), and
        # within the day that tells a crash's leftovers from a bundle of unknown origin.
        for folder in ("a", "b"):
            stores.backdate(registry, monkeypatch, folder, 7200)
    else:
        (registry.root / "bundles" / ".d.json.tmp").write_text("{")  # a torn record write
        expected.append("bundles/.d.json.tmp")  # an object PUT is whole: none on S3

    assert registry.gc() == expected
    assert stores.published(registry) == sorted([stored, "c"])
    assert registry.check() == [
        modelkeep.registry.Problem(
            "unknown_folder",
            "bundles/c",
            "not in the index and without a committed registration record, yet older than a "
            "crash's leftovers; gc() keeps it: inspect it, then register it again or remove it",
        )
    ]
    assert registry.register(tiny_bundle, "churn").version == 2


def test_history_of_an_alias_never_set_names_the_aliases_that_were(
    registry: modelkeep.Registry, home: Path, tiny_bundle: Path
) -> None:
    registry.register(tiny_bundle, "churn")
    assert cli(home, "registry", "history", "churn", "--alias", "nosuch").stdout == (
        "No alias of 'churn' was ever set.\n"
    )
    registry.set_alias("churn", "production", 1)
    registry.set_alias("churn", "canary", 1)
    registry.delete_alias("churn", "canary")

    result = cli(home, "registry", "history", "churn", "--alias", "nosuch")
    assert (result.exit_code, result.stdout) == (
        0,
        "Alias 'nosuch' of 'churn' was never set; the aliases ever set are 'canary', "
        "'production'.\n",
    )


def test_a_home_that_is_a_file_is_a_clear_error(tmp_path: Path, tiny_bundle: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")

    def message(operation: str) -> str:
        return (
            f"Registry at {str(home)!r}: {operation} needs {str(home)!r} to be a folder, and "
            "it is a file. Nothing was changed. Point MODELKEEP_HOME (or Registry(root=...)) "
            "at a folder, or move the file away."
        )

    result = cli(home, "registry", "list")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {message('reading the registry')}\n",
    )
    with modelkeep.Registry(home) as registry:
        with pytest.raises(
            RegistryLocationError, match=re.escape(message("writing to the registry"))
        ):
            registry.register(tiny_bundle, "churn")
        with pytest.raises(RegistryLocationError, match=re.escape(message("gc"))):
            registry.gc()


# ------------------------------------------------------------------------- real processes


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_check_and_gc_fail_naming_a_stopped_registration_that_holds_the_lock(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    home = tmp_path / "home"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), "pause", str(home), str(tiny_bundle), "churn"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert worker.stdout.readline() == "holding\n"
        os.kill(worker.pid, signal.SIGSTOP)
        for command in ("check", "gc"):
            result = cli(home, "registry", command, "--wait", "0.5")  # gives up, says so
            assert (result.exit_code, result.stderr) == (
                1,
                f"Error: Registry at {str(home)!r}: {command} waited 0.5 s for the lock "
                f"{str(home / 'registry.lock')!r}, held by process {worker.pid} (register); "
                "expected it free. Nothing was changed. If that process is stopped (resume it "
                "with `kill -CONT PID`) or hung, end it and retry; a registration killed "
                "mid-way leaves only debris for `modelkeep registry gc`.\n",
            ), command
        os.kill(worker.pid, signal.SIGCONT)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline() == "1\n"
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGCONT)
            worker.kill()
            worker.wait()
        worker.stdin.close()
        worker.stdout.close()
    with modelkeep.Registry(home) as registry:
        assert registry.gc() == []
        assert registry.check() == []
        assert (home / "registry.lock").read_text() == ""  # the holders' list is cleared


def _read_only_runner() -> list[str]:
    """A command prefix that runs its command with the registry mounted read-only.

    As root, permissions do not stop writes, so a private mount namespace binds the folder
    read-only (a real read-only mount, as on a share); otherwise ``chmod`` does it.
    """
    if os.getuid() != 0:
        return []
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"']


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_read_only_registry_can_be_read_and_refuses_writes_clearly(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    home = tmp_path / "home"
    with modelkeep.Registry(home) as registry:
        registry.register(tiny_bundle, "churn")
        registry.set_alias("churn", "production", 1, reason="go live")
    prefix = _read_only_runner()
    if prefix:
        prefix = [*prefix, str(home)]
    else:
        for directory, _, files in os.walk(home):
            os.chmod(directory, 0o555)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o444)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "modelkeep", "registry", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**ENV, "MODELKEEP_HOME": str(home), "COLUMNS": "200"},
        )

    try:
        listed = run("list", "--json")  # never waits for a lock it cannot take (timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert [(v["name"], v["version"]) for v in json.loads(listed.stdout)] == [("churn", 1)]
        history = run("history", "churn", "--json")
        assert [e["reason"] for e in json.loads(history.stdout)] == ["go live"]
        checked = run("check")
        assert (checked.returncode, checked.stdout) == (
            0,
            f"Registry at {home}: no problems found.\n",
        ), checked.stderr
        for args, operation in (
            (["gc"], "gc"),
            (["register", str(tiny_bundle)], "writing to the registry"),
        ):
            refused = run(*args)
            assert (refused.returncode, refused.stdout) == (1, ""), args
            assert refused.stderr == (
                f"Error: Registry at {str(home)!r}: {operation} needs {str(home)!r} to be a "
                "folder this process can write, and it is not (a read-only mount or image "
                "layer?). Nothing was changed. Reading works as it is; run this where the "
                "registry is writable, or as a user who may write it.\n"
            ), args
    finally:
        for directory, _, _ in os.walk(home):
            os.chmod(directory, 0o755)
