"""Serving benchmark: ``modelkeep serve`` against ``mlflow models serve`` and BentoML.

The churn pipelines of ``examples/churn`` (impute, scale, one-hot; a 300-tree random forest
and a logistic regression), trained once on the same data and served by:

- ``modelkeep serve`` with the ONNX and the skops backends, adaptive batching on and off
  (``--max-batch 64`` / ``--max-batch 1``);
- ``mlflow models serve --env-manager local`` (MLflow 3.17) of ``mlflow.sklearn.save_model``
  with ``pyfunc_predict_fn="predict_proba"``;
- a BentoML 1.4 service that loads the pipeline with ``bentoml.sklearn`` and returns
  ``predict_proba``, with and without its adaptive batching (``batchable=True``).

MLflow and BentoML are installed only into the benchmark's own virtualenv
(``benchmarks/.venv-serve``, made on the first run, with the same scikit-learn, numpy,
scipy and pandas as the project's); modelkeep runs from the project's environment.

One load generator for every server, in its own process: a closed-loop asyncio HTTP/1.1
client (one keep-alive connection per concurrent user), single-record JSON requests, each
timed from its first byte sent to its last byte received. p50 and p99 are of those
per-request times, with no coordinated-omission correction; requests/s counts answers
with status 200; anything else (another status, a broken connection, no answer within
30 s of the end) is an error. Each server gets a warm-up before its runs.

Then a hot-swap run: ``modelkeep serve churn@production --poll-interval 0.5`` under load at
the highest concurrency while the alias moves to another version and back; every failed
request is counted and the versions that answered are listed.

Run: ``python benchmarks/bench_serve.py [--duration 20] [--concurrency 1 32]``
(``make bench-serve``). Results go to ``benchmarks/results/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-serve"
RESULTS = HERE / "results" / "serve.json"
MODELKEEP = Path(sys.executable).with_name("modelkeep")
# The peers, as the issue names them; scikit-learn & co. pinned to this environment's.
PEERS = ("mlflow==3.17.*", "bentoml==1.4.*")
SAME_AS_HERE = ("scikit-learn", "numpy", "scipy", "pandas", "joblib")
MODELS = {"random_forest": "churn_rf", "logistic": "churn_lr"}
LABELS = {0: "No Churn", 1: "Churn"}
READY_TIMEOUT_S = 300.0
ANSWER_GRACE_S = 30.0


# ---------------------------------------------------------------------- load generator


@dataclass
class LoadResult:
    """One load run, as the generator measured it."""

    concurrency: int
    duration_s: float
    ok: int = 0
    errors: int = 0
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)
    versions: list[list[Any]] = field(default_factory=list)  # [version, answers] in order


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif key == b"connection" and value.strip().lower() == b"close":
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


_VERSION = re.compile(rb'"version"\s*:\s*"?([^",}\s]+)')


async def _user(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    stop_at: float,
    latencies: list[float],
    result: LoadResult,
    track_versions: bool,
) -> None:
    index = offset
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.perf_counter() < stop_at:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            payload = requests[index % len(requests)]
            index += 1
            start = time.perf_counter()
            writer.write(payload)
            status, body, close = await _read_response(reader)
            elapsed = time.perf_counter() - start
            if status == 200:
                result.ok += 1
                latencies.append(elapsed)
                if track_versions:
                    found = _VERSION.search(body)
                    version = found.group(1).decode() if found else "?"
                    if result.versions and result.versions[-1][0] == version:
                        result.versions[-1][1] += 1
                    else:
                        result.versions.append([version, 1])
            else:
                result.errors += 1
                kind = f"HTTP {status}"
                result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
            if close:
                writer.close()
                writer = reader = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            result.errors += 1
            kind = type(exc).__name__
            result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
            if writer is not None:
                writer.close()
            writer = reader = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _load(spec: dict[str, Any]) -> LoadResult:
    host, port = spec["host"], spec["port"]
    path, bodies = spec["path"], spec["bodies"]
    requests = []
    for body in bodies:
        data = body.encode()
        requests.append(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
    concurrency, duration = spec["concurrency"], spec["duration"]
    result = LoadResult(concurrency=concurrency, duration_s=duration)
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + duration
    tasks = [
        asyncio.ensure_future(
            _user(host, port, requests, i * 7, stop_at, latencies, result, spec["track_versions"])
        )
        for i in range(concurrency)
    ]
    done, pending = await asyncio.wait(tasks, timeout=duration + ANSWER_GRACE_S)
    for task in pending:  # no answer long after the end: each is a failed request
        task.cancel()
        result.errors += 1
        result.error_kinds["no answer"] = result.error_kinds.get("no answer", 0) + 1
    for task in done:
        if task.exception() is not None:
            result.errors += 1
            kind = type(task.exception()).__name__
            result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
    elapsed = time.perf_counter() - start
    result.duration_s = round(elapsed, 3)
    result.rps = round(result.ok / elapsed, 1)
    if latencies:
        latencies.sort()
        result.p50_ms = round(1000 * _percentile(latencies, 50), 2)
        result.p99_ms = round(1000 * _percentile(latencies, 99), 2)
        result.mean_ms = round(1000 * statistics.fmean(latencies), 2)
        result.max_ms = round(1000 * latencies[-1], 2)
    return result


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values (nearest rank)."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def loadgen_main(spec_path: str) -> int:
    """The generator's own process: read the spec, run, print the result as JSON."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(spec))
    print(json.dumps(asdict(result)))
    return 0


