"""The caller's side of a sandboxed worker: start it, talk to it, turn its end into errors.

A worker is a fresh interpreter (``python -m modelkeep.sandbox._worker``), never a fork of
the caller: it inherits no memory, no open file but its pipes and its log, and an
environment stripped to :data:`KEPT_ENVIRONMENT` (no credentials), with ``HOME`` and
``TMPDIR`` in its private scratch folder, which is removed when the worker ends.

Every reply is read with a deadline and a size cap; a worker that dies, breaks the
protocol or overruns a limit is killed and its end becomes a ``SandboxCrashError`` or a
``SandboxResourceError`` here, never an exception of the caller's own making.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import modelkeep
from modelkeep import errors
from modelkeep.errors import (
    ModelkeepError,
    SandboxBlockedError,
    SandboxCrashError,
    SandboxResourceError,
    SandboxUnavailableError,
)
from modelkeep.sandbox import _wire
from modelkeep.sandbox._confine import Limits

__all__ = ["KEPT_ENVIRONMENT", "Worker", "preload_modules", "worker_error"]

#: The only variables a worker inherits (besides PYTHONPATH, HOME, TMPDIR,
#: JOBLIB_MULTIPROCESSING and OPENBLAS_NUM_THREADS, set here).
KEPT_ENVIRONMENT = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)

# What a worker may send back at once: arrays beyond it are a protocol violation, and a
# JSON header (text outputs, manifests, errors) beyond 64 MiB too.
_MAX_REPLY = 4 * 1024**3
_MAX_REPLY_HEADER = 64 * 1024**2
# The worker's own start-up (imports, confinement) gets at least this long.
_START_TIMEOUT = 120.0

_BASE_MODULES = (
    "numpy",
    "pandas",
    "scipy.sparse",
    "sklearn",
    "joblib",
    "skops.io",
    "modelkeep._bundle",
    "modelkeep._golden",
    "modelkeep._schema",
    "modelkeep._claims",
    "modelkeep._formats.skops",
    "modelkeep._formats.pickle",
    "modelkeep._formats.joblib",
    "modelkeep.safety.loader",
    "modelkeep.safety.state",
    "modelkeep.safety.skops_loader",
    "pickle",
    "zlib",
    "gzip",
    "bz2",
    "lzma",
)
_ONNX_MODULES = (
    "onnxruntime",
    "modelkeep._formats.onnx",
    "modelkeep.onnx.model",
    "modelkeep.onnx.runtime",
)
_OPTIONAL_FAMILIES = ("xgboost", "lightgbm", "pyarrow")


def preload_modules(*, onnx: bool = False, families: Sequence[str] = ()) -> list[str]:
    """What a worker imports before it confines itself (no library loads after that).

    Every module the pickle allowlist names for numpy, scipy, pandas and scikit-learn, the
    loaders; with ``onnx`` onnxruntime and the conversion; ``families`` adds XGBoost,
    LightGBM or pyarrow when a model needs them.
    """
    from modelkeep.safety.allowlist import ALLOWED

    wanted = set(families) & set(_OPTIONAL_FAMILIES)
    allowed = sorted(
        {
            name.rpartition(".")[0]
            for name in ALLOWED
            if name.split(".")[0] not in _OPTIONAL_FAMILIES or name.split(".")[0] in wanted
        }
        - {""}
    )
    modules = [*_BASE_MODULES, *allowed]
    if onnx:
        modules += [*_ONNX_MODULES]
    return modules


def _environment(scratch: Path) -> dict[str, str]:
    kept = {k: os.environ[k] for k in KEPT_ENVIRONMENT if k in os.environ}
    package_root = str(Path(modelkeep.__file__).resolve().parent.parent)
    paths = [package_root, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {
        **kept,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        # No process may start in the worker: joblib's process pools are off (serial).
        "JOBLIB_MULTIPROCESSING": "0",
        # numpy's OpenBLAS would start its thread pool while modelkeep is imported, before
        # the worker confines itself; it starts them after (see _worker.Worker.start).
        "OPENBLAS_NUM_THREADS": "1",
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
    }


def _cleanup(process: subprocess.Popen[bytes], scratch: Path) -> None:
    if process.poll() is None:
        process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # a kill is not refused
        process.wait(timeout=10)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()
    shutil.rmtree(scratch, ignore_errors=True)


class Worker:
    """One sandboxed worker process and its scratch folder.

    ``source`` names what it serves in error messages. :meth:`request` sends one message
    and returns the reply; :meth:`close` ends the worker and removes its scratch folder
    (also done when the object is collected, or at exit).
    """

    def __init__(
        self,
        source: str,
        *,
        limits: Limits,
        preload: Sequence[str],
        proofs: bool = True,
        reads: Sequence[str] | None = None,
    ) -> None:
        self.source = source
        self.limits = limits
        self.scratch = Path(tempfile.mkdtemp(prefix="modelkeep-sandbox-")).resolve()
        self.confinement: dict[str, str] = {}
        self._timed_out = False
        self._sent = 0
        log = open(self.scratch / "worker.log", "wb")  # noqa: SIM115 - handed to the child
        command = [sys.executable, "-s", "-m", "modelkeep.sandbox._worker"]
        if sys.version_info >= (3, 11):
            command.insert(1, "-P")
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=_environment(self.scratch),
                cwd=self.scratch,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise SandboxUnavailableError("worker", f"the worker cannot start ({exc})") from exc
        finally:
            log.close()
        self._finalizer = weakref.finalize(self, _cleanup, self.process, self.scratch)
        start = {
            "op": "start",
            "scratch": str(self.scratch),
            "limits": asdict(limits),
            "preload": list(preload),
            "proofs": proofs,
            # What the worker may read besides the system and Python: what it loads.
            "reads": [os.path.abspath(p) for p in ([source] if reads is None else reads)],
            "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        }
        try:
            reply, _ = self.request(
                start, during="start-up", timeout=max(limits.timeout, _START_TIMEOUT)
            )
        except BaseException:
            self.close()
            raise
        self.confinement = dict(reply.get("confinement", {}))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(
        self,
        header: dict[str, Any],
        arrays: Sequence[np.ndarray] = (),
        *,
        during: str,
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Send one message, return the worker's successful reply.

        Raises the error the worker reported (as the same modelkeep class), or
        SandboxCrashError / SandboxResourceError when it died, broke the protocol or ran
        out of time (it is then killed).
        """
        if self.process.stdin is None or self.process.stdout is None:
            raise SandboxCrashError(self.source, during, "the worker has no pipes")
        deadline = time.monotonic() + (self.limits.timeout if timeout is None else timeout)
        self._sent += 1
        sent = self._sent
        try:
            _wire.write_message(
                self.process.stdin.fileno(),
                _wire.encode({**header, "id": sent}, arrays),
                deadline=deadline,
            )
            reply, out = _wire.read_message(
                self.process.stdout.fileno(),
                max_bytes=_MAX_REPLY,
                deadline=deadline,
                max_header=_MAX_REPLY_HEADER,
                watch=self._watch_scratch,
            )
            self._watch_scratch()  # what it wrote before it answered counts too
            if reply.get("id") != sent:
                # A reply to another request (forged, or left over from one): the stream
                # cannot be trusted to line up again.
                raise _wire.ProtocolError(f"a reply to request {reply.get('id')!r}, not {sent}")
        except _wire.ProtocolError as exc:
            raise self._ended(during, exc) from None
        if reply.get("ok") is True:
            return reply, out
        raise worker_error(self.source, during, reply, self.limits)

    def _watch_scratch(self) -> None:
        """Raise (a ProtocolError naming the limit) when the scratch folder holds more than
        ``limits.scratch_bytes``, or more entries than any model needs."""
        if _usage(self.scratch, self.limits.scratch_bytes) > self.limits.scratch_bytes:
            raise _wire.ProtocolError("its scratch folder is over its limit", limit="scratch")

    def _ended(self, during: str, problem: _wire.ProtocolError) -> ModelkeepError:
        """The worker stopped answering: kill it, and say why in the caller's terms."""
        if problem.limit:
            self.close()
            return SandboxResourceError(
                self.source, during, "scratch_bytes", f"{self.limits.scratch_bytes} bytes"
            )
        if problem.timeout:
            self.close()
            return SandboxResourceError(
                self.source, during, "timeout", f"{self.limits.timeout:g} s"
            )
        if not problem.closed:
            self.close()
            return SandboxCrashError(
                self.source, during, f"it broke the protocol ({problem.problem})"
            )
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.close()
            code = self.process.returncode
        self.close()
        if code is not None and code < 0:
            number = -code
            if number == signal.SIGXCPU:
                return SandboxResourceError(
                    self.source, during, "cpu_seconds", f"{self.limits.cpu_seconds} s"
                )
            if number == signal.SIGXFSZ:
                return SandboxResourceError(
                    self.source, during, "file_size", f"{self.limits.file_size} bytes"
                )
            name = signal.Signals(number).name if number in signal.valid_signals() else number
            return SandboxCrashError(
                self.source, during, f"the worker was killed by signal {name}", number
            )
        return SandboxCrashError(self.source, during, f"the worker exited with status {code}")

    def close(self) -> None:
        """End the worker (if it runs) and remove its scratch folder."""
        self._finalizer()


