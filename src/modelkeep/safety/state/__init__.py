"""Prove the state of a deserialized model before anything uses it.

The allowlist decides which classes a file may *name*; this package decides which objects
a model may *hold*, and in what state. :func:`prove_state` walks the final object graph
once (after the last BUILD, SETITEM or ``__setstate__``, so no later mutation escapes it),
admits every value by its type and position (:mod:`.walk`), checks each admitted class's
state (:mod:`.proofs`, :mod:`.relations`), and then proves every decision tree
(:mod:`modelkeep.safety.trees`). Nothing here calls a method of the model: golden replay
and ``predict`` run only on a graph this has proven.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable

from modelkeep.safety.state.proofs import ESTIMATORS, PROOFS
from modelkeep.safety.state.walk import Walk

__all__ = ["ESTIMATORS", "prove_state", "proven_trees"]

# What prove_state counted, per proven object (weakly held): `verify` reports the count
# without walking the trees a second time.
_PROVEN: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()


def proven_trees(obj: object) -> int | None:
    """How many trees :func:`prove_state` proved in ``obj``, or None if it never proved it
    (or ``obj`` cannot be remembered weakly)."""
    try:
        return _PROVEN.get(obj)
    except TypeError:  # not weakly referenceable, or unhashable
        return None


def prove_state(obj: object, *, trusted: Iterable[str] = (), root: str = "model") -> int:
    """Prove every object reachable from ``obj``; return the number of trees proven.

    Args:
        obj: a freshly deserialized model, before anything has called it.
        trusted: exact class names the caller admits without a proof (``trusted=``).
        root: the name error paths start with.

    Raises:
        UnprovenTypeError: an instance of a class modelkeep has no proof for.
        UnsafeStateError: state no fit produces (a stray callable, an unknown attribute, an
            index out of range, a method name outside its legal values ...).
        UnsafeModelError: a malformed decision tree.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> prove_state(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
        0
    """
    from modelkeep.errors import ModelkeepError, UnsafeStateError
    from modelkeep.safety.trees import validate_trees

    try:
        walk = Walk(PROOFS, trusted)
        walk.run(obj, root)
        trees = validate_trees(obj, root=root)
        for value, node, label in walk.detached:  # inside pandas objects
            trees += validate_trees(value, root=walk.path(node) + label)
    except ModelkeepError:
        raise
    except Exception as exc:  # the boundary: state no proof foresaw is refused, not raised raw
        raise UnsafeStateError(
            root, f"its state could not be proven ({type(exc).__name__}: {exc})"
        ) from exc
    with contextlib.suppress(TypeError):  # not weakly referenceable, or unhashable
        _PROVEN[obj] = trees
    return trees
