"""Concurrent writers, with real processes and threads, on both backends: a local registry
(SQLite and a folder) and a team one (PostgreSQL and S3).

8 processes register 25 versions each under one name and move one alias after each; many
threads use a registry that has no index yet, all at once. (Crash safety, SIGKILL at
random points, is in test_registry_faults.py: the two are separate files so that the test
runner can run them at the same time.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import modelkeep

from .helpers import registry_location

WORKER = Path(__file__).with_name("registry_worker.py")
TEAM_ROUNDS = 6  # of the first-use race: a fresh PostgreSQL schema each
# One thread per process: forking a process with a BLAS thread pool running is unsafe.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_eight_processes_register_under_one_name(
    backend_env: dict[str, str], tiny_bundle: Path
) -> None:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "loop",
                registry_location(backend_env),
                str(tiny_bundle),
                "tiny",
                "25",
                f"w{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, **backend_env},
        )
        for i in range(8)
    ]
    reported: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        reported += [int(line) for line in out.split()]

    assert sorted(reported) == list(range(1, 201))  # no duplicates, no gaps
    with modelkeep.Registry() as registry:
        assert [v.version for v in registry.versions("tiny")] == list(range(1, 201))
        assert registry.check() == []
        history = registry.history("tiny", "production")
        assert len(history) == 200  # each worker moved it to a new version 25 times
        previous = None
        for event in history:
            assert event.from_version == previous, event
            previous = event.to_version
        assert registry.aliases("tiny") == {"production": previous}
        assert {e.by for e in history} == {f"w{i}" for i in range(8)}


def test_first_use_by_many_at_once_never_sees_a_half_made_index(
    backend_env: dict[str, str], tmp_path: Path, tiny_bundle: Path
) -> None:
    """Registrations and reads that all find no index yet, started together, all succeed.

    Whoever creates the index builds it whole before anybody can open it: a reader or a
    second writer that opened it half made (the file there, the tables not yet) took it
    for a damaged index. Threads hold separate lock descriptors, so they race here exactly
    as processes do, but start within microseconds of each other. On PostgreSQL the race
    is eight connections creating the tables of a new, empty schema.
    """
    import threading

    from .team import fresh_team

    team = "MODELKEEP_REGISTRY_URI" in backend_env

    def open_registry(where: tuple[str, str | None]) -> modelkeep.Registry:
        return modelkeep.Registry(where[0], artifacts=where[1])

    def first_use(
        where: tuple[str, str | None],
        start: threading.Barrier,
        writes: bool,
        registered: list[int],
        failures: list[BaseException],
    ) -> None:
        try:
            with open_registry(where) as registry:
                start.wait()
                if writes:
                    registered.append(registry.register(tiny_bundle, "tiny").version)
                else:
                    registry.versions()
        except BaseException as exc:
            failures.append(exc)

    for round_ in range(TEAM_ROUNDS if team else 24):
        root = tmp_path / f"registry{round_}"
        where: tuple[str, str | None] = (str(root), None)
        if team:
            fresh = fresh_team()
            where = (fresh["MODELKEEP_REGISTRY_URI"], fresh["MODELKEEP_ARTIFACTS_URI"])
        start = threading.Barrier(8)
        failures: list[BaseException] = []
        registered: list[int] = []
        threads = [
            threading.Thread(
                target=first_use, args=(where, start, i % 2 == 0, registered, failures)
            )
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == [], f"round {round_}: {failures[0]!r}"
        assert sorted(registered) == [1, 2, 3, 4]
        with open_registry(where) as registry:
            assert [v.version for v in registry.versions("tiny")] == [1, 2, 3, 4]
            assert registry.check() == []
        if not team:  # the SQLite index is built in a private file, then renamed
            leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
            assert leftovers == [], leftovers
