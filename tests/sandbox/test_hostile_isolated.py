"""The sandbox alone against hostile payloads: modelkeep's in-process proofs switched off
(``modelkeep.sandbox._testing``), a plain ``pickle.loads`` / ``joblib.load`` in the worker.

Each payload tries one thing from a reduce call; the test proves it did not happen (the
file is absent, the listener got no connection, the exec'd program's marker is absent,
nothing traces this process) and that it was reported; the test process stays alive.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelkeep.errors import SandboxCrashError, SandboxResourceError
from modelkeep.sandbox import Limits
from modelkeep.sandbox._testing import load_many_unproven

SAFETY = Path(__file__).resolve().parents[1] / "safety"
CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "picklescan"


class Run:
    """Pickles as ``func(*args)``: what every reduce-based exploit is."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, self.args)

    def __call__(self, *args: object) -> object:
        # pickle requires a reduce's first item to be callable; an inner Run stands for
        # the value its own reduce builds when the payload is loaded.
        raise AssertionError("a payload is never run in the test process")


def _unloaded_library() -> str:
    """A shared library on this machine that the worker has not loaded."""
    for name in ("_sqlite3", "_curses", "_dbm", "_tkinter", "readline", "_gdbm"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".so"):
            return spec.origin
    raise AssertionError("no extension module outside the worker's imports was found")


def _tracer_pid() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    raise AssertionError("no TracerPid in /proc/self/status")


@pytest.fixture
def listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _write(tmp_path: Path, name: str, payload: object) -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(payload, protocol=4))
    return path


