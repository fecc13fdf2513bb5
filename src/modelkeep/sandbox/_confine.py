"""The worker's confinement: resource limits, capabilities, Landlock, seccomp.

Applied by the worker to itself before reading a byte of the untrusted file, in two
stages (:func:`confine_process` while it is the only thread, :func:`seal` once its
libraries are imported), because capabilities and Landlock hold per thread and only the
threads started afterwards inherit them:

1. ``PR_SET_NO_NEW_PRIVS``, then every capability dropped (bounding, ambient, effective,
   permitted, inheritable): the worker runs as root on some machines;
2. Landlock: reads only of the system's libraries and data, the Python installation and
   import path, its own ``/proc`` entry and the files it loads (:data:`SYSTEM_READS`;
   no home directory, no /root, no /etc/shadow, no other process); read-write (no
   execute, no links, no devices) in the scratch directory alone; every TCP bind and
   connect refused (ABI 4+); signals and abstract UNIX sockets scoped to the worker
   itself (ABI 6+);
3. (the libraries are imported; their thread pools start, inheriting 1 and 2)
4. resource limits (``setrlimit``): address space, CPU seconds, open files, file size, no
   core dumps; hard limit = soft limit (CPU: one second above, for SIGXCPU to come
   first), and with capabilities dropped nothing inside can raise a hard limit;
5. seccomp, on every thread (TSYNC): no ``execve``, no new process (``clone`` only for
   threads), no sockets, no ``ptrace`` or cross-process memory, no executable mappings
   (``mmap``/``mprotect``/``pkey_mprotect`` with PROT_EXEC; no System V shared memory,
   whose SHM_EXEC maps it executable: no new shared library loads; no System V IPC or
   POSIX message queue at all), no mounts, modules, BPF, io_uring, keyrings,
   ``personality``, ``modify_ldt``; no change of a file's mode, owner, times or
   extended attributes; ``kill``/``tgkill`` only of itself, no SIGIO owner, no
   ``pidfd_open``; ``prlimit64`` and ``sched_set*`` only on itself, no ``setpriority``
   or ``ioprio_set``; no ``PR_SET_DUMPABLE`` (the worker made itself undumpable: no
   core of it, even through a ``core_pattern`` pipe);
6. every thread checked (:func:`check_threads`): no new privileges, no capability, the
   filter; otherwise the worker fails closed.

Written on ``ctypes`` and the raw syscalls rather than a binding: ``pyseccomp`` needs the
system's ``libseccomp.so.2`` (an apt package, not pip), and the classic BPF program this
filter needs is 100 lines; Landlock is three syscalls. Each step fails closed:
:class:`~modelkeep.errors.SandboxUnavailableError` names the mechanism the kernel refused.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import os
import platform
import resource
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelkeep.errors import SandboxUnavailableError

__all__ = [
    "MECHANISMS",
    "Limits",
    "apply_limits",
    "check_threads",
    "confine",
    "confine_process",
    "drop_capabilities",
    "landlock_abi",
    "python_reads",
    "restrict_filesystem",
    "seal",
    "seal_syscalls",
]

#: The mechanisms, in the order they are applied (what ``doctor`` reports).
MECHANISMS = ("rlimits", "no_new_privs", "capabilities", "landlock", "seccomp")


@dataclass(frozen=True)
class Limits:
    """What one worker may use: memory (address space, bytes), CPU seconds over its whole
    life, open files, the size of any file it writes (bytes), the wall-clock seconds a
    load or a call may take before the caller stops it, the bytes its scratch folder may
    hold (all files together; the caller checks while it waits, and stops the worker
    beyond), and the threads it may start (``RLIMIT_NPROC`` over the tasks running when
    it starts; the kernel does not apply it to root)."""

    memory: int = 8 * 1024**3
    cpu_seconds: int = 3600
    open_files: int = 256
    file_size: int = 1024**3
    timeout: float = 300.0
    scratch_bytes: int = 4 * 1024**3
    threads: int = 512


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _refused(mechanism: str, what: str) -> SandboxUnavailableError:
    code = ctypes.get_errno()
    return SandboxUnavailableError(mechanism, f"{what} failed: {os.strerror(code)}")


# ---- 1. resource limits -------------------------------------------------------------------


def apply_limits(limits: Limits) -> None:
    """Soft and hard limits, equal; RLIMIT_CORE 0 (a crash leaves no core with the model)."""
    pairs = [
        (resource.RLIMIT_AS, limits.memory),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_size),
        (resource.RLIMIT_CORE, 0),
        # Threads are tasks of the user: a bound over every task now running (no count of
        # the user's own is readable once Landlock is on) stops a thread bomb from taking
        # the machine's process ids.
        (resource.RLIMIT_NPROC, _tasks_running() + limits.threads),
    ]
    for which, value in pairs:
        # The CPU hard limit is one second above the soft one: at the soft limit the
        # kernel sends SIGXCPU (which the caller reports as the CPU limit), at the hard
        # one SIGKILL; equal, the worker would only ever be seen killed.
        hard = value + 1 if which == resource.RLIMIT_CPU else value
        try:
            resource.setrlimit(which, (value, hard))
        except (OSError, ValueError) as exc:
            raise SandboxUnavailableError("rlimits", f"setrlimit({which}, {value}): {exc}") from exc


def _tasks_running() -> int:
    """Every task (thread) on the machine now, from /proc/loadavg ("0.1 0.2 0.3 2/345 …")."""
    fields = Path("/proc/loadavg").read_text().split()
    return int(fields[3].partition("/")[2])


# ---- 2. privileges --------------------------------------------------------------------------

_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_PR_SET_SECCOMP = 22
_PR_GET_SECCOMP = 21
_SECCOMP_MODE_FILTER = 2
_CAP_VERSION_3 = 0x20080522


def set_no_new_privs() -> None:
    """``PR_SET_NO_NEW_PRIVS``: no exec can grant privileges; required by Landlock and
    seccomp for an unprivileged caller."""
    libc = _lib()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _refused("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)")


def drop_capabilities() -> None:
    """Every capability gone: bounding set, ambient set, then effective/permitted/inheritable."""
    libc = _lib()
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text().strip())
    for cap in range(last + 1):
        # EINVAL: a capability this kernel does not know; EPERM: no CAP_SETPCAP (not root),
        # in which case the bounding set holds nothing that matters to an unprivileged user.
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("Ii", _CAP_VERSION_3, 0)
    data = bytes(24)  # two __user_cap_data_struct, all zero
    header_buffer = ctypes.create_string_buffer(header, len(header))
    data_buffer = ctypes.create_string_buffer(data, len(data))
    if libc.capset(header_buffer, data_buffer) != 0:
        raise _refused("capabilities", "capset(all zero)")
    status = Path("/proc/self/status").read_text()
    for line in status.splitlines():
        if line.startswith(("CapEff:", "CapPrm:")) and int(line.split()[1], 16) != 0:
            raise SandboxUnavailableError("capabilities", f"still held after capset: {line}")


# ---- 3. Landlock ----------------------------------------------------------------------------

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

# Every filesystem right of each ABI (bit 13 REFER from ABI 2, 14 TRUNCATE 3, 15 IOCTL_DEV 5).
_FS_ALL = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}


def _syscall(number: int, *args: int | ctypes.c_void_p | ctypes.c_size_t | None) -> int:
    libc = _lib()
    libc.syscall.restype = ctypes.c_long
    return int(libc.syscall(ctypes.c_long(number), *args))


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it offers none."""
    version = _syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(version, 0)