def run_load(
    port: int,
    path: str,
    bodies: list[str],
    concurrency: int,
    duration: float,
    work: Path,
    *,
    track_versions: bool = False,
) -> LoadResult:
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "path": path,
        "bodies": bodies,
        "concurrency": concurrency,
        "duration": duration,
        "track_versions": track_versions,
    }
    spec_path = work / "loadgen.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, __file__, "--loadgen", str(spec_path)],
        capture_output=True,
        text=True,
        timeout=duration + ANSWER_GRACE_S + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    return LoadResult(**json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------ setup


def ensure_venv() -> Path:
    """benchmarks/.venv-serve with MLflow and BentoML (made once; a stamp records the pins)."""
    from importlib.metadata import version

    pins = [*PEERS, *(f"{name}=={version(name)}" for name in SAME_AS_HERE)]
    stamp = VENV / ".bench-serve-installed"
    python = VENV / "bin" / "python"
    if stamp.is_file() and stamp.read_text() == "\n".join(pins) and python.exists():
        return python
    print(f"Creating {VENV.relative_to(ROOT)} with {', '.join(pins)} (one time) ...", flush=True)
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
    stamp.write_text("\n".join(pins))
    return python


PEER_SETUP = r"""
import json, os, sys, warnings
import joblib, pandas as pd
warnings.simplefilter("ignore")
work = sys.argv[1]
sample = pd.DataFrame(json.load(open(os.path.join(work, "sample.json"))))
import mlflow.sklearn
from mlflow.models import infer_signature
import bentoml
for kind, tag in json.loads(sys.argv[2]).items():
    pipeline = joblib.load(os.path.join(work, kind + ".joblib"))
    target = os.path.join(work, "mlflow", kind)
    if not os.path.exists(target):
        mlflow.sklearn.save_model(
            pipeline, target,
            signature=infer_signature(sample, pipeline.predict_proba(sample)),
            pyfunc_predict_fn="predict_proba",
            # MLflow 3 saves scikit-learn models with skops, which asks for these.
            skops_trusted_types=["numpy.dtype", "sklearn.tree._tree.Tree"],
        )
    bentoml.sklearn.save_model(tag, pipeline)
print("peers ready")
"""

BENTO_SERVICE = r'''
"""The BentoML service of the benchmark: the pipeline through bentoml.sklearn."""
import os

import bentoml
import pandas as pd

MODEL = os.environ["BENCH_BENTO_MODEL"]
BATCH = os.environ.get("BENCH_BENTO_BATCH", "0") == "1"
COLUMNS = %(columns)r


@bentoml.service(workers=1)
class Churn:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(MODEL + ":latest")

    # BentoML's own defaults for the batch size and latency budget.
    @bentoml.api(batchable=BATCH)
    def predict(self, instances: list[dict]) -> list[list[float]]:
        return self.model.predict_proba(pd.DataFrame(instances, columns=COLUMNS)).tolist()
'''


@dataclass
class Prepared:
    work: Path
    bundles: dict[str, Path]
    records: list[dict[str, Any]]
    bench_python: Path


def prepare(work: Path, rows: int, models: Sequence[str]) -> Prepared:
    """Train the pipelines, save them for every server, and pick the request records."""
    import joblib

    import modelkeep

    sys.path.insert(0, str(ROOT / "examples" / "churn"))
    from data import FEATURES, generate  # type: ignore[import-not-found]
    from train import train  # type: ignore[import-not-found]

    data = generate(rows, seed=0)
    bundles: dict[str, Path] = {}
    sample = None
    for kind in models:
        pipeline, metrics, x_train = train(data, classifier=kind, seed=0)
        sample = x_train
        bundle = work / "bundles" / kind
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modelkeep.save(
                pipeline,
                bundle,
                sample=x_train,
                name="churn",
                labels=LABELS,
                metrics=metrics,
                data_version=f"synthetic-churn-seed0-n{rows}",
                formats=("skops", "onnx"),
                overwrite=True,
            )
        joblib.dump(pipeline, work / f"{kind}.joblib")
        bundles[kind] = bundle
    assert sample is not None
    sample.head(200).to_json(work / "sample.json", orient="records")
    # Requests: 64 different customers (missing values included), in a fixed order.
    records = json.loads(data[FEATURES].iloc[:64].to_json(orient="records"))
    bench_python = ensure_venv()
    subprocess.run(
        [
            str(bench_python),
            "-c",
            PEER_SETUP,
            str(work),
            json.dumps({kind: MODELS[kind] for kind in models}),
        ],
        check=True,
        env={**os.environ, "BENTOML_HOME": str(work / "bentoml")},
    )
    service_dir = work / "bento"
    service_dir.mkdir(exist_ok=True)
    (service_dir / "service.py").write_text(BENTO_SERVICE % {"columns": list(FEATURES)})
    return Prepared(work, bundles, records, bench_python)


# ---------------------------------------------------------------------------- servers


@dataclass
class Server:
    """One server configuration: how to start it and how to ask it."""

    label: str
    system: str  # modelkeep, mlflow, bentoml
    model: str
    backend: str
    batching: bool
    command: list[str]
    path: str
    ready: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    body: str = "instances"  # instances or dataframe_records


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def servers(prep: Prepared, models: Sequence[str], only: Sequence[str] | None) -> list[Server]:
    venv_bin = prep.bench_python.parent
    found = []
    for kind in models:
        for backend in ("onnx", "skops"):
            for batching in (True, False):
                found.append(
                    Server(
                        label=f"modelkeep {backend} batch {'on' if batching else 'off'}",
                        system="modelkeep",
                        model=kind,
                        backend=backend,
                        batching=batching,
                        command=[
                            str(MODELKEEP),
                            "serve",
                            str(prep.bundles[kind]),
                            "--format",
                            backend,
                            "--max-batch",
                            "64" if batching else "1",
                            "--port",
                            "{port}",
                        ],
                        path="/v1/models/churn/predict",
                        ready="/readyz",
                    )
                )
        found.append(
            Server(
                label="mlflow models serve",
                system="mlflow",
                model=kind,
                backend="sklearn",
                batching=False,
                command=[
                    str(venv_bin / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(prep.work / "mlflow" / kind),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "{port}",
                ],
                path="/invocations",
                ready="/ping",
                # mlflow starts `uvicorn` by name: the venv's bin must come first.
                env={"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"},
                body="dataframe_records",
            )
        )
        for batching in (False, True):
            found.append(
                Server(
                    label=f"bentoml batch {'on' if batching else 'off'}",
                    system="bentoml",
                    model=kind,
                    backend="sklearn",
                    batching=batching,
                    command=[
                        str(venv_bin / "bentoml"),
                        "serve",
                        "service:Churn",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "{port}",
                    ],
                    path="/predict",
                    ready="/readyz",
                    env={
                        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                        "BENTOML_HOME": str(prep.work / "bentoml"),
                        "BENCH_BENTO_MODEL": MODELS[kind],
                        "BENCH_BENTO_BATCH": "1" if batching else "0",
                        "BENTOML_DO_NOT_TRACK": "true",
                    },
                    cwd=prep.work / "bento",
                )
            )
    if only:
        found = [s for s in found if any(word in f"{s.system} {s.label}" for word in only)]
    return found


class Running:
    """A server process (its own process group) on a free port, stopped on exit."""

    def __init__(self, server: Server, work: Path, extra_env: dict[str, str] | None = None):
        self.server = server
        self.port = free_port()
        self.log_path = work / f"server-{server.system}-{self.port}.log"
        command = [part.replace("{port}", str(self.port)) for part in server.command]
        env = {**os.environ, **server.env, **(extra_env or {})}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=server.cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> float:
        start = time.perf_counter()
        url = f"http://127.0.0.1:{self.port}{self.server.ready}"
        while time.perf_counter() - start < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server.label} exited: {self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.server.label} not ready in {READY_TIMEOUT_S} s: {self.tail()}")

    def tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def bodies(server: Server, records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps({server.body: [record]}) for record in records]


def check_answer(running: Running, body: str) -> str:
    """One request by hand: the answer must hold two probabilities."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.port}{running.server.path}",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        text: str = answer.read().decode()
    return text


# -------------------------------------------------------------------------------- runs


def bench_server(
    server: Server, prep: Prepared, concurrency: Sequence[int], duration: float, warmup: float
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "label": server.label,
        "system": server.system,
        "model": server.model,
        "backend": server.backend,
        "batching": server.batching,
        "runs": [],
    }
    print(f"\n[{server.model}] {server.label}", flush=True)
    payloads = bodies(server, prep.records)
    try:
        with Running(server, prep.work) as running:
            record["ready_s"] = round(running.wait_ready(), 2)
            record["sample_answer"] = check_answer(running, payloads[0])[:300]
            print(f"  ready in {record['ready_s']} s; answer {record['sample_answer'][:120]}")
            run_load(running.port, server.path, payloads, max(concurrency), warmup, prep.work)
            for users in concurrency:
                load = os.getloadavg()[0]
                result = run_load(running.port, server.path, payloads, users, duration, prep.work)
                run = asdict(result)
                run["loadavg_1m_before"] = round(load, 2)
                record["runs"].append(run)
                print(
                    f"  c={users:<3} {result.rps:>8.1f} req/s  p50 {result.p50_ms} ms  "
                    f"p99 {result.p99_ms} ms  errors {result.errors} {result.error_kinds or ''}",
                    flush=True,
                )
    except Exception as exc:  # one server failing does not lose the others' figures
        record["failed"] = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {record['failed'][:2000]}", flush=True)
    return record


def bench_swap(prep: Prepared, users: int, duration: float, warmup: float) -> dict[str, Any]:
    """modelkeep serve churn@production under load while the alias moves to v2 and back."""
    import modelkeep

    print(f"\n[hot swap] modelkeep serve churn@production, c={users}, {duration} s", flush=True)
    home = prep.work / "home"
    shutil.rmtree(home, ignore_errors=True)
    kinds = list(prep.bundles)
    first, second = prep.bundles[kinds[0]], prep.bundles[kinds[-1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with modelkeep.Registry(home) as registry:
            registry.register(first)
            registry.register(second)  # version 2: the other pipeline (or the same again)
            registry.set_alias("churn", "production", 1)
    server = Server(
        label="modelkeep onnx batch on, following churn@production",
        system="modelkeep",
        model="churn@production",
        backend="onnx",
        batching=True,
        command=[
            str(MODELKEEP),
            "serve",
            "churn@production",
            "--format",
            "onnx",
            "--poll-interval",
            "0.5",
            "--port",
            "{port}",
        ],
        path="/v1/models/churn/predict",
        ready="/readyz",
    )
    record: dict[str, Any] = {"label": server.label, "concurrency": users, "moves": []}
    payloads = bodies(server, prep.records)
    try:
        with Running(server, prep.work, {"MODELKEEP_HOME": str(home)}) as running:
            running.wait_ready()
            run_load(running.port, server.path, payloads, users, warmup, prep.work)
            moves = [(duration * 0.25, 2), (duration * 0.6, 1)]

            def move() -> None:
                start = time.perf_counter()
                with modelkeep.Registry(home) as registry:
                    for at, version in moves:
                        time.sleep(max(0.0, at - (time.perf_counter() - start)))
                        registry.set_alias("churn", "production", version, reason="benchmark")
                        record["moves"].append(
                            {"at_s": round(time.perf_counter() - start, 2), "to": version}
                        )

            mover = threading.Thread(target=move)
            mover.start()
            result = run_load(
                running.port,
                server.path,
                payloads,
                users,
                duration,
                prep.work,
                track_versions=True,
            )
            mover.join()
            record["run"] = asdict(result)
            url = f"http://127.0.0.1:{running.port}/metrics"
            with urllib.request.urlopen(url, timeout=30) as answer:
                metrics = answer.read().decode()
            record["swaps_accepted"] = sum(
                float(found.group(1))
                for found in re.finditer(
                    r'modelkeep_swaps_total\{[^}]*result="accepted"[^}]*\} (\S+)', metrics
                )
            )
            print(
                f"  {result.rps:.1f} req/s  p50 {result.p50_ms} ms  p99 {result.p99_ms} ms  "
                f"failed requests {result.errors} {result.error_kinds or ''}\n"
                f"  versions answering, in order: {result.versions}",
                flush=True,
            )
    except Exception as exc:
        record["failed"] = f"{type(exc).__name__}: {exc}"
        print(f"  FAILED: {record['failed'][:2000]}", flush=True)
    return record


# ----------------------------------------------------------------------------- report


def _run_at(record: dict[str, Any], users: int) -> dict[str, Any] | None:
    for run in record.get("runs", []):
        if run["concurrency"] == users:
            found: dict[str, Any] = run
            return found
    return None


def summarize(results: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """Ratios at the highest concurrency, per model, and the issue's targets."""
    summary: dict[str, Any] = {}
    for model in sorted({r["model"] for r in results}):
        mine = [r for r in results if r["model"] == model]

        def best(system: str, backend: str | None = None, mine: Any = mine) -> float:
            rates = [
                run["rps"]
                for r in mine
                if r["system"] == system and (backend is None or r["backend"] == backend)
                for run in [_run_at(r, top)]
                if run is not None
            ]
            return max(rates, default=0.0)

        ours, ours_onnx = best("modelkeep"), best("modelkeep", "onnx")
        mlflow, bento = best("mlflow"), best("bentoml")
        onnx_p99 = [
            run["p99_ms"]
            for r in mine
            if r["system"] == "modelkeep" and r["backend"] == "onnx"
            for run in [_run_at(r, top)]
            if run is not None and run["p99_ms"] is not None
        ]
        summary[model] = {
            "modelkeep_best_rps": ours,
            "modelkeep_onnx_best_rps": ours_onnx,
            "mlflow_rps": mlflow,
            "bentoml_best_rps": bento,
            "x_mlflow": round(ours / mlflow, 1) if mlflow else None,
            "x_bentoml": round(ours / bento, 2) if bento else None,
            "onnx_p99_ms_best": min(onnx_p99, default=None),
            "target_20x_mlflow": bool(mlflow) and ours >= 20 * mlflow,
            "target_ahead_of_bentoml": bool(bento) and ours > bento,
            "target_onnx_p99_under_50ms": bool(onnx_p99) and min(onnx_p99) < 50,
        }
    return summary


def table(results: list[dict[str, Any]], concurrency: Sequence[int]) -> str:
    lines = [
        "| model | server | "
        + " | ".join(f"c={c} req/s, p50, p99 (ms), errors" for c in concurrency)
        + " |",
        "| --- | --- | " + " | ".join("---" for _ in concurrency) + " |",
    ]
    for record in results:
        cells = []
        for users in concurrency:
            run = _run_at(record, users)
            if run is None:
                cells.append(record.get("failed", "not run")[:60])
            else:
                cells.append(f"{run['rps']:.0f}, {run['p50_ms']}, {run['p99_ms']}, {run['errors']}")
        lines.append(f"| {record['model']} | {record['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the runs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rows", type=int, default=5000, help="training rows")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--only", nargs="+", help="servers whose label holds one of these words")
    parser.add_argument("--no-swap", action="store_true", help="skip the hot-swap run")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results ({RESULTS})")
    parser.add_argument("--work", type=Path, help="keep models and logs here (default: temp)")
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen_main(args.loadgen)

    started = time.time()
    work_ctx = tempfile.TemporaryDirectory(prefix="bench-serve-") if args.work is None else None
    work = Path(work_ctx.name) if work_ctx is not None else args.work
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"Preparing models in {work} ...", flush=True)
        prep = prepare(work, args.rows, args.models)
        uptime_before = _uptime()
        results = [
            bench_server(server, prep, args.concurrency, args.duration, args.warmup)
            for server in servers(prep, args.models, args.only)
        ]
        swap = None
        if not args.no_swap:
            swap = bench_swap(prep, max(args.concurrency), args.duration, args.warmup)
        uptime_after = _uptime()
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    top = max(args.concurrency)
    summary = summarize(results, top)
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "uptime_before": uptime_before,
            "uptime_after": uptime_after,
        },
        "results": results,
        "summary": summary,
        "hot_swap": swap,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(results, args.concurrency))
    print(f"\nAt c={top}:")
    for model, figures in summary.items():
        print(f"  {model}: {json.dumps(figures)}")
    if swap is not None and "run" in swap:
        run = swap["run"]
        print(
            f"Hot swap: {run['ok']} answered, {run['errors']} failed; moves {swap['moves']}; "
            f"versions {run['versions']}"
        )
    print(f"Machine: {uptime_before} -> {uptime_after}\nResults: {args.out}")
    return 0


def _uptime() -> str:
    try:
        done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
        return done.stdout.strip()
    except OSError:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
