"""Read a pickle stream without running it: every global it references, and where.

The scanner walks the opcodes of a stream over its bytes and simulates the unpickler's
stack, marks and memo with inert values, so a name built on the stack (``STACK_GLOBAL``
whose strings come from the memo) resolves to the same pair the unpickler would ask for.
It never imports a referenced module and never calls anything it finds. What it evaluates:
``numpy.dtype`` from literal arguments and states numpy itself would write (see
:mod:`modelkeep.safety.numpy_state`), because joblib's layout depends on an array's itemsize
(see :mod:`modelkeep.safety.joblib_layout`), and ``_codecs.encode`` of a literal string in
latin-1 (how protocols 0-2 write bytes, a datetime unit among them).

It follows CPython's C unpickler, which is what ``pickle.load`` runs:

* frames are only a prefetch hint to it, so an argument may run past the end of its frame;
  the scanner reads on as the C unpickler does *and* reports it, because the pure-Python
  unpickler (which modelkeep's loader is built on) refuses such a stream;
* Python 2 names are mapped as ``fix_imports`` does while the protocol is below 3;
* ``EXT1/2/4`` codes are looked up in :mod:`copyreg`'s extension registry, read as data;
* ``NumpyArrayWrapper`` BUILDs are followed by array bytes (or a nested pickle stream for
  object arrays, scanned in turn), as in a joblib file.

What it returns: the references (module, name, opcode, byte offset, stream), the names
called with arguments, findings (constructs no saved model uses: a BUILD on a class or
function, a call of a computed value, names computed at load time, data after STOP, a
frame overrun ...), the array regions, and the parse error that stopped it, if any.
Memory stays proportional to the file: length fields are checked against the bytes
present before anything is read, and nesting, marks, stack (all MARK segments together) and
memo are capped. So are the allocations a file can ask a constructor for: arguments are
accepted only in the forms pickle writes (``NEWOBJ`` never passes any; ``bytes``, ``set``,
``slice`` ... only what their own ``__reduce__`` gives), no size asked for exceeds the
file's length, and links that CPython and numpy free recursively, without the trashcan
that protects lists, tuples, dicts and instances (a partial whose function is a partial, a
slice of slices, object arrays nested directly in object arrays), are refused or bounded,
so no file can overflow the C stack when what it built is freed.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import copyreg
import pickletools
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelkeep.safety.joblib_layout import LayoutError, numeric_data, wrapper_spec
from modelkeep.safety.numpy_state import (
    array_data_problem,
    dtype_arguments_problem,
    dtype_problem,
    dtype_state_problem,
    reconstruct_problem,
)
from modelkeep.safety.special import NEVER_BUILT, SPECIAL, Form, Static, names_with

__all__ = [
    "MAX_ARRAY_NESTING",
    "MAX_MARKS",
    "MAX_MEMO",
    "MAX_NESTING",
    "MAX_STACK",
    "ArrayRegion",
    "Finding",
    "PickleParseError",
    "Reference",
    "StreamScan",
    "chain_depth",
    "find_byte",
    "scan_pickle",
    "shared_dtype",
]

#: Containers nested deeper than this are refused; no saved model comes close.
MAX_NESTING = 200
#: Open MARKs at once.
MAX_MARKS = 1_000
#: Items on the stack, all MARK segments together.
MAX_STACK = 1_000_000
#: Memo entries.
MAX_MEMO = 5_000_000
#: Object arrays nested directly in object arrays. numpy frees an array's items without
#: CPython's trashcan, so a deep enough chain overflows the C stack when it is freed; a
#: saved model nests one or two (KBinsDiscretizer's bin_edges_).
MAX_ARRAY_NESTING = 64
#: Strings longer than this are checked and then kept only as their length.
_MAX_KEPT_TEXT = 4_096
#: Further pickle streams after the first one's STOP that are scanned and reported.
_MAX_TRAILING_STREAMS = 16


def _one(static: Static) -> tuple[str, str]:
    (pair,) = names_with(static)
    return pair


# Names this wall simulates specially, from the table both walls share (safety/special.py).
_WRAPPER = _one(Static.WRAPPER)
_DTYPE = _one(Static.DTYPE)
_ENCODE = _one(Static.ENCODE)
# numpy's random-state reconstructors call their second argument with the first.
_BIT_GENERATOR_CTOR = _one(Static.BIT_GENERATOR_CTOR)
_CALLS_SECOND_ARGUMENT = names_with(Static.CALLS_SECOND_ARGUMENT)
# numpy's empty-array placeholder, filled by BUILD.
_RECONSTRUCT = names_with(Static.RECONSTRUCT)
# pandas' index reconstructor runs cls.__new__(cls, **d).
_NEW_INDEX = _one(Static.NEW_INDEX)
_PARTIAL = _one(Static.PARTIAL)
_RANGE = _one(Static.RANGE)
_SEED_SEQUENCE = _one(Static.SEED_SEQUENCE)
_LATIN1 = ("latin1", "latin-1")
_BYTES_MADE = names_with(Static.BYTES_MADE) | {_ENCODE}
_SCALARS = names_with(Static.SCALAR)
# The wrapper attributes that decide where its array data ends.
_LAYOUT_ATTRIBUTES = frozenset({"shape", "dtype", "order", "numpy_array_alignment_bytes"})
# Reconstructors that create an instance of their first argument without calling it.
_NEW_OF_FIRST_ARG = names_with(Static.NEW_OF_FIRST_ARG)

_OPNAMES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}
_BINGET, _MEMOIZE, _BININT1 = b"h"[0], b"\x94"[0], b"K"[0]
_MISSING = object()
# Values the simulation keeps as themselves.
_PLAIN = frozenset({type(None), bool, int, float, complex, str})


@dataclass(frozen=True)
class Reference:
    """One global a stream names, as the unpickler's ``find_class`` would be asked for it."""

    module: str
    name: str
    opcode: str
    offset: int
    stream: str

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Finding:
    """A construct that no saved model uses, at a byte offset of a stream."""

    offset: int
    stream: str
    problem: str


@dataclass(frozen=True)
class ArrayRegion:
    """joblib array data after a wrapper's BUILD that ended at ``build_end``."""

    build_end: int
    start: int
    end: int
    is_object: bool


class PickleParseError(Exception):
    """The stream cannot be read any further: truncated, malformed, or beyond a limit."""

    def __init__(self, offset: int, problem: str) -> None:
        self.offset = offset
        self.problem = problem
        super().__init__(f"byte {offset}: {problem}")


@dataclass(frozen=True)
class StreamScan:
    """Everything a scan found in one buffer (the first stream, anything after it, arrays)."""

    references: tuple[Reference, ...]
    calls: frozenset[tuple[str, str]]
    findings: tuple[Finding, ...]
    regions: Mapping[int, ArrayRegion]
    end: int
    protocol: int
    error: PickleParseError | None
    has_arrays: bool


