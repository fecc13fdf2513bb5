"""Hostile payloads written against this sandbox's own source (issue 13's attack review).

Each payload is Python code run by ``exec`` from a plain unpickler inside the worker
(``_testing``: modelkeep's proofs off, the sandbox alone). A payload reports what the
kernel answered by raising an exception whose message is ``PROBE`` + JSON; each test then
proves from the caller's side that the attempt had no effect (a process alive and
unchanged, a file absent, a listener with no connection, a reply refused).
"""

from __future__ import annotations

import ctypes
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelkeep.errors import SandboxCrashError, SandboxResourceError
from modelkeep.sandbox import Limits
from modelkeep.sandbox._testing import Outcome, load_many_unproven

PRELUDE = """
import ctypes, errno, json, os, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(number, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return result if result >= 0 else -ctypes.get_errno()
def attempt(call):
    try:
        return repr(call())
    except BaseException as exc:
        return f"{type(exc).__name__}: errno {getattr(exc, 'errno', None)}"
out = {}
"""
EPILOGUE = '\nraise Exception("PROBE" + json.dumps(out))\n'
EPERM, EACCES, ENOSYS = -1, -13, -38


class Run:
    """Pickles as ``func(*args)``."""

    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, self.args)


def payload(folder: Path, name: str, code: str) -> Path:
    path = folder / f"{name}.pkl"
    path.write_bytes(pickle.dumps(Run(exec, PRELUDE + code + EPILOGUE, {}), protocol=4))
    return path


def report(outcome: Outcome) -> dict[str, Any]:
    """What the payload saw (it ran to its end and raised its findings)."""
    error = outcome.detail.get("error") or {}
    message = str(error.get("message", ""))
    assert message.startswith("PROBE"), (outcome.path, outcome.error, message)
    found: dict[str, Any] = json.loads(message[len("PROBE") :])
    return found


@pytest.fixture
def segment() -> Iterator[tuple[int, ctypes.c_void_p]]:
    """A System V shared memory segment of this process (its id, and where it is mapped)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    number = libc.shmget(0, 4096, 0o600 | 0o1000)  # IPC_PRIVATE, IPC_CREAT
    assert number >= 0, os.strerror(ctypes.get_errno())
    address = ctypes.c_void_p(libc.shmat(number, None, 0))
    yield number, address
    libc.shmdt(address)
    libc.shmctl(number, 0, None)  # IPC_RMID


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the same user as the worker, outside its sandbox."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield process
    process.kill()
    process.wait()


SIGNALS = """
V = {victim}
out["kill"] = sc(62, V, 9)
out["kill_group"] = sc(62, -V, 9)
out["tgkill"] = sc(234, V, V, 9)
out["tkill"] = sc(200, V, 9)
pidfd = sc(434, V, 0)
out["pidfd_send_signal"] = sc(424, pidfd, 9, 0, 0) if pidfd >= 0 else pidfd
info = ctypes.create_string_buffer(128)
out["rt_sigqueueinfo"] = sc(129, V, 9, ctypes.addressof(info))
# SIGIO with F_SETSIG: the kernel signals the fd's owner when the pipe becomes readable.
r, w = os.pipe()
out["f_setown"] = sc(72, r, 8, V)
out["f_setsig"] = sc(72, r, 10, 9)
out["o_async"] = sc(72, r, 4, sc(72, r, 3) | 0o20000)
os.write(w, b"x")
# Its limits, CPU affinity, priority, scheduler and I/O priority.
limit = (ctypes.c_uint64 * 2)(0, 0)
out["prlimit64"] = sc(302, V, 7, ctypes.addressof(limit), 0)
mask = ctypes.c_uint64(1)
out["sched_setaffinity"] = sc(203, V, 8, ctypes.addressof(mask))
param = ctypes.c_int(0)
out["sched_setscheduler"] = sc(144, V, 5, ctypes.addressof(param))
out["setpriority"] = sc(141, 0, V, 19)
out["ioprio_set"] = sc(251, 1, V, 3 << 13)
# The System V shared memory segment of another process, by its number.
address = sc(30, {shm}, 0, 0)
out["shmat_other"] = address if address < 0 else "attached"
if address > 0:
    ctypes.memmove(address, b"written by the worker", 21)
