"""Walk a deserialized object graph once, admitting every value by its type and position.

The walk is iterative and linear: each object is visited once (shared objects too), and
the path to an object (``model.steps[1][1].coef_``) is built only when something is refused,
by following parent links. Values fall into four kinds:

* data that no library code dispatches on: None, numbers, strings, bytes, numpy scalars,
  dtypes, numeric arrays, and a few scalar types given as values (``dtype=np.float64``);
* containers, walked: dict (with atom keys), list, tuple, set, frozenset, object arrays,
  ``collections.defaultdict`` whose factory is a builtin type;
* callables (functions, ufuncs, ``functools.partial``), admitted only in the positions
  where their owning class stores one (:data:`CALLABLE_SLOTS`): anywhere else a callable is
  what an attacker plants for library code to call;
* instances, admitted only when their class has a proof (:mod:`.proofs`) or the caller
  named it in ``trusted=``; the proof then checks the instance and hands its attributes back
  to the walk.
"""

from __future__ import annotations

import collections
import functools
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelkeep.errors import UnprovenTypeError, UnsafeStateError
from modelkeep.safety.allowlist import CALLABLE

#: What pickle calls to rebuild objects: never a function a model keeps to call.
RECONSTRUCTORS = CALLABLE

__all__ = ["CALLABLE_SLOTS", "Slot", "Walk", "qualified"]

#: A position in the graph: the class whose attribute holds the value, and that attribute.
Slot = tuple[str, str]

_ATOMS = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        type(Ellipsis),
    }
)

_CONTAINERS = frozenset(
    {
        dict,
        collections.OrderedDict,
        collections.defaultdict,
        list,
        tuple,
        set,
        frozenset,
        np.ndarray,
    }
)

#: Types a fitted model keeps as plain values (``dtype=np.float64`` and kin).
VALUE_TYPES = frozenset(
    {
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        object,
        np.bool_,
        np.bytes_,
        np.str_,
        np.object_,
        np.datetime64,
        np.timedelta64,
        np.float16,
        np.float32,
        np.float64,
        np.complex64,
        np.complex128,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.ndarray,  # a masked array's _baseclass
    }
)

#: Factories a ``defaultdict`` may have: they make an empty value and call nothing else.
_FACTORIES = frozenset(
    {None, list, dict, set, int, float, str, tuple, frozenset, collections.OrderedDict}
)

#: Where fitted models keep functions: ``class -> attributes``. A callable anywhere else is
#: refused. The function itself was already audited against the allowlist when the file
#: named it (pickle's ``find_class``, skops' type audit).
CALLABLE_SLOTS: dict[str, frozenset[str]] = {
    "sklearn.preprocessing._function_transformer.FunctionTransformer": frozenset(
        {"func", "inverse_func"}
    ),
    "sklearn.compose._target.TransformedTargetRegressor": frozenset({"func", "inverse_func"}),
    **{
        f"sklearn.feature_selection._univariate_selection.{name}": frozenset({"score_func"})
        for name in (
            "GenericUnivariateSelect",
            "SelectFdr",
            "SelectFpr",
            "SelectFwe",
            "SelectKBest",
            "SelectPercentile",
        )
    },
    "sklearn.cluster._agglomerative.FeatureAgglomeration": frozenset({"pooling_func"}),
    "scipy.interpolate._bsplines.BSpline": frozenset({"_asarray"}),
    "scipy.interpolate._interpolate.interp1d": frozenset({"_call"}),
    **{
        f"sklearn.metrics._scorer.{name}": frozenset({"_score_func"})
        for name in ("_Scorer", "_CurveScorer")
    },
    "sklearn.cluster._bisect_k_means.BisectingKMeans": frozenset({"_kmeans_single"}),
}

#: Functions a ``functools.partial`` may wrap (HistGradientBoosting's categorical
#: preprocessor keeps ``partial(check_array, ...)``).
_PARTIAL_FUNCTIONS = frozenset({"sklearn.utils.validation.check_array"})

_FUNCTIONS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    np.ufunc,
    type(np.mean),  # numpy's array-function dispatchers
)


