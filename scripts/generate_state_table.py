"""Derive the attribute tables of the state proofs from what fitted benign models hold.

Fits the benign models of ``scripts/benign_models.py`` (every estimator of
``all_estimators()`` that fits on small data, XGBoost, LightGBM, a pandas-fed pipeline),
each used once for every output method (some attributes appear then), and the churn
example's pipelines. Each estimator is then refitted on variants of its data, so that what a
fit makes of its input is seen in every common form: float32 input, integer input, wider and
narrower inputs, string and integer labels, binary and multiclass targets, multi-output
targets where the class supports them, sample weights, DataFrames (``feature_names_in_``),
and common parameter switches (``fit_intercept=False``, ``n_components=2`` ...).

Each fitted object graph is walked, and two tables are written as data:

* ``src/modelkeep/safety/state/attributes.py``: for every class with instance attributes,
  the names those attributes had. An attribute a file sets that no fit of the class
  produced is refused at load time (``__sklearn_tags__`` in a BUILD state, an ``n_jobs`` on
  a class without one ...);
* ``src/modelkeep/safety/state/kinds.py``: for every scikit-learn-style estimator, the
  coarse kinds each fitted (non-parameter) attribute had (``None``, ``int``, ``str``,
  ``array:f2`` for a 2-D float array, ``instance`` ...), widened where the kind follows the
  data rather than the class (see :func:`widen`), and the shape relations every fit agreed
  on: an array axis, or an integer, that always equalled ``n_features_in_``,
  ``len(classes_)`` or ``n_outputs_`` while those varied.

Run from the repository root after upgrading scikit-learn, and review the diff::

    .venv/bin/python scripts/generate_state_table.py [--check]

``--check`` compares with the files instead of writing them and exits 1 on a difference.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import pickle
import re
import subprocess
import sys
import types
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "examples" / "churn"))

from benign_models import N_ROWS, fitted_models, outputs  # noqa: E402

from modelkeep.safety.state.checks import REFERENCES, kind_of, reference_values  # noqa: E402

STATE = ROOT / "src" / "modelkeep" / "safety" / "state"
ATTRIBUTES_FILE = STATE / "attributes.py"
KINDS_FILE = STATE / "kinds.py"

_LEAVES = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, type)

#: Array kinds a value takes when it holds labels: any of them may come with other labels.
_LABEL_ARRAYS = "bfiUO"
_LABEL_SCALARS = ("bool", "int", "float", "str")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class Tables:
    """What the fits showed: attribute names per class, kinds and shape observations per
    estimator attribute."""

    names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    kinds: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    # class -> attribute -> [(shape, (length,) or (value,); "array", "len" or "int"; references)]
    shapes: dict[str, dict[str, list[tuple[tuple[int, ...], str, dict[str, int]]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )


def _is_estimator(item: object) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(item, BaseEstimator)


def record(root: object, tables: Tables) -> None:
    """Add what every object reachable from ``root`` holds to ``tables``."""
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _LEAVES):
            continue
        seen.add(id(item))
        if isinstance(item, types.FunctionType | types.BuiltinFunctionType | np.ufunc):
            continue
        if isinstance(item, functools.partial):
            stack.extend((item.args, item.keywords))
            continue
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                stack.extend(item.ravel().tolist())
            continue
        attributes = getattr(item, "__dict__", None)
        if isinstance(attributes, dict) and not isinstance(item, type):
            name = _name(type(item))
            tables.names[name].update(k for k in attributes if isinstance(k, str))
            if _is_estimator(item):
                _record_kinds(item, attributes, tables)
            stack.extend(attributes.values())


def _record_kinds(item: Any, state: dict[str, Any], tables: Tables) -> None:
    name = _name(type(item))
    parameters = set(type(item)._get_param_names())
    references = reference_values(state)
    for key, value in state.items():
        if not isinstance(key, str) or key in parameters:
            continue
        tables.kinds[name][key].add(kind_of(value))
        if type(value) is np.ndarray:
            tables.shapes[name][key].append((value.shape, "array", references))
        elif type(value) in (list, tuple):
            tables.shapes[name][key].append(((len(value),), "len", references))
        elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
            tables.shapes[name][key].append(((int(value),), "int", references))


def widen(attribute: str, kinds: set[str]) -> set[str]:
    """The kinds a benign model may have where the fits showed ``kinds``.

    Only widenings that follow the data, never the class: a float scalar may be an int (an
    intercept of 0); and a value seen holding both integer and string labels holds labels,
    as ``classes_`` always does, so any label type is allowed at the same number of
    dimensions (``classes_`` follows ``y``; a label encoder is fitted on integers only
    here). Float32 and float64, int32 and int64 already share a kind.
    """
    wide = set(kinds)
    if attribute == "classes_":
        wide.update(f"array:{kind}" for kind in ("i1", "U1"))
    if "float" in wide:
        wide.add("int")
    if {"int", "str"} <= wide:
        wide.update(_LABEL_SCALARS)
    for ndim in range(4):
        seen = {k[6] for k in kinds if k.startswith("array:") and k[7:] == str(ndim)}
        if "i" in seen and ("U" in seen or "O" in seen):
            wide.update(f"array:{k}{ndim}" for k in _LABEL_ARRAYS)
    return wide


#: Integers whose name says they count features, classes or outputs: only those are held
#: equal to a reference (``rank_`` or ``max_features_`` equal ``n_features_in_`` only on
#: some data or with some parameters).
_COUNTS = re.compile(r"_?n_(features|classes|outputs|leaves)_?$")


def shape_relations(
    attribute: str,
    observations: list[tuple[tuple[int, ...], str, dict[str, int]]],
) -> tuple[list[tuple[int, int, str]], list[str]]:
    """The (ndim, axis, reference) relations of an attribute's arrays (ndim 0: the length of
    a list or tuple), and the references its integer always equalled; each held in every
    fit, at least twice, while the attribute took at least two sizes (so it follows the
    reference, not a constant)."""
    axes: list[tuple[int, int, str]] = []
    equals: list[str] = []
    for reference in REFERENCES:
        if reference == attribute:
            continue
        scalars = [
            (s[0], r[reference]) for s, tag, r in observations if tag == "int" and reference in r
        ]
        if _COUNTS.match(attribute) and _follows(scalars):
            equals.append(reference)
        lengths = [
            (s[0], r[reference]) for s, tag, r in observations if tag == "len" and reference in r
        ]
        if _follows(lengths):
            axes.append((0, 0, reference))
        for ndim in range(1, 4):
            for axis in range(ndim):
                pairs = [
                    (s[axis], r[reference])
                    for s, tag, r in observations
                    if tag == "array" and len(s) == ndim and reference in r
                ]
                if _follows(pairs):
                    axes.append((ndim, axis, reference))
    return axes, equals


def _follows(pairs: list[tuple[int, int]]) -> bool:
    return len(pairs) >= 2 and all(a == b for a, b in pairs) and len({a for a, _ in pairs}) >= 2


# -- the variants each estimator is refitted on


def _variant_data() -> list[dict[str, Any]]:
    """Data sets unlike the base one (60 x 5 float64, binary int labels): wide float32 with
    string labels, narrow integers, missing values, strings (with None), fewer rows than
    features."""
    rng = np.random.default_rng(7)
    wide = rng.uniform(0.0, 1.0, (N_ROWS, 7)).astype(np.float32)
    narrow = rng.integers(0, 5, (N_ROWS, 3))
    three = np.array(["low", "mid", "high"])

    def classes(X: Any, n: int) -> Any:
        return np.minimum((X[:, 0] + X[:, 1]) * n / (2 * X.max()), n - 1).astype(int)

    wide[:, 6] = wide[:, 0]  # collinear: a rank below the feature count
    wide_y = three[classes(wide, 3)]
    few = rng.uniform(0.0, 1.0, (8, 10))  # fewer rows than features
    gappy = rng.uniform(0.0, 1.0, (N_ROWS, 4))
    gappy[rng.uniform(size=gappy.shape) < 0.15] = np.nan  # missing values, where allowed
    words = rng.choice(np.array(["red", "blue", "green", None], dtype=object), (N_ROWS, 3))
    narrow_y = classes(narrow, 3)
    return [
        {
            "X": wide,
            "y_class": wide_y,
            "y_reg": (wide @ np.arange(1.0, 8.0)).astype(np.float64),
            "y_multi": np.column_stack([wide_y, three[classes(wide[:, 2:], 3)]]),
            "y_multi_reg": np.column_stack([wide[:, 0], wide[:, 1] + wide[:, 2]]),
            "weights": True,
        },
        {
            "X": narrow,
            "y_class": narrow_y,
            "y_reg": narrow.sum(axis=1),  # integer counts
            "y_multi": np.column_stack([narrow_y, narrow[:, 2] > 2, narrow[:, 0] % 2]).astype(int),
            "y_multi_reg": np.column_stack([narrow.sum(axis=1), narrow[:, 0]]),
            "weights": False,
        },
        {
            "X": gappy,
            "y_class": (np.nan_to_num(gappy[:, 0]) > 0.5).astype(int),
            "y_reg": np.nan_to_num(gappy).sum(axis=1),
            "y_multi": np.column_stack([gappy[:, 1] > 0.5, gappy[:, 2] > 0.5]).astype(int),
            "y_multi_reg": np.nan_to_num(gappy[:, :2]),
            "weights": True,
        },
        {
            "X": words,
            "y_class": (words[:, 0] == "red").astype(int),
            "y_reg": (words[:, 1] == "blue").astype(float),
            "y_multi": np.column_stack([words[:, 0] == "red", words[:, 1] == "blue"]).astype(int),
            "y_multi_reg": np.column_stack([words[:, 0] == "red", words[:, 1] == "blue"]) * 1.0,
            "weights": False,
        },
        {
            "X": few,
            "y_class": np.array([0, 1] * 4),
            "y_reg": few[:, 0] * 2.0,
            "y_multi": np.column_stack([[0, 1] * 4, [1, 1, 0, 0] * 2]),
            "y_multi_reg": few[:, :2],
            "weights": False,
        },
    ]


#: Parameter switches beyond the string options and booleans of ``_parameter_constraints``
#: that change what a fit stores, tried one at a time where they exist.
_SWITCHES: tuple[tuple[str, object], ...] = (
    ("n_components", 2),
    ("oob_score", True),
    ("max_features", 0.5),
    # Encoders group infrequent categories only when asked (they then keep
    # _infrequent_indices and the infrequent mapping).
    ("min_frequency", 2),
    ("max_categories", 2),
)


def _switches(estimator: Any) -> list[tuple[str, object]]:
    """Each other legal value of the estimator's string-option and boolean parameters (as
    scikit-learn's ``_parameter_constraints`` states them), and :data:`_SWITCHES`."""
    from sklearn.utils._param_validation import Hidden, StrOptions

    params = estimator.get_params(deep=False)
    table = getattr(type(estimator), "_parameter_constraints", None)
    found: list[tuple[str, object]] = []
    for name, constraints in sorted(table.items() if isinstance(table, dict) else ()):
        if name not in params or not isinstance(constraints, list):
            continue
        for constraint in constraints:
            inner = constraint.constraint if isinstance(constraint, Hidden) else constraint
            if isinstance(inner, StrOptions):
                found.extend((name, option) for option in sorted(inner.options))
            elif (inner == "boolean" or inner is bool) and isinstance(params[name], bool):
                found.append((name, not params[name]))
    found.extend(_SWITCHES)
    return [(n, v) for n, v in found if n in params and params[n] != v]


