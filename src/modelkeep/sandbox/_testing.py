"""Test-only entry points: the sandbox with modelkeep's in-process proofs switched off.

Never reachable by accident: no environment variable, no public argument. The proofs-off
flag travels in the worker's start message, set only by these private functions, so that
tests can show the sandbox alone stops hostile payloads (a plain ``pickle.loads`` or
``joblib.load`` runs inside the worker).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelkeep.errors import ModelkeepError
from modelkeep.sandbox._confine import Limits
from modelkeep.sandbox._launcher import Worker, worker_error
from modelkeep.sandbox._model import IsolatedEstimator, open_file

__all__ = ["Outcome", "load_many_unproven", "load_unproven"]

# Hostile payloads are not models: a worker for them needs only what a plain unpickler
# and joblib import (so each starts in a second or two); a benign file needing more fails
# to import in the worker, which the outcome reports.
UNPROVEN_PRELOAD = ("numpy", "joblib", "pickle", "zlib", "gzip", "bz2", "lzma")


@dataclass
class Outcome:
    """What loading one file unproven did: the type it produced (None if it failed), the
    error (the worker's, or the caller's for a crash or limit), the attempts reported."""

    path: str
    loaded: str | None
    error: ModelkeepError | None
    attempts: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def load_unproven(
    path: str | os.PathLike[str], *, limits: Limits | None = None
) -> IsolatedEstimator:
    """``safe_load(path, isolate=True)`` with the proofs off: a plain unpickler in the worker."""
    source = os.path.abspath(os.fspath(path))
    return open_file(
        source,
        {"trusted": None, "max_inflated_bytes": 1024**3},
        limits=limits or Limits(),
        preload=UNPROVEN_PRELOAD,
        proofs=False,
    )


def load_many_unproven(
    paths: Sequence[str | os.PathLike[str]], *, limits: Limits | None = None
) -> list[Outcome]:
    """Each file loaded unproven, one after another in one worker; a worker that dies is
    replaced for the files after it."""
    limits = limits or Limits()
    outcomes: list[Outcome] = []
    worker: Worker | None = None
    every = [os.path.abspath(os.fspath(p)) for p in paths]
    try:
        for source in every:
            if worker is None or not worker.alive:
                worker = Worker(
                    source, limits=limits, preload=UNPROVEN_PRELOAD, proofs=False, reads=every
                )
            worker.source = source
            try:
                reply, _ = worker.request(
                    {"op": "load_many", "paths": [source], "max_inflated_bytes": 1024**3},
                    during="load",
                )
            except ModelkeepError as exc:
                outcomes.append(Outcome(source, None, exc))
                continue
            (found,) = reply["outcomes"]
            error = found.get("error")
            attempts = [str(a) for a in found.get("attempts", [])]
            failure = (
                None
                if error is None
                else worker_error(source, "load", {"error": error, "attempts": attempts}, limits)
            )
            outcomes.append(Outcome(source, found.get("loaded"), failure, attempts, found))
    finally:
        if worker is not None:
            worker.close()
    return outcomes
