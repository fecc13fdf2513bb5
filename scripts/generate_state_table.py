"""Derive the attribute table of the state proofs from what fitted benign models hold.

Fits the benign models of ``scripts/benign_models.py`` (every estimator of
``all_estimators()`` that fits on small data, XGBoost, LightGBM, a pandas-fed pipeline),
each used once for every output method (some attributes appear then), a second time on a
DataFrame where they accept one, and the churn example's pipelines; walks
each fitted object graph and records, for every class with instance attributes, the names
those attributes had. The result is written to ``src/modelkeep/safety/state/attributes.py``
as data: an attribute a file sets that no fit of the class produced is refused at load time
(``__sklearn_tags__`` in a BUILD state, an ``n_jobs`` on a class without one ...).

Run from the repository root after upgrading scikit-learn, and review the diff::

    .venv/bin/python scripts/generate_state_table.py [--check]

``--check`` compares with the file instead of writing it and exits 1 on a difference.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import types
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "examples" / "churn"))

from benign_models import fitted_models, outputs  # noqa: E402

TARGET = ROOT / "src" / "modelkeep" / "safety" / "state" / "attributes.py"

_LEAVES = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, type)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def record(root: object, table: dict[str, set[str]]) -> None:
    """Add the attribute names of every object reachable from ``root`` to ``table``."""
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
            table[_name(type(item))].update(k for k in attributes if isinstance(k, str))
            stack.extend(attributes.values())


def _refit_on_frame(estimator: Any, X: Any) -> Any | None:
    """A clone fitted on ``X`` as a DataFrame (``feature_names_in_`` and kin), or None."""
    from sklearn.base import clone, is_classifier, is_regressor

    if not isinstance(X, np.ndarray) or X.ndim != 2:
        return None
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    try:
        twin = clone(estimator)
        if is_classifier(estimator) or is_regressor(estimator):
            y = (X[:, 0] + X[:, 1] > 1.0).astype(int) if is_classifier(estimator) else X[:, 0]
            twin.fit(frame, y)
        else:
            twin.fit(frame)
    except Exception:  # a meta-estimator or one that needs another target: not this variant
        return None
    return twin


def _churn_pipelines() -> list[Any]:
    from data import FEATURES, TARGET, generate  # examples/churn/data.py
    from train import CLASSIFIERS, build_pipeline  # examples/churn/train.py

    frame = generate(400, seed=0)
    X, y = frame[FEATURES], frame[TARGET]
    return [build_pipeline(kind, n_estimators=5).fit(X, y) for kind in CLASSIFIERS]


def build() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = defaultdict(set)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted, _ = fitted_models()
        for model in fitted:
            # Used once first: some attributes appear at predict or transform time.
            outputs(model.estimator, model.X)
            record(model.estimator, table)
            twin = _refit_on_frame(model.estimator, model.X)
            if twin is not None:
                record(twin, table)
        for pipeline in _churn_pipelines():
            record(pipeline, table)
    return {name: frozenset(names) for name, names in table.items()}


def render(table: dict[str, frozenset[str]]) -> str:
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
    for name in sorted(table):
        names = sorted(table[name])
        lines.append(f"    {name!r}: frozenset(")
        lines.append("        {")
        lines.extend(f"            {n!r}," for n in names)
        lines.append("        }")
        lines.append("    ),")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    # Formatted as the repository's gate formats it, so --check compares like with like.
    return subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    text = render(build())
    if args.check:
        same = TARGET.read_text() == text
        print("up to date" if same else f"{TARGET} differs; run without --check")
        return 0 if same else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