# ----------------------------------------------------------------------- inert values


class _Sym:
    """A simulated value that is not a plain literal. Subclasses set ``depth`` themselves
    (no ``super().__init__`` call: thousands are made per file)."""

    __slots__ = ("depth",)

    depth: int


class _Blob(_Sym):
    """bytes or bytearray: the kind and size, and the content when it is short."""

    __slots__ = ("content", "kind", "size")

    def __init__(self, kind: str, size: int, content: bytes | None) -> None:
        self.depth = 0
        self.kind = kind
        self.size = size
        self.content = content


class _LongText(_Sym):
    """A string too long to be a name; only its length is kept."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.depth = 0
        self.size = size


class _Tuple(_Sym):
    __slots__ = ("items",)

    def __init__(self, items: tuple[object, ...]) -> None:
        self.depth = _depth_of(items)
        self.items = items


class _List(_Sym):
    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.depth = _depth_of(items)
        self.items = items


class _Dict(_Sym):
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[object, object]]) -> None:
        self.depth = _depth_of([v for pair in pairs for v in pair]) if pairs else 1
        self.pairs = pairs


class _Set(_Sym):
    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.depth = _depth_of(items)
        self.items = items


class _Global(_Sym):
    """The object a reference resolves to (a class, function or module), not yet called."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.depth = 0
        self.module = module
        self.name = name

    @property
    def pair(self) -> tuple[str, str]:
        return (self.module, self.name)

    @property
    def fullname(self) -> str:
        return f"{self.module}.{self.name}"


class _Made(_Sym):
    """What a call or instantiation produces; ``cls`` when it is an instance of a global.

    ``fresh`` means created without running a constructor (NEWOBJ, or a reconstructor), so
    its attributes come only from BUILD.
    """

    __slots__ = ("array", "attributes", "children", "cls", "fresh")

    def __init__(
        self, cls: _Global | None, depth: int, *, fresh: bool = False, array: bool = False
    ) -> None:
        self.depth = depth
        self.cls = cls
        self.fresh = fresh
        self.array = array  # numpy's empty placeholder, whose BUILD state is its data
        self.attributes: dict[str, object] = {}
        self.children: list[_Made] = []  # the arrays an object array holds, once built


class _Dtype(_Sym):
    """A numpy dtype evaluated from literal arguments; ``value`` None once it is unknown."""

    __slots__ = ("kind", "shared", "value")

    def __init__(self, value: np.dtype[Any] | None, shared: bool, kind: str = "") -> None:
        self.depth = 0
        self.value = value
        self.shared = shared
        self.kind = kind  # the type string it was made from: its state must match it


class _Opaque(_Sym):
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.depth = 0
        self.what = what


def _depth_of(items: Any) -> int:
    """One more than the deepest item: the level of a container holding ``items``."""
    deepest = 0
    for item in items:
        if type(item) not in _PLAIN and isinstance(item, _Sym) and item.depth > deepest:
            deepest = item.depth
    return deepest + 1


def _content(value: object) -> object:
    """A short literal's value (a str, or bytes kept whole, or a tuple of ints), else itself."""
    if isinstance(value, _Blob) and value.content is not None:
        return value.content
    if isinstance(value, _Tuple) and all(type(i) is int for i in value.items):
        return value.items
    return value


def _describe(value: object) -> str:
    if isinstance(value, _Global):
        return value.fullname
    if isinstance(value, _Made):
        return (
            "the result of a call" if value.cls is None else f"an instance of {value.cls.fullname}"
        )
    if isinstance(value, _Dtype):
        return "a numpy dtype"
    if isinstance(value, _Blob):
        return value.kind
    if isinstance(value, _LongText):
        return "a string"
    if isinstance(value, _Opaque):
        return value.what
    if isinstance(value, _Sym):
        return type(value).__name__.strip("_").lower()
    return type(value).__name__


class _NotLiteral(Exception):
    pass


