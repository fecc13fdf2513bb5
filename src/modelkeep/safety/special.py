"""The pickle globals both walls handle specially, in one table. Data, not code.

The static scanner (:mod:`.pickle_scan`) and the restricted unpickler (:mod:`.unpickler`)
enforce independently, each on its own representation of the stream (the scanner on
simulated values, the unpickler on real objects), so a gap in one alone does not let a file
through. What they must agree on is *knowledge*: which allowed names call or instantiate
their arguments, which allocate from a number, which are rebuilt from a special layout. That
knowledge lives here, once; each wall looks a name up and applies its own implementation of
the entry's :class:`Form`, :class:`Static` and :class:`Build`. A test checks that every form
named here is implemented by both walls and that every name is on the allowlist.

Adding a reconstructor: put its name on the allowlist (``allowlist.ALLOWED``, and
``CALLABLE`` if pickle calls it with arguments), add an entry here, and implement its form
in both walls; a missing implementation fails at import.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "NEVER_BUILT",
    "SPECIAL",
    "Build",
    "Form",
    "Special",
    "StandIn",
    "Static",
    "names_with",
]


class Form(enum.Enum):
    """The arguments pickle (or numpy, pandas, pyarrow, scikit-learn) passes to a call that
    could otherwise allocate from a number, expand a lazy sequence, or link objects that are
    freed recursively; each wall refuses a call that differs."""

    BYTES = "bytes"
    SET = "set"
    SLICE = "slice"
    RANGE = "range"
    PARTIAL = "partial"
    SCALAR = "scalar"
    BUFFER = "buffer"
    RESTORE_ARRAY = "restore_array"
    RECONSTRUCTOR = "reconstructor"
    TREE = "tree"


class Static(enum.Enum):
    """What the scanner must simulate for a call, because the call itself resolves or makes
    something the file does not name (a class, a constructor, a dtype, bytes)."""

    CALLS_SECOND_ARGUMENT = "calls its second argument with the first"
    BIT_GENERATOR_CTOR = "numpy's bit-generator constructor (the only one callable above)"
    RECONSTRUCT = "numpy's empty-array placeholder, filled by BUILD"
    NEW_INDEX = "runs cls.__new__(cls, **d)"
    NEW_OF_FIRST_ARG = "makes an instance of its first argument without calling it"
    DTYPE = "a numpy dtype, whose itemsize decides joblib's layout"
    ENCODE = "bytes made from latin-1 text"
    BYTES_MADE = "makes bytes"
    SCALAR = "a numpy scalar from raw bytes"
    PARTIAL = "functools.partial, whose BUILD links callables"
    RANGE = "a lazy range"
    SEED_SEQUENCE = "numpy's SeedSequence, rebuilt from its state"
    WRAPPER = "joblib's array placeholder, followed by the array's bytes"


class StandIn(enum.Enum):
    """What the unpickler answers the name with: a checked replacement that accepts exactly
    what pickle, numpy and pandas write, and refuses the rest."""

    LATIN1_ENCODE = "latin1_encode"
    RECONSTRUCTOR = "reconstructor"
    BIT_GENERATOR_CTOR = "bit_generator_ctor"
    RANDOMSTATE_CTOR = "randomstate_ctor"
    GENERATOR_CTOR = "generator_ctor"
    NEW_INDEX = "new_index"
    RECONSTRUCT = "reconstruct"
    MARECONSTRUCT = "mareconstruct"


class Build(enum.Enum):
    """What the unpickler checks right after the call that built an object."""

    ARROW = "a pyarrow array's buffers, validated in full"


@dataclass(frozen=True)
class Special:
    """How both walls treat one allowed global (None: nothing special of that kind)."""

    form: Form | None = None
    static: Static | None = None
    stand_in: StandIn | None = None
    after: Build | None = None
    #: Why both walls refuse a BUILD on an instance: the library writes it by calling the
    #: class, and its ``__setstate__`` trusts what it is given while still loading.
    never_built: str | None = None


#: Every specially handled global, by ``module.name``.
SPECIAL: dict[str, Special] = {
    "builtins.bytes": Special(form=Form.BYTES, static=Static.BYTES_MADE),
    "builtins.bytearray": Special(form=Form.BYTES, static=Static.BYTES_MADE),
    "builtins.set": Special(form=Form.SET),
    "builtins.frozenset": Special(form=Form.SET),
    "builtins.slice": Special(form=Form.SLICE),
    "builtins.range": Special(form=Form.RANGE, static=Static.RANGE),
    "functools.partial": Special(form=Form.PARTIAL, static=Static.PARTIAL),
    "_codecs.encode": Special(static=Static.ENCODE, stand_in=StandIn.LATIN1_ENCODE),
    "copyreg._reconstructor": Special(
        form=Form.RECONSTRUCTOR, static=Static.NEW_OF_FIRST_ARG, stand_in=StandIn.RECONSTRUCTOR
    ),
    "copyreg.__newobj__": Special(static=Static.NEW_OF_FIRST_ARG),
    "copyreg.__newobj_ex__": Special(static=Static.NEW_OF_FIRST_ARG),
    "numpy.dtype": Special(static=Static.DTYPE),
    "numpy._core.multiarray.scalar": Special(form=Form.SCALAR, static=Static.SCALAR),
    "numpy.core.multiarray.scalar": Special(form=Form.SCALAR, static=Static.SCALAR),
    "numpy._core.numeric._frombuffer": Special(form=Form.BUFFER),
    "numpy.core.numeric._frombuffer": Special(form=Form.BUFFER),
    "numpy._core.multiarray._reconstruct": Special(
        static=Static.RECONSTRUCT, stand_in=StandIn.RECONSTRUCT
    ),
    "numpy.core.multiarray._reconstruct": Special(
        static=Static.RECONSTRUCT, stand_in=StandIn.RECONSTRUCT
    ),
    "numpy.ma.core._mareconstruct": Special(stand_in=StandIn.MARECONSTRUCT),
    "numpy.random._pickle.__bit_generator_ctor": Special(
        static=Static.BIT_GENERATOR_CTOR, stand_in=StandIn.BIT_GENERATOR_CTOR
    ),
    "numpy.random._pickle.__randomstate_ctor": Special(
        static=Static.CALLS_SECOND_ARGUMENT, stand_in=StandIn.RANDOMSTATE_CTOR
    ),
    "numpy.random._pickle.__generator_ctor": Special(
        static=Static.CALLS_SECOND_ARGUMENT, stand_in=StandIn.GENERATOR_CTOR
    ),
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": Special(static=Static.SEED_SEQUENCE),
    "pandas.core.indexes.base._new_Index": Special(
        static=Static.NEW_INDEX, stand_in=StandIn.NEW_INDEX
    ),
    "pandas.core.internals.managers.BlockManager": Special(
        never_built=(
            "pandas writes one by calling it, and a BUILD would re-place its blocks at "
            "positions pandas follows unchecked while loading"
        )
    ),
    "pyarrow.lib.py_buffer": Special(form=Form.BUFFER),
    "pyarrow.lib._restore_array": Special(form=Form.RESTORE_ARRAY, after=Build.ARROW),
    "sklearn.tree._tree.Tree": Special(form=Form.TREE),
    "joblib.numpy_pickle.NumpyArrayWrapper": Special(static=Static.WRAPPER),
}


def names_with(static: Static) -> frozenset[tuple[str, str]]:
    """The ``(module, name)`` pairs whose entry has ``static`` (the scanner's lookups)."""
    return frozenset(
        (full.rsplit(".", 1)[0], full.rsplit(".", 1)[1])
        for full, entry in SPECIAL.items()
        if entry.static is static
    )


#: Classes whose instances no saved model gives a BUILD, with the reason, by ``module.name``.
NEVER_BUILT: dict[str, str] = {
    name: entry.never_built for name, entry in SPECIAL.items() if entry.never_built is not None
}
