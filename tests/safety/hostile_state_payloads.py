"""Hostile files against the state proofs, built the way an attacker who reads modelkeep's
source would: only from allowlisted globals, by pickling real fitted models and then
mutating their state, or by writing pickle opcodes by hand.

Nothing here unpickles anything. ``CHILD`` is the program the tests run every hostile load
in: a subprocess with resource limits and an audit hook that ends it (exit 99) on the first
event a model load has no business causing.
"""

from __future__ import annotations

import copy
import functools
import io
import pickle
import struct
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The rows every builder fits on, and the rows the child predicts on.
N_FEATURES = 4


def data(n: int = 80, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.RandomState(seed)
    x = rng.rand(n, N_FEATURES)
    y = (x[:, 0] + x[:, 1] > 1).astype(int)
    return x, y


class Reduce:
    """Pickles as ``func(*args)`` with ``state`` applied by BUILD: a stand-in that lets a
    test write any (allowlisted) reduce tuple, as a crafted file would hold it."""

    def __init__(self, func: object, args: tuple[object, ...], state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple[object, ...]:
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


def dumps(obj: object, protocol: int = 5) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


# -- hand-written opcode streams


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _int(value: int) -> bytes:
    if 0 <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _put(index: int) -> bytes:
    return b"r" + struct.pack("<I", index)  # LONG_BINPUT


def _get(index: int) -> bytes:
    return b"j" + struct.pack("<I", index)  # LONG_BINGET


def body(obj: object) -> bytes:
    """``obj`` pickled (protocol 2) without memo, PROTO or STOP: a fragment that can be
    spliced into a hand-written stream."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=2)
    pickler.fast = True  # no PUT/GET: fragments can be joined without memo clashes
    pickler.dump(obj)
    raw = out.getvalue()
    assert raw[:2] == b"\x80\x02" and raw[-1:] == b"."
    return raw[2:-1]


def sparse_rebuilt() -> bytes:
    """A csr_matrix BUILT with valid state, then BUILT again with out-of-range indices."""
    from scipy.sparse import csr_matrix

    good = csr_matrix(np.eye(3))
    state = dict(vars(good))
    bad = {"indices": np.array([0, 7, 2**30], dtype=np.int32)}
    return (
        b"\x80\x02"
        + _global("scipy.sparse._csr", "csr_matrix")
        + b")\x81"  # EMPTY_TUPLE NEWOBJ
        + body(state)
        + b"b"  # BUILD: valid
        + body(bad)
        + b"b"  # BUILD again: indices past the 3 columns
        + b"."
    )


def partial_chain_top_down(depth: int = 400_000) -> bytes:
    """``depth`` partials made first, then each BUILT to call the next (top-down), so no
    partial-of-partial is ever passed to partial() itself."""
    out = [b"\x80\x04", _global("functools", "partial"), _put(0), b"0"]
    out += [_global("sklearn.utils.validation", "check_array"), _put(1), b"0"]
    make = _get(0) + _get(1) + b"\x85R"  # partial(check_array)
    out += [make, _put(2)]
    for i in range(depth):
        # p_i.__setstate__((p_{i+1}, (), {}, None))
        out += [_get(2 + i), b"(", make, _put(3 + i), b")}N", b"tb0"]
    out += [_get(2), b"."]
    return b"".join(out)


def partial_args_chain(depth: int = 400_000) -> bytes:
    """A FunctionTransformer whose func is partial(check_array, partial(check_array,
    partial(...))) ``depth`` deep through the args tuples, built top-down through the memo."""
    out = [b"\x80\x04", _global("functools", "partial"), _put(0), b"0"]
    out += [_global("sklearn.utils.validation", "check_array"), _put(1), b"0"]
    make = _get(0) + _get(1) + b"\x85R"
    out += [make, _put(2), b"0"]
    for i in range(depth):
        out += [_get(2 + i), b"(", _get(1), make, _put(3 + i), b"\x85}N", b"tb0"]
    transformer = _global("sklearn.preprocessing._function_transformer", "FunctionTransformer")
    out += [transformer, b")\x81}", b"\x8c\x04func", _get(2), b"sb."]
    return b"".join(out)


def bytes_newobj(size: int = 3_000_000_000) -> bytes:
    return b"\x80\x04" + _global("builtins", "bytes") + _int(size) + b"\x85\x81."


def bytes_reduce(size: int = 3_000_000_000) -> bytes:
    return b"\x80\x04" + _global("builtins", "bytes") + _int(size) + b"\x85R."


def bytearray_newobj_ex(size: int = 3_000_000_000) -> bytes:
    return b"\x80\x04" + _global("builtins", "bytearray") + _int(size) + b"\x85}\x92."


def dup_segments(segments: int = 6, per_segment: int = 1_000_000) -> bytes:
    """A million DUPs in each of several MARK segments: each segment alone is under any
    per-segment bound, together they are millions of stack slots."""
    one = b"(N" + b"2" * (per_segment - 1)
    return b"\x80\x04" + one * segments + b"N."


def zlib_bomb(inflated: int = 1_500_000_000, chunk: int = 1 << 24) -> bytes:
    """A zlib joblib file (``0x78`` prefix) whose stream is a plain pickle holding one
    BINBYTES8 of ``inflated`` zero bytes: ~1.5 MB on disk. Built without compressing 1.5 GB:
    after a full flush deflate restarts, so one compressed chunk of zeros can be repeated."""
    count = inflated // chunk
    size = count * chunk
    prefix = b"\x80\x04\x8e" + struct.pack("<Q", size)
    suffix = b"."
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(chunk)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(suffix) + comp.flush(zlib.Z_FINISH)
    adler = zlib.adler32(prefix)
    for _ in range(count):
        adler = zlib.adler32(zeros, adler)
    adler = zlib.adler32(suffix, adler)
    return b"\x78\xda" + head + block * count + tail + struct.pack(">I", adler)


# -- mutated fitted models


def stacking_tofile() -> bytes:
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    x, y = data()
    model = StackingClassifier(
        [("lr", LogisticRegression()), ("dt", DecisionTreeClassifier(max_depth=2))]
    ).fit(x, y)
    model.stack_method_ = ["tofile", "tofile"]
    return dumps(model)


def sklearn_tags_dunder() -> bytes:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = data()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    model.steps[-1][1].__dict__["__sklearn_tags__"] = "tofile"
    return dumps(model)


def defaultdict_partial(func: Callable[..., Any]) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.linear_model import LogisticRegression

        x, y = data()
        model = LogisticRegression().fit(x, y)
        model.__dict__["classes_"] = defaultdict(functools.partial(func, [0.0, 1.0]))
        return dumps(model)

    return build


def forest_n_jobs() -> object:
    from sklearn.ensemble import RandomForestClassifier

    x, y = data()
    return RandomForestClassifier(n_estimators=5, max_depth=3, n_jobs=8, random_state=0).fit(x, y)


def _bad_tree(tree: Any, *, cycle: bool = True) -> Reduce:
    """A stand-in pickling as ``tree`` whose root's left child is the root itself."""
    func, args, state = tree.__reduce__()
    state = dict(state)
    nodes = state["nodes"].copy()
    if cycle:
        nodes["left_child"][0] = 0
    else:
        nodes["left_child"][0] = 10**6
    state["nodes"] = nodes
    return Reduce(func, args, state)


def fitted_tree() -> Any:
    from sklearn.tree import DecisionTreeClassifier

    x, y = data()
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)


def gradient_boosting_bad_init() -> bytes:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = data()
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(x, y)
    init = fitted_tree()
    init.__dict__["tree_"] = _bad_tree(init.tree_)
    model.init_ = init  # predict would start from init_.predict_proba: a looping tree
    return dumps(model)


def gradient_boosting_wide_init() -> bytes:
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = data()
    model = GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(x, y)
    wide = DummyClassifier(strategy="prior").fit(x, np.arange(len(y)) % 5)
    model.init_ = wide  # 5 columns written into a 1-column raw prediction
    return dumps(model)


def nmf_unbounded() -> bytes:
    from sklearn.decomposition import NMF

    x, _ = data()
    model = NMF(n_components=2, max_iter=500).fit(x)
    model.max_iter, model.tol = 10**9, -1.0
    return dumps(model)


def logistic(**params: Any) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.linear_model import LogisticRegression

        x, y = data()
        model = LogisticRegression().fit(x, y)
        model.__dict__.update(params)
        return dumps(model)

    return build


def _random_state_pos(pos: int) -> Reduce:
    from numpy.random._pickle import __bit_generator_ctor, __randomstate_ctor

    rs = np.random.RandomState(0)
    state = rs.__reduce__()[2]
    state = copy.deepcopy(state)
    state["state"]["pos"] = pos
    return Reduce(__randomstate_ctor, (Reduce(__bit_generator_ctor, (np.random.MT19937,)),), state)


def random_state_pos(pos: int) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.ensemble import RandomForestClassifier

        x, y = data()
        model = RandomForestClassifier(n_estimators=2, max_depth=2).fit(x, y)
        model.random_state = _random_state_pos(pos)
        return dumps(model)

    return build


def knn_tree(mutate: Callable[[dict[int, Any]], None]) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.neighbors import KNeighborsClassifier

        x, y = data()
        model = KNeighborsClassifier(n_neighbors=3, algorithm="kd_tree", leaf_size=5).fit(x, y)
        func, args, state = model._tree.__reduce__()
        items = dict(enumerate(state))
        mutate(items)
        model.__dict__["_tree"] = Reduce(func, args, tuple(items[i] for i in range(len(state))))
        return dumps(model)

    return build


def _idx_out_of_range(items: dict[int, Any]) -> None:
    idx = items[1].copy()
    idx[0] = 10**9
    items[1] = idx


def _node_end_out_of_range(items: dict[int, Any]) -> None:
    nodes = items[2].copy()
    nodes["idx_end"][-1] = 10**9
    items[2] = nodes


def _tree_data_swapped(items: dict[int, Any]) -> None:
    # A permutation, but of a 1-row data array: the leaves then read past it.
    items[0] = items[0][:1].copy()


def ball_tree_knn() -> bytes:
    from sklearn.neighbors import KNeighborsClassifier

    x, y = data()
    model = KNeighborsClassifier(n_neighbors=3, algorithm="ball_tree").fit(x, y)
    return dumps(model)


def svc(mutate: Callable[[Any], None]) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.svm import SVC

        x, y = data()
        model = SVC().fit(x, y)
        mutate(model)
        return dumps(model)

    return build


def _n_support_too_big(model: Any) -> None:
    model._n_support = (model._n_support * 1000).astype(np.int32)


def _n_support_shifted(model: Any) -> None:
    n = model._n_support.copy()
    n[0] += 5
    n[1] -= 5
    model._n_support = n
    model._dual_coef_ = model._dual_coef_[:, :-1].copy()  # one coefficient short


def spline(mutate: Callable[[Any], None]) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.preprocessing import SplineTransformer

        x, _ = data()
        model = SplineTransformer(n_knots=4, degree=3).fit(x)
        mutate(model.bsplines_[0])
        return dumps(model)

    return build


def _knots_reversed(spline: Any) -> None:
    spline._t = spline._t[::-1].copy()


def _knots_too_few(spline: Any) -> None:
    spline._t = spline._t[:3].copy()


def _knots_nan(spline: Any) -> None:
    t = spline._t.copy()
    t[2] = np.nan
    spline._t = t


def tree_hidden(where: str) -> Callable[[], bytes]:
    def build() -> bytes:
        from sklearn.linear_model import LogisticRegression

        x, y = data()
        model = LogisticRegression().fit(x, y)
        dt = fitted_tree()
        dt.__dict__["tree_"] = _bad_tree(dt.tree_)
        # Hidden where the state tables admit the container (a dict attribute, an object
        # array of labels), so that the tree walk, not the kind check, must find it.
        if where == "dict":
            model.__dict__["_sklearn_output_config"] = {"a": dt}
        elif where == "list":
            model.__dict__["_sklearn_output_config"] = {"a": [0, [dt]]}
        elif where == "object-array":
            holder = np.empty(2, dtype=object)
            holder[0], holder[1] = 0, dt
            model.__dict__["classes_"] = holder
        elif where == "bare-tree-in-list":
            model.__dict__["_sklearn_output_config"] = {"a": [dt.__dict__["tree_"]]}
        elif where == "series":
            import pandas as pd

            model.__dict__["_sklearn_output_config"] = {"a": pd.Series([0, dt], dtype=object)}
        return dumps(model)

    return build


def _lightgbm_model() -> Any:
    import lightgbm

    x, y = data(300)
    return lightgbm.LGBMClassifier(
        n_estimators=2, num_leaves=4, min_child_samples=5, verbose=-1
    ).fit(x, y)


def lightgbm_cycle() -> bytes:
    raw = dumps(_lightgbm_model())
    at = raw.index(b"left_child=") + len(b"left_child=")
    end = raw.index(b"\n", at)
    numbers = raw[at:end].split(b" ")
    k = next(i for i, v in enumerate(numbers) if v.isdigit() and len(v) == 1 and v != b"0")
    numbers[k] = b"0"  # a child pointing back at the root, same length
    return raw[:at] + b" ".join(numbers) + raw[end:]


def xgboost_child_out_of_range() -> bytes:
    import xgboost

    x, y = data(200)
    raw = dumps(xgboost.XGBClassifier(n_estimators=2, max_depth=3).fit(x, y))
    key = b"left_children[$l#L"
    at = raw.index(key) + len(key) + 8  # past the int64 count
    assert raw[at : at + 4] == b"\x00\x00\x00\x01"
    return raw[:at] + struct.pack(">i", 10**6) + raw[at + 4 :]


# -- my own attacks on the state proofs


def tuple_key_smuggles() -> bytes:
    """A dict key is not walked when it is a tuple: hide an unproven instance (NMF with a
    billion iterations) and a malformed tree in one."""
    from sklearn.decomposition import NMF
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    model = LogisticRegression().fit(x, y)
    nmf = NMF(max_iter=10**9, tol=-1.0)
    dt = fitted_tree()
    dt.__dict__["tree_"] = _bad_tree(dt.tree_)
    model.__dict__["classes_"] = {(nmf, dt): 1}
    return dumps(model)


def bunch_key_smuggles() -> bytes:
    """A Bunch's keys are not walked (nor checked to be data): an unproven instance as a key."""
    from sklearn.decomposition import NMF
    from sklearn.linear_model import LogisticRegression
    from sklearn.utils import Bunch

    x, y = data()
    model = LogisticRegression().fit(x, y)
    bunch = Bunch()
    dict.__setitem__(bunch, NMF(max_iter=10**9), 1)
    model.__dict__["classes_"] = bunch
    return dumps(model)


def shared_callable(ft_visited_first: bool) -> Callable[[], bytes]:
    """A callable admitted in a callable slot (FunctionTransformer.func) and the same object
    in a slot scikit-learn calls but the proofs treat as data (KNeighbors' ``weights``). The
    walk visits each object once, so whichever slot it sees first decides."""

    def build() -> bytes:
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.utils.validation import check_array

        x, y = data()
        knn = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x, y)
        knn.weights = check_array
        ft = FunctionTransformer(func=check_array).fit(x)
        # The walk is last-in, first-out: the later step is visited first.
        steps = [("knn", knn), ("ft", ft)] if ft_visited_first else [("ft", ft), ("knn", knn)]
        return dumps(Pipeline(steps))

    return build