def _literal(value: object, budget: list[int], depth: int = 0) -> object:
    """The plain Python value a simulated one stands for, for small literal data only."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 32:
        raise _NotLiteral("too large")
    kind = type(value)  # exact types: the simulation makes no subclasses
    if kind in _PLAIN:
        return value
    if kind is _Dtype:
        dtype = value.value  # type: ignore[attr-defined]
        if dtype is None:
            raise _NotLiteral("a dtype that could not be evaluated")
        return dtype
    if kind is _Tuple:
        items = value.items  # type: ignore[attr-defined]
        if all(type(item) is int for item in items):  # a shape: the common case
            budget[0] -= len(items)
            return items
        return tuple([_literal(v, budget, depth + 1) for v in items])
    if isinstance(value, _Blob) and value.content is not None:
        return value.content if value.kind == "bytes" else bytearray(value.content)
    if isinstance(value, _List):
        return [_literal(v, budget, depth + 1) for v in value.items]
    if isinstance(value, _Dict):
        out: dict[Any, Any] = {}
        for k, v in value.pairs:
            key = _literal(k, budget, depth + 1)
            try:
                out[key] = _literal(v, budget, depth + 1)
            except TypeError as exc:
                raise _NotLiteral("an unhashable key") from exc
        return out
    raise _NotLiteral(_describe(value))


def shared_dtype(dtype: np.dtype[Any]) -> bool:
    """Whether numpy hands out this very object to everyone (a builtin singleton)."""
    try:
        return np.dtype(dtype.str) is dtype
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------- the machine


@dataclass
class _Results:
    references: list[Reference] = field(default_factory=list)
    calls: set[tuple[str, str]] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    regions: dict[int, ArrayRegion] = field(default_factory=dict)
    arrays: list[tuple[_Made, int]] = field(default_factory=list)  # object arrays, BUILD offset


class _Machine:
    """Simulates one pickle stream from ``start`` until its STOP."""

    def __init__(
        self,
        data: memoryview,
        start: int,
        stream: str,
        results: _Results,
        *,
        joblib: bool,
    ) -> None:
        self.data = data  # a 1-D memoryview of bytes: slices are free, never copied
        self.end = len(data)
        self.pos = start
        self.stream = stream
        self.results = results
        self.joblib = joblib
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.frame_end: int | None = None
        self.op_start = start
        self.op_label: str | None = None  # set only where no opcode names the position
        self.pending_wrapper: _Made | None = None
        self.stack_items: list[object] = []
        self.below = 0  # items in the MARK segments under the current one
        self.result: object = None  # what STOP popped

    # -- reading arguments

    @property
    def op_name(self) -> str:
        """The name of the opcode being simulated (looked up only for messages)."""
        if self.op_label is not None:
            return self.op_label
        return _OPNAMES[self.data[self.op_start]]

    def fail(self, problem: str) -> PickleParseError:
        return PickleParseError(self.op_start, f"{self.op_name}: {problem}")

    def read(self, n: int) -> memoryview:
        pos = self.pos
        if n > self.end - pos:
            raise self.fail(f"needs {n:,} more byte(s), only {self.end - pos:,} remain")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def claim(self, n: int, what: str) -> int:
        """Skip a length-prefixed payload of ``n`` bytes; return where it starts."""
        pos = self.pos
        if n > self.end - pos:
            raise self.fail(f"declares {what} of {n:,} bytes, only {self.end - pos:,} remain")
        self.pos = pos + n
        return pos

    def readline(self) -> bytes:
        newline = find_byte(self.data, 10, self.pos, self.end)
        if newline < 0:
            raise self.fail("its text argument has no terminating newline")
        line = bytes(self.data[self.pos : newline])
        self.pos = newline + 1
        return line

    def uint(self, size: int) -> int:
        pos = self.pos
        if size == 1 and pos < self.end:  # the common case, without a slice
            self.pos = pos + 1
            return self.data[pos]
        return int.from_bytes(self.read(size), "little")

    # -- the stack

    def push(self, value: object) -> None:
        # The stack's size is checked once per opcode in run(); nesting here.
        if isinstance(value, _Sym) and value.depth > MAX_NESTING:
            raise self.fail(
                f"containers nested more than {MAX_NESTING} levels deep (modelkeep's limit)"
            )
        self.stack.append(value)

    def pop(self) -> object:
        if not self.stack:
            raise self.fail("the stack is empty (stack underflow)")
        return self.stack.pop()

    def top(self) -> object:
        if not self.stack:
            raise self.fail("the stack is empty (stack underflow)")
        return self.stack[-1]

    def pop_mark(self) -> list[object]:
        if not self.metastack:
            raise self.fail("no MARK to pop (mark underflow)")
        items = self.stack
        self.stack = self.metastack.pop()
        self.below -= len(self.stack)
        return items

    def grow(self, container: _Sym, items: Any) -> None:
        depth = _depth_of(items)  # the container's own level included
        if depth > container.depth:
            if depth > MAX_NESTING:
                raise self.fail(
                    f"containers nested more than {MAX_NESTING} levels deep (modelkeep's limit)"
                )
            container.depth = depth

    def finding(self, problem: str) -> None:
        self.results.findings.append(Finding(self.op_start, self.stream, problem))

    # -- references and calls

    def reference(self, module: str, name: str, opcode: str) -> _Global:
        if self.proto < 3:  # what fix_imports does in find_class
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is not None:
                module, name = mapped
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        self.results.references.append(Reference(module, name, opcode, self.op_start, self.stream))
        return _Global(module, name)

    def call(self, func: object, args: object) -> object:
        """Simulate ``func(*args)`` for REDUCE, OBJ and INST with arguments."""
        depth = args.depth if isinstance(args, _Sym) else 0
        if not isinstance(func, _Global):
            self.finding(
                f"{self.op_name} calls {_describe(func)}, not a global reference: the "
                "callable would be computed while loading"
            )
            return _Made(None, depth)
        self.results.calls.add(func.pair)
        items = args.items if isinstance(args, _Tuple | _List) else None
        if items is not None:
            problem = self.argument_problem(func, items)
            if problem is not None:
                self.finding(problem)
        elif not isinstance(args, _Opaque):
            self.finding(
                f"{self.op_name} calls {func.fullname} with {_describe(args)} as its "
                "arguments, not a tuple; they would be expanded, whatever their length"
            )
        if func.pair in _CALLS_SECOND_ARGUMENT and items and len(items) > 1:
            ctor = items[1]
            if not (isinstance(ctor, _Global) and ctor.pair == _BIT_GENERATOR_CTOR):
                self.finding(
                    f"{func.fullname} asked to call {_describe(ctor)}; numpy pickles only its "
                    "own bit-generator constructor there"
                )
        if func.pair in _RECONSTRUCT and items and len(items) == 3:
            problem = reconstruct_problem(*(_content(item) for item in items[1:]))
            if problem is not None:
                self.finding(problem)
            if isinstance(items[0], _Global):
                return _Made(items[0], depth, array=True)
        if func.pair == _NEW_INDEX and items:
            cls = items[0]
            if not (isinstance(cls, _Global) and cls.module.split(".")[0] == "pandas"):
                self.finding(f"pandas _new_Index given {_describe(cls)}, not a pandas Index")
        if func.pair == _DTYPE and items is not None:
            return self.make_dtype(items)
        if func.pair == _ENCODE and items is not None:
            return self.encode(items, depth)
        if func.pair in _NEW_OF_FIRST_ARG and items:
            cls = items[0]
            if func.pair == ("copyreg", "_reconstructor") and len(items) == 3:
                base = items[1]
                if not (isinstance(base, _Global) and base.module == "builtins"):
                    self.finding(
                        "copyreg._reconstructor with a base class other than a builtin type: "
                        f"{_describe(base)}; it would call that class's constructor"
                    )
            if isinstance(cls, _Global):
                return _Made(cls, depth, fresh=True)
        return _Made(func, depth)

    def instantiate(self, cls: object, args: list[object]) -> object:
        """OBJ and INST: ``cls.__new__(cls)`` without arguments, a call with them."""
        if args:
            return self.call(cls, _Tuple(tuple(args)))
        if not isinstance(cls, _Global):
            self.finding(f"{self.op_name} instantiates {_describe(cls)}, not a global reference")
            return _Made(None, 0)
        return _Made(cls, 0, fresh=True)

    def argument_problem(
        self, func: _Global, items: tuple[object, ...] | list[object]
    ) -> str | None:
        """Why ``func(*items)`` is not a call pickle writes, when the difference could make it
        allocate beyond the file's size or link objects freed without a recursion limit."""
        for item in items:
            if _is_range(item) or (
                isinstance(item, _Dict) and any(_is_range(v) for _, v in item.pairs)
            ):
                return (
                    f"{func.fullname}() given a range, which it could expand to any size; "
                    "pickle passes none"
                )
        check = _ARGUMENT_FORMS.get(func.pair)
        if check is None:
            return None
        expected = check(self, items)
        if expected is None:
            return None
        return (
            f"{func.fullname}() given {_shape_of(_Tuple(tuple(items)))}; pickle passes {expected}"
        )

    def seed_sequence_state(self, state: object) -> None:
        """A SeedSequence's entropy and child count are plain fields freed without the
        trashcan: only numbers (or a list or tuple of them) as numpy writes them."""
        if not (isinstance(state, _Tuple) and len(state.items) >= 2):
            return  # numpy refuses any other state with an error
        entropy, children = state.items[:2]
        if not (
            _is_numeric(entropy)
            or entropy is None
            or isinstance(entropy, _List | _Tuple)
            or _is_array(entropy)
        ):
            self.finding(f"a SeedSequence whose entropy is {_describe(entropy)}, not a number")
        if not _is_numeric(children):
            self.finding(
                f"a SeedSequence whose n_children_spawned is {_describe(children)}, not a number"
            )

    def encode(self, items: tuple[object, ...] | list[object], depth: int) -> _Sym:
        """Protocols 0-2 write bytes as ``_codecs.encode(text, "latin1")``: evaluated, as the
        loader does, so a dtype's state (a datetime unit) stays literal."""
        if len(items) == 2 and items[1] in ("latin1", "latin-1"):
            text = items[0]
            if type(text) is str:
                try:
                    content = text.encode("latin-1")
                except UnicodeEncodeError:
                    return _Made(_Global(*_ENCODE), depth)
                return _Blob("bytes", len(content), content)
            if isinstance(text, _LongText):  # an array's data: latin-1 is one byte per char
                return _Blob("bytes", text.size, None)
        return _Made(_Global(*_ENCODE), depth)

    def make_dtype(self, items: tuple[object, ...] | list[object]) -> _Dtype:
        try:
            args = _literal(_Tuple(tuple(items)), [10_000])
        except _NotLiteral:
            self.finding("numpy.dtype called with arguments computed while loading")
            return _Dtype(None, False)
        problem = dtype_arguments_problem(args)  # type: ignore[arg-type]
        if problem is not None:
            self.finding(problem)
            return _Dtype(None, False)
        try:
            value = np.dtype(*args)  # type: ignore[misc]
        except Exception as exc:  # numpy's parser raises more than ValueError
            self.finding(f"numpy.dtype{args!r} fails ({type(exc).__name__}: {exc})")
            return _Dtype(None, False)
        return _Dtype(value, shared_dtype(value), args[0])  # type: ignore[index]

    # -- the run

    def run(self) -> int:
        """Simulate until STOP; return the offset after it."""
        data = self.data
        end = self.end
        memo = self.memo
        handlers = _HANDLERS
        missing = _MISSING
        while True:
            start = self.pos
            if start >= end:
                self.op_start = start
                self.op_label = "end of data"
                raise self.fail("the stream ends before its STOP opcode (truncated)")
            code = data[start]
            stopped = False
            # The most frequent opcodes of a model's pickle, without a method call; anything
            # unusual about them (a missing memo entry, the end of the data) takes the
            # handler, which reports it.
            if code == _BINGET and start + 1 < end:
                value = memo.get(data[start + 1], missing)
                if value is missing:
                    self.op_start = start
                    self.pos = start + 1
                    stopped = handlers[code](self)  # type: ignore[misc]
                else:
                    self.stack.append(value)
                    self.pos = start + 2
            elif code == _MEMOIZE and self.stack and len(memo) < MAX_MEMO:
                memo[len(memo)] = self.stack[-1]
                self.pos = start + 1
            elif code == _BININT1 and start + 1 < end:
                self.stack.append(data[start + 1])
                self.pos = start + 2
            else:
                self.op_start = start
                self.pos = start + 1
                handler = handlers[code]
                if handler is None:
                    self.op_label = f"opcode 0x{code:02x}"
                    raise self.fail("not a pickle opcode")
                stopped = handler(self)
            frame_end = self.frame_end
            if frame_end is not None and self.pos >= frame_end:
                self.op_start = start
                if start < frame_end < self.pos:
                    self.finding(
                        f"{self.op_name} runs past the end of its frame at byte {frame_end} "
                        f"(to byte {self.pos}); CPython's C unpickler reads on, the pure-Python "
                        "one refuses, so the two would see different streams"
                    )
                self.frame_end = None
            if self.pending_wrapper is not None:
                wrapper, self.pending_wrapper = self.pending_wrapper, None
                self.read_array(wrapper)
            elif stopped:
                if self.frame_end is not None:
                    self.finding(
                        f"the frame holding STOP continues to byte {self.frame_end}; the "
                        "pure-Python unpickler would consume those bytes with the stream"
                    )
                return self.pos
            elif len(self.stack) + self.below > MAX_STACK:
                self.op_start = start
                raise self.fail(
                    f"more than {MAX_STACK:,} items on the stack, all MARK segments together "
                    "(modelkeep's limit)"
                )

    def read_array(self, wrapper: _Made) -> None:
        """Skip the array bytes after a NumpyArrayWrapper's BUILD, recording where they are."""
        build_end = self.pos
        if not wrapper.fresh:
            raise self.fail(
                "a joblib array wrapper built by calling its constructor; joblib writes "
                "wrappers whose attributes come only from BUILD"
            )
        if self.frame_end is not None:
            raise self.fail(
                f"joblib array data begins inside a frame (which ends at byte "
                f"{self.frame_end}); joblib writes array data only between frames"
            )
        try:
            budget = [10_000]
            found = wrapper.attributes
            attributes = {k: _literal(found[k], budget) for k in _LAYOUT_ATTRIBUTES if k in found}
        except _NotLiteral as exc:
            raise self.fail(f"cannot tell where the joblib array data ends: {exc}") from None
        try:
            spec = wrapper_spec(attributes, limit=len(self.data))
            if spec.is_object:
                stream = f"object array at byte {build_end}"
                nested = _Machine(self.data, build_end, stream, self.results, joblib=False)
                nested.below = self.below + len(self.stack)
                end = nested.run()
                if isinstance(nested.result, _Made):  # the wrapper stands for this array
                    wrapper.children = [nested.result]
                    self.results.arrays.append((wrapper, build_end))
                region = ArrayRegion(build_end, build_end, end, True)
            else:
                start, nbytes = numeric_data(spec, self.data, build_end, self.end)
                region = ArrayRegion(build_end, start, start + nbytes, False)
        except LayoutError as exc:
            raise self.fail(f"joblib array wrapper: {exc.problem}") from None
        self.results.regions[build_end] = region
        self.pos = region.end

    # -- opcode handlers: each returns True for STOP

    def op_proto(self) -> bool:
        proto = self.read(1)[0]
        if proto > 5:
            raise self.fail(f"unsupported pickle protocol {proto}")
        self.proto = proto
        return False

    def op_frame(self) -> bool:
        size = self.uint(8)
        if size > self.end - self.pos:
            raise self.fail(
                f"declares a frame of {size:,} bytes, only {self.end - self.pos:,} remain"
            )
        if self.frame_end is not None and self.pos < self.frame_end:
            self.finding(
                f"a new frame starts before the previous one ends at byte {self.frame_end}"
            )
        self.frame_end = self.pos + size
        return False

    def op_stop(self) -> bool:
        self.result = self.pop()
        return True

    def push_literal(self, value: object) -> bool:
        if isinstance(value, _Sym) and value.depth > MAX_NESTING:
            raise self.fail(
                f"containers nested more than {MAX_NESTING} levels deep (modelkeep's limit)"
            )
        self.stack.append(value)
        return False

    def op_none(self) -> bool:
        return self.push_literal(None)

    def op_newtrue(self) -> bool:
        return self.push_literal(True)

    def op_newfalse(self) -> bool:
        return self.push_literal(False)

    def op_int(self) -> bool:
        line = self.readline()
        if line in (b"00", b"01"):
            return self.push_literal(line == b"01")
        return self.push_literal(self.parse(int, line, 0))

    def op_long(self) -> bool:
        line = self.readline()
        if line.endswith(b"L"):
            line = line[:-1]
        return self.push_literal(self.parse(int, line, 0))

    def parse(self, kind: Callable[..., object], line: bytes, *args: int) -> Any:
        try:
            return kind(line, *args)
        except ValueError:
            raise self.fail(f"{line[:40]!r} is not a valid number") from None

    def op_binint(self) -> bool:
        return self.push_literal(int.from_bytes(self.read(4), "little", signed=True))

    def op_binint1(self) -> bool:
        return self.push_literal(self.uint(1))

    def op_binint2(self) -> bool:
        return self.push_literal(self.uint(2))

    def op_long1(self) -> bool:
        return self.long_bytes(self.uint(1))

    def op_long4(self) -> bool:
        size = int.from_bytes(self.read(4), "little", signed=True)
        if size < 0:
            raise self.fail(f"negative byte count {size}")
        return self.long_bytes(size)

    def long_bytes(self, size: int) -> bool:
        start = self.claim(size, "an integer")
        if size > 64:  # never a shape or an argument worth knowing; keep it inert
            return self.push_literal(_Opaque("a long integer"))
        return self.push_literal(
            int.from_bytes(self.data[start : start + size], "little", signed=True)
        )

    def op_float(self) -> bool:
        return self.push_literal(self.parse(float, self.readline()))

    def op_binfloat(self) -> bool:
        return self.push_literal(struct.unpack(">d", self.read(8))[0])

    def op_string(self) -> bool:
        line = self.readline()
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            raise self.fail("the STRING argument must be quoted")
        try:
            raw = codecs.escape_decode(line[1:-1])[0]
        except ValueError as exc:
            raise self.fail(f"bad escape in STRING ({exc})") from None
        return self.text(raw, "ascii")

    def op_binstring(self) -> bool:
        size = int.from_bytes(self.read(4), "little", signed=True)
        if size < 0:
            raise self.fail(f"negative byte count {size}")
        return self.text_at(size, "ascii")

    def op_short_binstring(self) -> bool:
        return self.text_at(self.uint(1), "ascii")

    def op_unicode(self) -> bool:
        try:
            value = str(self.readline(), "raw-unicode-escape")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid text ({exc.reason})") from None
        return self.keep_text(value)

    def op_short_binunicode(self) -> bool:
        pos = self.pos
        if pos < self.end:
            size = self.data[pos]
            start, stop = pos + 1, pos + 1 + size
            if stop <= self.end:  # the common case: a short name, in full
                self.pos = stop
                try:
                    self.stack.append(str(self.data[start:stop], "utf-8", "surrogatepass"))
                except UnicodeDecodeError as exc:
                    raise self.fail(f"invalid utf-8 text ({exc.reason})") from None
                return False
        return self.text_at(self.uint(1), "utf-8")

    def op_binunicode(self) -> bool:
        return self.text_at(self.uint(4), "utf-8")

    def op_binunicode8(self) -> bool:
        return self.text_at(self.uint(8), "utf-8")

    def text_at(self, size: int, encoding: str) -> bool:
        start = self.claim(size, "a string")
        return self.text(self.data[start : start + size], encoding)

    def text(self, raw: bytes | memoryview, encoding: str) -> bool:
        errors = "surrogatepass" if encoding == "utf-8" else "strict"
        try:
            value = str(raw, encoding, errors)
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid {encoding} text ({exc.reason})") from None
        return self.keep_text(value)

    def keep_text(self, value: str) -> bool:
        if len(value) > _MAX_KEPT_TEXT:
            return self.push_literal(_LongText(len(value)))
        return self.push_literal(value)

    def op_binbytes(self) -> bool:
        return self.blob("bytes", self.uint(4))

    def op_short_binbytes(self) -> bool:
        return self.blob("bytes", self.uint(1))

    def op_binbytes8(self) -> bool:
        return self.blob("bytes", self.uint(8))

    def op_bytearray8(self) -> bool:
        return self.blob("bytearray", self.uint(8))

    def blob(self, kind: str, size: int) -> bool:
        start = self.claim(size, "a bytes object" if kind == "bytes" else "a bytearray")
        # Short ones are kept: a datetime dtype's state names its unit in bytes.
        content = bytes(self.data[start : start + size]) if size <= _MAX_KEPT_TEXT else None
        return self.push_literal(_Blob(kind, size, content))

    def op_next_buffer(self) -> bool:
        raise self.fail("refers to an out-of-band buffer, which a file cannot carry")

    def op_readonly_buffer(self) -> bool:
        self.top()
        return False

    def op_empty_list(self) -> bool:
        return self.push_literal(_List([]))

    def op_append(self) -> bool:
        value = self.pop()
        target = self.top()
        if isinstance(target, _List):
            target.items.append(value)
            self.grow(target, (value,))
        return False

    def op_appends(self) -> bool:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, _List):
            target.items.extend(items)
            self.grow(target, items)
        return False

    def op_list(self) -> bool:
        return self.push_literal(_List(self.pop_mark()))

    def op_empty_tuple(self) -> bool:
        return self.push_literal(_Tuple(()))

    def op_tuple(self) -> bool:
        return self.push_literal(_Tuple(tuple(self.pop_mark())))

    def op_tuple1(self) -> bool:
        return self.push_literal(_Tuple((self.pop(),)))

    def op_tuple2(self) -> bool:
        second = self.pop()
        return self.push_literal(_Tuple((self.pop(), second)))

    def op_tuple3(self) -> bool:
        third = self.pop()
        second = self.pop()
        return self.push_literal(_Tuple((self.pop(), second, third)))

    def op_empty_dict(self) -> bool:
        return self.push_literal(_Dict([]))

    def pairs(self, items: list[object]) -> list[tuple[object, object]]:
        if len(items) % 2:
            raise self.fail(f"odd number of items ({len(items)}) for key/value pairs")
        pairs = iter(items)  # (k0, v0), (k1, v1) ...: the length was checked above
        return list(zip(pairs, pairs, strict=False))

    def op_dict(self) -> bool:
        return self.push_literal(_Dict(self.pairs(self.pop_mark())))

    def op_setitem(self) -> bool:
        value = self.pop()
        key = self.pop()
        self.stack_items = [key, value]
        self.set_items(self.top(), [(key, value)])
        return False

    def op_setitems(self) -> bool:
        items = self.pop_mark()
        self.stack_items = items  # the flat items, for the depth check
        self.set_items(self.top(), self.pairs(items))
        return False

    def set_items(self, target: object, pairs: list[tuple[object, object]]) -> None:
        if isinstance(target, _Dict):
            target.pairs.extend(pairs)
            self.grow(target, self.stack_items)

    def op_empty_set(self) -> bool:
        return self.push_literal(_Set([]))

    def op_additems(self) -> bool:
        items = self.pop_mark()
        target = self.top()
        if isinstance(target, _Set):
            target.items.extend(items)
            self.grow(target, items)
        return False

    def op_frozenset(self) -> bool:
        return self.push_literal(_Set(self.pop_mark()))

    def op_pop(self) -> bool:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()
        return False

    def op_dup(self) -> bool:
        return self.push_literal(self.top())

    def op_mark(self) -> bool:
        if len(self.metastack) >= MAX_MARKS:
            raise self.fail(f"more than {MAX_MARKS:,} open MARKs (modelkeep's limit)")
        self.metastack.append(self.stack)
        self.below += len(self.stack)
        self.stack = []
        return False

    def op_pop_mark(self) -> bool:
        self.pop_mark()
        return False

    def get(self, index: int) -> bool:
        try:
            self.stack.append(self.memo[index])  # memo values were checked when pushed
        except KeyError:
            raise self.fail(f"memo index {index} was never stored") from None
        return False

    def put(self, index: int) -> bool:
        memo = self.memo
        if len(memo) >= MAX_MEMO and index not in memo:
            raise self.fail(f"more than {MAX_MEMO:,} memo entries (modelkeep's limit)")
        if not self.stack:
            raise self.fail("the stack is empty (stack underflow)")
        memo[index] = self.stack[-1]
        return False

    def op_get(self) -> bool:
        return self.get(self.parse(int, self.readline()))

    def op_binget(self) -> bool:
        return self.get(self.uint(1))

    def op_long_binget(self) -> bool:
        return self.get(self.uint(4))

    def op_put(self) -> bool:
        index = self.parse(int, self.readline())
        if index < 0:
            raise self.fail("negative memo index")
        return self.put(index)

    def op_binput(self) -> bool:
        return self.put(self.uint(1))

    def op_long_binput(self) -> bool:
        return self.put(self.uint(4))

    def op_memoize(self) -> bool:
        return self.put(len(self.memo))

    def ext(self, code: int) -> bool:
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]
        if not key:
            raise self.fail(f"extension code {code} is not registered in copyreg")
        module, name = key
        return self.push_literal(self.reference(module, name, f"{self.op_name} {code}"))

    def op_ext1(self) -> bool:
        return self.ext(self.uint(1))

    def op_ext2(self) -> bool:
        return self.ext(self.uint(2))

    def op_ext4(self) -> bool:
        return self.ext(int.from_bytes(self.read(4), "little", signed=True))

    def line_pair(self, encoding: str) -> tuple[str, str]:
        try:
            module = self.readline().decode(encoding)
            name = self.readline().decode(encoding)
        except UnicodeDecodeError as exc:
            raise self.fail(f"names are not {encoding} ({exc.reason})") from None
        return module, name

    def op_global(self) -> bool:
        module, name = self.line_pair("utf-8")
        return self.push_literal(self.reference(module, name, "GLOBAL"))

    def op_stack_global(self) -> bool:
        name = self.pop()
        module = self.pop()
        if type(module) is str and type(name) is str:
            return self.push_literal(self.reference(module, name, "STACK_GLOBAL"))
        if isinstance(module, _LongText) or isinstance(name, _LongText):
            raise self.fail(f"a name longer than {_MAX_KEPT_TEXT:,} characters")
        # A global's attribute or a call's result is only known while loading (a BUILD on a
        # module can even turn an attribute into a string).
        computed = _Made | _Opaque | _Global
        if isinstance(module, computed) or isinstance(name, computed):
            self.finding(
                f"STACK_GLOBAL takes its names from {_describe(module)} and {_describe(name)}, "
                "computed while loading; what it resolves to cannot be known without running "
                "the file"
            )
            return self.push_literal(_Opaque("a global named while loading"))
        raise self.fail(
            f"expected two strings (module, name), got {_describe(module)} and {_describe(name)}"
        )

    def op_inst(self) -> bool:
        module, name = self.line_pair("ascii")
        cls = self.reference(module, name, "INST")
        return self.push_literal(self.instantiate(cls, self.pop_mark()))

    def op_obj(self) -> bool:
        items = self.pop_mark()
        if not items:
            raise self.fail("no class after the MARK")
        return self.push_literal(self.instantiate(items[0], items[1:]))

    def op_newobj(self) -> bool:
        args = self.pop()
        cls = self.pop()
        return self.push_literal(self.new(cls, args, None))

    def op_newobj_ex(self) -> bool:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        return self.push_literal(self.new(cls, args, kwargs))

    def new(self, cls: object, args: object, kwargs: object) -> _Made:
        if not isinstance(cls, _Global):
            self.finding(f"{self.op_name} instantiates {_describe(cls)}, not a global reference")
            return _Made(None, 0)
        if cls.pair == _DTYPE:
            self.finding(f"{self.op_name} of numpy.dtype; numpy pickles a dtype by calling it")
        # __new__ of bytes, int, frozenset, numpy.ndarray, MaskedArray ... would build (and
        # size) from the arguments; pickle writes every allowed class without any.
        no_args = isinstance(args, _Tuple) and not args.items
        no_keywords = kwargs is None or (isinstance(kwargs, _Dict) and not kwargs.pairs)
        if not (no_args and no_keywords):
            given = _shape_of(args) if no_keywords else f"{_shape_of(args)} and keywords"
            self.finding(
                f"{self.op_name} passes {given} to {cls.fullname}.__new__; pickle writes it "
                "without arguments (they could size an allocation, as bytes.__new__(bytes, n) "
                "does)"
            )
        return _Made(cls, 0, fresh=True)

    def op_reduce(self) -> bool:
        args = self.pop()
        func = self.pop()
        return self.push_literal(self.call(func, args))

    def op_build(self) -> bool:
        state = self.pop()
        target = self.top()
        if isinstance(target, _Global):
            self.finding(
                f"BUILD sets state on {target.fullname} itself (a class, function or module), "
                "not on an instance; it would change it for the whole process"
            )
        elif isinstance(target, _Dtype):
            self.build_dtype(target, state)
        elif isinstance(target, _Made):
            self.grow(target, (state,))  # objects nest through their state too
            pair = target.cls.pair if target.cls is not None else None
            if target.cls is not None and target.cls.fullname in NEVER_BUILT:
                name = target.cls.fullname
                self.finding(f"BUILD on a {name}; {NEVER_BUILT[name]}")
            if pair == _WRAPPER:
                self.build_wrapper(target, state)
            elif target.array:
                self.build_array(target, state)
            elif pair == _PARTIAL and isinstance(state, _Tuple) and state.items:
                if _is_partial(state.items[0]):
                    self.finding(
                        "BUILD makes a functools.partial call another partial; pickle never "
                        "writes one (partial() flattens them), and a chain of them overflows "
                        "the C stack when it is freed"
                    )
            elif pair == _SEED_SEQUENCE:
                self.seed_sequence_state(state)
        elif not isinstance(target, _Opaque):
            self.finding(f"BUILD sets state on {_describe(target)}, not on an object")
        return False

    def build_dtype(self, target: _Dtype, state: object) -> None:
        if target.shared:
            self.finding(
                "BUILD sets state on a numpy dtype that numpy shares process-wide; "
                "numpy pickles its dtypes as copies"
            )
            return
        if target.value is None:
            return
        try:
            literal = _literal(state, [10_000])
        except _NotLiteral as exc:
            self.finding(f"a numpy dtype's state is not literal data ({exc})")
            target.value = None
            return
        # numpy applies a dtype's state unchecked (a malformed one crashes the interpreter):
        # only the shapes numpy writes reach it, here as in the loader.
        problem = dtype_state_problem(target.kind, literal)
        if problem is None:
            try:
                target.value.__setstate__(literal)  # type: ignore[attr-defined]
                problem = dtype_problem(target.value)
            except Exception as exc:  # whatever numpy raises for a state it refuses
                problem = f"a dtype state numpy refuses ({type(exc).__name__}: {exc})"
        if problem is not None:
            self.finding(f"{problem}; numpy writes none such")
            target.value = None

    def build_array(self, target: _Made, state: object) -> None:
        """numpy applies an array's state unchecked: its data must fill the shape exactly."""
        if not (isinstance(state, _Tuple) and len(state.items) == 5):
            return  # anything else fails in numpy with an error, and in the loader
        _, shape, dtype, _, data = state.items
        if isinstance(data, _List):  # an object array: the arrays it holds, for the depth
            target.children = [i for i in data.items if isinstance(i, _Made) and _is_array(i)]
            self.results.arrays.append((target, self.op_start))
        if not (isinstance(shape, _Tuple) and isinstance(dtype, _Dtype)) or dtype.value is None:
            return
        dims = shape.items
        if not all(type(n) is int and n >= 0 for n in dims):
            return
        if isinstance(data, _List):
            kind, size = "list", len(data.items)
        elif isinstance(data, _Blob):
            kind, size = "bytes", data.size
        else:
            return  # data computed while loading: the loader checks it
        problem = array_data_problem(
            dims,  # type: ignore[arg-type]
            dtype.value,
            kind,
            size,
            limit=len(self.data),
        )
        if problem is not None:
            self.finding(problem)

    def build_wrapper(self, target: _Made, state: object) -> None:
        slots: object = None
        if isinstance(state, _Tuple) and len(state.items) == 2:
            state, slots = state.items
        for part in (state, slots):
            if part is None:
                continue
            if not isinstance(part, _Dict):
                raise self.fail(f"joblib array wrapper state is {_describe(part)}, not a dict")
            for key, value in part.pairs:
                if type(key) is str:
                    target.attributes[key] = value
        if self.joblib:
            self.pending_wrapper = target
        else:
            self.finding("a joblib array wrapper inside an object array's nested stream")

    def op_persid(self) -> bool:
        self.readline()
        return self.persistent()

    def op_binpersid(self) -> bool:
        self.pop()
        return self.persistent()

    def persistent(self) -> bool:
        self.finding(
            f"{self.op_name}: a persistent id, which only a custom loader can resolve; "
            "modelkeep resolves none"
        )
        return self.push_literal(_Opaque("a persistent object"))