def _fs_rights(abi: int) -> int:
    return _FS_ALL.get(abi, (1 << 16) - 1)


#: What every worker reads besides the Python installation and its import path: the
#: system's libraries and shared data, the few files of /etc a library reads (no shadow,
#: no ssh, no ssl keys), the CPU and memory facts numpy, joblib and onnxruntime ask for,
#: and the random and null devices.
SYSTEM_READS = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/os-release",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/sys/devices/system/cpu",
    "/sys/devices/system/node",
    "/sys/fs/cgroup",
    "/sys/kernel/mm/transparent_hugepage",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
)


def python_reads() -> list[str]:
    """The interpreter, its standard library and every import path entry (site-packages,
    the package itself, PYTHONPATH): what imports and unpickling read."""
    found = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        os.path.dirname(os.path.realpath(os.__file__)),
        *(entry for entry in sys.path if entry),
    }
    return sorted(found)


def restrict_filesystem(
    scratch: Path, *, abi: int | None = None, reads: Sequence[str] | None = None
) -> int:
    """Landlock: read only :data:`SYSTEM_READS`, :func:`python_reads`, this process's own
    ``/proc`` entry and ``reads`` (the files to load); write only beneath ``scratch``;
    execute nothing; no TCP bind/connect (ABI 4+); signals and abstract sockets only
    within (ABI 6+). ``reads=None`` keeps the whole filesystem readable (``doctor``'s
    probe, which loads nothing).

    A path that does not exist is skipped (a rule can only name what is there); one that
    exists but cannot be opened fails closed. Returns the ABI used. Raises
    SandboxUnavailableError when the kernel has no Landlock.
    """
    abi = landlock_abi() if abi is None else abi
    if abi < 1:
        raise SandboxUnavailableError(
            "landlock", "the kernel offers no Landlock (disabled, or older than Linux 5.13)"
        )
    handled_fs = _fs_rights(abi)
    fields = [handled_fs]
    if abi >= 4:
        fields.append(_NET_BIND_TCP | _NET_CONNECT_TCP)
    if abi >= 6:
        fields.append(_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL)
    attr = struct.pack(f"{len(fields)}Q", *fields)
    attr_buffer = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.cast(attr_buffer, ctypes.c_void_p),
        ctypes.c_size_t(len(attr)), 0,
    )  # fmt: skip
    if ruleset < 0:
        raise _refused("landlock", "landlock_create_ruleset")
    try:
        read = _FS_READ_FILE | _FS_READ_DIR
        write = (
            read
            | _FS_WRITE_FILE
            | _FS_REMOVE_DIR
            | _FS_REMOVE_FILE
            | _FS_MAKE_DIR
            | _FS_MAKE_REG
            | (_FS_TRUNCATE if abi >= 3 else 0)
        )
        if reads is None:
            _add_rule(ruleset, Path("/"), read)
        else:
            own = f"/proc/{os.getpid()}"
            for path in sorted({*SYSTEM_READS, *python_reads(), own, *reads}):
                if os.path.exists(path):
                    # A file takes only file rights; a directory both.
                    rights = read if os.path.isdir(path) else _FS_READ_FILE
                    _add_rule(ruleset, Path(path), rights)
        _add_rule(ruleset, scratch, write)
        _add_rule(ruleset, Path("/dev/null"), _FS_READ_FILE | _FS_WRITE_FILE)
        if _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise _refused("landlock", "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(ruleset: int, path: Path, access: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = struct.pack("=Qi", access, fd)  # packed: u64 allowed_access, s32 parent_fd
        buffer = ctypes.create_string_buffer(rule, len(rule))
        result = _syscall(
            _SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH,
            ctypes.cast(buffer, ctypes.c_void_p), 0,
        )  # fmt: skip
        if result != 0:
            raise _refused("landlock", f"landlock_add_rule({str(path)!r})")
    finally:
        os.close(fd)


# ---- 4. seccomp -----------------------------------------------------------------------------

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_LD_ABS_W = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_PROT_EXEC = 0x4
_CLONE_THREAD = 0x00010000

# x86_64 numbers: refused outright with EPERM.
_DENIED = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "process_madvise": 440,
    "pidfd_getfd": 438, "pidfd_send_signal": 424, "kcmp": 312,
    "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50,
    "accept": 43, "accept4": 288,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "setns": 308, "unshare": 272,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
    "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
    "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "personality": 135, "uselib": 134, "syslog": 103,
    "acct": 163, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "fanotify_init": 300,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "tkill": 200,
    "migrate_pages": 256, "move_pages": 279, "quotactl": 179,
    # Another process's priority, I/O priority, or a handle on it.
    "setpriority": 141, "ioprio_set": 251, "pidfd_open": 434, "process_mrelease": 448,
    # A file's mode, owner, times or extended attributes: Landlock has no right for
    # these, and the worker's user owns the user's files (all of them, as root).
    "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "chown": 92,
    "fchown": 93, "lchown": 94, "fchownat": 260, "utime": 132, "utimes": 235,
    "futimesat": 261, "utimensat": 280, "setxattr": 188, "lsetxattr": 189,
    "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
    "setxattrat": 463, "removexattrat": 466,
    # A 32-bit code segment (its syscalls would meet the arch check, but no need).
    "modify_ldt": 154,
    # truncate(path): Landlock controls it from ABI 3 only (ftruncate needs a writable fd).
    "truncate": 76,
    # System V IPC and POSIX message queues: named by number, not by path, so Landlock
    # does not see them; they outlive the worker, and another process's shared memory
    # segment of the same user could be attached and written.
    "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65,
    "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
    "msgctl": 71, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242,
    "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
}  # fmt: skip
_CLONE, _CLONE3 = 56, 435
_MMAP, _MPROTECT, _PKEY_MPROTECT = 9, 10, 329
_KILL, _TGKILL = 62, 234
# Calls whose first argument is a process: allowed on this one (its id, or 0) only.
_OWN_PROCESS_ONLY = {
    "prlimit64": 302, "sched_setaffinity": 203, "sched_setscheduler": 144,
    "sched_setparam": 142, "sched_setattr": 314,
}  # fmt: skip
_FCNTL = 72
_PRCTL, _PR_SET_DUMPABLE = 157, 4
# fcntl commands that make the kernel signal a process of the worker's choosing.
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SYS_SECCOMP = 317


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _arg(index: int) -> int:
    """Offset of the low 32 bits of argument ``index`` in struct seccomp_data."""
    return 16 + 8 * index