def bit_generator_seed_seq() -> bytes:
    """A bit generator's _seed_seq (set by __setstate__'s second item) is not walked: an
    unproven instance and a malformed tree hide there."""
    from numpy.random._pickle import __bit_generator_ctor, __randomstate_ctor
    from sklearn.decomposition import NMF
    from sklearn.ensemble import RandomForestClassifier

    x, y = data()
    model = RandomForestClassifier(n_estimators=2, max_depth=2).fit(x, y)
    bg = np.random.MT19937(0)
    _, _, (state, _) = bg.__reduce__()
    dt = fitted_tree()
    dt.__dict__["tree_"] = _bad_tree(dt.tree_)
    hidden = Reduce(__bit_generator_ctor, (np.random.MT19937,), (state, [NMF(max_iter=10**9), dt]))
    rs_state = np.random.RandomState(0).__reduce__()[2]
    model.random_state = Reduce(__randomstate_ctor, (hidden,), rs_state)
    return dumps(model)


def repr_in_constraint_message() -> bytes:
    """A parameter failing its constraint: scikit-learn builds the message with repr(value),
    and an estimator's repr calls get_params, which raises on a missing parameter."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    x, y = data()
    model = LogisticRegression().fit(x, y)
    inner = DecisionTreeClassifier()
    del inner.__dict__["criterion"]
    model.solver = inner
    return dumps(model)


def deep_estimator_chain(depth: int = 5_000) -> bytes:
    """LogisticRegressions whose ``solver`` is the previous one, ``depth`` deep, made one
    after the other through the memo (the stream stays flat); the top one's constraint fails
    and scikit-learn's message is a repr of the whole chain."""
    from sklearn.linear_model import LogisticRegression

    params = {k: v for k, v in vars(LogisticRegression()).items() if k != "solver"}
    out = [b"\x80\x02", _global("sklearn.linear_model._logistic", "LogisticRegression")]
    out += [_put(0), b"0", b"X\x05\x00\x00\x00lbfgs", _put(1), b"0"]
    fragment = body(params)
    for i in range(depth):
        out += [_get(0), b")\x81", fragment, b"X\x06\x00\x00\x00solver", _get(1 + i), b"s"]
        out += [b"b", _put(2 + i), b"0"]
    out += [_get(1 + depth), b"."]
    return b"".join(out)