def _fit_variant(estimator: Any, X: Any, data: dict[str, Any], multi: bool) -> Any | None:
    """A clone of ``estimator`` fitted on the variant, or None when it does not fit."""
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.utils.validation import has_fit_parameter

    try:
        twin = clone(estimator)
        if is_classifier(twin) or is_regressor(twin):
            kind = "class" if is_classifier(twin) else "reg"
            y = data[f"y_multi_{kind}" if kind == "reg" and multi else f"y_{kind}"]
            if multi and kind == "class":
                y = data["y_multi"]
            kwargs: dict[str, Any] = {}
            if data.get("weights") and has_fit_parameter(twin, "sample_weight"):
                kwargs["sample_weight"] = np.linspace(0.5, 1.5, len(y))
            twin.fit(X, y, **kwargs)
        else:
            twin.fit(X)
    except Exception:  # a variant this estimator does not take: nothing to learn from it
        return None
    # Some attributes appear at predict or transform time; outputs that are not one array
    # (a multi-output predict_proba) are no reason to drop the fit.
    with contextlib.suppress(Exception):
        outputs(twin, X)
    return twin


def _variants(estimator: Any, X: Any) -> list[Any]:
    """The estimator refitted on each variant of the data and parameters it accepts."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or not hasattr(estimator, "get_params"):
        return []  # text, dicts, images, labels: fitted on their one input only
    tags = estimator.__sklearn_tags__()
    multi_output = tags.target_tags.multi_output and tags.target_tags.single_output
    single = tags.target_tags.single_output
    fitted: list[Any] = []
    for index, data in enumerate(_variant_data()):
        frame = pd.DataFrame(data["X"], columns=[f"c{i}" for i in range(data["X"].shape[1])])
        inputs = [data["X"], frame]
        if index == 0:  # sparse input: some fits keep their training data as given
            inputs.append(scipy.sparse.csr_matrix(data["X"]))
        for X_v in inputs:
            twin = _fit_variant(estimator, X_v, data, multi=not single)
            if twin is not None:
                fitted.append(twin)
        if multi_output:
            twin = _fit_variant(estimator, data["X"], data, multi=True)
            if twin is not None:
                fitted.append(twin)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    base = {"y_class": (X[:, 0] + X[:, 1] > 1.0).astype(int), "y_reg": X[:, 0]}
    twin = _fit_variant(estimator, frame, base, multi=False)
    if twin is not None:
        fitted.append(twin)
    for parameter, value in _switches(estimator):
        switched = _clone_with(estimator, parameter, value)
        if switched is not None:
            twin = _fit_variant(switched, X, {**base, "y_multi": None}, multi=False)
            if twin is not None:
                fitted.append(twin)
    return fitted


def _clone_with(estimator: Any, parameter: str, value: object) -> Any | None:
    from sklearn.base import clone

    try:
        twin = clone(estimator)
        twin.set_params(**{parameter: value})
        if parameter == "oob_score" and "bootstrap" in twin.get_params(deep=False):
            twin.set_params(bootstrap=True)
    except Exception:
        return None
    return twin


def _churn_pipelines() -> list[Any]:
    from data import FEATURES, TARGET, generate  # examples/churn/data.py
    from train import CLASSIFIERS, build_pipeline  # examples/churn/train.py

    frame = generate(400, seed=0)
    X, y = frame[FEATURES], frame[TARGET]
    return [build_pipeline(kind, n_estimators=5).fit(X, y) for kind in CLASSIFIERS]


def _as_loaded(model: Any) -> Any:
    """``model`` as a file gives it back: state goes through ``__getstate__`` (which drops
    caches, as ``MultiLabelBinarizer``'s ``_cached_dict``) and ``__setstate__``."""
    return pickle.loads(pickle.dumps(model, protocol=5))


def build() -> Tables:
    tables = Tables()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted, _ = fitted_models()
        for model in fitted:
            # Recorded as fitted, then once used: some attributes appear (or fill a cache)
            # at predict or transform time.
            record(_as_loaded(model.estimator), tables)
            outputs(model.estimator, model.X)
            record(_as_loaded(model.estimator), tables)
            for twin in _variants(model.estimator, model.X):
                record(_as_loaded(twin), tables)
        for pipeline in _churn_pipelines():
            record(_as_loaded(pipeline), tables)
    return tables


# -- rendering


def _format(text: str, target: Path) -> str:
    """Formatted as the repository's gate formats it, so --check compares like with like."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def render_attributes(tables: Tables) -> str:
    lines = [
        '"""Attribute names each class had in a fitted benign model. Data, generated; do not edit.',
        "",
        "Written by ``scripts/generate_state_table.py`` (see its docstring); the state proofs",
        "refuse an attribute a file sets that no fit of the class produced.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["ATTRIBUTES"]',
        "",
        "ATTRIBUTES: dict[str, frozenset[str]] = {",
    ]
    for name in sorted(tables.names):
        names = sorted(tables.names[name])
        lines.append(f"    {name!r}: frozenset(")
        lines.append("        {")
        lines.extend(f"            {n!r}," for n in names)
        lines.append("        }")
        lines.append("    ),")
    lines.append("}")
    return _format("\n".join(lines) + "\n", ATTRIBUTES_FILE)