out["shmctl_remove_other"] = sc(31, {shm}, 0, 0)
"""

PROCESSES_AND_CODE = """
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
more = (hard + 1, hard + 1)
out["raise_limit"] = attempt(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, more))
out["clone_process"] = sc(56, 17, 0, 0, 0, 0)
out["clone_vfork"] = sc(56, 0x4000 | 0x100 | 17, 0, 0, 0, 0)
out["clone_newuser"] = sc(56, 0x10000000 | 17, 0, 0, 0, 0)
out["clone3"] = sc(435, 0, 88)
out["fork"] = sc(57)
out["vfork"] = sc(58)
out["unshare"] = sc(272, 0x10000000)
out["ptrace_traceme"] = sc(101, 0, 0, 0, 0)
name = ctypes.create_string_buffer(b"x")
memfd = sc(319, ctypes.addressof(name), 0)
os.write(memfd, open("/bin/true", "rb").read() if os.path.exists("/bin/true") else b"\\x7fELF")
empty = ctypes.create_string_buffer(b"")
argv = (ctypes.c_void_p * 1)(None)
at = ctypes.addressof
out["execveat_memfd"] = sc(322, memfd, at(empty), at(argv), at(argv), 0x1000)
out["mmap_exec"] = sc(9, 0, 4096, 7, 0x22, -1, 0)
page = sc(9, 0, 4096, 3, 0x22, -1, 0)
out["mprotect_exec"] = sc(10, page, 4096, 5)
out["pkey_mprotect_exec"] = sc(329, page, 4096, 5, -1)
out["mmap_memfd_exec"] = sc(9, 0, 4096, 5, 0x02, memfd, 0)
shm = sc(29, 0, 4096, 0o1700)
out["shmget"] = shm
if shm >= 0:  # SHM_EXEC: System V memory mapped writable and executable
    out["shmat_exec"] = sc(30, shm, 0, 0o100000)
    sc(31, shm, 0, 0)
maps = open("/proc/self/maps").read().splitlines()
out["exec_mappings_sysv"] = [m for m in maps if "SYSV" in m and m.split()[1][2] == "x"]
out["personality"] = sc(135, 0x0400000)
out["modify_ldt"] = sc(154, 1, ctypes.addressof(ctypes.create_string_buffer(16)), 16)
params = ctypes.create_string_buffer(120)
out["io_uring_setup"] = sc(425, 8, ctypes.addressof(params))
out["socket_inet"] = sc(41, 2, 1, 0)
out["socket_netlink"] = sc(41, 16, 3, 0)
out["socket_unix"] = sc(41, 1, 1, 0)
pair = (ctypes.c_int * 2)()
out["socketpair"] = sc(53, 1, 1, 0, ctypes.addressof(pair))
handle = ctypes.create_string_buffer(136)
mount_id = ctypes.c_int()
path = ctypes.create_string_buffer(b"/etc")
out["name_to_handle_at"] = sc(303, -100, at(path), at(handle), at(mount_id), 0)
out["open_by_handle_at"] = sc(304, -100, ctypes.addressof(handle), 0)
out["proc_self_mem_write"] = attempt(lambda: open("/proc/self/mem", "r+b"))
out["bpf"] = sc(321, 0, 0, 0)
out["userfaultfd"] = sc(323, 0)
out["perf_event_open"] = sc(298, 0, 0, -1, -1, 0)
out["keyctl"] = sc(250, 0, 0, 0, 0, 0)
out["no_new_privs_off"] = libc.prctl(38, 0, 0, 0, 0)
out["cap_raise"] = libc.prctl(47, 2, 21, 0, 0)
out["dumpable"] = libc.prctl(3, 0, 0, 0, 0)
out["dumpable_again"] = libc.prctl(4, 1, 0, 0, 0)
"""

THREADS = """
limits = open("/proc/self/limits").read().splitlines()
out["nproc"] = next(line for line in limits if line.startswith("Max processes")).split()[2:4]
fds = os.listdir("/proc/self/fd")
out["fds"] = {fd: attempt(lambda: os.readlink(f"/proc/self/fd/{fd}")) for fd in fds}
out["tasks"] = {}
for tid in os.listdir("/proc/self/task"):
    status = open(f"/proc/self/task/{tid}/status").read().splitlines()
    wanted = ("Seccomp:", "NoNewPrivs:", "CapEff:")
    out["tasks"][tid] = {l.split(":")[0]: l.split()[1] for l in status if l.startswith(wanted)}
