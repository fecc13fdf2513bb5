"""What isolation costs: load(isolate=True) against the in-process model.

For the churn random forest and logistic regression: start-up (load in a fresh sandboxed
worker vs an in-process load in this warm process, and vs a load in a fresh interpreter,
which pays the same imports the worker does), then the median time of a 1-record and a 10,000-row
``predict_proba`` through the worker vs in-process, and their ratios.

    .venv/bin/python benchmarks/bench_isolate.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "churn"))
from _timing import timed
from data import FEATURES, generate
from train import train

import modelkeep


def _row(name: str, isolated: float, local: float) -> str:
    return (
        f"  {name:<22} {local * 1000:10.2f} ms {isolated * 1000:10.2f} ms {isolated / local:8.1f}x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    data = generate(12_000, seed=0)
    rows = data[list(FEATURES)]
    one = rows.iloc[:1]
    many = rows.iloc[:10_000]
    print(f"{'':24} {'in-process':>13} {'isolated':>13} {'ratio':>9}")
    for classifier in ("random_forest", "logistic"):
        pipeline, _, _ = train(data, classifier, n_estimators=100)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / classifier
            modelkeep.save(pipeline, path, sample=rows.iloc[:2000], name="churn")
            start = time.perf_counter()
            local = modelkeep.load(path)
            local_load = time.perf_counter() - start
            # What the worker pays is a fresh interpreter's imports: compare with one too.
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", f"import modelkeep; modelkeep.load({str(path)!r})"],
                check=True,
                capture_output=True,
            )
            cold_load = time.perf_counter() - start
            start = time.perf_counter()
            isolated = modelkeep.load(path, isolate=True)
            isolated_load = time.perf_counter() - start
            with isolated:
                print(classifier)
                print(_row("start-up (load, warm)", isolated_load, local_load))
                print(_row("start-up (fresh python)", isolated_load, cold_load))
                for name, frame, repeat in (
                    ("1 record", one, args.repeat),
                    ("10,000 rows", many, max(3, args.repeat // 4)),
                ):
                    t_local = timed(lambda f=frame, m=local: m.predict_proba(f), repeat)
                    t_isolated = timed(lambda f=frame, m=isolated: m.predict_proba(f), repeat)
                    print(_row(f"predict_proba {name}", t_isolated, t_local))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
