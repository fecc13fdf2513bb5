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

Resources are bounded as in the scan, independently of it: the stack (all MARK segments
together), NEWOBJ without arguments, calls only with the arguments pickle writes
(``_ARGUMENT_FORMS``: no size beyond the file's length, no lazy range to expand), arrays no
longer than the file. CPython frees a partial, a slice and a numpy array without the
trashcan that bounds the recursion of freeing nested lists, tuples, dicts and instances, so
a deep chain of them would crash the interpreter when freed: a partial of a partial is
refused, and every object array built is kept until the load ends, when their direct
nesting must be at most ``MAX_ARRAY_NESTING``; when a load fails for any reason, those
arrays are emptied before anything is released (``_Kept.dismantle``), so nothing is freed
recursively.
"""

from __future__ import annotations

import codecs
import copyreg
import functools
import importlib
import pickle
import types
from collections.abc import Callable, Iterator, Mapping
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
from modelkeep.safety.pickle_scan import (
    MAX_ARRAY_NESTING,
    MAX_NESTING,
    MAX_STACK,
    ArrayRegion,
    chain_depth,
    find_byte,
    shared_dtype,
)
from modelkeep.safety.policy import TrustPolicy
from modelkeep.safety.special import NEVER_BUILT, SPECIAL, Build, Form, StandIn

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


# Modules whose Booster BUILD states are proven by modelkeep.safety.boosters first.
_BOOSTER_MODULES = frozenset({"lightgbm.basic", "xgboost.core"})


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


# This wall's stand-ins, by the kind the shared table (safety/special.py) gives a name: each
# accepts exactly what pickle (or numpy, or pandas) writes, and refuses the rest.
_STAND_IN_IMPLEMENTATIONS: dict[StandIn, Any] = {
    StandIn.LATIN1_ENCODE: _latin1_encode,
    StandIn.RECONSTRUCTOR: _checked_reconstructor,
    StandIn.BIT_GENERATOR_CTOR: _checked_bit_generator_ctor,
    StandIn.RANDOMSTATE_CTOR: _checked_ctor("__randomstate_ctor"),
    StandIn.GENERATOR_CTOR: _checked_ctor("__generator_ctor"),
    StandIn.NEW_INDEX: _checked_new_index,
    StandIn.RECONSTRUCT: _checked_reconstruct,
    StandIn.MARECONSTRUCT: _checked_mareconstruct,
}
# Names the loader answers with a checked stand-in instead of the original.
_STAND_INS: dict[str, Any] = {
    name: _STAND_IN_IMPLEMENTATIONS[entry.stand_in]
    for name, entry in SPECIAL.items()
    if entry.stand_in is not None
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
        kept: _Kept | None = None,
        below: int = 0,
    ) -> None:
        # Set before super().__init__, which may assign ``append`` (see the property).
        self._base = below  # stack items of the stream this one is nested in
        self._below = below
        self._owner = kept is None  # the outermost load: it checks and dismantles
        self._kept = _Kept() if kept is None else kept
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

    # -- the load, and what it leaves behind

    def load(self) -> Any:
        self._below = self._base
        if not self._owner:
            return _PyUnpickler.load(self)
        try:
            value = _PyUnpickler.load(self)
            # Built bottom-up, a chain is refused as it grows (load_build); built top-down
            # (an array given to its parent before its own items), only now can it be seen.
            depth, _ = chain_depth(self._kept.arrays, _held_arrays)
            if depth > MAX_ARRAY_NESTING:
                raise Refusal(_nesting_problem(depth))
        except BaseException:
            self._kept.dismantle()
            raise
        self._kept.release()
        return value

    # -- the stack, bounded across MARK segments

    def __setattr__(self, name: str, value: Any) -> None:
        # pickle assigns ``append`` the current segment's list.append whenever the segment
        # changes: every push goes through the bounded one instead (an instance attribute,
        # not a property, so a push costs one call).
        if name == "append":
            value = self._bounded_push()
        object.__setattr__(self, name, value)

    def _bounded_push(self) -> Callable[[Any], None]:
        # No reference to the unpickler: a cycle would keep the memo, and with it the whole
        # model, alive until the garbage collector runs.
        stack: list[Any] = self.stack
        push = stack.append
        room = MAX_STACK - self._below
        file = self._file

        def bounded(item: Any) -> None:
            if len(stack) >= room:
                raise Refusal(
                    f"byte {file.tell()}: more than {MAX_STACK:,} items on the stack, all "
                    "MARK segments together (modelkeep's limit)"
                )
            push(item)

        return bounded

    def load_mark(self) -> None:
        self._below += len(self.stack)
        _PyUnpickler.load_mark(self)

    dispatch[pickle.MARK[0]] = load_mark

    def pop_mark(self) -> list[Any]:
        items: list[Any] = _PyUnpickler.pop_mark(self)
        self._below -= len(self.stack)
        return items

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
        problem = self._argument_problem(f"{module}.{name}", args)
        if problem is not None:
            raise self._unsafe(problem)
        if func is np.dtype:
            problem = dtype_arguments_problem(tuple(args) if isinstance(args, list) else args)
            if problem is not None:
                raise self._unsafe(problem)
        return module, name

    def _argument_problem(self, name: str, args: Any) -> str | None:
        if type(args) is not tuple and type(args) is not list:  # func(*args) would expand it
            return f"{name}() given {type(args).__name__} arguments; pickle passes a tuple"
        for arg in args:
            if type(arg) is range or (
                type(arg) is dict and any(type(v) is range for v in arg.values())
            ):
                return (
                    f"{name}() given a range, which it could expand to any size; pickle passes none"
                )
        check = _ARGUMENT_FORMS.get(name)
        if check is None:
            return None
        expected = check(tuple(args), len(self._data))
        if expected is None:
            return None
        return f"{name}() given {_kinds(args)}; pickle passes {expected}"

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

    def _check_new_arguments(self, cls: Any, args: Any, kwargs: Any, opcode: str) -> None:
        # __new__ of bytes, int, frozenset, numpy.ndarray, MaskedArray ... would build (and
        # size) from the arguments; pickle writes every allowed class without any.
        if args == () and type(args) is tuple and (kwargs is None or kwargs == {}):
            return
        given = _kinds(args) if kwargs is None or kwargs == {} else f"{_kinds(args)} and keywords"
        raise self._unsafe(
            f"{opcode} passes {given} to {getattr(cls, '__qualname__', cls)}.__new__; pickle "
            "writes it without arguments (they could size an allocation, as "
            "bytes.__new__(bytes, n) does)"
        )

    def load_newobj(self) -> None:
        if len(self.stack) < 2:
            raise pickle.UnpicklingError("NEWOBJ needs a class and its arguments")
        self._check_new(self.stack[-2], "NEWOBJ")
        self._check_new_arguments(self.stack[-2], self.stack[-1], None, "NEWOBJ")
        _PyUnpickler.load_newobj(self)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        if len(self.stack) < 3:
            raise pickle.UnpicklingError("NEWOBJ_EX needs a class and its arguments")
        self._check_new(self.stack[-3], "NEWOBJ_EX")
        self._check_new_arguments(self.stack[-3], self.stack[-2], self.stack[-1], "NEWOBJ_EX")
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
        if isinstance(inst, np.ndarray) and inst.dtype.hasobject:
            depth = self._kept.add(inst)  # held until the load ends: see load()
            if depth > MAX_ARRAY_NESTING:
                raise self._unsafe(_nesting_problem(depth))
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
        never = _never_built(type(inst))
        if never is not None:
            raise self._unsafe(f"BUILD on a {never}")
        # A booster's __setstate__ hands its saved model to the library's C++ parser, which
        # follows the model's indices unchecked: the bytes are proven before it sees them.
        if type(inst).__module__ in _BOOSTER_MODULES:
            from modelkeep.safety.boosters import booster_state_problem

            cls = type(inst)
            problem = booster_state_problem(f"{cls.__module__}.{cls.__qualname__}", state)
            if problem is not None:
                raise self._unsafe(problem)
        # numpy applies dtype and array states unchecked (a malformed one crashes it).
        problem = None
        if isinstance(inst, np.dtype):
            if shared_dtype(inst):
                raise self._unsafe("BUILD on a numpy dtype that numpy shares process-wide")
            problem = dtype_state_problem(inst.__reduce__()[1][0], state)
        elif isinstance(inst, np.ma.MaskedArray):
            problem = masked_state_problem(state, limit=len(self._data))
        elif isinstance(inst, np.ndarray):
            problem = array_state_problem(state, limit=len(self._data))
        elif isinstance(inst, functools.partial):
            if type(state) is tuple and state and isinstance(state[0], functools.partial):
                problem = (
                    "BUILD makes a functools.partial call another partial; pickle never writes "
                    "one (partial() flattens them), and a chain of them overflows the C stack "
                    "when it is freed"
                )
        elif isinstance(inst, np.random.SeedSequence):
            problem = _seed_sequence_problem(state)
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
            spec = wrapper_spec(vars(wrapper), limit=len(self._data))
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
                kept=self._kept,
                below=self._below + len(self.stack),
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
        elif cls.__module__.startswith("scipy.sparse"):
            kind = _SPARSE  # its index arrays are checked
        else:
            kind = _PLAIN_OBJECT
        _KINDS[cls] = kind
    return kind


_NEVER: dict[type, str | None] = {}


def _never_built(cls: type) -> str | None:
    """``name; reason`` when the shared table refuses a BUILD on ``cls`` (cached per class)."""
    if cls not in _NEVER:
        name = f"{cls.__module__}.{cls.__qualname__}"
        reason = NEVER_BUILT.get(name)
        _NEVER[cls] = None if reason is None else f"{name}; {reason}"
    return _NEVER[cls]


def _check_arrow(array: Any, unpickler: RestrictedUnpickler) -> None:
    try:
        array.validate(full=True)
    except Exception as exc:  # pyarrow.ArrowInvalid and kin; pyarrow is imported already
        raise unpickler._unsafe(f"a pyarrow array whose buffers are invalid ({exc})") from None


# Results validated right after the call that built them (unchecked offsets into buffers).
_AFTER_CALL: dict[str, Any] = {
    name: {Build.ARROW: _check_arrow}[entry.after]
    for name, entry in SPECIAL.items()
    if entry.after is not None
}


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


# -- argument forms: how pickle (and numpy, pandas, pyarrow, scikit-learn) call the allowed
# callables that could otherwise allocate from a number, expand a lazy sequence, or link
# objects that are freed recursively. Each returns what pickle passes when a call differs.


def _bytes_form(args: tuple[Any, ...], limit: int) -> str | None:
    if (
        not args
        or (len(args) == 1 and type(args[0]) in (bytes, bytearray))
        or (len(args) == 2 and type(args[0]) is str and args[1] in ("latin1", "latin-1"))
    ):
        return None
    return "nothing, bytes, or a string and 'latin-1' (a size would allocate that many bytes)"


def _set_form(args: tuple[Any, ...], limit: int) -> str | None:
    if not args or (len(args) == 1 and type(args[0]) in (list, tuple, set, frozenset)):
        return None
    return "nothing or a list of the items"


def _slice_form(args: tuple[Any, ...], limit: int) -> str | None:
    if len(args) <= 3 and all(a is None or type(a) in (int, bool) for a in args):
        return None
    return "integers or None (a slice of objects is freed without a recursion limit)"


def _range_form(args: tuple[Any, ...], limit: int) -> str | None:
    return None if all(type(a) in (int, bool) for a in args) else "integers"


def _partial_form(args: tuple[Any, ...], limit: int) -> str | None:
    if len(args) == 1 and not isinstance(args[0], functools.partial):
        return None
    return (
        "only the function, never a partial (its state follows in a BUILD; a chain of "
        "partials overflows the C stack when it is freed)"
    )


def _scalar_form(args: tuple[Any, ...], limit: int) -> str | None:
    if len(args) == 2:
        return None
    return "a dtype and the value's bytes (without them numpy allocates the dtype's itemsize)"


def _buffer_form(args: tuple[Any, ...], limit: int) -> str | None:
    if args and type(args[0]) in (bytes, bytearray):
        return None
    return "bytes or a bytearray to read (a view of another object could chain without limit)"


def _tree_form(args: tuple[Any, ...], limit: int) -> str | None:
    if len(args) == 3 and type(args[2]) is int and args[2] > limit:
        return (
            f"an n_outputs that a file of {limit:,} bytes can describe, not {args[2]:,} "
            "(Tree allocates per output)"
        )
    return None


def _restore_array_form(args: tuple[Any, ...], limit: int) -> str | None:
    if args and _too_deep(args[0], MAX_NESTING):
        return (
            f"array data nested at most {MAX_NESTING} levels (pyarrow rebuilds children "
            "recursively)"
        )
    data = args[0] if args else None
    if type(data) is tuple and len(data) > 1 and type(data[1]) is int and data[1] > limit:
        return (
            f"an array length that a file of {limit:,} bytes can hold, not {data[1]:,} (an "
            "array without buffers has any length)"
        )
    return None


_RECONSTRUCTOR_STATES = (type(None), dict, list, tuple, set, frozenset, str, bytes, bytearray)


def _reconstructor_form(args: tuple[Any, ...], limit: int) -> str | None:
    if len(args) == 3 and type(args[2]) in _RECONSTRUCTOR_STATES:
        return None
    return (
        "a class, the builtin type it derives from, and None or that type's data (a number "
        "or a range there would size what the type allocates)"
    )


_FORM_IMPLEMENTATIONS: dict[Form, Callable[[tuple[Any, ...], int], str | None]] = {
    Form.BYTES: _bytes_form,
    Form.SET: _set_form,
    Form.SLICE: _slice_form,
    Form.RANGE: _range_form,
    Form.PARTIAL: _partial_form,
    Form.SCALAR: _scalar_form,
    Form.BUFFER: _buffer_form,
    Form.RESTORE_ARRAY: _restore_array_form,
    Form.RECONSTRUCTOR: _reconstructor_form,
    Form.TREE: _tree_form,
}
# The calls whose arguments this wall checks, by the shared table's forms.
_ARGUMENT_FORMS: dict[str, Callable[[tuple[Any, ...], int], str | None]] = {
    name: _FORM_IMPLEMENTATIONS[entry.form]
    for name, entry in SPECIAL.items()
    if entry.form is not None
}


def _kinds(args: Any) -> str:
    """``(bytes, int)``: the kinds of a tuple's items, for messages."""
    if type(args) is tuple or type(args) is list:
        return "(" + ", ".join(type(a).__name__ for a in args) + ")"
    return type(args).__name__


def _too_deep(value: Any, bound: int) -> bool:
    """Whether lists, tuples and dicts nest more than ``bound`` levels under ``value``."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > bound:
            return True
        if id(item) in seen:
            continue
        seen.add(id(item))
        if type(item) in (tuple, list):
            stack.extend((child, level + 1) for child in item)
        elif type(item) is dict:
            stack.extend((v, level + 1) for pair in item.items() for v in pair)
    return False


def _seed_sequence_problem(state: Any) -> str | None:
    """A SeedSequence's entropy and child count are fields freed without the trashcan:
    only numbers (or a list or tuple of them), as numpy writes them."""
    if type(state) is not tuple or len(state) < 2:
        return None  # numpy refuses any other state with an error
    entropy, children = state[:2]
    if not (
        entropy is None
        or type(entropy) in (int, list, tuple)
        or isinstance(entropy, np.ndarray | np.number)
    ):
        return f"a SeedSequence whose entropy is a {type(entropy).__name__}, not a number"
    if not (type(children) is int or isinstance(children, np.integer)):
        return (
            f"a SeedSequence whose n_children_spawned is a {type(children).__name__}, not a number"
        )
    return None


# -- object arrays: nesting, and emptying them before they are released


def _object_fields(array: np.ndarray[Any, Any]) -> Iterator[np.ndarray[Any, Any]]:
    """The objects an object array holds directly, as flat object arrays (one per object
    field of a structured array)."""
    names = array.dtype.names
    if names is None:
        yield array.reshape(-1)
        return
    for name in names:
        field = array[name]
        if field.dtype.hasobject:
            yield from _object_fields(field)


def _held_arrays(array: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """The object arrays ``array`` holds directly."""
    found: list[np.ndarray[Any, Any]] = []
    for items in _object_fields(array):
        # The kinds first (one pass in C): most object arrays hold strings, never arrays.
        if any(issubclass(kind, np.ndarray) for kind in set(map(type, items.tolist()))):
            found += [i for i in items if isinstance(i, np.ndarray) and i.dtype.hasobject]
    return found


def _empty(array: np.ndarray[Any, Any]) -> None:
    names = array.dtype.names
    try:
        if names is None:
            array.fill(None)
            return
        for name in names:
            field = array[name]
            if field.dtype.hasobject:
                _empty(field)
    except (ValueError, TypeError):  # a read-only array: it was not built by this load
        pass


def _nesting_problem(depth: int) -> str:
    return (
        f"object arrays nested {depth:,} deep in one another (modelkeep's limit is "
        f"{MAX_ARRAY_NESTING}); numpy frees them recursively, and a chain this deep "
        "overflows the C stack"
    )


class _Kept:
    """Every object array a load (and its nested streams) built, held until it ends, with
    the nesting each had when it was built."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray[Any, Any]] = []
        self._depths: dict[int, int] = {}  # id -> nesting; the arrays above keep ids unique

    def add(self, array: np.ndarray[Any, Any]) -> int:
        """Hold ``array``; return how deep it nests arrays built so far."""
        depths = self._depths
        depth = 1 + max((depths.get(id(a), 1) for a in _held_arrays(array)), default=0)
        self.arrays.append(array)
        depths[id(array)] = depth
        return depth

    def release(self) -> None:
        self.arrays.clear()
        self._depths.clear()

    def dismantle(self) -> None:
        """Empty every array a failed load built, while each is still held here, so that
        releasing them frees one array at a time, never a chain recursively."""
        for array in self.arrays:
            _empty(array)
        self.release()
