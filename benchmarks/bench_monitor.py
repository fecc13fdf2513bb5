"""Monitoring benchmark: ``modelkeep monitor`` against Evidently's data-drift report.

Generated churn rows (``examples/churn/data.py``) in Parquet, 1 million and 5 million, with
a shift in two features (``monthly_charges`` +20 %, ``usage_change`` +15 points) and the
model's outputs as columns (``prediction``, ``probability:<label>``), as a prediction log
holds them. The reference is a churn logistic regression saved by ``modelkeep.save`` on
3,750 training rows (so its reference profile is in the bundle); Evidently is given those
same 3,750 rows as its reference frame.

Measured, each in a fresh process: wall time and peak memory (the process's maximum RSS)
of

- ``modelkeep monitor BUNDLE DATA.parquet --outputs none --json`` (feature drift);
- ``modelkeep monitor BUNDLE DATA.parquet --outputs data --json`` (features and outputs);
- Evidently 0.7's ``Report([DataDriftPreset()]).run(current, reference)`` on the feature
  columns, the Parquet file read whole with pandas (Evidently takes DataFrames);
- at the smallest size, also ``DataDriftPreset(method="psi")``, to set Evidently's PSI
  (equal-width bins over reference and current together) beside ours (the reference's
  quantile bins).

Evidently is installed only into this benchmark's own virtualenv
(``benchmarks/.venv-monitor``, made on the first run) with pandas below 3 (Evidently 0.7
does not import with pandas 3); modelkeep runs from the project's environment.

Run: ``python benchmarks/bench_monitor.py [--rows 1000000 5000000]`` (``make
bench-monitor``). Results go to ``benchmarks/results/monitor.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-monitor"
OUT = HERE / "out" / "monitor"
RESULTS = HERE / "results" / "monitor.json"
MODELKEEP = Path(sys.executable).with_name("modelkeep")
PEER = ("evidently==0.7.23", "pandas<3", "pyarrow")
LABELS = {0: "No Churn", 1: "Churn"}
PART_ROWS = 500_000

# Run inside the Evidently virtualenv: read the files, run the preset, print the drifted
# columns with each column's method, threshold and score.
EVIDENTLY_SCRIPT = r"""
import json, re, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2], columns=list(reference.columns))
preset = DataDriftPreset() if sys.argv[3] == "default" else DataDriftPreset(method=sys.argv[3])
snapshot = Report([preset]).run(current, reference)
columns = {}
share = None
for metric in snapshot.dict()["metrics"]:
    name = metric.get("metric_name") or metric.get("metric_id") or ""
    found = re.match(r"ValueDrift\(column=(.*?),method=(.*?),threshold=(.*?)\)", name)
    if found:
        columns[found[1]] = {"method": found[2], "threshold": float(found[3]),
                             "score": metric["value"]}
    elif name.startswith("DriftedColumnsCount"):
        share = metric["value"]
for column in columns.values():
    p_value = "p_value" in column["method"] or "test" in column["method"].lower()
    column["drifted"] = bool(column["score"] < column["threshold"]) if p_value else bool(
        column["score"] >= column["threshold"])
print(json.dumps({"columns": columns, "drifted_share": share}))
"""

# Runs a command and reports its wall time and the peak RSS of that one child.
MEASURE_SCRIPT = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
seconds = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "returncode": done.returncode,
                  "stdout": done.stdout, "stderr": done.stderr[-4000:]}))
"""


def _churn() -> tuple[ModuleType, ModuleType]:
    folder = ROOT / "examples" / "churn"
    sys.path.insert(0, str(folder))
    modules = []
    for name in ("data", "train"):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    return modules[0], modules[1]


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER], check=True)
    return python