def qualified(value: object) -> str:
    """``module.qualname`` of a class or function (of the type, for other values)."""
    target: Any = value if isinstance(value, type | types.FunctionType) else type(value)
    if isinstance(value, types.BuiltinFunctionType | np.ufunc) or type(value) is type(np.mean):
        target = value
    module = getattr(target, "__module__", None) or "builtins"
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}.{name}"


_TYPE_NAMES: dict[type, str] = {}


def _type_name(cls: type) -> str:
    """``module.qualname`` of an instance's class, computed once per class."""
    name = _TYPE_NAMES.get(cls)
    if name is None:
        name = _TYPE_NAMES[cls] = qualified(cls)
    return name


@dataclass(frozen=True)
class Proof:
    """How an admitted class is checked: ``check(walk, obj, node)`` raises for bad state
    and returns the ``(value, label, slot)`` children the walk must still visit; ``where``
    limits the positions an instance may occupy (None: anywhere)."""

    check: Callable[[Walk, Any, int], Iterable[tuple[object, str, Slot | None]]]
    where: frozenset[Slot] | None = None


class Walk:
    """One pass over an object graph; ``run(root)`` raises or returns the count of objects."""

    def __init__(self, proofs: dict[str, Proof], trusted: Iterable[str] = ()) -> None:
        self._proofs = proofs
        self._trusted = frozenset(trusted)
        self._parents: list[int] = []
        self._labels: list[str] = []
        self._seen: set[int] = set()
        self._pending: list[tuple[object, int, Slot | None]] = []
        self.instances: list[tuple[object, int]] = []
        #: Values a proof found where the tree walk (safety.trees) cannot reach them, inside
        #: pandas blocks: ``(value, parent node, label)``; prove_state validates their trees.
        self.detached: list[tuple[object, int, str]] = []

    # -- paths

    def path(self, node: int) -> str:
        """The access path of ``node`` from the root, built on demand."""
        parts: list[str] = []
        while node >= 0:
            parts.append(self._labels[node])
            node = self._parents[node]
        return "".join(reversed(parts))

    def refuse(self, node: int, reason: str) -> UnsafeStateError:
        return UnsafeStateError(self.path(node), reason)

    def _node(self, parent: int, label: str) -> int:
        self._parents.append(parent)
        self._labels.append(label)
        return len(self._labels) - 1

    # -- the walk

    def run(self, root: object, name: str = "model") -> int:
        self._pending.append((root, self._node(-1, name), None))
        while self._pending:
            value, node, slot = self._pending.pop()
            self._visit(value, node, slot)
        return len(self._seen)

    def push(self, value: object, parent: int, label: str, slot: Slot | None) -> None:
        """Queue ``value`` (found at ``parent`` + ``label``) unless it is plain data."""
        kind = type(value)
        if kind in _ATOMS or (kind is np.ndarray and not value.dtype.hasobject):  # type: ignore[attr-defined]
            return
        self._pending.append((value, self._node(parent, label), slot))

    def _visit(self, value: object, node: int, slot: Slot | None) -> None:
        kind = type(value)
        if kind in _ATOMS or isinstance(value, np.generic | np.dtype):
            return
        # Position rules hold for every reference to an object, so they are checked before
        # the visited-once shortcut: a function admitted in one slot and referenced from
        # another, or a tree shared with a dict, is judged at each place it sits.
        self._check_position(value, node, slot)
        if id(value) in self._seen:
            return
        self._seen.add(id(value))
        if isinstance(value, (type, *_FUNCTIONS)):
            return  # judged by _check_position
        if isinstance(value, functools.partial):
            self._partial(value, node)
            return
        if kind in (dict, collections.OrderedDict, collections.defaultdict):
            self._mapping(value, node, slot)  # type: ignore[arg-type]
            return
        if isinstance(value, list | tuple | set | frozenset) and kind in (
            list,
            tuple,
            set,
            frozenset,
        ):
            for i, item in enumerate(value):
                if type(item) not in _ATOMS:
                    self.push(item, node, f"[{i}]", slot)
            return
        if kind is np.ndarray:
            self._object_array(value, node, slot)  # type: ignore[arg-type]
            return
        self._instance(value, node, slot)

    def _check_position(self, value: object, node: int, slot: Slot | None) -> None:
        if isinstance(value, type):
            if value in VALUE_TYPES:
                return
            if not self._callable_here(slot):
                raise self.refuse(
                    node,
                    f"expected data here, got the class {qualified(value)}; a class is "
                    "kept as a value only as a dtype",
                )
            self._check_model_function(value, node)
        elif isinstance(value, (functools.partial, *_FUNCTIONS)):
            if not self._callable_here(slot):
                raise self.refuse(node, self._stray_callable(value, slot))
            if not isinstance(value, functools.partial):
                self._check_model_function(value, node)
        elif type(value) not in _CONTAINERS:
            name = _type_name(type(value))
            proof = self._proofs.get(name)
            if proof is None or proof.where is None or slot in proof.where:
                return
            if name in self._trusted:
                return
            where = "the top" if slot is None else f"{slot[0]}.{slot[1]}"
            raise self.refuse(
                node,
                f"a {name} in {where}; it is trusted only where its owner keeps it "
                f"({', '.join(sorted(f'{c}.{a}' for c, a in proof.where))})",
            )

    def _callable_here(self, slot: Slot | None) -> bool:
        return slot is not None and slot[1] in CALLABLE_SLOTS.get(slot[0], ())

    def _check_model_function(self, value: object, node: int) -> None:
        """A function in a callable slot is one a model calls, never one of the helpers
        pickle rebuilds objects with (or modelkeep's checked stand-ins for them)."""
        name = qualified(value)
        if name in RECONSTRUCTORS or name.startswith("modelkeep."):
            raise self.refuse(
                node,
                f"a model function expected here, got {name}, which only rebuilds objects "
                "while loading",
            )

    def _stray_callable(self, value: object, slot: Slot | None) -> str:
        where = "here" if slot is None else f"in {slot[0]}.{slot[1]}"
        return (
            f"expected data, got the callable {qualified(value)} {where}; the library would "
            "call it, and a fitted model keeps functions only where its class stores them"
        )

    def _partial(self, value: functools.partial[Any], node: int) -> None:
        target = qualified(value.func)
        if target not in _PARTIAL_FUNCTIONS:
            raise self.refuse(
                node,
                f"a functools.partial of {target}; a fitted model wraps only "
                f"{', '.join(sorted(_PARTIAL_FUNCTIONS))} in one",
            )
        attributes = getattr(value, "__dict__", None)
        if attributes:
            raise self.refuse(node, "a functools.partial with attributes of its own")
        self.push(value.args, node, ".args", None)
        self.push(value.keywords, node, ".keywords", None)

    def _mapping(self, value: dict[Any, Any], node: int, slot: Slot | None) -> None:
        if isinstance(value, collections.defaultdict) and value.default_factory not in _FACTORIES:
            raise self.refuse(
                node,
                f"a defaultdict whose factory is {qualified(value.default_factory)}; expected "
                "None or a builtin container or number type",
            )
        for key, item in value.items():
            self.check_key(key, node)
            if type(item) not in _ATOMS:  # the label is built only for what is walked
                self.push(item, node, f"[{key!r}]", slot)

    def check_key(self, key: object, node: int) -> None:
        """A mapping key is plain data: an atom, a numpy scalar, or a tuple of those."""
        pending = [key]
        while pending:
            part = pending.pop()
            if type(part) is tuple:
                pending.extend(part)
            elif type(part) not in _ATOMS and not isinstance(part, np.generic):
                raise self.refuse(
                    node, f"a dict key holding a {qualified(part)}; expected plain data"
                )

    def _object_array(self, value: np.ndarray[Any, Any], node: int, slot: Slot | None) -> None:
        if value.dtype.names is not None:
            raise self.refuse(node, "a structured array holding Python objects")
        for i, item in enumerate(value.ravel(order="K")):
            if type(item) not in _ATOMS:
                self.push(item, node, f"[{i}]", slot)

    def _instance(self, value: object, node: int, slot: Slot | None) -> None:
        name = _type_name(type(value))
        if name in self._trusted:
            return  # the caller vouched for it by exact name; nothing below it is checked
        proof = self._proofs.get(name)
        if proof is None:
            raise UnprovenTypeError(self.path(node), [name])
        self.instances.append((value, node))  # its position was checked on arrival
        for child, label, child_slot in proof.check(self, value, node):
            self.push(child, node, label, child_slot)