def proven_holds_trusted(trusted_holds_tree: bool) -> Callable[[], bytes]:
    """A proven pipeline holding an NMF (named in trusted=) whose attributes carry what the
    proofs would refuse: a stray callable and a malformed tree."""

    def build() -> bytes:
        from sklearn.decomposition import NMF
        from sklearn.pipeline import Pipeline
        from sklearn.utils.validation import check_array

        x, _ = data()
        nmf = NMF(n_components=2, max_iter=200).fit(x)
        nmf.__dict__["components_extra"] = check_array
        if trusted_holds_tree:
            dt = fitted_tree()
            dt.__dict__["tree_"] = _bad_tree(dt.tree_)
            nmf.__dict__["components_extra"] = dt
        model = Pipeline([("nmf", nmf)])
        return dumps(model)

    return build


def object_array_of_estimators() -> bytes:
    """Estimators inside an object array inside an allowed attribute: each must be proven."""
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    model = LogisticRegression().fit(x, y)
    holder = np.empty(2, dtype=object)
    holder[0] = LogisticRegression(max_iter=10**9)
    holder[1] = LogisticRegression()
    model.__dict__["classes_"] = holder
    return dumps(model)


def generator_in_random_state() -> bytes:
    """A numpy Generator (not on the allowlist, but built by an allowed constructor) with an
    MT19937 past its key."""
    from numpy.random._pickle import __bit_generator_ctor, __generator_ctor
    from sklearn.ensemble import RandomForestClassifier

    x, y = data()
    model = RandomForestClassifier(n_estimators=2, max_depth=2).fit(x, y)
    bg = np.random.MT19937(0)
    _, _, (state, _) = bg.__reduce__()
    state = copy.deepcopy(state)
    state["state"]["pos"] = 10**6
    bit = Reduce(__bit_generator_ctor, (np.random.MT19937,), (state, None))
    model.random_state = Reduce(__generator_ctor, (bit,))
    return dumps(model)


