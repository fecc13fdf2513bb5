"""``modelkeep serve REF [REF ...]``: the prediction service (extra ``modelkeep[serve]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelkeep._modes import EnvMode
from modelkeep.cli._common import check_trusted, errors_exit, printable, stderr


def _positive(name: str, value: float) -> None:
    from modelkeep.errors import InvalidArgumentError

    if not value > 0:
        raise InvalidArgumentError(name, "a positive number", repr(value))


def serve_command(
    refs: Annotated[
        list[str],
        typer.Argument(
            help="Bundle directories or registry references (churn@production is followed: "
            "when the alias moves, the new version is verified and swapped in).",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(help="Worker processes (each loads and verifies every model).")
    ] = 1,
    format: Annotated[
        str | None,
        typer.Option(
            help="Which artifact to serve: onnx, skops, joblib, pickle (default: the "
            "first the bundle lists)."
        ),
    ] = None,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate",
            help="Load each model, and run its predictions, in a sandboxed worker process "
            "(see modelkeep doctor).",
        ),
    ] = False,
    env: Annotated[
        EnvMode,
        typer.Option(help="Environment differences at load: warn, strict, ignore."),
    ] = "warn",
    trusted: Annotated[
        list[str] | None,
        typer.Option("--trusted", help="An exact type name to trust; repeatable."),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="Accepted API keys, one a line (a key, or sha256:<hex> of one); also "
            "$MODELKEEP_API_KEYS. Predictions then need 'Authorization: Bearer KEY'.",
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Append every prediction to rotating files in this folder."),
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="parquet or jsonl.")] = "parquet",
    log_sample: Annotated[
        float, typer.Option("--log-sample", help="Share of requests logged, in (0, 1].")
    ] = 1.0,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", help="Most rows per model call when batching requests (1: off)."
        ),
    ] = 64,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            help="How long a batch that is not full waits for more requests (0: never; a "
            "batch still forms from the requests that arrive while the model is busy).",
        ),
    ] = 0.0,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body, in bytes (413 beyond).")
    ] = 10 * 1024 * 1024,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Most rows per request (413 beyond).")
    ] = 10_000,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", help="Seconds between checks of followed aliases."),
    ] = 10.0,
    drain_timeout: Annotated[
        float,
        typer.Option(
            "--drain-timeout", help="On SIGTERM, how long in-flight requests may take to finish."
        ),
    ] = 30.0,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", help="TLS private key (uvicorn's).")
    ] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="TLS certificate (uvicorn's).")
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request line (uvicorn's).")
    ] = False,
) -> None:
    """Serve models over HTTP: modelkeep's /v1, MLflow's /invocations and Open Inference v2.

    Every model is loaded with every check of modelkeep.load before the server listens; a
    model that fails them stops startup (exit 1). SIGTERM drains: requests in flight
    finish, new ones get 503, then the process exits 0.
    """
    check_trusted(trusted)
    with errors_exit():
        from modelkeep._optional import require

        require(
            "serve",
            "fastapi",
            "uvicorn",
            "prometheus_client",
            "orjson",
            feature="modelkeep serve",
            packages="fastapi, uvicorn, prometheus-client, orjson",
        )
        from modelkeep.errors import InvalidArgumentError, InvalidChoiceError
        from modelkeep.serve.auth import admin_token, load_keys
        from modelkeep.serve.server import ServeOptions, load_models, run

        for name, count in (
            ("--workers", workers),
            ("--max-batch", max_batch),
            ("--max-body", max_body),
            ("--max-rows", max_rows),
        ):
            if count < 1:
                raise InvalidArgumentError(name, "a positive integer", str(count))
        if not 0 <= port <= 65535:
            raise InvalidArgumentError("--port", "a port number (0 to 65535)", str(port))
        if max_wait_ms < 0:
            raise InvalidArgumentError("--max-wait-ms", "0 or more milliseconds", str(max_wait_ms))
        _positive("--poll-interval", poll_interval)
        _positive("--drain-timeout", drain_timeout)
        if log_format not in ("parquet", "jsonl"):
            raise InvalidChoiceError(log_format, ("parquet", "jsonl"), "--log-format")
        if not 0 < log_sample <= 1:
            raise InvalidArgumentError("--log-sample", "a share in (0, 1]", str(log_sample))
        if (ssl_keyfile is None) != (ssl_certfile is None):
            raise InvalidArgumentError(
                "--ssl-keyfile/--ssl-certfile", "both or neither", "only one"
            )
        # Read the keys now: a bad key file is a startup error, not a worker's crash.
        load_keys(api_key_file)
        admin_token()
        options = ServeOptions(
            refs=list(refs),
            host=host,
            port=port,
            workers=workers,
            format=format,
            isolate=isolate,
            env=env,
            trusted=list(trusted or []),
            api_key_file=None if api_key_file is None else str(api_key_file),
            log_dir=None if log is None else str(log),
            log_format=log_format,
            log_sample=log_sample,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_body=max_body,
            max_rows=max_rows,
            poll_interval=poll_interval,
            drain_timeout=drain_timeout,
            ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile),
            ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
            access_log=access_log,
        )
        table = load_models(options)
        for served in table.all():
            stderr.print(
                printable(
                    f"Serving {served.name} version {served.version} ({served.model.format}) "
                    f"from {served.ref}"
                ),
                markup=False,
            )
    status = run(options, table)
    if status:
        raise typer.Exit(status)
