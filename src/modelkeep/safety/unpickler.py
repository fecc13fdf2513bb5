"""The second wall: an unpickler that resolves and builds only what the allowlist allows.

It runs only on bytes the static scan (:mod:`modelkeep.safety.pickle_scan`) has passed,
and enforces the same policy again while loading, so a gap in either one alone does not
let a file run code. It subclasses the pure-Python ``pickle._Unpickler`` (as joblib's own
loader does) because only that one lets every opcode be controlled:

* ``find_class`` compares the exact ``(module, name)`` pair with the allowlist before
  anything is imported; a dotted name needs an exact dotted entry;
* EXT codes always go through ``find_class`` (``copyreg``'s extension cache, which a
  previous unrestricted load may have filled, is never used);
* REDUCE, OBJ, INST, NEWOBJ and NEWOBJ_EX accept only objects ``find_class`` returned in this
  load, and a call with arguments only of names allowed to be called;
* BUILD applies state only to instances of allowed classes, never to a class, function or
  module, never to numpy's shared dtypes, and never with dunder attribute names; numpy
  dtype and array states only in the forms numpy writes (:mod:`.numpy_state`);
* a few allowed functions that call or instantiate their arguments are answered with
  checked stand-ins (``_STAND_INS``) accepting exactly what pickle, numpy and pandas write;
* a NumpyArrayWrapper's BUILD is followed by its array read as joblib lays it out, at the
  position the scan recorded (any disagreement is refused); an object array's nested
  stream goes through another instance of this class;
* scipy sparse matrices are checked with ``check_format(full_check=True)`` once built, and
  pyarrow arrays with ``validate(full=True)``.
"""

from __future__ import annotations

import codecs
import copyreg
import importlib
import pickle
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelkeep.errors import UntrustedTypesError
from modelkeep.safety.allowlist import RENAMED
from modelkeep.safety.joblib_layout import (
    LayoutError,
    native_byte_order,
    numeric_data,
    wrapper_spec,
)
from modelkeep.safety.numpy_state import (
    array_state_problem,
    dtype_arguments_problem,
    dtype_problem,
    dtype_state_problem,
    masked_state_problem,
    reconstruct_problem,
)
from modelkeep.safety.pickle_scan import ArrayRegion, find_byte, shared_dtype
from modelkeep.safety.policy import TrustPolicy

__all__ = ["Refusal", "RestrictedUnpickler"]


class Refusal(Exception):
    """Raised inside the unpickler for a construct no saved model uses; the loader turns it
    into :class:`~modelkeep.errors.UnsafePickleError` naming the artifact."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


_UNBUILDABLE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocols 0-2 use it: latin-1 only, so no codec is looked up."""
    if encoding not in ("latin1", "latin-1"):
        raise Refusal(f"_codecs.encode with encoding {encoding!r}; pickle only uses 'latin1'")
    return codecs.encode(text, "latin1")


def _checked_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor``, with ``base`` a builtin type (``object``, ``dict`` ...), as
    pickle writes it, so no constructor of another class runs."""
    heap_type = isinstance(base, type) and bool(base.__flags__ & (1 << 9))
    if not isinstance(base, type) or heap_type or base.__module__ != "builtins":
        raise Refusal(f"copyreg._reconstructor with base {base!r}; pickle only uses builtin types")
    return copyreg._reconstructor(cls, base, state)  # type: ignore[attr-defined]


def _numpy_pickle() -> Any:
    return importlib.import_module("numpy.random._pickle")


# Modules whose Booster BUILD states are proven by modelkeep.safety.boosters first.
_BOOSTER_MODULES = frozenset({"lightgbm.basic", "xgboost.core"})


def _checked_bit_generator_ctor(bit_generator: Any = "MT19937") -> Any:
    """numpy's ``__bit_generator_ctor``: a class given must be one of numpy's bit generators
    (it is called without arguments)."""
    from numpy.random.bit_generator import BitGenerator

    if isinstance(bit_generator, type) and not issubclass(bit_generator, BitGenerator):
        raise Refusal(f"a bit generator constructor given {bit_generator!r}, not a BitGenerator")
    return _numpy_pickle().__bit_generator_ctor(bit_generator)


def _checked_ctor(name: str) -> Any:
    """numpy's ``__randomstate_ctor`` / ``__generator_ctor``: they call their second argument
    with the first, so it must be numpy's own bit-generator constructor."""

    def ctor(bit_generator_name: Any = "MT19937", bit_generator_ctor: Any = None) -> Any:
        real = _numpy_pickle().__bit_generator_ctor
        if bit_generator_ctor not in (None, real, _checked_bit_generator_ctor):
            raise Refusal(
                f"numpy.random._pickle.{name} asked to call {bit_generator_ctor!r}; numpy "
                "pickles only its own bit-generator constructor there"
            )
        return getattr(_numpy_pickle(), name)(bit_generator_name, _checked_bit_generator_ctor)

    return ctor