def numeric_param_as_array() -> bytes:
    """A parameter of an unexpected type that passes the attribute-name check: max_iter as a
    numpy array of a billion (not an int, so the iteration bound does not look at it)."""
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    model = LogisticRegression().fit(x, y)
    model.__dict__["max_iter"] = np.int64(10**9)
    return dumps(model)


def float_iter_nan() -> bytes:
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    model = LogisticRegression().fit(x, y)
    model.__dict__["tol"] = np.float64("nan")
    return dumps(model)


@dataclass(frozen=True)
class Case:
    """``build() -> bytes`` of a hostile file; ``expect``: the modelkeep error class names
    accepted ("loaded" for a file that must load, with ``attrs`` checked and predict run)."""

    id: str
    build: Callable[[], bytes]
    expect: tuple[str, ...]
    suffix: str = ".pkl"
    trusted: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


STATE = ("UnsafeStateError",)
TREE = ("UnsafeModelError",)
UNPROVEN = ("UnprovenTypeError",)
PICKLE = ("UnsafePickleError", "CorruptPickleError")
UNTRUSTED = ("UntrustedTypesError",)


# -- running hostile loads in a confined child

CHILD = r"""
import gc, json, os, resource, sys, time, traceback

jobs = json.loads(sys.argv[1])
allowed = os.path.realpath(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

import numpy as np, pandas, scipy.sparse, sklearn, skops.io, joblib
import sklearn.ensemble, sklearn.linear_model, sklearn.neighbors, sklearn.svm, sklearn.tree
import sklearn.pipeline, sklearn.preprocessing, sklearn.decomposition, sklearn.dummy
import sklearn.compose, sklearn.utils.validation, sklearn.utils._param_validation
import modelkeep, modelkeep._bundle, modelkeep._golden
import modelkeep.safety.state, modelkeep.safety.trees, modelkeep.safety.boosters
from modelkeep.errors import ModelkeepError
for extra in ("lightgbm", "xgboost"):
    try:
        __import__(extra)
    except ImportError:
        pass

LIBRARY = tuple(
    os.path.realpath(p) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(modelkeep.__file__)}
)
# Code objects the standard library makes from strings it writes itself.
GENERATORS = (
    "dataclasses.py", "ast.py", "collections" + os.sep + "__init__.py", "typing.py", "enum.py"
)
FORBIDDEN = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
    "os.remove", "os.unlink", "os.rmdir", "os.rename", "os.replace", "os.truncate",
    "os.chmod", "os.chown", "os.symlink", "os.link", "subprocess.Popen", "pty.spawn",
    "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "shutil.", "multiprocessing",
    "_posixsubprocess", "webbrowser", "urllib.Request", "import_zipimport",
    "pickle.find_class",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
armed = False


def emit(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())


def die(event, args):
    emit({"violation": event, "args": repr(args)[:400]})
    os._exit(99)


def library(filename):
    return isinstance(filename, str) and (
        filename.startswith("<frozen ") or os.path.realpath(filename).startswith(LIBRARY)
    )


def generated_by_library():
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.endswith(GENERATORS):
            return True
        frame = frame.f_back
    return False


def hook(event, args):
    if not armed:
        return
    if event == "open":
        path, mode, flags = args
        write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS
        )
        if write and not (
            isinstance(path, str) and os.path.realpath(path).startswith(allowed + os.sep)
        ):
            die(event, args)
    elif event.startswith(FORBIDDEN):
        die(event, args)
    elif event == "exec":
        code = args[0]
        filename = getattr(code, "co_filename", None)
        if not library(filename) and not generated_by_library():
            die(event, (filename,))
    elif event == "compile":
        filename = args[1] if len(args) > 1 else None
        if not library(filename) and not generated_by_library():
            die(event, args)


sys.addaudithook(hook)
rows = np.random.RandomState(1).rand(5, 4)
frame = pandas.DataFrame(rows, columns=["a", "b", "c", "d"])
for job in jobs:
    emit({"start": job["id"]})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime)
    resource.setrlimit(resource.RLIMIT_CPU, (used + 20, resource.RLIM_INFINITY))
    verdict = {}
    obj = None
    began = time.monotonic()
    armed = True
    try:
        if job["mode"] == "bundle":
            obj = modelkeep.load(job["path"], env="ignore", trusted=job["trusted"] or None)
            estimator = obj.estimator
            obj.predict(frame)
        else:
            obj = modelkeep.safe_load(job["path"], trusted=job["trusted"] or None)
            estimator = obj
        verdict = {"outcome": "loaded", "type": type(estimator).__qualname__}
        verdict["attrs"] = {k: repr(getattr(estimator, k, None)) for k in job["attrs"]}
        if job["mode"] != "bundle":
            try:
                for method in ("predict", "transform"):
                    if hasattr(estimator, method):
                        getattr(estimator, method)(rows)
                        verdict["used"] = method
                        break
            except Exception as exc:
                verdict["use_error"] = f"{type(exc).__name__}: {exc}"[:400]
    except ModelkeepError as exc:
        verdict = {"outcome": "refused", "error": type(exc).__name__, "message": str(exc)[:600]}
    except BaseException as exc:
        verdict = {
            "outcome": "raw",
            "error": type(exc).__name__,
            "message": str(exc)[:300],
            "traceback": traceback.format_exc()[-2500:],
        }
    obj = estimator = None
    gc.collect()
    armed = False
    verdict["id"] = job["id"]
    verdict["seconds"] = round(time.monotonic() - began, 2)
    emit({"verdict": verdict})
"""