"""

FILES = """
out["secret"] = attempt(lambda: open({secret!r}).read())
out["secret_dir"] = attempt(lambda: os.listdir({home!r}))
out["beside"] = attempt(lambda: open({beside!r}).read())
out["shadow"] = attempt(lambda: open("/etc/shadow").read())
out["root"] = attempt(lambda: os.listdir("/root"))
out["parent_environ"] = attempt(lambda: open(f"/proc/{{os.getppid()}}/environ").read())
out["parent_cmdline"] = attempt(lambda: open(f"/proc/{{os.getppid()}}/cmdline").read())
out["parent_mem"] = attempt(lambda: open(f"/proc/{{os.getppid()}}/mem", "rb"))
out["parent_fds"] = attempt(lambda: os.listdir(f"/proc/{{os.getppid()}}/fd"))
out["init_cmdline"] = attempt(lambda: open("/proc/1/cmdline").read())
out["write_outside"] = attempt(lambda: open({outside!r}, "w"))
scratch = os.getcwd()
out["symlink"] = attempt(lambda: os.symlink({secret!r}, os.path.join(scratch, "link")))
out["hardlink"] = attempt(lambda: os.link({secret!r}, os.path.join(scratch, "hard")))
out["fifo"] = attempt(lambda: os.mkfifo(os.path.join(scratch, "fifo")))
out["chmod_outside"] = attempt(lambda: os.chmod({secret!r}, 0o777))
out["utime_outside"] = attempt(lambda: os.utime({secret!r}, (0, 0)))
out["truncate_outside"] = attempt(lambda: os.truncate({secret!r}, 0))
"""

LEFT_BEHIND = """
import builtins, socket, threading
def later():
    seen = {{}}
    builtins._attack_go.wait()
    seen["connect"] = attempt(lambda: socket.socket().connect(("127.0.0.1", {port})))
    seen["write"] = attempt(lambda: open({outside!r}, "w"))
    seen["fork"] = sc(57)
    seen["kill"] = sc(62, {victim}, 9)
    builtins._attack_seen = seen
