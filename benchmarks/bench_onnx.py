"""ONNX side by side, one run, as ratios: serving one record, large batches, loading.

On the churn pipeline (impute, scale, one-hot) with a 300-tree random forest and with
logistic regression, each saved as skops and ONNX:

1. validated one-record ``Model.predict_proba(record)`` through ONNX vs a raw
   ``InferenceSession.run`` on inputs built beforehand (target: at most 2x);
2. the same vs the scikit-learn pipeline's ``predict_proba`` on a one-row DataFrame
   (target: at least 50x faster);
3. 100,000 rows in one call, ONNX (default session: one thread) vs scikit-learn: rows/s;
4. ``modelkeep.load(format="onnx")`` (all checks) vs ``modelkeep.load`` of the skops
   artifact (all checks) and vs ``skops.io.load`` of the same file.

Run: ``python benchmarks/bench_onnx.py [--rows N] [--repeat R] [--batch B]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

import modelkeep
from modelkeep.onnx.model import OnnxModel
from modelkeep.safety.skops_trust import REVIEWED_TYPES, VALIDATED_TREE_TYPES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "churn"))
from _timing import timed
from data import FEATURES, generate
from train import train


def _alternate(
    a: Callable[[], Any], b: Callable[[], Any], repeat: int, number: int, number_b: int = 0
) -> tuple[float, float]:
    """Median seconds per call of ``a`` and ``b``, alternated so machine drift hits both.

    ``number`` calls of ``a`` per round (``number_b`` of ``b``, default the same): enough
    calls that a round measures the steady state, not the first call after the other.
    """
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(timed(a, 1, number))
        times_b.append(timed(b, 1, number_b or number))
    return statistics.median(times_a), statistics.median(times_b)


def _bench(classifier: str, args: argparse.Namespace, tmp: Path) -> list[tuple[str, str]]:
    data = generate(args.rows, seed=0)
    pipeline, metrics, x_train = train(data, classifier=classifier, seed=0)
    bundle = tmp / classifier
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = modelkeep.save(
            pipeline,
            bundle,
            sample=x_train,
            name="churn",
            metrics=metrics,
            labels={0: "No Churn", 1: "Churn"},
            formats=("skops", "onnx"),
        )
        onnx_model = modelkeep.load(bundle, format="onnx")
    assert isinstance(onnx_model, OnnxModel)
    artifact = manifest.artifact("onnx")
    strategy = artifact.details["conversion"]["strategy"] if artifact else "?"
    session = onnx_model.runtime.session

    record = data[FEATURES].iloc[7].to_dict()
    one_row = pd.DataFrame([record])[FEATURES]
    feeds = onnx_model.prepare(record)  # built once: the raw session's best case

    def ours() -> Any:
        return onnx_model.predict_proba(record)

    def raw() -> Any:
        return session.run(["probabilities"], feeds)

    def sklearn() -> Any:
        return pipeline.predict_proba(one_row)

    t_ours, t_raw = _alternate(ours, raw, args.repeat, 200)
    t_ours2, t_sklearn = _alternate(ours, sklearn, args.repeat, 200, 10)
    np.testing.assert_allclose(ours(), sklearn(), atol=1e-5)

    batch = generate(args.batch, seed=1)[FEATURES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelkeep.SchemaWarning)  # values beyond training
        b_onnx, b_sklearn = _alternate(
            lambda: onnx_model.predict_proba(batch), lambda: pipeline.predict_proba(batch), 3, 1
        )

    skops_file = bundle / "artifacts" / "pipeline.skops"
    trusted = sorted(REVIEWED_TYPES | VALIDATED_TREE_TYPES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        l_onnx, l_skops = _alternate(
            lambda: modelkeep.load(bundle, format="onnx"), lambda: modelkeep.load(bundle), 5, 1
        )
    l_raw = timed(lambda: sio.load(skops_file, trusted=trusted), 5)

    onnx_mb = (bundle / "artifacts" / "pipeline.onnx").stat().st_size / 1e6
    skops_mb = skops_file.stat().st_size / 1e6
    title = f"{classifier}: strategy {strategy}, ONNX {onnx_mb:.1f} MB, skops {skops_mb:.1f} MB"
    return [
        (title, ""),
        (
            "predict_proba(one record), validated, vs raw session.run",
            f"{t_ours * 1e6:8.1f} us vs {t_raw * 1e6:8.1f} us  = {t_ours / t_raw:5.2f}x "
            "(target <= 2x)",
        ),
        (
            "  same vs pipeline.predict_proba(one-row DataFrame)",
            f"{t_ours2 * 1e6:8.1f} us vs {t_sklearn * 1e6:8.1f} us  = "
            f"{t_sklearn / t_ours2:5.0f}x faster (target >= 50x)",
        ),
        (
            f"predict_proba({args.batch:,} rows), ONNX vs scikit-learn",
            f"{args.batch / b_onnx:10,.0f} rows/s vs {args.batch / b_sklearn:10,.0f} rows/s "
            f"= {b_sklearn / b_onnx:5.2f}x the speed",
        ),
        (
            "load (all checks): ONNX vs skops (modelkeep), skops.io.load",
            f"{l_onnx * 1e3:7.1f} ms vs {l_skops * 1e3:7.1f} ms ({l_raw * 1e3:.1f} ms raw)"
            f" = {l_onnx / l_skops:5.2f}x",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="training rows")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for classifier in ("random_forest", "logistic"):
            for name, value in _bench(classifier, args, Path(tmp)):
                print(f"{name:62} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