def filter_program(pid: int) -> bytes:
    """The classic BPF program, for x86_64 (anything else is killed: no other table)."""
    errno_eperm = _RET_ERRNO | errno_codes.EPERM
    program = [
        _insn(_LD_ABS_W, 0, 0, 4),  # arch
        _insn(_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_ABS_W, 0, 0, 0),  # nr
        _insn(_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    for number in sorted(_DENIED.values()):
        program += [_insn(_JEQ_K, 0, 1, number), _insn(_RET_K, 0, 0, errno_eperm)]
    # clone3 passes its flags in memory the filter cannot read: ENOSYS makes glibc fall
    # back to clone, whose flags it can.
    program += [
        _insn(_JEQ_K, 0, 1, _CLONE3),
        _insn(_RET_K, 0, 0, _RET_ERRNO | errno_codes.ENOSYS),
    ]
    # clone: threads only.
    program += [
        _insn(_JEQ_K, 0, 4, _CLONE),
        _insn(_LD_ABS_W, 0, 0, _arg(0)),
        _insn(_JSET_K, 0, 1, _CLONE_THREAD),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
        _insn(_RET_K, 0, 0, errno_eperm),
    ]
    # No executable mapping after start-up: no new shared library, no JIT'd payload.
    for number in (_MMAP, _MPROTECT, _PKEY_MPROTECT):
        program += [
            _insn(_JEQ_K, 0, 4, number),
            _insn(_LD_ABS_W, 0, 0, _arg(2)),
            _insn(_JSET_K, 0, 1, _PROT_EXEC),
            _insn(_RET_K, 0, 0, errno_eperm),
            _insn(_RET_K, 0, 0, _RET_ALLOW),
        ]
    # fcntl(fd, F_SETOWN / F_SETOWN_EX / F_SETSIG): no SIGIO aimed at another process.
    program += [
        _insn(_JEQ_K, 0, 6, _FCNTL),
        _insn(_LD_ABS_W, 0, 0, _arg(1)),
        _insn(_JEQ_K, 2, 0, _F_SETOWN),
        _insn(_JEQ_K, 1, 0, _F_SETSIG),
        _insn(_JEQ_K, 0, 1, _F_SETOWN_EX),
        _insn(_RET_K, 0, 0, errno_eperm),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
    ]
    # prctl(PR_SET_DUMPABLE): the worker stays undumpable (no core of it anywhere, not
    # even through a core_pattern pipe, which RLIMIT_CORE does not stop).
    program += [
        _insn(_JEQ_K, 0, 4, _PRCTL),
        _insn(_LD_ABS_W, 0, 0, _arg(0)),
        _insn(_JEQ_K, 0, 1, _PR_SET_DUMPABLE),
        _insn(_RET_K, 0, 0, errno_eperm),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
    ]
    # kill(pid, sig) and tgkill(tgid, tid, sig): only this process (abort() and raise()).
    for number in (_KILL, _TGKILL):
        program += [
            _insn(_JEQ_K, 0, 4, number),
            _insn(_LD_ABS_W, 0, 0, _arg(0)),
            _insn(_JEQ_K, 1, 0, pid),
            _insn(_RET_K, 0, 0, errno_eperm),
            _insn(_RET_K, 0, 0, _RET_ALLOW),
        ]
    # prlimit64, sched_set*(pid, ...): this process (its id or 0), never another (the
    # kernel lets a process lower the limits of any other of the same user).
    for number in sorted(_OWN_PROCESS_ONLY.values()):
        program += [
            _insn(_JEQ_K, 0, 7, number),
            _insn(_LD_ABS_W, 0, 0, _arg(0) + 4),  # high half: 0 for a pid
            _insn(_JEQ_K, 0, 3, 0),
            _insn(_LD_ABS_W, 0, 0, _arg(0)),
            _insn(_JEQ_K, 2, 0, 0),
            _insn(_JEQ_K, 1, 0, pid),
            _insn(_RET_K, 0, 0, errno_eperm),
            _insn(_RET_K, 0, 0, _RET_ALLOW),
        ]
    program.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(program)


def seal_syscalls() -> None:
    """Install the seccomp filter (needs no_new_privs or CAP_SYS_ADMIN; set it first)."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        raise SandboxUnavailableError(
            "seccomp", f"modelkeep's filter knows the syscall table of x86_64, not {machine}"
        )
    code = filter_program(os.getpid())
    count = len(code) // 8
    filters = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxP", count, ctypes.addressof(filters))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    libc = _lib()
    # TSYNC: every thread of the process gets the filter (a library's thread pool started
    # at import would otherwise run unfiltered); the kernel refuses rather than skip one.
    result = _syscall(
        _SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC,
        ctypes.cast(fprog_buffer, ctypes.c_void_p),
    )  # fmt: skip
    if result != 0:
        if result > 0:
            raise SandboxUnavailableError(
                "seccomp", f"thread {result} could not take the filter (TSYNC)"
            )
        raise _refused("seccomp", "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)")
    if libc.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) != _SECCOMP_MODE_FILTER:
        raise SandboxUnavailableError("seccomp", "the filter did not take effect")


def check_threads() -> None:
    """Every thread of this process confined: no new privileges, no capability, the filter.

    Capabilities and Landlock are per thread and inherited only by threads started after
    them (which is why the worker confines itself before it imports a library); seccomp
    reaches the others through TSYNC. A thread found otherwise fails closed.
    """
    expected = {"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0" * 16}
    for tid in os.listdir("/proc/self/task"):
        try:
            lines = Path(f"/proc/self/task/{tid}/status").read_text().splitlines()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        found = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
        for key, value in expected.items():
            if found.get(key) != value:
                raise SandboxUnavailableError(
                    "seccomp", f"thread {tid} runs with {key} {found.get(key)}, not {value}"
                )


def confine_process(scratch: Path, reads: Sequence[str]) -> dict[str, str]:
    """The per-thread mechanisms, applied before the worker imports a library (so every
    thread a library starts inherits them): no_new_privs, capabilities, Landlock."""
    done: dict[str, str] = {}
    threads = os.listdir("/proc/self/task")
    if len(threads) != 1:
        # Landlock and capabilities would hold for this thread only (seccomp's TSYNC has
        # no counterpart in this kernel's Landlock).
        raise SandboxUnavailableError(
            "landlock", f"{len(threads)} threads run before confinement; expected only one"
        )
    set_no_new_privs()
    done["no_new_privs"] = "applied"
    drop_capabilities()
    done["capabilities"] = "applied"
    done["landlock"] = f"ABI {restrict_filesystem(scratch, reads=reads)}"
    # Last: a change of credentials (Landlock's) may make a process dumpable again.
    if _lib().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise _refused("capabilities", "prctl(PR_SET_DUMPABLE, 0)")
    return done


def seal(limits: Limits) -> dict[str, str]:
    """The rest, once the libraries are loaded: resource limits (per process), the seccomp
    filter on every thread (TSYNC), and the check that no thread escaped."""
    apply_limits(limits)
    seal_syscalls()
    check_threads()
    return {"rlimits": "applied", "seccomp": "applied (all threads)"}


def confine(scratch: Path, limits: Limits, reads: Sequence[str] = ()) -> dict[str, str]:
    """Every mechanism, for a process that has started no thread yet. Raises
    SandboxUnavailableError at the first the kernel refuses: the caller never gets a
    worker with less."""
    done = confine_process(scratch, reads)
    done.update(seal(limits))
    return {name: done[name] for name in MECHANISMS}
