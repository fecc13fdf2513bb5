"""Derive the pickle allowlist from what fitted benign models really reference.

Fits every estimator of ``sklearn.utils.all_estimators()`` that fits on small data, plus
XGBoost, LightGBM and a pandas-fed pipeline (``scripts/benign_models.py``), pickles each
with protocols 0 to 5 and with ``joblib.dump``, and collects with modelkeep's own scanner:

* every global referenced (``ALLOWED``),
* the globals called with arguments by REDUCE, OBJ or INST (``CALLABLE``),
* the classes of objects that receive a BUILD whose class (or a base) is not referenced
  itself, e.g. ``numpy.random.mtrand.RandomState`` made by a constructor function.

It prints the sets as Python, for review by hand before they go into
``src/modelkeep/safety/allowlist.py``; nothing is written. ``--check`` instead compares with
that file and exits 1 when a name is missing from it (names it holds beyond the generated
ones, such as numpy 1.x aliases, are listed for information).

Run from the repository root::

    .venv/bin/python scripts/generate_allowlist.py [--check]

Unpickling happens only on the pickles this script just made from its own fitted models.
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import joblib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benign_models import fitted_models

from modelkeep.safety import allowlist
from modelkeep.safety.pickle_scan import scan_pickle
from modelkeep.safety.policy import is_never


def _fullname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _BuildRecorder(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """A plain unpickler that records the class of every BUILD target (our own pickles only)."""

    dispatch = pickle._Unpickler.dispatch.copy()  # type: ignore[attr-defined]

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.targets: set[type] = set()

    def load_build(self) -> None:
        self.targets.add(type(self.stack[-2]))
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    dispatch[pickle.BUILD[0]] = load_build


def extra_objects() -> list[tuple[str, Any]]:
    """Values that fitted pipelines hold beyond the default-parameter estimators above:
    pandas objects, scipy sparse matrices and arrays, numpy types given as ``dtype=``,
    random states, and builtin containers pickled by older protocols."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    frame = pd.DataFrame(
        {
            "i": np.arange(3),
            "f": [0.5, np.nan, 1.5],
            "s": ["a", "b", None],
            "c": pd.Categorical(["x", "y", "x"]),
            "b": [True, False, True],
            "t": pd.to_datetime(["2026-01-01", "2026-01-02", None]),
        }
    )
    dense = np.eye(3)
    objects: list[tuple[str, Any]] = [
        ("pandas.DataFrame", frame),
        ("pandas.Series", frame["f"]),
        ("pandas.Index", frame.columns),
        ("pandas.Index[object]", pd.Index(["a", "b"], dtype=object)),
        ("pandas.RangeIndex", frame.index),
        ("pandas.Categorical", frame["c"].array),
        ("pandas.CategoricalDtype", frame["c"].dtype),
        ("pandas.Timestamp", frame["t"].iloc[0]),
        ("numpy.random.RandomState", np.random.RandomState(0)),
        ("numpy.random.Generator", np.random.default_rng(0)),
        ("builtins containers", [{1, 2}, frozenset({3}), complex(1, 2), range(3), b"", b"x"]),
    ]
    for kind in ("csr", "csc", "coo"):
        for suffix in ("matrix", "array"):
            name = f"{kind}_{suffix}"
            objects.append((f"scipy.sparse.{name}", getattr(sparse, name)(dense)))
    dtypes = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64]
    dtypes += [np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64]
    dtypes += [np.complex128, np.object_, np.str_, np.bytes_, np.datetime64, np.timedelta64]
    objects.append(("numpy types as dtype=", dtypes))
    objects.append(("builtin types as dtype=", [float, int, str, bool, object, complex]))
    return objects


def collect() -> tuple[set[str], set[str], set[str], dict[str, set[str]]]:
    """(referenced, called, build-only classes, {name: models referencing it})."""
    referenced: set[str] = set()
    called: set[str] = set()
    targets: set[type] = set()
    users: dict[str, set[str]] = defaultdict(set)
    fitted, skipped = fitted_models()
    print(f"# {len(fitted)} fitted models; not covered: {len(skipped)}", file=sys.stderr)
    for name, reason in sorted(skipped.items()):
        print(f"#   {name}: {reason}", file=sys.stderr)
    subjects = [(m.name, m.estimator) for m in fitted] + extra_objects()
    for name, subject in subjects:
        streams = [pickle.dumps(subject, protocol=p) for p in range(6)]
        buffer = io.BytesIO()
        joblib.dump(subject, buffer)
        streams.append(buffer.getvalue())
        for data in streams:
            scan = scan_pickle(data)
            if scan.error is not None or scan.findings:
                raise SystemExit(f"{name}: {scan.error or scan.findings}")
            for ref in scan.references:
                referenced.add(ref.fullname)
                users[ref.fullname].add(name)
            called |= {f"{m}.{n}" for m, n in scan.calls}
        for data in streams[:6]:  # plain pickles only; joblib's layout is not plain pickle
            recorder = _BuildRecorder(data)
            recorder.load()
            targets |= recorder.targets
    build_only = set()
    for cls in targets:
        if not any(_fullname(c) in referenced for c in cls.__mro__[:-1]):
            build_only.add(_fullname(cls))
    return referenced, called, build_only, users


def _print_set(title: str, names: set[str]) -> None:
    print(f"# {title}")
    by_package: dict[str, list[str]] = defaultdict(list)
    for name in sorted(names):
        by_package[name.split(".")[0]].append(name)
    for package, members in sorted(by_package.items()):
        print(f"    # {package}")
        for member in members:
            print(f'    "{member}",')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with allowlist.py")
    args = parser.parse_args()
    referenced, called, build_only, users = collect()
    allowed = referenced | build_only
    never = sorted(n for n in allowed if is_never(*n.rsplit(".", 1)))
    if never:
        print(f"# NEVER-listed names referenced (review!): {never}", file=sys.stderr)
    if args.check:
        missing = sorted(allowed - allowlist.ALLOWED)
        missing_calls = sorted(called - allowlist.CALLABLE)
        print("missing from ALLOWED:", missing or "none")
        print("missing from CALLABLE:", missing_calls or "none")
        print("in ALLOWED beyond the generated names:", sorted(allowlist.ALLOWED - allowed))
        for name in missing:
            print(f"  {name}: used by {', '.join(sorted(users.get(name, {'BUILD'})))}")
        return 1 if missing or missing_calls or never else 0
    _print_set("ALLOWED (referenced, plus classes that only receive BUILD)", allowed)
    _print_set("CALLABLE (called with arguments)", called)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
