"""A second wall: untrusted models loaded, checked and run in a sandboxed worker process.

``modelkeep.load(ref, isolate=True)``, ``modelkeep.safe_load(path, isolate=True)`` and
``--isolate`` on the CLI come here. The worker is a fresh interpreter with a stripped
environment that imports its libraries, then confines itself before reading the file:
resource limits, no capabilities, Landlock (read-only filesystem but its scratch folder,
no TCP), seccomp (no exec, process, socket, ptrace or new shared library). What crosses
back is data only (JSON and plain numeric arrays), checked here; a crash, a limit or a
timeout in the worker is an error here, never the caller's end.

Example:
    >>> model = modelkeep.load("churn_model", isolate=True)
    >>> model.predict(rows)
    >>> modelkeep.sandbox.probe()  # what this machine supports
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelkeep.errors import InvalidArgumentError
from modelkeep.sandbox._confine import MECHANISMS, Limits

if TYPE_CHECKING:
    from modelkeep._bundle import Check
    from modelkeep.sandbox._model import IsolatedEstimator, IsolatedModel

__all__ = [
    "MECHANISMS",
    "Capability",
    "IsolatedEstimator",
    "IsolatedModel",
    "Limits",
    "load",
    "probe",
    "safe_load",
    "verify",
]

# The load options a worker can take: everything but objects (session_options).
_BUNDLE_OPTIONS = ("format", "env", "trusted", "atol", "public_key", "manifest_sha256")


def __getattr__(name: str) -> Any:
    if name in ("IsolatedModel", "IsolatedEstimator"):
        from modelkeep.sandbox import _model

        return getattr(_model, name)
    raise AttributeError(f"module 'modelkeep.sandbox' has no attribute {name!r}")


@dataclass(frozen=True)
class Capability:
    """One confinement mechanism and whether this machine applied it."""

    mechanism: str
    supported: bool
    detail: str


def _limits(limits: Limits | None) -> Limits:
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise InvalidArgumentError("limits", "a modelkeep.sandbox.Limits", type(limits).__name__)
    return limits


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_BUNDLE_OPTIONS))
    if unknown:
        raise InvalidArgumentError(
            unknown[0],
            f"one of the options an isolated load takes ({', '.join(_BUNDLE_OPTIONS)})",
            repr(options[unknown[0]]),
            "session_options cannot cross into the worker; load without isolate=True to use them.",
        )
    sent = {k: v for k, v in options.items() if v is not None}
    if "trusted" in sent and not isinstance(sent["trusted"], str):
        sent["trusted"] = [str(t) for t in sent["trusted"]]
    if "public_key" in sent:
        sent["public_key"] = os.path.abspath(os.fspath(sent["public_key"]))
    return sent


def _families(path: str) -> list[str]:
    """Optional libraries (XGBoost, LightGBM, pyarrow) a bundle's manifest says it needs.

    Read through modelkeep's one manifest reader (data, nothing run): the worker can import
    nothing after it confines itself, so what it needs must be known before.
    """
    from modelkeep._reader import read_manifest
    from modelkeep.errors import ModelkeepError

    try:
        manifest = read_manifest(path)
    except ModelkeepError:
        return []  # the worker's load reports it properly
    return [name for name in manifest.environment.packages if name in _OPTIONAL]


_OPTIONAL = ("xgboost", "lightgbm", "pyarrow")


def _wants_onnx(path: str, format: str | None) -> bool:
    if format is not None:
        return format == "onnx"
    from modelkeep._reader import read_manifest
    from modelkeep.errors import ModelkeepError

    try:
        manifest = read_manifest(path)
    except ModelkeepError:
        return False
    return bool(manifest.artifacts) and manifest.artifacts[0].format == "onnx"


def load(
    path: str | os.PathLike[str],
    *,
    limits: Limits | None = None,
    _proofs: bool = True,
    **options: Any,
) -> IsolatedModel:
    """Load the bundle at ``path`` in a sandboxed worker: the whole load sequence (read,
    integrity, deserialization with the safety layer, claims, golden replay) runs there.

    ``options`` are :func:`modelkeep.load`'s (``format``, ``env``, ``trusted``, ``atol``,
    ``public_key``); ``limits`` the worker's (:class:`Limits`: memory, CPU seconds, open
    files, file size, timeout).

    Raises:
        SandboxUnavailableError: the kernel refuses a mechanism (named); nothing was read.
        SandboxBlockedError: loading tried what the sandbox forbids (each attempt listed).
        SandboxCrashError, SandboxResourceError: the worker died, or hit a limit.
        and every error of :func:`modelkeep.load`, as the same class.
    """
    from modelkeep.sandbox._launcher import preload_modules
    from modelkeep.sandbox._model import open_bundle

    source = os.path.abspath(os.fspath(path))
    sent = _options(options)
    preload = preload_modules(
        onnx=_wants_onnx(source, sent.get("format")), families=_families(source)
    )
    return open_bundle(source, sent, limits=_limits(limits), preload=preload, proofs=_proofs)


def verify(
    path: str | os.PathLike[str], *, limits: Limits | None = None, **options: Any
) -> list[Check]:
    """:func:`modelkeep.verify` run in a sandboxed worker: the same checks, as data."""
    from modelkeep._bundle import Check
    from modelkeep.sandbox._launcher import Worker, preload_modules

    source = os.path.abspath(os.fspath(path))
    sent = _options(options)
    preload = preload_modules(
        onnx=_wants_onnx(source, sent.get("format")), families=_families(source)
    )
    key = sent.get("public_key")
    reads = [source] if not isinstance(key, str) else [source, key]
    worker = Worker(source, limits=_limits(limits), preload=preload, reads=reads)
    try:
        reply, _ = worker.request(
            {"op": "verify", "path": source, "options": sent}, during="verify"
        )
    finally:
        worker.close()
    checks = reply.get("checks")
    if not isinstance(checks, list):
        return [Check("sandbox", False, "the worker reported no checks")]
    return [
        Check(str(item[0])[:200], item[1] is True, str(item[2])[:20_000])
        for item in checks
        if isinstance(item, list) and len(item) == 3
    ]


def safe_load(
    path: str | os.PathLike[str],
    *,
    trusted: Sequence[str] | None = None,
    max_inflated_bytes: int | None = None,
    limits: Limits | None = None,
    families: Sequence[str] = (),
    _proofs: bool = True,
) -> IsolatedEstimator:
    """:func:`modelkeep.safe_load` in a sandboxed worker; the object stays there.

    ``families`` names optional libraries the file's model needs (``"xgboost"``,
    ``"lightgbm"``, ``"pyarrow"``): the worker imports them before it confines itself.

    Raises:
        as :func:`load`, and every error of :func:`modelkeep.safe_load`.
    """
    from modelkeep.safety.joblib_layout import MAX_DECOMPRESSED_BYTES
    from modelkeep.sandbox._launcher import preload_modules
    from modelkeep.sandbox._model import open_file

    source = os.path.abspath(os.fspath(path))
    request = {
        "trusted": None if trusted is None else [str(t) for t in trusted],
        "max_inflated_bytes": MAX_DECOMPRESSED_BYTES
        if max_inflated_bytes is None
        else max_inflated_bytes,
    }
    return open_file(
        source,
        request,
        limits=_limits(limits),
        preload=preload_modules(families=families),
        proofs=_proofs,
    )


def probe() -> list[Capability]:
    """Which confinement mechanisms this machine supports, each tried in a throwaway worker
    (what ``modelkeep doctor`` prints)."""
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from modelkeep.sandbox import _wire
    from modelkeep.sandbox._launcher import _environment

    scratch = Path(tempfile.mkdtemp(prefix="modelkeep-probe-")).resolve()
    try:
        command = [sys.executable, "-s", "-m", "modelkeep.sandbox._worker"]
        message = _wire.encode({"op": "probe", "scratch": str(scratch)})
        done = subprocess.run(
            command,
            input=message,
            capture_output=True,
            env=_environment(scratch),
            cwd=scratch,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Capability("worker", False, f"the worker cannot start ({exc})")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    read, write = os.pipe()
    try:
        os.write(write, done.stdout[: 1 << 16])
        os.close(write)
        try:
            reply, _ = _wire.read_message(read, max_bytes=0)
        except _wire.ProtocolError:
            return [Capability("worker", False, f"the worker ended with status {done.returncode}")]
    finally:
        os.close(read)
    found = reply.get("probe")
    if not isinstance(found, list):
        return [Capability("worker", False, "the worker reported nothing")]
    return [
        Capability(
            str(item.get("mechanism")), item.get("supported") is True, str(item.get("detail"))
        )
        for item in found
        if isinstance(item, dict)
    ]
