"""Crash safety and concurrent writers, with real processes.

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

WORKER = Path(__file__).with_name("registry_worker.py")
KILLS = 60
# One thread per process: forking a process with a BLAS thread pool running is unsafe.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")


def test_sigkill_at_random_points_leaves_only_complete_versions(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    root = tmp_path / "registry"
    server = subprocess.Popen(
        [sys.executable, str(WORKER), "forkserver", str(root), str(tiny_bundle), "tiny"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
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

        collected += len(registry.gc())
        assert registry.check() == [], f"after kill {kills}"
        numbers = [v.version for v in registry.versions("tiny")]
        assert numbers == list(range(1, len(numbers) + 1)), f"after kill {kills}"
        assert finished <= set(numbers), f"after kill {kills}: a finished version is lost"
        return done

    try:
        assert server.stdout.readline().strip() == "ready"
        with modelkeep.Registry(root) as registry:
            # Time a few registrations on this machine, now, so the kills spread over
            # whole registrations however busy the cores are.
            per_registration = 0.5 / max(1, len(kill_after(0.5)))
            span = 3 * per_registration
            # At least KILLS kills; more until both outcomes were seen: kills mid-way
            # (debris collected) and kills between registrations (versions finished).
            while kills < KILLS or not collected or not finished:
                assert kills < 4 * KILLS, f"{kills} kills: debris {collected}, finished {finished}"
                kill_after(rng.uniform(0.0, span))
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        server.stdout.close()
    with modelkeep.Registry(root) as registry:
        assert registry.load("tiny").predict({"a": 1.0, "b": 0.0}).tolist() == ["Yes"]


def test_eight_processes_register_under_one_name(tmp_path: Path, tiny_bundle: Path) -> None:
    root = tmp_path / "registry"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "loop",
                str(root),
                str(tiny_bundle),
                "tiny",
                "25",
                f"w{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for i in range(8)
    ]
    reported: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        reported += [int(line) for line in out.split()]

    assert sorted(reported) == list(range(1, 201))
    with modelkeep.Registry(root) as registry:
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
    tmp_path: Path, tiny_bundle: Path
) -> None:
    """Registrations and reads that all find no index yet, started together, all succeed.

    Whoever creates the index builds it whole before anybody can open it: a reader or a
    second writer that opened it half made (the file there, the tables not yet) took it
    for a damaged index. Threads hold separate lock descriptors, so they race here exactly
    as processes do, but start within microseconds of each other.
    """
    import threading

    def first_use(
        root: Path,
        start: threading.Barrier,
        writes: bool,
        registered: list[int],
        failures: list[BaseException],
    ) -> None:
        try:
            with modelkeep.Registry(root) as registry:
                start.wait()
                if writes:
                    registered.append(registry.register(tiny_bundle, "tiny").version)
                else:
                    registry.versions()
        except BaseException as exc:
            failures.append(exc)

    for round_ in range(24):
        root = tmp_path / f"registry{round_}"
        start = threading.Barrier(8)
        failures: list[BaseException] = []
        registered: list[int] = []
        threads = [
            threading.Thread(target=first_use, args=(root, start, i % 2 == 0, registered, failures))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == [], f"round {round_}: {failures[0]!r}"
        assert sorted(registered) == [1, 2, 3, 4]
        with modelkeep.Registry(root) as registry:
            assert [v.version for v in registry.versions("tiny")] == [1, 2, 3, 4]
            assert registry.check() == []
        leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
        assert leftovers == [], leftovers
