"""The sandboxed worker: ``python -m modelkeep.sandbox._worker``, a fresh interpreter.

Started by :mod:`modelkeep.sandbox._launcher` with a stripped environment, its stdin and
stdout as the protocol pipes. In order: move the pipes off fds 0 and 1 (a library that
prints cannot corrupt the protocol, a payload that reads stdin reads nothing); read the
start message; drop privileges and apply Landlock while it is the only thread
(:func:`~modelkeep.sandbox._confine.confine_process`); import every library a model may
need and start OpenBLAS's threads (they inherit that); resource limits and the seccomp
filter on every thread (:func:`~modelkeep.sandbox._confine.seal`), failing closed;
install the audit hook that reports what a load attempts; answer "ready"; then serve
requests until stdin closes.
Nothing of the untrusted file is read before the confinement is in place.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import resource
import sys
import warnings
from pathlib import Path, PosixPath
from typing import Any

import numpy as np

from modelkeep.sandbox import _wire
from modelkeep.sandbox._confine import MECHANISMS, Limits, confine_process, seal

# Requests from the caller are trusted (it started us) but still bounded.
_MAX_REQUEST = 16 * 1024**3


class _Audit:
    """What a load tries that no model load does, as Python's audit events show it.

    Reporting, not enforcement: the confinement blocks these whatever the hook sees.
    """

    _SPAWN = frozenset(
        {
            "os.system",
            "os.exec",
            "os.posix_spawn",
            "os.spawn",
            "os.fork",
            "os.forkpty",
            "subprocess.Popen",
            "pty.spawn",
            "os.startfile",
        }
    )
    _NET = frozenset(
        {
            "socket.__new__",
            "socket.connect",
            "socket.bind",
            "socket.sendto",
            "socket.getaddrinfo",
            "urllib.Request",
            "http.client.connect",
            "ftplib.connect",
            "smtplib.connect",
            "webbrowser.open",
        }
    )
    _LIB = frozenset({"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle"})
    _PATHS = frozenset(
        {
            "os.remove",
            "os.rename",
            "os.rmdir",
            "os.mkdir",
            "os.chmod",
            "os.chown",
            "os.symlink",
            "os.link",
            "os.truncate",
            "os.utime",
            "shutil.rmtree",
            "shutil.copyfile",
            "shutil.move",
        }
    )
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def __init__(self, scratch: Path) -> None:
        self.scratch = str(scratch)
        self.armed = False
        self.attempts: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or len(self.attempts) >= 50:
            return
        if event in self._SPAWN or event in self._NET or event in self._LIB or event == "os.kill":
            if event == "os.kill" and args and args[0] in (0, os.getpid()):
                return
            self._record(event, args)
        elif event == "open":
            path, _mode, flags = [*args, None, None, None][:3]
            if isinstance(flags, int) and flags & self._WRITE_FLAGS and self._outside(path):
                self._record("open for writing", (path,))
        elif event in self._PATHS and args and any(self._outside(a) for a in args[:2]):
            self._record(event, args[:2])

    def _outside(self, path: object) -> bool:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str | os.PathLike):
            return False
        full = os.path.normpath(os.path.join(self.scratch, os.fspath(path)))
        return full != os.devnull and not (full + os.sep).startswith(self.scratch + os.sep)

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        # Plain values only: hasattr() or repr() of a payload's object runs its code (a
        # CDLL answers getattr with a dlsym, whose audit event re-enters this hook).
        shown = ", ".join(_short(a) for a in args[:3] if _is_plain(a))
        self.attempts.append(f"{event}({shown}): blocked")

    def take(self) -> list[str]:
        found, self.attempts = self.attempts, []
        return found


def _is_plain(value: object) -> bool:
    if isinstance(value, tuple | list) and type(value) in (tuple, list):
        return all(_is_plain(v) for v in value)
    return type(value) in (str, bytes, int, float, bool, type(None), PosixPath)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class Worker:
    """The worker's state: its pipes, confinement, audit hook and the loaded model."""

    def __init__(self, read_fd: int, write_fd: int, start: dict[str, Any]) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.scratch = Path(start["scratch"]).resolve()
        self.limits = Limits(**start["limits"])
        self.proofs = bool(start.get("proofs", True))
        self.audit = _Audit(self.scratch)
        self.model: Any = None
        # The id of the request being answered, echoed in every reply to it.
        self.request_id = start.get("id")
        self.estimator: Any = None

    # -- replies ---------------------------------------------------------------------------

    def send(self, header: dict[str, Any], arrays: list[np.ndarray] | None = None) -> None:
        reply = {**header, "id": self.request_id}
        _wire.write_message(self.write_fd, _wire.encode(reply, arrays or []))

    def fail(self, exc: BaseException, attempts: list[str]) -> None:
        self.send({"ok": False, "error": describe_error(exc), "attempts": attempts})

    # -- start-up --------------------------------------------------------------------------

    def start(self, preload: list[str], reads: list[str], blas_threads: int | None) -> None:
        from modelkeep.errors import ModelkeepError

        # The environment capture of save() asks platform for the processor, which runs
        # `uname -p` the first time: ask now, while a program may still run, so the answer
        # is cached (and a conversion in the worker attempts nothing).
        platform.platform()
        platform.processor()
        try:
            # Per-thread mechanisms first, while this is the only thread: every thread a
            # library starts while importing (OpenBLAS, OpenMP pools) inherits them.
            done = confine_process(self.scratch, reads)
            for name in preload:
                # An optional library that is not installed: its models cannot load.
                with contextlib.suppress(ImportError):
                    importlib.import_module(name)
            _start_blas_threads(blas_threads)
            # CPU seconds count from here: start-up is not the model's.
            usage = resource.getrusage(resource.RUSAGE_SELF)
            spent = int(usage.ru_utime + usage.ru_stime) + 1
            limits = Limits(
                memory=self.limits.memory,
                cpu_seconds=self.limits.cpu_seconds + spent,
                open_files=self.limits.open_files,
                file_size=self.limits.file_size,
                timeout=self.limits.timeout,
                scratch_bytes=self.limits.scratch_bytes,
                threads=self.limits.threads,
            )
            done.update(seal(limits))
        except ModelkeepError as exc:
            self.fail(exc, [])
            raise SystemExit(0) from None
        sys.addaudithook(self.audit)
        confinement = {name: done[name] for name in MECHANISMS}
        self.send({"ok": True, "confinement": confinement, "pid": os.getpid()})

    def serve(self) -> None:
        while True:
            try:
                header, arrays = _wire.read_message(self.read_fd, max_bytes=_MAX_REQUEST)
            except _wire.ProtocolError:
                return  # the caller closed the pipe: done
            self.request_id = header.get("id")
            op = header.get("op")
            handler = getattr(self, f"op_{op}", None)
            if handler is None:
                self.send({"ok": False, "error": {"class": "Exception", "message": f"op {op}"}})
                continue
            self.audit.armed = True
            try:
                reply, out = handler(header, arrays)
            except BaseException as exc:  # everything becomes data for the caller
                attempts = self.audit.take()
                self.audit.armed = False
                if isinstance(exc, KeyboardInterrupt | SystemExit) and not attempts:
                    raise
                self.fail(exc, attempts)
                continue
            attempts = self.audit.take()
            self.audit.armed = False
            if attempts:
                self.model = self.estimator = None
                self.send(
                    {
                        "ok": False,
                        "error": {"class": "SandboxBlockedError", "message": ""},
                        "attempts": attempts,
                    }
                )
                continue
            self.send({"ok": True, **reply}, out)

    # -- operations ------------------------------------------------------------------------

    def op_load_bundle(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        from modelkeep._bundle import load
        from modelkeep._inputs import plain_values
        from modelkeep.manifest import dump_manifest

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load(header["path"], **header.get("options", {}))
        self.model = model
        classes = model._classes
        return {
            "manifest": dump_manifest(model.manifest),
            "format": model.format,
            "classes": None if classes is None else plain_values(classes),
            "warnings": [describe_warning(w.message) for w in caught],
        }, []

    def op_verify(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        from modelkeep._bundle import verify

        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            checks = verify(header["path"], **header.get("options", {}))
        return {"checks": [[c.name, c.passed, c.detail] for c in checks]}, []

    def op_load_file(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        self.estimator = self._load_file(header)
        return {"estimator": describe_estimator(self.estimator)}, []

    def _load_file(self, header: dict[str, Any]) -> Any:
        path = header["path"]
        if not self.proofs:
            return _load_unproven(path)
        from modelkeep.safety.loader import safe_load

        return safe_load(
            path,
            trusted=header.get("trusted"),
            max_inflated_bytes=header["max_inflated_bytes"],
        )

    def op_call(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        method = header["method"]
        names = header["columns"]
        columns = [_wire.decode_column(d, arrays) for d in header["kinds"]]
        if self.model is not None:
            return self._call_model(method, names, columns)
        return self._call_estimator(method, names, columns, header.get("frame", False))

    def _call_model(
        self, method: str, names: list[str], columns: list[Any]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        import pandas as pd

        from modelkeep._inputs import plain_value

        frame = pd.DataFrame(dict(zip(names, columns, strict=True)))
        model = self.model
        with warnings.catch_warnings():
            # The caller validated the input and warned already.
            warnings.simplefilter("ignore")
            if method == "predict_proba":
                values = np.asarray(model.predict_proba(frame), dtype=np.float64)
                return {"kind": "proba"}, [values]
            predicted = np.asarray(model.predict(frame))
        labels = model._labels
        if labels is None:
            return {"kind": "values"}, [np.asarray(predicted, dtype=np.float64)]
        index = {plain_value(label): i for i, label in enumerate(labels)}
        positions = np.array([index[plain_value(v)] for v in predicted], dtype=np.int64)
        return {"kind": "positions"}, [positions]

    def _call_estimator(
        self, method: str, names: list[str], columns: list[Any], as_frame: bool
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        estimator = self.estimator
        if as_frame:
            import pandas as pd

            X: Any = pd.DataFrame(dict(zip(names, columns, strict=True)))
        elif all(c.dtype != object for c in columns):
            X = np.column_stack(columns) if columns else np.empty((0, 0))
        else:
            X = np.column_stack([np.asarray(c, dtype=object) for c in columns])
        result = np.asarray(getattr(estimator, method)(X))
        header, array = _wire.column_values(result) if result.ndim == 1 else ({}, result)
        if array is None:
            return {"kind": "list", "values": header["values"]}, []
        if array.dtype.str not in _wire.DTYPES:
            array = np.asarray(array, dtype=np.float64)
        return {"kind": "array"}, [array]

    def op_quarantine(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Load the pickle, convert it to an ONNX bundle in scratch, send the bundle's
        manifest and artifact bytes back (nothing else leaves)."""
        from modelkeep._bundle import save
        from modelkeep._importing import match_labels, read_sample
        from modelkeep.manifest import MANIFEST_NAME

        model = self._load_file({**header, "path": header["file"]})
        frame = read_sample(header["sample"])
        labels = header.get("labels")
        out = self.scratch / "quarantine" / "bundle"
        out.parent.mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            manifest = save(
                model,
                out,
                sample=frame,
                name=header["name"],
                labels=None if labels is None else match_labels(model, labels),
                formats=["onnx"],
            )
        files = [a.path for a in manifest.artifacts]
        data = [np.frombuffer((out / f).read_bytes(), dtype=np.uint8) for f in files]
        text = (out / MANIFEST_NAME).read_text(encoding="utf-8")
        return {"manifest": text, "files": files}, data

    def op_load_many(
        self, header: dict[str, Any], arrays: list[np.ndarray]
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Test only (reached through ``_testing``): load each file, report each outcome.

        Each file is loaded with the audit hook armed; a crash ends the worker and the
        caller starts another for the remaining files.
        """
        outcomes = []
        for path in header["paths"]:
            self._progress(path)
            try:
                loaded = self._load_file({**header, "path": path})
                outcome: dict[str, Any] = {"loaded": type(loaded).__name__, "error": None}
            except BaseException as exc:
                outcome = {"loaded": None, "error": describe_error(exc)}
            outcome["attempts"] = self.audit.take()
            outcomes.append(outcome)
        return {"outcomes": outcomes}, []

    def _progress(self, path: str) -> None:
        # Which file a crash happened in: the caller reads it back from the scratch folder.
        (self.scratch / "progress").write_text(path)


def _start_blas_threads(wanted: int | None) -> None:
    """OpenBLAS's thread pool, started now that every new thread inherits the confinement
    (the worker's environment had it at one thread while modelkeep was imported)."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        return
    count = wanted or len(os.sched_getaffinity(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threadpool_limits(limits=count, user_api="blas")


def _load_unproven(path: str) -> Any:
    """Test only: a plain ``pickle.loads`` or ``joblib.load``, no modelkeep proof at all,
    so that the sandbox alone stands between the file and the machine."""
    import pickle

    data = Path(path).read_bytes()
    if path.endswith((".joblib", ".jbl", ".z", ".gz", ".xz", ".bz2", ".lzma")):
        import joblib

        return joblib.load(path)
    return pickle.loads(data)


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An exception as data: class name, message, and its plain fields."""
    from modelkeep import errors

    name = type(exc).__name__
    if isinstance(exc, errors.ModelkeepError) and name in errors.__all__:
        fields = {k: _plain(v) for k, v in vars(exc).items() if _plain(v) is not _SKIP}
        return {"class": name, "message": str(exc), "fields": fields}
    if isinstance(exc, MemoryError):
        return {"class": "MemoryError", "message": "out of memory"}
    errno = getattr(exc, "errno", None)
    return {
        "class": "Exception",
        "type": name,
        "errno": errno if isinstance(errno, int) else None,
        "message": str(exc)[:2000],
    }


def describe_warning(warning: Warning | str) -> dict[str, Any]:
    from modelkeep import errors

    name = type(warning).__name__
    if isinstance(warning, errors.ModelkeepWarning) and name in errors.__all__:
        fields = {k: _plain(v) for k, v in vars(warning).items() if _plain(v) is not _SKIP}
        return {"class": name, "message": str(warning), "fields": fields}
    return {"class": "Warning", "message": str(warning)[:2000]}


_SKIP = object()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(
        v is None or isinstance(v, bool | int | float | str) for v in value
    ):
        return list(value)
    return _SKIP


def describe_estimator(estimator: Any) -> dict[str, Any]:
    """What the caller needs to know of a loaded object: its type, methods, classes."""
    from modelkeep._inputs import plain_values

    kind = type(estimator)
    classes = getattr(estimator, "classes_", None)
    names = getattr(estimator, "feature_names_in_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "methods": [
            m
            for m in ("predict", "predict_proba", "decision_function", "transform")
            if callable(getattr(estimator, m, None))
        ],
        "classes": None if classes is None else plain_values(np.asarray(classes)),
        "feature_names_in": None if names is None else [str(n) for n in names],
        "n_features_in": int(n_features) if isinstance(n_features, int | np.integer) else None,
    }


def main() -> None:
    # The protocol gets private fds; 0 reads nothing, 1 goes where 2 goes.
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.dont_write_bytecode = True
    start, _ = _wire.read_message(read_fd, max_bytes=0)
    if start.get("op") == "probe":
        from modelkeep.sandbox._probe import probe_here

        _wire.write_message(write_fd, _wire.encode({"ok": True, "probe": probe_here(start)}))
        return
    worker = Worker(read_fd, write_fd, start)
    threads = str(start.get("blas_threads") or "")
    worker.start(
        list(start.get("preload", [])),
        [str(p) for p in start.get("reads", [])],
        int(threads) if threads.isdigit() and int(threads) > 0 else None,
    )
    worker.serve()


if __name__ == "__main__":
    main()