def _checked_reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct``: only the empty placeholder numpy pickles (a file would
    otherwise size the allocation)."""
    problem = reconstruct_problem(shape, dtype)
    if problem is not None:
        raise Refusal(problem)
    return importlib.import_module("numpy._core.multiarray")._reconstruct(cls, shape, dtype)


def _checked_mareconstruct(subtype: Any, baseclass: Any, baseshape: Any, basetype: Any) -> Any:
    """numpy.ma's ``_mareconstruct``: the same empty placeholder."""
    problem = reconstruct_problem(baseshape, basetype)
    if problem is not None:
        raise Refusal(problem)
    return importlib.import_module("numpy.ma.core")._mareconstruct(
        subtype, baseclass, baseshape, basetype
    )


def _checked_new_index(cls: Any, d: Any) -> Any:
    """pandas' ``_new_Index`` runs ``cls.__new__(cls, **d)``: ``cls`` must be an Index."""
    import pandas as pd

    if not (isinstance(cls, type) and issubclass(cls, pd.Index)):
        raise Refusal(f"pandas _new_Index given {cls!r}, not a pandas Index class")
    return importlib.import_module("pandas.core.indexes.base")._new_Index(cls, d)


# Names the loader answers with a checked stand-in instead of the original: each accepts
# exactly what pickle (or numpy, or pandas) writes, and refuses the rest.
_STAND_INS: dict[str, Any] = {
    "_codecs.encode": _latin1_encode,
    "copyreg._reconstructor": _checked_reconstructor,
    "numpy.random._pickle.__bit_generator_ctor": _checked_bit_generator_ctor,
    "numpy.random._pickle.__randomstate_ctor": _checked_ctor("__randomstate_ctor"),
    "numpy.random._pickle.__generator_ctor": _checked_ctor("__generator_ctor"),
    "pandas.core.indexes.base._new_Index": _checked_new_index,
    "numpy._core.multiarray._reconstruct": _checked_reconstruct,
    "numpy.core.multiarray._reconstruct": _checked_reconstruct,
    "numpy.ma.core._mareconstruct": _checked_mareconstruct,
}


def _resolve(module: str, name: str) -> Any:
    full = f"{module}.{name}"
    if full in _STAND_INS:
        return _STAND_INS[full]
    candidates = [*RENAMED.get(full, ()), full] if "." not in name else [full]
    error: Exception | None = None
    for candidate in candidates:
        mod_name, attr = (module, name) if candidate == full else candidate.rsplit(".", 1)
        try:
            obj: Any = importlib.import_module(mod_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj
        except (ImportError, AttributeError) as exc:
            error = exc
    raise pickle.UnpicklingError(f"cannot resolve {full}: {error}")


class BufferReader:
    """The file interface the pure-Python unpickler reads through, over bytes in memory,
    without copying them (``io.BytesIO`` copies a bytearray). With frames (protocol 4+) the
    unpickler calls it once per frame; array data is never read through it."""

    def __init__(self, data: memoryview) -> None:
        self._view = data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        start = self._pos
        end = len(self._view) if size < 0 else min(start + size, len(self._view))
        self._pos = end
        return bytes(self._view[start:end])

    def readinto(self, buffer: bytearray) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def readline(self) -> bytes:
        newline = find_byte(self._view, 10, self._pos, len(self._view))
        return self.read(-1 if newline < 0 else newline + 1 - self._pos)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int) -> int:
        self._pos = pos
        return pos