def worker_error(source: str, during: str, reply: dict[str, Any], limits: Limits) -> ModelkeepError:
    """The error a worker reported, rebuilt as data: a modelkeep class by name (message and
    plain fields as sent), blocked attempts, out-of-memory, or anything else as a crash."""
    error = reply.get("error")
    if not isinstance(error, dict):
        return SandboxCrashError(source, during, "it sent an error without a description")
    attempts = [str(a)[:300] for a in reply.get("attempts", []) if isinstance(a, str)][:50]
    if attempts:
        return SandboxBlockedError(source, attempts)
    name = error.get("class")
    message = str(error.get("message", ""))[:20_000]
    if name == "MemoryError":
        return SandboxResourceError(source, during, "memory", f"{limits.memory} bytes")
    if isinstance(name, str) and name in errors.__all__ and not name.startswith("Sandbox"):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, ModelkeepError):
            rebuilt: ModelkeepError = cls.__new__(cls)
            Exception.__init__(rebuilt, message)
            fields = error.get("fields")
            if isinstance(fields, dict):
                for key, value in fields.items():
                    # A field, never a method or property of the class (a worker's reply
                    # cannot replace ``with_traceback`` or ``args`` of what is raised here).
                    if _settable(cls, key):
                        setattr(rebuilt, key, tuple(value) if isinstance(value, list) else value)
            return rebuilt
    if name == "SandboxUnavailableError":
        fields = error.get("fields") or {}
        return SandboxUnavailableError(
            str(fields.get("mechanism", "sandbox")), str(fields.get("reason", message))[:2000]
        )
    kind = str(error.get("type", "an error"))[:100]
    return SandboxCrashError(source, during, f"it raised {kind}: {message[:2000]}")


#: More entries than this in a scratch folder count as over its limit (a flood of empty
#: files costs inodes, not bytes; and the count bounds the cost of measuring).
_MAX_SCRATCH_ENTRIES = 100_000


def _usage(folder: Path, enough: int) -> int:
    """Bytes on disk under ``folder`` (not following links); stops counting past
    ``enough``; more than :data:`_MAX_SCRATCH_ENTRIES` entries count as ``enough + 1``."""
    total = 0
    entries = 0
    pending = [str(folder)]
    while pending:
        try:
            with os.scandir(pending.pop()) as found:
                for entry in found:
                    entries += 1
                    if entries > _MAX_SCRATCH_ENTRIES:
                        return enough + 1
                    with contextlib.suppress(OSError):  # removed meanwhile
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
        except OSError:  # removed meanwhile
            continue
        if total > enough:
            return total
    return total


def _settable(cls: type, key: object) -> bool:
    return (
        isinstance(key, str)
        and key.isidentifier()
        and not key.startswith("_")
        and not hasattr(cls, key)
    )