def test_each_attempt_is_blocked_reported_and_did_not_happen(
    tmp_path: Path, listener: socket.socket
) -> None:
    written = tmp_path / "written-outside-scratch"
    system_marker = tmp_path / "os-system-ran"
    popen_marker = tmp_path / "subprocess-ran"
    port = listener.getsockname()[1]
    library = _unloaded_library()
    ptrace = Run(Run(getattr, Run(ctypes.CDLL, None), "ptrace"), 16, os.getpid(), 0, 0)
    tcp = Run(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    connect = Run(Run(getattr, tcp, "connect"), ("127.0.0.1", port))
    payloads: dict[str, tuple[object, str]] = {
        "write": (Run(open, str(written), "w"), "open for writing"),
        "system": (Run(os.system, f"touch {system_marker}"), "os.system"),
        "subprocess": (Run(subprocess.check_call, ["touch", str(popen_marker)]), "Popen"),
        "socket": (connect, "socket.__new__"),
        "ptrace": (ptrace, "ctypes.dlopen(None)"),
        "library": (Run(ctypes.CDLL, library), "ctypes.dlopen"),
    }
    paths = [_write(tmp_path, f"{name}.pkl", p) for name, (p, _) in payloads.items()]
    # The caller's secrets: its environment and memory, through /proc.
    environ = Run(Run(getattr, Run(open, f"/proc/{os.getpid()}/environ", "rb"), "read"))
    memory = Run(open, f"/proc/{os.getpid()}/mem", "rb")
    snoops = [_write(tmp_path, "environ.pkl", environ), _write(tmp_path, "mem.pkl", memory)]

    outcomes = load_many_unproven(paths + snoops, limits=Limits(timeout=60))
    *outcomes, read_environ, read_memory = outcomes
    for snoop in (read_environ, read_memory):
        assert snoop.loaded is None
        assert "Permission denied" in str(snoop.detail["error"]["message"])

    for (name, (_, reported)), outcome in zip(payloads.items(), outcomes, strict=True):
        assert outcome.attempts, name
        assert any(reported in a for a in outcome.attempts), (name, outcome.attempts)
        assert all(a.endswith(": blocked") for a in outcome.attempts)
        assert outcome.loaded is None or outcome.loaded in ("int", "CDLL"), name
    # It did not happen.
    assert not written.exists()
    assert not system_marker.exists()
    assert not popen_marker.exists()
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert _tracer_pid() == 0
    # The loads that raised say why: the kernel refused them.
    by_name = dict(zip(payloads, outcomes, strict=True))
    assert "Permission denied" in str(by_name["write"].detail["error"]["message"])
    assert "Operation not permitted" in str(by_name["socket"].detail["error"]["message"])
    assert "failed to map segment" in str(by_name["library"].detail["error"]["message"])


def test_a_crash_a_memory_bomb_a_spin_and_a_sleep_stop_the_worker_not_the_caller(
    tmp_path: Path,
) -> None:
    benign = _write(tmp_path, "benign.pkl", {"coef": [0.5, 1.5]})
    payloads = [
        _write(tmp_path, "segfault.pkl", Run(ctypes.string_at, 0)),
        benign,  # a fresh worker takes over after the crash
        _write(tmp_path, "memory.pkl", Run(bytearray, 64 * 1024**3)),
        _write(tmp_path, "spin.pkl", Run(sum, range(10**15))),
        benign,
    ]
    outcomes = load_many_unproven(payloads, limits=Limits(memory=2 * 1024**3, cpu_seconds=2))
    crash, after, memory, spin, again = outcomes
    assert isinstance(crash.error, SandboxCrashError)
    assert crash.error.signal == 11
    assert "killed by signal SIGSEGV" in str(crash.error)
    assert after.error is None and after.loaded == "dict"
    assert isinstance(memory.error, SandboxResourceError)
    assert memory.error.limit == "memory"
    assert isinstance(spin.error, SandboxResourceError)
    assert spin.error.limit == "cpu_seconds"
    assert again.error is None and again.loaded == "dict"

    sleeper = _write(tmp_path, "sleep.pkl", Run(time.sleep, 3600))
    (slept,) = load_many_unproven([sleeper], limits=Limits(timeout=3))
    assert isinstance(slept.error, SandboxResourceError)
    assert slept.error.limit == "timeout"


def _load_payloads_module() -> object:
    spec = importlib.util.spec_from_file_location("sandbox_payloads", SAFETY / "payloads.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sandbox_payloads"] = module
    spec.loader.exec_module(module)
    return module


def test_the_hostile_corpus_runs_nothing_from_the_sandbox(tmp_path: Path) -> None:
    """Every payload of tests/safety/payloads.py and every hostile file of the picklescan
    corpus, loaded unproven in one worker (replaced if one crashes it)."""
    module = _load_payloads_module()
    built: list[tuple[Path, Path]] = []
    streams = set()
    for payload in module.PAYLOADS:  # type: ignore[attr-defined]
        if payload.loader == "pickle-stream":  # hostile only to a load-until-EOF loop
            streams.add(payload.id)
        marker = tmp_path / f"marker-{payload.id}"
        name, data = payload.build(marker)
        path = tmp_path / f"{payload.id}--{name}"
        path.write_bytes(data)
        built.append((path, marker))
    corpus = sorted(
        p
        for p in CORPUS.iterdir()
        if p.suffix in (".pkl", ".pickle") and not p.name.startswith(("benign", "broken"))
    )
    assert len(corpus) == 83
    files_before = set(tmp_path.iterdir())
    outcomes = load_many_unproven([p for p, _ in built] + corpus, limits=Limits(timeout=60))
    assert len(outcomes) == len(built) + len(corpus)
    ours = outcomes[: len(built)]
    for (path, marker), outcome in zip(built, ours, strict=True):
        assert not marker.exists(), path.name
        # Refused by the plain loader (a missing EXT registration, a bad frame ...) or its
        # attempt reported; never silently run.
        if path.name.split("--")[0] in streams:
            assert outcome.loaded == "dict"  # the first stream, the benign one
            continue
        assert outcome.error is not None or outcome.attempts, (path.name, outcome)
    reported = [o for o in outcomes[len(built) :] if o.attempts]
    assert reported, "no corpus file attempted anything the sandbox saw"
    for outcome in outcomes:
        assert all(a.endswith(": blocked") for a in outcome.attempts)
        if outcome.error is not None:
            assert type(outcome.error).__module__ == "modelkeep.errors"
    assert set(tmp_path.iterdir()) == files_before  # nothing written beside the payloads
