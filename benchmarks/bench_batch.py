"""Batch scoring, one run: ``modelkeep predict`` against the naive pandas loop.

On 1,000,000 generated churn rows (``examples/churn/data.py``) in one CSV file, scored
by the churn pipeline (impute, scale, one-hot, random forest), each measured in its own
process, wall time from start to exit (imports and loading included):

1. the naive baseline: ``pandas.read_csv`` of the whole file, a ``joblib``-loaded
   pipeline's ``predict_proba``, ``to_csv``;
2. ``modelkeep predict --format skops`` (streaming, validated, the bundle verified);
3. ``modelkeep predict --format onnx``;
4. ``modelkeep predict --format onnx --engine dask --workers 2`` (a LocalCluster).

Figures: rows/s (wall time, and per CPU second of the run's processes, which a busy shared
machine distorts less) and peak RSS. Peak RSS is the largest resident set of any one process of
the run (``ru_maxrss`` of the run's processes, read by a small launcher process); for the
Dask run the sum over its process tree, sampled every 50 ms, is also shown. Targets: ONNX
at least 2x the baseline's rows/s, and peak memory under a quarter of the baseline's.

Run: ``python benchmarks/bench_batch.py [--rows N] [--n-estimators T] [--chunk-size C]
[--classifier random_forest|logistic|hist_gradient_boosting]`` (``make bench-batch``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import joblib

import modelkeep

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "churn"))
from data import FEATURES, TARGET, generate  # noqa: E402
from train import LABELS, train  # noqa: E402

BASELINE = """
import sys
import joblib
import pandas as pd
source, model, output = sys.argv[1:4]
frame = pd.read_csv(source)
pipeline = joblib.load(model)
features = {features!r}
proba = pipeline.predict_proba(frame[features])
out = frame[["customer_id"]].copy()
out["prediction"] = pipeline.classes_[proba.argmax(axis=1)]
for j, label in enumerate(pipeline.classes_):
    out[f"proba_{{label}}"] = proba[:, j]