builtins._attack_go = threading.Event()
builtins._attack_thread = threading.Thread(target=later, daemon=True)
builtins._attack_thread.start()
out["started"] = True
"""
COLLECT = """
import builtins
builtins._attack_go.set()
builtins._attack_thread.join()
out.update(builtins._attack_seen)
"""


def _limits_of(pid: int) -> str:
    return Path(f"/proc/{pid}/limits").read_text()


def test_one_worker_against_every_wall(
    tmp_path: Path, victim: subprocess.Popen[bytes], segment: tuple[int, ctypes.c_void_p]
) -> None:
    """Signals, limits and scheduling of another process; new processes and new code;
    sockets; handles and /proc; every thread's confinement; secrets outside what the
    worker needs to read; a thread left running after its load returned."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    secret = home / ".aws" / "credentials"
    secret.write_text("aws_secret_access_key = hunter2\n")
    secret.chmod(0o600)
    beside = tmp_path / "payloads-secret.txt"
    beside.write_text("beside the payloads\n")
    outside = tmp_path / "written-outside"
    folder = tmp_path / "payloads"
    folder.mkdir()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    limits_before = _limits_of(victim.pid)
    affinity_before = os.sched_getaffinity(victim.pid)
    mode_before = secret.stat().st_mode
    stamp_before = secret.stat().st_mtime_ns
    names = {"victim": victim.pid, "secret": str(secret), "home": str(home), "shm": segment[0]}
    names |= {"beside": str(beside), "outside": str(outside), "port": server.getsockname()[1]}
    paths = [
        payload(folder, "threads", THREADS),
        payload(folder, "signals", SIGNALS.format(**names)),
        payload(folder, "processes", PROCESSES_AND_CODE),
        payload(folder, "files", FILES.format(**names)),
        payload(folder, "left-behind", LEFT_BEHIND.format(**names)),
        payload(folder, "collect", COLLECT),
    ]
    try:
        outcomes = load_many_unproven(paths, limits=Limits(timeout=120))
        threads, signals, processes, files, left, later = (report(o) for o in outcomes)
        # Every load ran in the same worker (none crashed it).
        assert all(not isinstance(o.error, SandboxCrashError) for o in outcomes)

        # The victim: alive, its limits, affinity, priority and scheduler unchanged.
        assert victim.poll() is None
        assert _limits_of(victim.pid) == limits_before
        assert os.sched_getaffinity(victim.pid) == affinity_before
        assert os.getpriority(os.PRIO_PROCESS, victim.pid) == 0
        assert os.sched_getscheduler(victim.pid) == os.SCHED_OTHER
        for name in ("kill", "kill_group", "tgkill", "tkill", "pidfd_send_signal"):
            assert signals[name] == EPERM, (name, signals)
        for name in ("prlimit64", "sched_setaffinity", "sched_setscheduler", "setpriority"):
            assert signals[name] == EPERM, (name, signals)
        assert signals["ioprio_set"] == EPERM
        assert signals["rt_sigqueueinfo"] == EPERM
        # This process's shared memory: not attached, not written, not removed.
        assert signals["shmat_other"] == EPERM and signals["shmctl_remove_other"] == EPERM
        assert ctypes.string_at(segment[1], 21) == bytes(21)
        libc = ctypes.CDLL(None, use_errno=True)
        stat = ctypes.create_string_buffer(256)
        assert libc.shmctl(segment[0], 2, stat) == 0  # IPC_STAT: it still exists

        # No process, no namespace, no new code, no socket, no handle, no /proc/self/mem.
        for name in ("clone_process", "clone_vfork", "clone_newuser", "fork", "vfork"):
            assert processes[name] == EPERM, (name, processes)
        assert processes["clone3"] == ENOSYS
        for name in (
            "unshare", "ptrace_traceme", "execveat_memfd", "mmap_exec", "mprotect_exec",
            "pkey_mprotect_exec", "mmap_memfd_exec", "shmget", "personality",
            "modify_ldt", "io_uring_setup", "socket_inet", "socket_netlink", "socket_unix",
            "socketpair", "name_to_handle_at", "open_by_handle_at", "bpf", "userfaultfd",
            "perf_event_open", "keyctl",
        ):  # fmt: skip
            assert processes[name] == EPERM, (name, processes[name])
        assert processes["exec_mappings_sysv"] == []
        assert processes["proc_self_mem_write"] == "PermissionError: errno 13"
        assert processes["raise_limit"].startswith("ValueError")
        assert processes["no_new_privs_off"] == -1
        assert processes["cap_raise"] == -1
        # Undumpable, and it stays so: a crash leaves no core (with the model) anywhere.
        assert processes["dumpable"] == 0 and processes["dumpable_again"] == -1
        # No descriptor but /dev/null, the log and the two protocol pipes (and listdir's).
        fds = {int(fd): target for fd, target in threads["fds"].items()}
        assert fds[0] == "'/dev/null'"
        assert fds[1] == fds[2] and fds[2].endswith("worker.log'")
        assert fds[3].startswith("'pipe:") and fds[4].startswith("'pipe:")
        assert len([t for t in fds.values() if not t.startswith("FileNotFoundError")]) == 5

        # Every thread of the worker (its libraries' pools too) is confined.
        assert len(threads["tasks"]) >= 1
        # A thread bomb meets RLIMIT_NPROC (for any user but root, whom the kernel exempts).
        soft, hard = threads["nproc"]
        assert soft == hard and soft != "unlimited"
        for tid, status in threads["tasks"].items():
            assert status == {"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0" * 16}, tid

        # Secrets: nothing outside what the worker needs is readable; nothing is changed.
        for name in ("secret", "secret_dir", "beside", "shadow", "root"):
            assert files[name].startswith("PermissionError: errno 13"), (name, files[name])
        for name in ("parent_environ", "parent_cmdline", "parent_mem", "parent_fds"):
            assert files[name].startswith("PermissionError: errno 13"), (name, files[name])
        assert files["init_cmdline"].startswith("PermissionError: errno 13")
        assert files["truncate_outside"] == "PermissionError: errno 1"
        for name in ("write_outside", "symlink", "fifo"):
            assert files[name].startswith("PermissionError: errno 13"), (name, files[name])
        assert files["hardlink"].startswith(("PermissionError: errno 13", "OSError: errno 18"))
        for name in ("chmod_outside", "utime_outside"):
            assert files[name] == "PermissionError: errno 1", (name, files[name])
        assert secret.read_text() == "aws_secret_access_key = hunter2\n"
        assert secret.stat().st_mode == mode_before
        assert secret.stat().st_mtime_ns == stamp_before
        assert not outside.exists()

        # The thread the payload left running, woken after its load returned: confined.
        assert left["started"] is True
        assert later["connect"].startswith("PermissionError: errno 1"), later
        assert later["write"].startswith("PermissionError: errno 13"), later
        assert later["fork"] == EPERM and later["kill"] == EPERM
        with pytest.raises(BlockingIOError):
            server.accept()
        assert victim.poll() is None
    finally:
        server.close()


