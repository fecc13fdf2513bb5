"""Crash safety and concurrent writers, with real processes, on both backends: a local
registry (SQLite and a folder) and a team one (PostgreSQL and S3).

The fault test SIGKILLs registering processes at random moments (at least 50 times) and
checks after each kill that the registry holds only complete versions: after gc(),
check() is clean, version numbers are 1..n without gaps, and every registration the
killed process finished is there. The concurrency test runs 8 processes registering 25
versions each under one name and moving one alias after each.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import modelkeep
from modelkeep.registry.api import _DEBRIS as DEBRIS

from .helpers import registry_location

WORKER = Path(__file__).with_name("registry_worker.py")
KILLS = 60
# A team registry's check() reads every version back from S3: after every 15th kill (and
# at the end) rather than every kill, to keep within the suite's time. The version numbers
# and the finished registrations are checked after every kill on both backends.
TEAM_CHECK_EVERY = 15
TEAM_ROUNDS = 8  # of the first-use race: a fresh PostgreSQL schema each
# One thread per process: forking a process with a BLAS thread pool running is unsafe.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")


def test_sigkill_at_random_points_leaves_only_complete_versions(
    backend_env: dict[str, str], tiny_bundle: Path
) -> None:
    team = "MODELKEEP_REGISTRY_URI" in backend_env
    server = subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "forkserver",
            registry_location(backend_env),
            str(tiny_bundle),
            "tiny",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**ENV, **backend_env},
    )
    assert server.stdin is not None and server.stdout is not None
    rng = random.Random(5)
    finished: set[int] = set()
    collected = 0
    kills = 0

    def kill_after(delay: float) -> list[int]:
        """Start a registering child, SIGKILL it after ``delay`` s, check the registry."""
        nonlocal collected, kills
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(f"go {delay:.4f}\n")
        server.stdin.flush()
        word, signal_number, versions = [*server.stdout.readline().split(" "), ""][:3]
        kills += 1
        assert (word, signal_number) == ("killed", "9"), f"kill {kills}: {word}"
        done = [int(v) for v in versions.split(",") if v.strip()]
        finished.update(done)

        if not team or kills % TEAM_CHECK_EVERY == 0:
            collected += len(registry.gc())
            # A team registry's gc leaves what a kill left in the shared store for an
            # hour (another machine may still be registering it): check reports it.
            problems = [(p.kind, p.detail) for p in registry.check()]
            if team:
                problems = [p for p in problems if p != ("unreferenced", DEBRIS)]
            assert problems == [], f"after kill {kills}"
        numbers = [v.version for v in registry.versions("tiny")]
        assert numbers == list(range(1, len(numbers) + 1)), f"after kill {kills}"
        assert finished <= set(numbers), f"after kill {kills}: a finished version is lost"
        return done

    try:
        assert server.stdout.readline().strip() == "ready"
        with modelkeep.Registry() as registry:
            # Time registrations on this machine, now, so the kills spread over a child's
            # start (connecting to the servers) and its first three registrations however
            # busy the cores are: one child runs 1 s, another 2 s; the second second is
            # registrations only, the first also the start.
            first, second = len(kill_after(1.0)), len(kill_after(2.0))
            per_registration = 1.0 / max(1, second - first)
            start = max(0.0, 1.0 - first * per_registration)
            span = start + 3 * per_registration
            # At least KILLS kills; more until both outcomes were seen: kills mid-way
            # (debris collected) and kills between registrations (versions finished).
            while kills < KILLS or not collected or not finished:
                assert kills < 4 * KILLS, f"{kills} kills: debris {collected}, finished {finished}"
                kill_after(rng.uniform(0.0, span))
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        server.stdout.close()
    with modelkeep.Registry() as registry:
        collected += len(registry.gc())
        problems = [(p.kind, p.detail) for p in registry.check()]
        assert [p for p in problems if p != ("unreferenced", DEBRIS)] == []
        for version in registry.versions("tiny"):  # every visible version is complete
            assert registry.load(version.ref).predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]


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