out.to_csv(output, index=False)
"""


# A small process between the benchmark and each run: Linux keeps the peak RSS of the image
# a child was forked from (this benchmark, with scikit-learn loaded) in the child's
# ru_maxrss after exec, so the run is started from this lean launcher instead, and the
# launcher reports its children's peak.
LAUNCHER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
sys.stderr.write(f"\\nMAXRSS_KB {usage.ru_maxrss} CPU_S {cpu}\\n")
sys.exit(status)
"""


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * page
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _run(name: str, command: list[str], rows: int) -> dict[str, object]:
    """Run ``command``; wall seconds, rows/s, peak RSS (one process, and the tree's sum)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", LAUNCHER, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak_tree = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not done.is_set():
            peak_tree = max(peak_tree, _tree_rss(process.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = (data.decode() for data in process.communicate())
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0 or "MAXRSS_KB" not in err:
        raise SystemExit(f"{name} failed (status {process.returncode}):\n{out}\n{err}")
    reported = err.rsplit("MAXRSS_KB", 1)[1].split()
    peak_kb, cpu = int(reported[0]), float(reported[2])
    return {
        "name": name,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "cpu_seconds": cpu,
        "rows_per_cpu_s": rows / cpu if cpu > 0 else 0.0,
        "peak_rss_mb": peak_kb / 1024,  # Linux: kilobytes
        "peak_tree_mb": peak_tree / 2**20,
        "stdout": out,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=16_384)
    parser.add_argument("--classifier", default="random_forest", help="as examples/churn/train.py")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        return _bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(args: argparse.Namespace, tmp: Path) -> int:
    print(f"uptime: {Path('/proc/loadavg').read_text().strip()} (load averages, 1/5/15 min)")
    print(f"cores: {os.cpu_count()}")
    data = generate(5000, seed=0)
    pipeline, metrics, x_train = train(
        data, args.classifier, seed=0, n_estimators=args.n_estimators
    )
    bundle = tmp / "churn"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        modelkeep.save(
            pipeline,
            bundle,
            sample=x_train,
            name="churn",
            labels=LABELS,
            metrics=metrics,
            formats=("skops", "onnx"),
        )
    model_file = tmp / "churn.joblib"
    joblib.dump(pipeline, model_file)
    source = tmp / "customers.csv"
    started = time.perf_counter()
    generate(args.rows, seed=1).drop(columns=[TARGET]).to_csv(source, index=False)
    print(
        f"input: {args.rows:,} rows, {source.stat().st_size / 2**20:.1f} MiB CSV "
        f"(generated in {time.perf_counter() - started:.1f} s); model: {args.classifier} "
        f"({args.n_estimators} trees for a forest); chunk size {args.chunk_size:,}"
    )
    cli = [sys.executable, "-m", "modelkeep", "predict", str(bundle), str(source)]
    common = ["--keep-columns", "customer_id", "--chunk-size", str(args.chunk_size)]
    runs = [
        (
            "baseline (pandas + joblib)",
            [
                sys.executable,
                "-c",
                BASELINE.format(features=FEATURES),
                str(source),
                str(model_file),
                str(tmp / "baseline.csv"),
            ],
        ),
        (
            "modelkeep predict, skops",
            [*cli, "-o", str(tmp / "skops.csv"), "--format", "skops", *common],
        ),
        (
            "modelkeep predict, onnx",
            [*cli, "-o", str(tmp / "onnx.csv"), "--format", "onnx", *common],
        ),
        (
            "modelkeep predict, onnx, dask (2 workers)",
            [
                *cli,
                "-o",
                str(tmp / "dask"),
                "--format",
                "onnx",
                "--engine",
                "dask",
                "--workers",
                "2",
                *common,
            ],
        ),
    ]
    results = []
    for name, command in runs:
        result = _run(name, command, args.rows)
        results.append(result)
        print(
            f"  {name:<42} {result['seconds']:7.1f} s {result['rows_per_s']:>10,.0f} rows/s "
            f"(CPU {result['cpu_seconds']:.1f} s, {result['rows_per_cpu_s']:,.0f} rows per CPU s) "
            f"peak RSS {result['peak_rss_mb']:7.0f} MiB "
            f"(process tree {result['peak_tree_mb']:.0f} MiB)",
            flush=True,
        )
    baseline = results[0]
    print("\nversus the baseline (speed: rows/s ratio; memory: peak RSS ratio):")
    for result in results[1:]:
        speed = float(result["rows_per_s"]) / float(baseline["rows_per_s"])  # type: ignore[arg-type]
        memory = float(result["peak_rss_mb"]) / float(baseline["peak_rss_mb"])  # type: ignore[arg-type]
        tree = float(result["peak_tree_mb"]) / float(baseline["peak_tree_mb"])  # type: ignore[arg-type]
        cpu = float(result["rows_per_cpu_s"]) / float(baseline["rows_per_cpu_s"])  # type: ignore[arg-type]
        print(
            f"  {result['name']:<42} speed {speed:5.2f}x (per CPU second {cpu:5.2f}x)   "
            f"memory {memory:5.2f}x (tree {tree:.2f}x)"
        )
    onnx = results[2]
    speed = float(onnx["rows_per_s"]) / float(baseline["rows_per_s"])  # type: ignore[arg-type]
    memory = float(onnx["peak_rss_mb"]) / float(baseline["peak_rss_mb"])  # type: ignore[arg-type]
    print(
        f"\ntargets: ONNX >= 2x baseline rows/s: {speed:.2f}x "
        f"({'met' if speed >= 2 else 'NOT met'}); peak memory < 1/4 of the baseline's: "
        f"{memory:.2f} ({'met' if memory < 0.25 else 'NOT met'})"
    )
    print(f"uptime after: {Path('/proc/loadavg').read_text().strip()}")
    print("\nsummary printed by the ONNX run:\n" + str(onnx["stdout"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
