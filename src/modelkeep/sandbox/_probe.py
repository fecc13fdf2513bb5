"""What this machine supports: each mechanism tried in a throwaway worker (``doctor``)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from modelkeep.errors import ModelkeepError
from modelkeep.sandbox import _confine

__all__ = ["probe_here"]


def probe_here(start: dict[str, Any]) -> list[dict[str, Any]]:
    """Apply every mechanism to this (throwaway) process, in the worker's order, and say
    which took effect. Unlike the worker, a refusal does not stop the probe."""
    scratch = Path(start["scratch"])
    results: list[dict[str, Any]] = []
    steps = {
        "rlimits": lambda: _confine.apply_limits(_confine.Limits()),
        "no_new_privs": _confine.set_no_new_privs,
        "capabilities": _confine.drop_capabilities,
        "landlock": lambda: f"ABI {_confine.restrict_filesystem(scratch, reads=[])}",
        "seccomp": _confine.seal_syscalls,
    }
    details = {
        "rlimits": "memory, CPU seconds, open files, file size, no core dumps",
        "no_new_privs": "no privilege gained through exec",
        "capabilities": "every capability dropped",
        "landlock": "reads only the system, Python and the model; writes only in scratch; no TCP",
        "seccomp": (
            f"no exec, process, socket, ptrace, IPC or new library, on every thread"
            f" ({platform.machine()})"
        ),
    }
    for name, step in steps.items():
        try:
            done = step()
        except ModelkeepError as exc:
            reason = getattr(exc, "reason", str(exc))
            results.append({"mechanism": name, "supported": False, "detail": str(reason)})
            continue
        detail = details[name] + (f" ({done})" if isinstance(done, str) else "")
        results.append({"mechanism": name, "supported": True, "detail": detail})
    return results