def _is_dunder(key: object) -> bool:
    return not isinstance(key, str) or (key.startswith("__") and key.endswith("__"))


# The pure-Python unpickler: typeshed does not describe its stack and dispatch table.
_PyUnpickler: Any = getattr(pickle, "_Unpickler")  # noqa: B009


class RestrictedUnpickler(_PyUnpickler):  # type: ignore[misc]
    """Load one stream from ``file`` (positioned at its start) over the bytes ``data``.

    ``regions`` are the joblib array regions the scan found, by the offset where the
    wrapper's BUILD ends; ``joblib`` says whether wrappers are followed by array data (the
    main stream) or not (an object array's nested stream).
    """

    dispatch: dict[int, Any] = _PyUnpickler.dispatch.copy()

    def __init__(
        self,
        data: memoryview,
        file: BufferReader,
        *,
        policy: TrustPolicy,
        artifact: str,
        regions: Mapping[int, ArrayRegion],
        joblib: bool,
    ) -> None:
        super().__init__(file, fix_imports=True, encoding="ASCII", errors="strict")
        self._data = data
        self._file = file
        self._policy = policy
        self._artifact = artifact
        self._regions = regions
        self._joblib = joblib
        # id -> (object, module, name) of everything find_class returned; the object is kept
        # so its id cannot be reused by another object during the load.
        self._resolved: dict[int, tuple[Any, str, str]] = {}
        self._address: int | None = None

    # -- failures

    def _unsafe(self, problem: str) -> Refusal:
        return Refusal(f"byte {self._file.tell()}: {problem}")

    # -- names

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and self.fix_imports:
            import _compat_pickle

            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if not self._policy.allows(module, name):
            raise UntrustedTypesError(self._artifact, [f"{module}.{name}"])
        obj = _resolve(module, name)
        self._resolved[id(obj)] = (obj, module, name)
        return obj

    def get_extension(self, code: int) -> None:
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        if not key:
            raise pickle.UnpicklingError(f"extension code {code} is not registered")
        self.append(self.find_class(*key))

    def _origin(self, obj: Any, opcode: str) -> tuple[str, str]:
        entry = self._resolved.get(id(obj))
        if entry is None or entry[0] is not obj:
            raise self._unsafe(
                f"{opcode} on {type(obj).__name__!r}, a value computed while loading, not a "
                "global the allowlist resolved"
            )
        return entry[1], entry[2]

    def _check_call(self, func: Any, args: Any, opcode: str) -> tuple[str, str]:
        module, name = self._origin(func, opcode)
        if not self._policy.allows_call(module, name):
            raise UntrustedTypesError(self._artifact, [f"{module}.{name}"])
        if func in (bytes, bytearray) and any(isinstance(a, int) for a in args):
            raise self._unsafe(f"{func.__name__}() of a size; pickle never asks for one")
        if func is np.dtype:
            problem = dtype_arguments_problem(tuple(args) if isinstance(args, list) else args)
            if problem is not None:
                raise self._unsafe(problem)
        return module, name

    # -- calls and instances

    def load_reduce(self) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise pickle.UnpicklingError("REDUCE needs a callable and its arguments")
        module, name = self._check_call(stack[-2], stack[-1], "REDUCE")
        _PyUnpickler.load_reduce(self)
        check = _AFTER_CALL.get(f"{module}.{name}")
        if check is not None:
            check(self.stack[-1], self)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _check_new(self, cls: Any, opcode: str) -> None:
        self._origin(cls, opcode)
        if not isinstance(cls, type):
            raise self._unsafe(f"{opcode} on {cls!r}, which is not a class")
        if issubclass(cls, np.dtype):
            raise self._unsafe(f"{opcode} of numpy.dtype; numpy pickles a dtype by calling it")

    def load_newobj(self) -> None:
        if len(self.stack) < 2:
            raise pickle.UnpicklingError("NEWOBJ needs a class and its arguments")
        self._check_new(self.stack[-2], "NEWOBJ")
        _PyUnpickler.load_newobj(self)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        if len(self.stack) < 3:
            raise pickle.UnpicklingError("NEWOBJ_EX needs a class and its arguments")
        self._check_new(self.stack[-3], "NEWOBJ_EX")
        _PyUnpickler.load_newobj_ex(self)

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass: Any, args: list[Any]) -> None:
        # OBJ and INST: a call with arguments, or cls.__new__(cls) without.
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self._check_call(klass, args, "OBJ/INST")
        else:
            self._check_new(klass, "OBJ/INST")
        _PyUnpickler._instantiate(self, klass, args)

    # -- state

    def load_build(self) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise pickle.UnpicklingError("BUILD needs an object and its state")
        state, inst = stack[-1], stack[-2]
        self._check_build(inst, state)
        _PyUnpickler.load_build(self)
        if isinstance(inst, np.dtype):
            problem = dtype_problem(inst)
            if problem is not None:
                raise self._unsafe(problem)
        kind = _built_kind(type(inst))
        if kind == _WRAPPER and self._joblib:
            self.stack[-1] = self._read_array(inst)
        elif kind == _SPARSE:
            _check_sparse(inst, self)

    dispatch[pickle.BUILD[0]] = load_build

    def _check_build(self, inst: Any, state: Any) -> None:
        if isinstance(inst, _UNBUILDABLE):
            raise self._unsafe(
                f"BUILD on {inst!r} itself (a class, function or module), not an instance; it "
                "would change it for the whole process"
            )
        if not self._policy.allows_instance(type(inst)):
            cls = type(inst)
            raise self._unsafe(
                f"BUILD on an instance of {cls.__module__}.{cls.__qualname__}, which is not "
                "an allowed class"
            )
        # numpy applies dtype and array states unchecked (a malformed one crashes it).
        problem = None
        if isinstance(inst, np.dtype):
            if shared_dtype(inst):
                raise self._unsafe("BUILD on a numpy dtype that numpy shares process-wide")
            problem = dtype_state_problem(inst.__reduce__()[1][0], state)
        elif isinstance(inst, np.ma.MaskedArray):
            problem = masked_state_problem(state)
        elif isinstance(inst, np.ndarray):
            problem = array_state_problem(state)
        if problem is not None:
            raise self._unsafe(problem)
        if getattr(inst, "__setstate__", None) is not None:
            return  # the class's own reviewed setter decides
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
        for part in parts:
            if part is None:
                continue
            if not isinstance(part, dict):
                raise self._unsafe(f"BUILD state is a {type(part).__name__}, not a dict")
            bad = [k for k in part if _is_dunder(k)]
            if bad:
                raise self._unsafe(
                    f"BUILD state sets {bad[0]!r}; only plain attribute names are accepted"
                )

    # -- joblib arrays

    def _read_array(self, wrapper: Any) -> np.ndarray[Any, Any]:
        here = self._file.tell()
        region = self._regions.get(here)
        try:
            spec = wrapper_spec(vars(wrapper))
        except LayoutError as exc:
            raise self._unsafe(f"joblib array wrapper: {exc.problem}") from None
        if region is None or region.is_object != spec.is_object:
            raise self._unsafe(
                "a joblib array wrapper where the scan found none (or of another kind); the "
                "scan and the loader disagree on the file's layout"
            )
        if spec.is_object:
            nested = RestrictedUnpickler(
                self._data,
                self._file,
                policy=self._policy,
                artifact=self._artifact,
                regions={},
                joblib=False,
            )
            array = nested.load()
            if self._file.tell() != region.end or not isinstance(array, np.ndarray):
                raise self._unsafe(
                    "an object array's nested stream ends elsewhere than the scan found, or "
                    "does not hold an array"
                )
        else:
            try:
                start, nbytes = numeric_data(spec, self._data, here, len(self._data))
            except LayoutError as exc:
                raise self._unsafe(f"joblib array: {exc.problem}") from None
            if (start, start + nbytes) != (region.start, region.end):
                raise self._unsafe("joblib array data lies elsewhere than the scan found")
            flat = self._array_at(spec.dtype, spec.count, start)
            if spec.order == "F":
                array = flat.reshape(spec.shape[::-1]).transpose()
            else:
                array = flat.reshape(spec.shape)
            self._file.seek(region.end)
        return native_byte_order(array)

    def _array_at(self, dtype: np.dtype[Any], count: int, start: int) -> np.ndarray[Any, Any]:
        """The array over the file's bytes: a view when the buffer is private and writable
        (see ``loader._read_whole``) and the data aligned for its dtype, so nothing is copied;
        a copy otherwise (read-only bytes, or misaligned data some libraries cannot use)."""
        if count == 0 or dtype.itemsize == 0:
            return np.empty(count, dtype=dtype)
        view: np.ndarray[Any, Any] = np.frombuffer(
            self._data, dtype=dtype, count=count, offset=start
        )
        if not self._data.readonly and (self._base_address() + start) % dtype.alignment == 0:
            return view
        copied: np.ndarray[Any, Any] = view.copy()
        return copied

    def _base_address(self) -> int:
        """Where the file's buffer starts in memory (for the alignment of array views)."""
        if self._address is None:
            first = np.frombuffer(self._data, dtype=np.uint8, count=1)
            self._address = int(first.__array_interface__["data"][0])
        return self._address

    def load_bytearray8(self) -> None:
        # The pure-Python unpickler allocates the declared size before reading.
        size = int.from_bytes(self.read(8), "little")
        if size > len(self._data):
            raise pickle.UnpicklingError(
                f"BYTEARRAY8 claims {size:,} bytes, the file has {len(self._data):,}"
            )
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


