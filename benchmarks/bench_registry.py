"""Registry throughput and load latency: SQLite + a local folder vs PostgreSQL + S3.

For each backend:

1. registrations per second, one process (the bundle is verified, copied or uploaded and
   read back, then indexed);
2. ``load("name@alias")`` latency: cold (an empty download cache: the remote bundle is
   fetched and hashed) and warm (a cache hit: sizes and the manifest hash re-checked);
3. 8 processes registering under one name at once: registrations per second overall.

The team backend is the one in ``MODELKEEP_REGISTRY_URI`` / ``MODELKEEP_ARTIFACTS_URI``
(``scripts/services.sh start`` writes them to ``.services.env``; ``make bench`` sources
it). Each run uses a fresh PostgreSQL schema and S3 prefix.

Run: ``make bench`` or ``set -a; . ./.services.env; set +a;
python benchmarks/bench_registry.py [--registrations N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

import modelkeep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timed

# Each worker imports everything and connects first (one registration), then prints when
# its timed registrations start and end: the rate leaves process start-up out.
WORKER = """
import sys, time, modelkeep
registry = modelkeep.Registry()
registry.register(sys.argv[1], "bench")
start = time.time()
for _ in range(int(sys.argv[2])):
    registry.register(sys.argv[1], "bench")
print(start, time.time())
"""


def _bundle(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    target = (frame["a"] > 0).astype(int).to_numpy()
    path = folder / "bench_model"
    model = LogisticRegression().fit(frame, target)
    modelkeep.save(model, path, sample=frame, name="bench", golden_rows=5)
    return path


def _team_env() -> dict[str, str]:
    base = os.environ.get("MODELKEEP_REGISTRY_URI")
    artifacts = os.environ.get("MODELKEEP_ARTIFACTS_URI")
    if not base or not artifacts:
        raise SystemExit("run `scripts/services.sh start` and source .services.env first")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()
    return {
        "MODELKEEP_REGISTRY_URI": f"{base}?options=-csearch_path%3D{schema}",
        "MODELKEEP_ARTIFACTS_URI": f"{artifacts}/{schema}",
    }


def _measure(label: str, env: dict[str, str], bundle: Path, args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="modelkeep-bench-"))
    saved = {k: os.environ.get(k) for k in ("MODELKEEP_HOME", *env)}
    os.environ.update({"MODELKEEP_HOME": str(home), **env})
    if "MODELKEEP_REGISTRY_URI" not in env:
        os.environ.pop("MODELKEEP_REGISTRY_URI", None)
        os.environ.pop("MODELKEEP_ARTIFACTS_URI", None)
    try:
        with modelkeep.Registry() as registry:
            registry.register(bundle, "bench")  # connections, imports, tables
            start = time.perf_counter()
            for _ in range(args.registrations):
                version = registry.register(bundle, "bench")
            per_second = args.registrations / (time.perf_counter() - start)
            registry.set_alias("bench", "production", version.version)

            def cold() -> None:
                shutil.rmtree(home / "cache", ignore_errors=True)
                registry.load("bench@production")

            cold_s = timed(cold, args.repeat)
            warm_s = timed(lambda: registry.load("bench@production"), args.repeat)

        worker_env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        each = max(1, args.registrations // 2)
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(bundle), str(each)],
                env=worker_env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        spans = []
        for worker in workers:
            out, _ = worker.communicate()
            if worker.returncode != 0:
                raise SystemExit(f"{label}: a registering process failed")
            spans.append([float(x) for x in out.split()])
        elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
        concurrent = 8 * each / elapsed
        with modelkeep.Registry() as registry:
            numbers = [v.version for v in registry.versions("bench")]
        if numbers != list(range(1, len(numbers) + 1)):
            raise SystemExit(f"{label}: version numbers have gaps or duplicates")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"| {label} | {per_second:.1f} | {cold_s * 1000:.0f} ms | {warm_s * 1000:.0f} ms "
        f"| {concurrent:.1f} (8 x {each}) |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    team = _team_env()
    with tempfile.TemporaryDirectory() as scratch:
        bundle = _bundle(Path(scratch))
        print(
            "| backend | registrations/s | load cold | load warm | 8 processes: registrations/s |"
        )
        print("| --- | --- | --- | --- | --- |")
        _measure("SQLite + local folder", {}, bundle, args)
        _measure("PostgreSQL + S3 (moto)", team, bundle, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