#: Seconds a single hostile load may take (wall clock) before it counts as a hang.
JOB_SECONDS = 45


def run_confined(jobs: list[dict[str, Any]], workdir: str) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` in as few children as possible; a child that dies, is killed, hangs or
    trips the audit hook has that job's verdict recorded, and the rest go to a new child."""
    import json
    import os
    import selectors
    import subprocess
    import sys
    import tempfile
    import time

    results: dict[str, dict[str, Any]] = {}
    remaining = list(jobs)
    while remaining:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(remaining), workdir],
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=workdir,
                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            )
            assert proc.stdout is not None
            selector = selectors.DefaultSelector()
            selector.register(proc.stdout, selectors.EVENT_READ)
            current: str | None = None
            deadline = time.monotonic() + 120  # imports
            buffer = b""
            hung = False
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(timeout=left):
                    hung = True
                    proc.kill()
                    break
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    if "start" in message:
                        current = message["start"]
                        deadline = time.monotonic() + JOB_SECONDS
                    elif "verdict" in message:
                        results[message["verdict"]["id"]] = message["verdict"]
                        current = None
                    elif "violation" in message and current is not None:
                        results[current] = {"outcome": "violation", **message}
            code = proc.wait()
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-2000:]
            selector.close()
            proc.stdout.close()
        if current is not None and current not in results:
            outcome = "hang" if hung else "died"
            results[current] = {"outcome": outcome, "returncode": code, "stderr": tail}
        before = len(remaining)
        remaining = [job for job in remaining if job["id"] not in results]
        if len(remaining) == before:  # the child failed before its first job
            for job in remaining:
                results[job["id"]] = {"outcome": "child-failed", "returncode": code, "stderr": tail}
            break
    return results