def render_kinds(tables: Tables) -> str:
    lines = [
        '"""Kinds and shapes of each estimator\'s fitted attributes. Data, generated; do not edit.',
        "",
        "Written by ``scripts/generate_state_table.py`` (see its docstring). ``KINDS`` maps a",
        "class to its non-parameter attributes and the kinds of value each may hold (the words",
        "of :func:`modelkeep.safety.state.checks.kind_of`); ``SHAPES`` maps a class to the",
        "``(ndim, axis, reference)`` relations of its array attributes (axis ``axis`` of an",
        "``ndim``-D value equals the reference: ``n_features_in_``, ``classes_`` for its",
        "length, ``n_outputs_``; ndim 0 is the length of a list or tuple); ``EQUALS`` to the",
        "references an integer attribute equals.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["EQUALS", "KINDS", "SHAPES"]',
        "",
        "KINDS: dict[str, dict[str, frozenset[str]]] = {",
    ]
    shapes: dict[str, dict[str, list[tuple[int, int, str]]]] = {}
    equals: dict[str, dict[str, list[str]]] = {}
    for name in sorted(tables.kinds):
        lines.append(f"    {name!r}: {{")
        for attribute in sorted(tables.kinds[name]):
            kinds = sorted(widen(attribute, tables.kinds[name][attribute]))
            lines.append(f"        {attribute!r}: frozenset({{{', '.join(map(repr, kinds))}}}),")
            axes, same = shape_relations(attribute, tables.shapes[name].get(attribute, []))
            if axes:
                shapes.setdefault(name, {})[attribute] = axes
            if same:
                equals.setdefault(name, {})[attribute] = same
        lines.append("    },")
    lines.append("}")
    lines.append("")
    lines.append("SHAPES: dict[str, dict[str, tuple[tuple[int, int, str], ...]]] = {")
    for name in sorted(shapes):
        lines.append(f"    {name!r}: {{")
        for attribute, axes in sorted(shapes[name].items()):
            lines.append(f"        {attribute!r}: ({', '.join(map(repr, axes))},),")
        lines.append("    },")
    lines.append("}")
    lines.append("")
    lines.append("EQUALS: dict[str, dict[str, tuple[str, ...]]] = {")
    for name in sorted(equals):
        lines.append(f"    {name!r}: {{")
        for attribute, same in sorted(equals[name].items()):
            lines.append(f"        {attribute!r}: ({', '.join(map(repr, same))},),")
        lines.append("    },")
    lines.append("}")
    return _format("\n".join(lines) + "\n", KINDS_FILE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    tables = build()
    outputs_: list[tuple[Path, str]] = [
        (ATTRIBUTES_FILE, render_attributes(tables)),
        (KINDS_FILE, render_kinds(tables)),
    ]
    if args.check:
        stale = [path for path, text in outputs_ if path.read_text() != text]
        for path in stale:
            print(f"{path} differs; run without --check")
        if not stale:
            print("up to date")
        return 1 if stale else 0
    for path, text in outputs_:
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
