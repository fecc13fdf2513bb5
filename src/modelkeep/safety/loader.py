"""Load pickle and joblib bytes safely: scan, judge, then unpickle under restriction.

The order matters and is the point of this module; keep it:

1. inflate a compressed joblib file, with a size cap (``max_inflated_bytes``);
2. scan the bytes statically (nothing is imported or called);
3. refuse a stream that could not be read to its end, references anything untrusted, or
   does anything no saved model does -- before a single name is resolved;
4. unpickle with :class:`RestrictedUnpickler`, which enforces the same policy again;
5. validate every decision tree in the result before anything calls it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelkeep.errors import (
    CorruptPickleError,
    InvalidChoiceError,
    ModelkeepError,
    UnsafePickleError,
    UntrustedTypesError,
)
from modelkeep.safety.joblib_layout import (
    MAX_DECOMPRESSED_BYTES,
    LayoutError,
    decompress,
    detect_compression,
)
from modelkeep.safety.pickle_scan import StreamScan, scan_pickle
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.unpickler import BufferReader, Refusal, RestrictedUnpickler

if TYPE_CHECKING:
    from modelkeep.sandbox import Limits

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "check_inflated_cap",
    "inflate",
    "load_pickle_bytes",
    "read_file",
    "safe_load",
    "untrusted_names",
]

_ZIP_MAGIC = b"PK\x03\x04"


def check_inflated_cap(value: object) -> int:
    """``max_inflated_bytes`` as given, once it is a whole number of bytes above zero.

    Raises:
        InvalidChoiceError: anything else (a bool, a float, zero, a negative number).
    """
    if type(value) is not int or value < 1:
        raise InvalidChoiceError(
            str(value), ["a whole number of bytes above 0, such as 4 << 30"], "max_inflated_bytes"
        )
    return value


def inflate(
    data: bytes | bytearray | memoryview,
    *,
    artifact: str,
    format: str,
    max_inflated_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> tuple[memoryview, str | None]:
    """The raw pickle stream of a (possibly compressed) pickle or joblib file, and the
    compression found (None when there was none).

    ``max_inflated_bytes`` caps what a compressed file may inflate to (an uncompressed
    file is bounded by its own size).

    Raises:
        CorruptPickleError: a zip archive (a .skops file), an unsupported or corrupt
            compression, or more than ``max_inflated_bytes``.
        InvalidChoiceError: ``max_inflated_bytes`` is not a whole number above 0.
    """
    limit = check_inflated_cap(max_inflated_bytes)
    if bytes(data[:4]) == _ZIP_MAGIC:
        raise CorruptPickleError(
            artifact,
            format,
            "a zip archive, not a pickle stream (a .skops file? it loads inside a bundle)",
            offset=0,
        )
    try:
        method = detect_compression(data)
        if method is None:
            return memoryview(data).cast("B"), None
        return memoryview(decompress(data, method, limit=limit)), method
    except LayoutError as exc:
        raise CorruptPickleError(artifact, format, exc.problem, offset=0) from None
    except MemoryError as exc:
        raise CorruptPickleError(
            artifact,
            format,
            f"{method} data inflates to more than this process can hold in memory "
            f"(max_inflated_bytes is {limit:,})",
            offset=0,
        ) from exc


def untrusted_names(scan: StreamScan, policy: TrustPolicy) -> list[str]:
    """Names the scan found that ``policy`` does not allow (or does not allow to be called)."""
    names = {ref.fullname for ref in scan.references if not policy.allows(ref.module, ref.name)}
    for module, name in scan.calls:
        if policy.allows(module, name) and not policy.allows_call(module, name):
            names.add(f"{module}.{name}")
    return sorted(names)


def judge(scan: StreamScan, policy: TrustPolicy, *, artifact: str, format: str) -> None:
    """Raise the error a scan calls for; return when the stream may be unpickled."""
    untrusted = untrusted_names(scan, policy)
    if scan.error is not None:
        raise CorruptPickleError(
            artifact, format, scan.error.problem, offset=scan.error.offset, untrusted=untrusted
        )
    if untrusted:
        raise UntrustedTypesError(artifact, untrusted)
    if scan.findings:
        raise UnsafePickleError(
            artifact,
            [
                f"byte {f.offset}{'' if f.stream == 'main' else f' ({f.stream})'}: {f.problem}"
                for f in scan.findings
            ],
        )


def load_pickle_bytes(
    data: bytes | bytearray | memoryview,
    *,
    artifact: str,
    trusted: Sequence[str] | None = None,
    format: str = "pickle",
    max_inflated_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> Any:
    """Load a pickle or joblib file's bytes through the scan and the restricted unpickler.

    Args:
        data: the whole file; when it is writable (a bytearray, or a memoryview of a numpy
            buffer) joblib arrays become views of it instead of copies.
        artifact: the name errors show.
        trusted: exact names to trust beyond the allowlist for this call.
        format: ``"pickle"`` or ``"joblib"``, for messages.
        max_inflated_bytes: what a compressed file may inflate to (default 1 GiB).

    Raises:
        CorruptPickleError, UntrustedTypesError, UnsafePickleError, UnsafeModelError,
        NeverTrustedError, InvalidChoiceError (a bad ``max_inflated_bytes``). Nothing
        else: an error a crafted file provokes inside numpy, pandas or the scan
        (AttributeError, TypeError, MemoryError, RecursionError ...) becomes a
        CorruptPickleError.
    """
    try:
        return _load_pickle_bytes(
            data,
            artifact=artifact,
            trusted=trusted,
            format=format,
            max_inflated_bytes=max_inflated_bytes,
        )
    except (ModelkeepError, OSError):
        raise
    except Exception as exc:  # the boundary: no raw error from a crafted file gets out
        raise CorruptPickleError(artifact, format, _raised(exc)) from exc


def _raised(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "reading it needs more memory than this process has (MemoryError)"
    if isinstance(exc, RecursionError):
        return "it nests deeper than Python can follow (RecursionError)"
    return f"reading it raised {type(exc).__name__}: {exc}"


def _load_pickle_bytes(
    data: bytes | bytearray | memoryview,
    *,
    artifact: str,
    trusted: Sequence[str] | None,
    format: str,
    max_inflated_bytes: int,
) -> Any:
    policy = TrustPolicy(trusted)
    payload, _ = inflate(
        data, artifact=artifact, format=format, max_inflated_bytes=max_inflated_bytes
    )
    scan = scan_pickle(payload)
    judge(scan, policy, artifact=artifact, format=format)
    file = BufferReader(payload)
    unpickler = RestrictedUnpickler(
        payload, file, policy=policy, artifact=artifact, regions=scan.regions, joblib=True
    )
    try:
        obj = unpickler.load()
    except ModelkeepError:
        raise
    except Refusal as exc:
        raise UnsafePickleError(artifact, [exc.problem]) from None
    except Exception as exc:  # whatever a malformed stream makes pickle raise
        raise CorruptPickleError(
            artifact, format, f"{type(exc).__name__}: {exc}", offset=file.tell()
        ) from exc
    if file.tell() != len(payload):
        raise UnsafePickleError(artifact, [f"byte {file.tell()}: data after the stream's STOP"])

    from modelkeep.safety.state import prove_state

    # Allowed classes are trusted only on this condition: their whole state proven, on the
    # final object graph, before anything calls the model.
    prove_state(obj, trusted=policy.trusted)
    return obj


def read_file(path: str | os.PathLike[str]) -> memoryview:
    """A whole file, read once into private memory (see :func:`_read_whole`)."""
    with open(path, "rb") as stream:
        return _read_whole(stream)


def _read_whole(stream: io.BufferedReader) -> memoryview:
    """The file's bytes in private, writable memory, read once.

    An uninitialised numpy buffer filled by ``readinto`` touches each page once (a zeroed
    bytearray would touch it twice), and being writable it lets the arrays of a joblib file
    be views of it rather than copies. Never a memory map: the file could change under it
    after the scan.
    """
    import numpy as np

    size = os.fstat(stream.fileno()).st_size
    buffer = np.empty(size, dtype=np.uint8)
    view = memoryview(buffer.data)
    got = stream.readinto(view)
    rest = stream.read()
    if got != size or rest:  # the file changed size while being read
        return memoryview(bytearray(view[:got]) + rest)
    return view


def safe_load(
    path: str | os.PathLike[str],
    *,
    trusted: Sequence[str] | None = None,
    max_inflated_bytes: int = MAX_DECOMPRESSED_BYTES,
    isolate: bool = False,
    limits: Limits | None = None,
) -> Any:
    """Load a standalone ``.pkl`` or ``.joblib`` file without running untrusted code.

    The file is scanned statically first: every global it references must be on
    modelkeep's allowlist (fitted scikit-learn, numpy, scipy sparse, pandas, XGBoost and
    LightGBM objects) or in ``trusted``. Only then is it unpickled, by an unpickler that
    enforces the same allowlist again, and every decision tree in the result is validated.
    Compressed joblib files (zlib, gzip, bz2, lzma, xz) are recognised by their first bytes
    and inflated to at most ``max_inflated_bytes``.

    Args:
        path: the file.
        trusted: exact names (``"package.module.Class"``) to trust for this call.
        max_inflated_bytes: what a compressed file may inflate to, in bytes (default 1 GiB,
            against decompression bombs); raise it for a larger model you trust.
        isolate: load it (with every check above) in a sandboxed worker process, and
            return a :class:`modelkeep.sandbox.IsolatedEstimator` whose ``predict`` ...
            run there; ``limits`` (:class:`modelkeep.sandbox.Limits`) bound the worker.

    Raises:
        UntrustedTypesError: the file references names nobody trusted (all listed).
        UnsafePickleError: it does something no saved model does (data after STOP, a BUILD
            on a class or function, names computed at load time ...).
        CorruptPickleError: it is truncated, malformed, or beyond modelkeep's limits
            (``max_inflated_bytes`` among them).
        NeverTrustedError: ``trusted`` names something that can never be trusted.
        InvalidChoiceError: ``max_inflated_bytes`` is not a whole number above 0.
        UnsafeModelError: a decision tree in it is malformed.
        OSError: the file cannot be read.

    Example:
        >>> model = modelkeep.safe_load("legacy/churn.joblib")
    """
    TrustPolicy(trusted)  # bad arguments fail before the file is read
    check_inflated_cap(max_inflated_bytes)
    if isolate is not False or limits is not None:
        from modelkeep import sandbox

        if isolate is not True:
            raise InvalidChoiceError(repr(isolate), ["True", "False"], "isolate")
        return sandbox.safe_load(
            path, trusted=trusted, max_inflated_bytes=max_inflated_bytes, limits=limits
        )
    fmt = "joblib" if str(path).endswith((".joblib", ".jbl", ".z", ".gz", ".xz")) else "pickle"
    try:
        data = read_file(path)
    except MemoryError as exc:
        raise CorruptPickleError(str(path), fmt, _raised(exc)) from exc
    return load_pickle_bytes(
        data, artifact=str(path), trusted=trusted, format=fmt, max_inflated_bytes=max_inflated_bytes
    )