# ---- the worker against its caller: the protocol -------------------------------------------

# The worker's reply pipe is fd 4 (_worker.main: dup(0) is 3, dup(1) is 4).
FORGE = """
def forge(header, tail=b""):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    os.write(4, struct.pack(">I", len(text)) + text + tail)
"""
WIRE = {
    # json.loads would raise RecursionError, not a protocol error.
    "nested": 'forge(b"[" * 50000)',
    # A million empty objects: gigabytes of dicts in the caller.
    "objects": 'forge(b"[" + b"{}," * 1000000 + b"{}]")',
    # A header over the caller's cap for replies.
    "header": 'os.write(4, struct.pack(">I", 200 * 1024**2))',
    # Arrays over the caller's cap, announced: refused before a byte is read.
    "arrays": 'forge({"ok": True, "buffers": [{"dtype": "|u1", "shape": [2**39]}]})',
    # A dtype that would unpickle (object), and one numpy parses as a struct.
    "object": 'forge({"ok": True, "buffers": [{"dtype": "|O", "shape": [1]}]}, bytes(8))',
    "struct": 'forge({"ok": True, "buffers": [{"dtype": "i4,i4", "shape": [1]}]}, bytes(8))',
    # A forged error whose fields would replace the methods of what the caller raises.
    # A forged error whose fields would replace the methods of what the caller raises,
    # with the id of the request being answered (found in the worker's memory); the
    # worker's own reply then reaches the next request, which refuses it.
    "fields": (
        "import gc\n"
        'worker = next(o for o in gc.get_objects() if type(o).__name__ == "Worker"'
        ' and hasattr(o, "request_id"))\n'
        'forge({"ok": False, "id": worker.request_id, "error": {"class": "SchemaError",'
        ' "message": "forged", "fields": {"with_traceback": 1, "add_note": 2, "args": 3,'
        ' "column": "c"}}})'
    ),
    # A flood of files in the scratch folder, each under the file-size limit.
    "scratch": ('for i in range(64):\n    open(f"flood-{i}", "wb").write(bytes(1024**2))'),
    # A reply with no id: the worker's own real reply comes after it.
    "no_id": 'forge({"ok": True, "outcomes": [{"loaded": "int", "error": None}]})',
}