def _is_partial(value: object) -> bool:
    return isinstance(value, _Made) and value.cls is not None and value.cls.pair == _PARTIAL


def _is_range(value: object) -> bool:
    return isinstance(value, _Made) and value.cls is not None and value.cls.pair == _RANGE


def _is_array(value: object) -> bool:
    """A placeholder array (or a joblib array) that may hold objects."""
    return isinstance(value, _Made) and (
        value.array or (value.cls is not None and value.cls.pair == _WRAPPER)
    )


def _is_number(value: object) -> bool:
    return type(value) in (int, bool) or (
        isinstance(value, _Opaque) and value.what == "a long integer"
    )


def _is_numeric(value: object) -> bool:
    """A number, or a numpy scalar (numbers kept as numpy wrote them)."""
    return _is_number(value) or (
        isinstance(value, _Made) and value.cls is not None and value.cls.pair in _SCALARS
    )


def _shape_of(value: object) -> str:
    """``(bytes, int)``: the kinds of a tuple's items, for messages."""
    if isinstance(value, _Tuple):
        return "(" + ", ".join(_describe(item) for item in value.items) + ")"
    return _describe(value)


def _too_deep(value: object, bound: int) -> bool:
    """Whether containers nest more than ``bound`` levels under ``value`` (walked without
    recursion, as they are now: a container filled after it was nested counts too)."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > bound:
            return True
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _Tuple | _List | _Set):
            stack.extend((child, level + 1) for child in item.items)
        elif isinstance(item, _Dict):
            stack.extend((v, level + 1) for pair in item.pairs for v in pair)
    return False


def _bytes_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if (
        not items
        or (len(items) == 1 and _is_bytes(items[0]))
        or (
            len(items) == 2
            and (type(items[0]) is str or isinstance(items[0], _LongText))
            and items[1] in _LATIN1
        )
    ):
        return None
    return "nothing, bytes, or a string and 'latin-1' (a size would allocate that many bytes)"


def _set_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if not items or (len(items) == 1 and isinstance(items[0], _List | _Tuple | _Set)):
        return None
    return "nothing or a list of the items"


def _slice_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if len(items) <= 3 and all(item is None or _is_number(item) for item in items):
        return None
    return "integers or None (a slice of objects is freed without a recursion limit)"


def _range_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    return None if all(_is_number(item) for item in items) else "integers"


def _partial_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if len(items) == 1 and not _is_partial(items[0]):
        return None
    return (
        "only the function, never a partial (its state follows in a BUILD; a chain of "
        "partials overflows the C stack when it is freed)"
    )


def _scalar_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if len(items) == 2:
        return None
    return "a dtype and the value's bytes (without them numpy allocates the dtype's itemsize)"


def _is_bytes(value: object) -> bool:
    """bytes or a bytearray: literal, or made by a call whose arguments were checked."""
    return isinstance(value, _Blob) or (
        isinstance(value, _Made) and value.cls is not None and value.cls.pair in _BYTES_MADE
    )


def _buffer_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if items and _is_bytes(items[0]):
        return None
    return "bytes or a bytearray to read (a view of another object could chain without limit)"


def _tree_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if len(items) == 3 and type(items[2]) is int and items[2] > len(machine.data):
        return (
            f"an n_outputs that a file of {len(machine.data):,} bytes can describe, not "
            f"{items[2]:,} (Tree allocates per output)"
        )
    return None


def _restore_array_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    if items and _too_deep(items[0], MAX_NESTING):
        return (
            f"array data nested at most {MAX_NESTING} levels (pyarrow rebuilds children "
            "recursively)"
        )
    data = items[0] if items else None
    if isinstance(data, _Tuple) and len(data.items) > 1:
        length = data.items[1]
        if type(length) is int and length > len(machine.data):
            return (
                f"an array length that a file of {len(machine.data):,} bytes can hold, not "
                f"{length:,} (an array without buffers has any length)"
            )
    return None


def _reconstructor_form(machine: _Machine, items: tuple[object, ...] | list[object]) -> str | None:
    state = items[2] if len(items) == 3 else 0
    data = _Dict | _List | _Tuple | _Set | _Blob | _LongText
    if state is None or type(state) is str or isinstance(state, data):
        return None
    return (
        "a class, the builtin type it derives from, and None or that type's data (a number "
        "or a range there would size what the type allocates)"
    )


# How pickle (and numpy, pandas, pyarrow, scikit-learn) call the allowed callables that
# could otherwise allocate from a number, expand a lazy sequence, or link objects that are
# freed recursively: each check returns what pickle passes when the call differs from it.
_FORM_IMPLEMENTATIONS: dict[
    Form, Callable[[_Machine, tuple[object, ...] | list[object]], str | None]
] = {
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
_ARGUMENT_FORMS: dict[
    tuple[str, str],
    Callable[[_Machine, tuple[object, ...] | list[object]], str | None],
] = {
    (name.rsplit(".", 1)[0], name.rsplit(".", 1)[1]): _FORM_IMPLEMENTATIONS[entry.form]
    for name, entry in SPECIAL.items()
    if entry.form is not None
}


def chain_depth(roots: Iterable[Any], children: Callable[[Any], Iterable[Any]]) -> tuple[int, Any]:
    """The most nodes on a path down from any root, and the root it starts from.

    Walked without recursion; a cycle's closing edge adds nothing (a cycle is never freed
    by reference counting, so it cannot recurse).
    """
    done: dict[int, int] = {}
    deepest = 0
    deepest_root: Any = None
    for root in roots:
        if id(root) in done:
            continue
        path = {id(root)}
        stack: list[tuple[Any, Iterator[Any], int]] = [(root, iter(children(root)), 0)]
        while stack:
            node, pending, best = stack[-1]
            descended = False
            for child in pending:
                key = id(child)
                if key in done:
                    best = max(best, done[key])
                elif key not in path:
                    stack[-1] = (node, pending, best)
                    path.add(key)
                    stack.append((child, iter(children(child)), 0))
                    descended = True
                    break
            if descended:
                continue
            stack.pop()
            path.discard(id(node))
            done[id(node)] = best + 1
            if stack:
                parent, rest, parent_best = stack[-1]
                stack[-1] = (parent, rest, max(parent_best, best + 1))
        if done[id(root)] > deepest:
            deepest, deepest_root = done[id(root)], root
    return deepest, deepest_root


_HANDLERS: list[Callable[[_Machine], bool] | None] = [None] * 256
for _op in pickletools.opcodes:
    _method = getattr(_Machine, f"op_{_op.name.lower()}", None)
    if _method is None:  # pragma: no cover - every opcode has a handler
        raise ImportError(f"no handler for pickle opcode {_op.name}")
    _HANDLERS[_op.code.encode("latin-1")[0]] = _method


# ----------------------------------------------------------------------- entry point


def find_byte(data: memoryview, byte: int, start: int, end: int) -> int:
    """Position of the first ``byte`` in ``data[start:end]``, or -1 (a memoryview has no
    ``find``; lines are short, so a few small copies find it)."""
    step = 256
    while start < end:
        found = bytes(data[start : min(start + step, end)]).find(byte)
        if found >= 0:
            return start + found
        start += step
        step = min(step * 2, 1 << 20)
    return -1


def scan_pickle(data: bytes | bytearray | memoryview, *, joblib: bool = True) -> StreamScan:
    """Scan ``data`` as a pickle stream (with joblib's array layout when ``joblib``).

    Bytes after the first stream's STOP are a finding; they are scanned as further
    streams and what they reference is reported too.
    """
    view = memoryview(data).cast("B")
    results = _Results()
    machine = _Machine(view, 0, "main", results, joblib=joblib)
    error: PickleParseError | None = None
    end = 0
    try:
        end = machine.run()
    except PickleParseError as exc:
        error = exc
    if error is None and end < len(view):
        _scan_trailing(view, end, results, joblib)
    _check_array_nesting(results)
    return StreamScan(
        references=tuple(results.references),
        calls=frozenset(results.calls),
        findings=tuple(results.findings),
        regions=dict(results.regions),
        end=end,
        protocol=machine.proto,
        error=error,
        has_arrays=bool(results.regions),
    )


def _children(array: _Made) -> list[_Made]:
    return array.children


def _check_array_nesting(results: _Results) -> None:
    offsets = {id(array): offset for array, offset in results.arrays}
    roots: list[_Made] = [array for array, _ in results.arrays]
    depth, root = chain_depth(roots, _children)
    if depth > MAX_ARRAY_NESTING and root is not None:
        results.findings.append(
            Finding(
                offsets[id(root)],
                "main",
                f"object arrays nested {depth:,} deep in one another (modelkeep's limit is "
                f"{MAX_ARRAY_NESTING}); numpy frees them recursively, and a chain this deep "
                "overflows the C stack",
            )
        )


def _scan_trailing(data: memoryview, start: int, results: _Results, joblib: bool) -> None:
    results.findings.append(
        Finding(
            start,
            "main",
            f"{len(data) - start:,} byte(s) of data after the stream's STOP; a reader that "
            "calls load() again would run them",
        )
    )
    pos = start
    for number in range(2, _MAX_TRAILING_STREAMS + 2):
        if pos >= len(data):
            return
        stream = f"stream {number}"
        try:
            pos = _Machine(data, pos, stream, results, joblib=joblib).run()
        except PickleParseError as exc:
            results.findings.append(
                Finding(
                    exc.offset,
                    stream,
                    f"the data after STOP is not a complete pickle stream: {exc.problem}",
                )
            )
            return
