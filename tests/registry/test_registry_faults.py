"""Crash safety, with real processes, on both backends: a local registry (SQLite and a
folder) and a team one (PostgreSQL and S3).

The fault test SIGKILLs registering processes at random moments (at least 60 times) and
checks after each kill that the registry holds only complete versions: after gc(),
check() is clean, version numbers are 1..n without gaps, and every registration the
killed process finished is there. (Concurrent writers: test_registry_concurrency.py.)
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
