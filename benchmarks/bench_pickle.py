"""Pickle and joblib safety, measured: load speed, scan speed, and detection side by side.

1. ``modelkeep.safe_load`` vs ``joblib.load`` of the same joblib file of a 300-tree random
   forest churn pipeline (deep trees, >= 50 MB), target at most 1.5x; and vs ``pickle.load``
   of its protocol-5 pickle.
2. ``modelkeep.scan`` throughput in MB/s on both files and on the xz-compressed joblib.
3. The hostile corpus of the tests (``tests/safety/payloads.py``), picklescan's own hostile
   files (``tests/corpora/picklescan``) and the benign estimators of the coverage test
   (``scripts/benign_models.py``, each as joblib and as pickle) through picklescan,
   modelscan, fickling and modelkeep: hostile files flagged, benign files flagged (false
   alarms), and files a tool could not read.

Nothing hostile is ever unpickled here: every tool below scans without loading, and
modelkeep's scan imports nothing the files name.

Run: ``python benchmarks/bench_pickle.py [--rows N] [--repeat R] [--no-tools]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pickle
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib

import modelkeep

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "churn"))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "safety"))
from data import FEATURES, TARGET, generate  # noqa: E402
from train import build_pipeline  # noqa: E402

CORPUS = ROOT / "tests" / "corpora" / "picklescan"
NOT_HOSTILE = {"benign0_v0.pkl", "benign0_v3.pkl", "benign0_v4.pkl", "broken_model.pkl"}


def _cpu(func: Callable[[], Any]) -> float:
    """CPU seconds of one call: steadier than wall time on a shared machine."""
    start = time.process_time()
    func()
    return time.process_time() - start


def _alternate(a: Callable[[], Any], b: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median CPU seconds of ``a`` and ``b``, run alternately so drift hits both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(_cpu(a))
        tb.append(_cpu(b))
    return statistics.median(ta), statistics.median(tb)


def _model(rows: int) -> Any:
    data = generate(rows, seed=0)
    pipeline = build_pipeline(n_estimators=300, seed=0)
    # Fully grown trees: the size (and node count) a real forest reaches.
    pipeline.set_params(classifier__min_samples_leaf=1, classifier__n_jobs=2)
    pipeline.fit(data[FEATURES], data[TARGET])
    return pipeline.set_params(classifier__n_jobs=1)


def speed(rows: int, repeat: int, tmp: Path) -> None:
    model = _model(rows)
    jl, pk, xz = tmp / "forest.joblib", tmp / "forest.pkl", tmp / "forest-xz.joblib"
    joblib.dump(model, jl)
    pk.write_bytes(pickle.dumps(model, protocol=5))
    joblib.dump(model, xz, compress=("xz", 3))
    sizes = {p: p.stat().st_size / 1e6 for p in (jl, pk, xz)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modelkeep.safe_load(jl)  # warm-up: imports, and no warning on a clean file

    def pickle_load() -> Any:
        with pk.open("rb") as stream:
            return pickle.load(stream)

    rows_out = []
    base, ours = _alternate(lambda: joblib.load(jl), lambda: modelkeep.safe_load(jl), repeat)
    rows_out.append((f"safe_load vs joblib.load ({sizes[jl]:.1f} MB joblib)", ours, base, 1.5))
    base, ours = _alternate(pickle_load, lambda: modelkeep.safe_load(pk), repeat)
    rows_out.append(
        (f"safe_load vs pickle.load ({sizes[pk]:.1f} MB pickle, protocol 5)", ours, base, None)
    )
    print(f"300-tree random forest churn pipeline, fully grown trees, {rows} rows")
    print(f"| {'measurement':58} | {'modelkeep':>10} | {'baseline':>10} | {'ratio':>6} | target |")
    print(f"|{'-' * 60}|{'-' * 12}|{'-' * 12}|{'-' * 8}|--------|")
    for name, mine, theirs, target in rows_out:
        goal = f"{target:.1f}x" if target else "-"
        print(
            f"| {name:58} | {mine * 1e3:8.1f}ms | {theirs * 1e3:8.1f}ms | "
            f"{mine / theirs:5.2f}x | {goal:>6} |"
        )
    print()
    print(f"| {'scan':40} | {'size':>9} | {'time':>9} | {'throughput':>12} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 11}|{'-' * 14}|")
    for label, path in (("joblib", jl), ("pickle, protocol 5", pk), ("joblib, xz-compressed", xz)):
        seconds = statistics.median(_cpu(lambda p=path: modelkeep.scan(p)) for _ in range(repeat))
        print(
            f"| {'modelkeep.scan, ' + label:40} | {sizes[path]:6.1f} MB | "
            f"{seconds * 1e3:7.1f}ms | {sizes[path] / seconds:7.0f} MB/s |"
        )
    print()


# -------------------------------------------------------------------- detection


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The other tools log and print; keep the table readable."""
    logging.disable(logging.CRITICAL)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _picklescan(path: Path) -> str:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(str(path))
    if result.issues_count or result.infected_files:
        return "flagged"
    return "error" if result.scan_err else "passed"


