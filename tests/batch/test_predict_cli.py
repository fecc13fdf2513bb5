"""``modelkeep predict``: the command over the real code, and Ctrl-C in a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cli_runner import run

from .conftest import customers


def test_predict_writes_scores_and_prints_a_summary(bundle: Path, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    customers(200).to_csv(source, index=False)
    output = tmp_path / "scores.parquet"
    ran = run(
        "predict",
        str(bundle),
        str(source),
        "-o",
        str(output),
        "--format",
        "onnx",
        "--keep-columns",
        "customer_id",
        "--chunk-size",
        "64",
    )
    assert ran.returncode == 0, ran.output
    assert ran.stdout.startswith("Scored 200 of 200 rows from 1 file(s) in ")
    assert "with churn version 1 (onnx, manifest sha256 " in ran.stdout
    assert "rows/s; the model loaded and verified in " in ran.stdout
    assert f"Output: {output}\n" in ran.stdout
    assert "Labels: No Churn: " in ran.stdout
    assert ran.stderr == ""  # not a terminal: no progress bar
    scores = pd.read_parquet(output)
    assert list(scores.columns) == ["customer_id", "prediction", "proba_No Churn", "proba_Churn"]
    assert len(scores) == 200


def test_predict_fail_and_skip_modes(bundle: Path, tmp_path: Path) -> None:
    frame = customers(100).astype({"tenure": object})
    frame.loc[41, "tenure"] = "forty"
    source = tmp_path / "customers.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "scores.csv"
    failed = run("predict", str(bundle), str(source), "-o", str(output))
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        f"Error: Input {str(source)!r}: data row 42 (1-based, header not counted): column "
        "'tenure': expected integer, got 'forty' (str). Fix the row"
    )
    assert not output.exists()
    skipped = run(
        "predict", str(bundle), str(source), "-o", str(output), "--on-error", "skip", "--no-proba"
    )
    assert skipped.returncode == 0, skipped.output
    assert f"Rejected: 1 row(s), written to {tmp_path / 'scores.rejected.csv'}" in skipped.stdout
    assert list(pd.read_csv(output).columns) == [
        "prediction",
        "model_name",
        "model_version",
        "manifest_sha256",
    ]
    misuse = run("predict", str(bundle), str(source), "-o", str(output), "--on-error", "ignore")
    assert misuse.returncode == 2


def test_ctrl_c_leaves_no_partial_output(bundle: Path, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    # 10,000 chunks: far more than the interrupt needs, so that a loaded machine that
    # delivers SIGINT late still finds the job running.
    customers(100_000, seed=2).to_csv(source, index=False)
    output = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelkeep",
            "predict",
            str(bundle),
            str(source),
            "-o",
            str(output),
            "--format",
            "onnx",
            "--chunk-size",
            "10",
            "--on-error",
            "skip",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Scoring has begun once the temporary output exists beside OUTPUT.
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no temporary output appeared: {process.communicate()}")
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert stderr == f"Interrupted: nothing was written to {output}.\n"
    assert "Traceback" not in stderr and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv"]


def test_a_progress_bar_on_a_terminal_only(bundle: Path, tmp_path: Path) -> None:
    import pty

    source = tmp_path / "customers.parquet"
    customers(3000, seed=4).to_parquet(source, index=False)
    main, secondary = pty.openpty()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelkeep",
            "predict",
            str(bundle),
            str(source),
            "-o",
            str(tmp_path / "scores.csv"),
            "--format",
            "onnx",
            "--chunk-size",
            "100",
        ],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    shown = b""
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # the terminal closed: the process has exited
            break
        if not data:
            break
        shown += data
    stdout, _ = process.communicate(timeout=120)
    os.close(main)
    assert process.returncode == 0
    text = shown.decode(errors="replace")
    assert "Scoring" in text and "rows/s" in text, text
    assert b"Scored 3,000 of 3,000 rows" in stdout