def test_a_worker_that_breaks_the_protocol_is_refused_cleanly(tmp_path: Path) -> None:
    """Replies forged by a payload on the worker's own pipe: each is refused with a
    modelkeep error (never a raw exception, never an unbounded allocation), the worker is
    stopped, and the caller goes on (a benign file loads after each)."""
    benign = tmp_path / "benign.pkl"
    benign.write_bytes(pickle.dumps({"coef": [1.0]}))
    paths: list[Path] = []
    for name, code in WIRE.items():
        paths += [payload(tmp_path, name, FORGE + code), benign]
    # The worker of the x32 ABI attempt is killed by the filter before the call runs.
    x32 = 'forge(b"")\nsc(0x40000000 | 41, 2, 1, 0)\nout["x32"] = "returned"'
    paths += [payload(tmp_path, "x32", x32.replace('forge(b"")\n', "")), benign]
    outcomes = load_many_unproven(paths, limits=Limits(timeout=120, scratch_bytes=8 * 1024**2))
    by_name = dict(zip([*WIRE, "x32"], outcomes[::2], strict=True))
    fields_at = [*WIRE].index("fields")
    for index, after in enumerate(outcomes[1::2]):
        if index == fields_at:  # the worker's stale reply: refused, a fresh worker next
            assert isinstance(after.error, SandboxCrashError)
            assert "a reply to request" in str(after.error)
            continue
        assert after.error is None and after.loaded == "dict", (index, after.error)
    for name in ("nested", "objects", "header", "arrays", "object", "struct", "no_id"):
        error = by_name[name].error
        assert isinstance(error, SandboxCrashError), (name, error)
        assert "broke the protocol" in str(error), (name, error)
    assert "not JSON" in str(by_name["nested"].error)
    assert "objects and arrays" in str(by_name["objects"].error)
    assert "over the 67108864 allowed" in str(by_name["header"].error)
    assert "arrays of more than" in str(by_name["arrays"].error)
    assert "a reply to request None" in str(by_name["no_id"].error)
    flood = by_name["scratch"].error
    assert isinstance(flood, SandboxResourceError) and flood.limit == "scratch_bytes"
    # Its scratch folder went with it.
    assert not list(Path(tempfile.gettempdir()).glob("modelkeep-sandbox-*/flood-0"))
    forged = by_name["fields"].error
    assert forged is not None and type(forged).__name__ == "SchemaError"
    assert str(forged) == "forged" and forged.column == "c"  # type: ignore[attr-defined]
    assert callable(forged.with_traceback) and callable(forged.add_note)
    assert forged.args == ("forged",)
    x32_error = by_name["x32"].error
    assert isinstance(x32_error, SandboxCrashError)
    assert x32_error.signal == signal.SIGSYS


CONFINE_LATE = """
import sys, threading, time
from pathlib import Path
from modelkeep.errors import SandboxUnavailableError
from modelkeep.sandbox._confine import confine_process
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
try:
    confine_process(Path(sys.argv[1]), [])
except SandboxUnavailableError as exc:
    print(exc.mechanism, exc.reason)
"""


def test_a_thread_started_before_the_confinement_fails_it_closed(tmp_path: Path) -> None:
    """Landlock and capabilities hold per thread: a process that already runs a second
    thread is refused, not half confined."""
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CONFINE_LATE, str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    assert done.stdout == "landlock 2 threads run before confinement; expected only one\n", (
        done.stderr[-2000:]
    )