def _modelscan(path: Path) -> str:
    from modelscan.modelscan import ModelScan

    result = ModelScan().scan(str(path))
    if result["issues"]:
        return "flagged"
    skipped = result["summary"]["skipped"]["total_skipped"]
    return "error" if result["errors"] or skipped else "passed"


def _fickling(path: Path) -> str:
    import fickling

    return "passed" if fickling.is_likely_safe(str(path)) else "flagged"


def _modelkeep(path: Path) -> str:
    report = modelkeep.scan(path)
    if report.untrusted or report.issues:
        return "flagged"
    return "error" if report.errors else "passed"


TOOLS: dict[str, Callable[[Path], str]] = {
    "picklescan": _picklescan,
    "modelscan": _modelscan,
    "fickling": _fickling,
    "modelkeep": _modelkeep,
}


def _run(tool: Callable[[Path], str], path: Path) -> str:
    try:
        with _quiet():
            return tool(path)
    except Exception:  # a tool that cannot read a file reports nothing about it
        return "error"


def _hostile_corpus(tmp: Path) -> list[Path]:
    from payloads import PAYLOADS

    paths = []
    for payload in PAYLOADS:
        if payload.extension is not None:
            continue  # needs a registered extension code in the loading process
        name, data = payload.build(tmp / f"marker-{payload.id}")
        path = tmp / f"{payload.id}-{name}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _benign(tmp: Path) -> list[Path]:
    from benign_models import fitted_models

    fitted, _ = fitted_models()
    paths = []
    for model in fitted:
        stem = model.name.replace("(", "_").replace(")", "_").replace(" ", "").replace(",", "_")
        joblib.dump(model.estimator, tmp / f"{stem}.joblib")
        (tmp / f"{stem}.pkl").write_bytes(pickle.dumps(model.estimator, protocol=5))
        paths += [tmp / f"{stem}.joblib", tmp / f"{stem}.pkl"]
    return paths


def detection(tmp: Path) -> None:
    own = tmp / "own"
    own.mkdir()
    benign_dir = tmp / "benign"
    benign_dir.mkdir()
    sets = {
        "hostile, built by modelkeep's tests": (_hostile_corpus(own), "flagged"),
        "hostile, picklescan's corpus": (
            sorted(
                p
                for p in CORPUS.iterdir()
                if p.suffix in (".pkl", ".pickle") and p.name not in NOT_HOSTILE
            ),
            "flagged",
        ),
        "benign estimators (joblib + pickle)": (_benign(benign_dir), "passed"),
    }
    print(f"| {'files':38} | {'count':>5} | " + " | ".join(f"{t:>22}" for t in TOOLS) + " |")
    print(f"|{'-' * 40}|{'-' * 7}|" + "|".join("-" * 24 for _ in TOOLS) + "|")
    for label, (paths, good) in sets.items():
        cells = []
        for tool in TOOLS.values():
            outcomes = [_run(tool, p) for p in paths]
            flagged, errors = outcomes.count("flagged"), outcomes.count("error")
            cell = f"{flagged} flagged" if good == "flagged" else f"{flagged} false alarms"
            cells.append(f"{cell}, {errors} errors")
        print(f"| {label:38} | {len(paths):5} | " + " | ".join(f"{c:>22}" for c in cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-tools", action="store_true", help="skip the detection table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        speed(args.rows, args.repeat, tmp)
        if not args.no_tools:
            detection(tmp)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