_PLAIN_OBJECT, _WRAPPER, _SPARSE = 0, 1, 2


_KINDS: dict[type, int] = {}


def _built_kind(cls: type) -> int:
    """What a BUILD on an instance of ``cls`` is followed by (cached: one answer per class)."""
    kind = _KINDS.get(cls)
    if kind is None:
        if (cls.__module__, cls.__qualname__) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            kind = _WRAPPER  # joblib's array data follows
        # A booster's __setstate__ hands its saved model to the library's C++ parser, which
        # follows the model's indices unchecked: the bytes are proven before it sees them.
        if type(inst).__module__ in _BOOSTER_MODULES:
            from modelkeep.safety.boosters import booster_state_problem

            cls = type(inst)
            problem = booster_state_problem(f"{cls.__module__}.{cls.__qualname__}", state)
            if problem is not None:
                raise self._unsafe(problem)
        elif cls.__module__.startswith("scipy.sparse"):
            kind = _SPARSE  # its index arrays are checked
        else:
            kind = _PLAIN_OBJECT
        _KINDS[cls] = kind
    return kind


def _check_arrow(array: Any, unpickler: RestrictedUnpickler) -> None:
    try:
        array.validate(full=True)
    except Exception as exc:  # pyarrow.ArrowInvalid and kin; pyarrow is imported already
        raise unpickler._unsafe(f"a pyarrow array whose buffers are invalid ({exc})") from None


# Results validated right after the call that built them (unchecked offsets into buffers).
_AFTER_CALL: dict[str, Any] = {"pyarrow.lib._restore_array": _check_arrow}


def _check_sparse(matrix: Any, unpickler: RestrictedUnpickler) -> None:
    check = getattr(matrix, "check_format", None)
    if check is None:  # coo has no check_format; its own check validates the same
        check = getattr(matrix, "_check", None)
    if check is None:
        return
    try:
        if check.__name__ == "check_format":
            check(full_check=True)
        else:
            check()
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise unpickler._unsafe(
            f"a {type(matrix).__name__} whose index arrays are invalid ({exc})"
        ) from None