def prepare(rows: list[int]) -> tuple[Path, Path, dict[int, Path]]:
    """The bundle, Evidently's reference file, and one shifted Parquet file per size."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import modelkeep

    data, train = _churn()
    OUT.mkdir(parents=True, exist_ok=True)
    bundle = OUT / "churn_model"
    pipeline, metrics, sample = train.train(data.generate(5000, seed=0), "logistic", seed=0)
    modelkeep.save(
        pipeline,
        bundle,
        sample=sample,
        name="churn",
        labels=LABELS,
        metrics=metrics,
        overwrite=True,
    )
    reference = OUT / "reference.parquet"
    sample.reset_index(drop=True).to_parquet(reference)
    files = {}
    for n in rows:
        path = OUT / f"current-{n}.parquet"
        files[n] = path
        if path.exists() and pq.ParquetFile(path).metadata.num_rows == n:
            continue
        writer = None
        for part, start in enumerate(range(0, n, PART_ROWS)):
            frame = data.generate(min(PART_ROWS, n - start), seed=1000 + part)[data.FEATURES]
            frame["monthly_charges"] = frame["monthly_charges"] * 1.2
            frame["usage_change"] = frame["usage_change"] + 15.0
            proba = pipeline.predict_proba(frame)
            classes = list(pipeline.classes_)
            frame["prediction"] = np.asarray([LABELS[c] for c in classes], dtype=object)[
                proba.argmax(axis=1)
            ]
            for column, value in enumerate(classes):
                frame[f"probability:{LABELS[value]}"] = proba[:, column]
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    return bundle, reference, files


def measure(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, *command],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_modelkeep(bundle: Path, data: Path, outputs: str) -> dict[str, Any]:
    found = measure(
        [str(MODELKEEP), "monitor", str(bundle), str(data), "--outputs", outputs, "--json"]
    )
    if found["returncode"] not in (0, 1):
        raise RuntimeError(f"modelkeep monitor failed: {found['stderr']}")
    report = json.loads(found.pop("stdout"))
    found["drifted_features"] = report["drifted_features"]
    found["psi"] = {f["name"]: f["psi"] for f in report["features"]}
    found["output_psi"] = {o["name"]: o["psi"] for o in report["outputs"]}
    found["output_drift"] = report["output_drift"]
    found["dataset_drift"] = report["dataset_drift"]
    found.pop("stderr")
    return found


def run_evidently(
    python: Path, reference: Path, data: Path, method: str = "default"
) -> dict[str, Any]:
    found = measure([str(python), "-c", EVIDENTLY_SCRIPT, str(reference), str(data), method])
    if found["returncode"] != 0:
        raise RuntimeError(f"Evidently failed: {found['stderr']}")
    report = json.loads(found.pop("stdout").strip().splitlines()[-1])
    found["columns"] = report["columns"]
    found["drifted_features"] = [c for c, v in report["columns"].items() if v["drifted"]]
    found["drifted_share"] = report["drifted_share"]
    found.pop("stderr")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args(argv)
    python = None if args.skip_evidently else ensure_venv()
    bundle, reference, files = prepare(args.rows)
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "runs": [],
    }
    for n, path in files.items():
        row: dict[str, Any] = {"rows": n, "file_mb": path.stat().st_size / 2**20}
        row["modelkeep_features"] = run_modelkeep(bundle, path, "none")
        row["modelkeep_outputs"] = run_modelkeep(bundle, path, "data")
        if python is not None:
            row["evidently"] = run_evidently(python, reference, path)
            ours = row["modelkeep_features"]["seconds"]
            theirs = row["evidently"]["seconds"]
            row["speedup"] = theirs / ours
            row["same_features_flagged"] = sorted(
                row["modelkeep_features"]["drifted_features"]
            ) == sorted(row["evidently"]["drifted_features"])
            if n == min(files):
                # PSI as Evidently computes it (equal-width bins over both samples), to
                # set beside ours (the reference's quantile bins).
                row["evidently_psi"] = run_evidently(python, reference, path, "psi")
        results["runs"].append(row)
        _print(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


def _print(row: dict[str, Any]) -> None:
    n = row["rows"]
    for name in ("modelkeep_features", "modelkeep_outputs", "evidently", "evidently_psi"):
        found = row.get(name)
        if found is None:
            continue
        print(
            f"{n:>10,} rows  {name:<20} {found['seconds']:8.1f} s  "
            f"{n / found['seconds']:>12,.0f} rows/s  peak {found['peak_mb']:7.0f} MB  "
            f"drifted {found['drifted_features']}"
        )
    if "evidently_psi" in row:
        ours = row["modelkeep_features"]["psi"]
        theirs = {c: v["score"] for c, v in row["evidently_psi"]["columns"].items()}
        for column, value in ours.items():
            other = theirs.get(column, float("nan"))
            print(f"{'':>16} PSI {column:<20} modelkeep {value:8.4f}  Evidently {other:8.4f}")
    if "speedup" in row:
        print(f"{'':>16} speedup {row['speedup']:.1f}x, same flags: {row['same_features_flagged']}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
