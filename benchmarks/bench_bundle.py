"""Side-by-side timings for the bundle, reported as ratios from one run.

1. Loading: ``modelkeep.load`` (manifest, hashes, environment, skops load, tree validation,
   golden replay) vs ``skops.io.load`` of the same artifact file with the same trusted types.
2. Predicting one record: validated ``Model.predict(record)`` vs the raw pipeline's
   ``predict`` on a one-row DataFrame.

Targets (issue 2): load at most 1.3x, single-record predict at most 1.2x.

Run: ``make bench`` or ``python benchmarks/bench_bundle.py [--rows N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import skops.io as sio

import modelkeep
from modelkeep.safety.skops_trust import REVIEWED_TYPES, VALIDATED_TREE_TYPES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "churn"))
from _timing import timed
from data import FEATURES, generate
from train import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)

    data = generate(args.rows, seed=0)
    pipeline, metrics, x_train = train(data, classifier="random_forest", seed=0)
    trusted = sorted(REVIEWED_TYPES | VALIDATED_TREE_TYPES)

    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "churn"
        modelkeep.save(
            pipeline,
            bundle,
            sample=x_train,
            name="churn",
            metrics=metrics,
            labels={0: "No Churn", 1: "Churn"},
        )
        artifact = bundle / "artifacts" / "pipeline.skops"
        size_mb = artifact.stat().st_size / 1e6

        # Alternate the two so that drift in machine load hits both alike.
        load_mk: list[float] = []
        load_skops: list[float] = []
        for _ in range(args.repeat):
            load_skops.append(timed(lambda: sio.load(artifact, trusted=trusted), 1))
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                load_mk.append(timed(lambda: modelkeep.load(bundle), 1))
        t_skops, t_mk = statistics.median(load_skops), statistics.median(load_mk)

        model = modelkeep.load(bundle)
        record = data[FEATURES].iloc[[7]].to_dict(orient="records")[0]
        one_row = pd.DataFrame([record])[FEATURES]
        pred_raw: list[float] = []
        pred_mk: list[float] = []
        for _ in range(args.repeat):
            pred_raw.append(timed(lambda: pipeline.predict(one_row), 5, number=10))
            pred_mk.append(timed(lambda: model.predict(record), 5, number=10))
        p_raw, p_mk = statistics.median(pred_raw), statistics.median(pred_mk)

    rows = [
        ("load (all checks) vs skops.io.load", t_mk, t_skops, 1.3),
        ("predict one record (validated) vs pipeline.predict", p_mk, p_raw, 1.2),
    ]
    print(f"300-tree random forest churn pipeline, {args.rows} rows, artifact {size_mb:.1f} MB")
    print(f"{'measurement':55} {'modelkeep':>11} {'baseline':>11} {'ratio':>7} {'target':>7}")
    for name, ours, base, target in rows:
        ratio = ours / base
        flag = "" if ratio <= target else "  (over target)"
        print(
            f"{name:55} {ours * 1e3:9.2f}ms {base * 1e3:9.2f}ms {ratio:6.2f}x {target:6.1f}x{flag}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
