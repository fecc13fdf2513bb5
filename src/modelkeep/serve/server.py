"""Running the service: load and verify every model, then uvicorn, with a SIGTERM drain.

:func:`load_models` loads every REF through every check of :func:`modelkeep.load` before
anything listens, so a model that fails them stops startup with the load error. :func:`run`
then serves the app; :func:`install_drain` takes over uvicorn's signal handlers, so on
SIGTERM (or SIGINT) the service stops
taking new predictions (503, ``/readyz`` 503), lets the requests in flight finish, then
uvicorn shuts down and the process exits 0. A second SIGINT forces the exit.

With ``workers > 1`` each worker process loads the models itself (every check again) from
the :class:`ServeOptions` passed in ``$MODELKEEP_SERVE_OPTIONS``, and prometheus-client
runs in multiprocess mode in a temporary folder this process creates and removes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from modelkeep.serve.table import ModelTable, ServedModel, load_served

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modelkeep.serve.app import Service

__all__ = ["ServeOptions", "load_models", "run"]

logger = logging.getLogger("modelkeep.serve")

_OPTIONS_ENV = "MODELKEEP_SERVE_OPTIONS"


@dataclass
class ServeOptions:
    """Everything ``modelkeep serve`` was given (JSON-safe, for the worker processes)."""

    refs: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    format: str | None = None
    env: str = "warn"
    trusted: list[str] = field(default_factory=list)
    api_key_file: str | None = None
    log_dir: str | None = None
    log_format: str = "parquet"
    log_sample: float = 1.0
    log_queue: int = 10_000
    max_batch: int = 64
    max_wait_ms: float = 0.0
    max_body: int = 10 * 1024 * 1024
    max_rows: int = 10_000
    poll_interval: float = 10.0
    drain_timeout: float = 30.0
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    access_log: bool = False
    threads: int = 0
    isolate: bool = False

    def load_options(self) -> dict[str, Any]:
        """What each model's load (at startup and on every swap) is given."""
        options: dict[str, Any] = {"env": self.env}
        if self.format is not None:
            options["format"] = self.format
        if self.trusted:
            options["trusted"] = list(self.trusted)
        if self.isolate:
            options["isolate"] = True
        return options


def load_models(options: ServeOptions) -> ModelTable:
    """Every REF loaded through every check; the first failure is raised as is."""
    models: list[ServedModel] = [load_served(ref, **options.load_options()) for ref in options.refs]
    return ModelTable(models)


def build_service(options: ServeOptions, table: ModelTable) -> Service:
    """The service over loaded models: keys, log and alias watcher from ``options``."""
    from modelkeep.serve.app import ServeConfig, Service, environment_threads
    from modelkeep.serve.auth import admin_token, load_keys

    config = ServeConfig(
        max_body=options.max_body,
        max_rows=options.max_rows,
        max_batch=options.max_batch,
        max_wait_ms=options.max_wait_ms,
        keys=load_keys(options.api_key_file),
        admin=admin_token(),
        threads=options.threads or environment_threads(),
    )
    log = None
    if options.log_dir is not None:
        from modelkeep.serve.log import PredictionLog

        log = PredictionLog(
            options.log_dir,
            format=options.log_format,  # type: ignore[arg-type]
            sample=options.log_sample,
            queue_size=options.log_queue,
        )
    service = Service(table, config, log=log)
    aliases = [served for served in table.all() if served.is_alias]
    if aliases:
        from modelkeep.serve.swap import AliasWatcher

        watcher = AliasWatcher(
            table,
            interval=options.poll_interval,
            on_event=service.on_swap,
            load_options=options.load_options(),
        )
        for served in aliases:
            watcher.watch(served)
        service.watcher = watcher
    return service


def build_app(service: Service, drain_timeout: float = 30.0) -> FastAPI:
    """The app over ``service``, with a lifespan that starts and stops its helpers."""
    from modelkeep.serve.app import create_app

    app = create_app(service)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        install_drain(service, drain_timeout)
        if service.watcher is not None:
            service.watcher.start()
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            if service.watcher is not None:
                service.watcher.stop()
            service.executor.shutdown(wait=True)
            if service.log is not None:
                service.log.close()

    app.router.lifespan_context = lifespan
    return app


def worker_app() -> FastAPI:
    """The app of one worker process (``--workers N``): loads the models itself."""
    options = ServeOptions(**json.loads(os.environ[_OPTIONS_ENV]))
    table = load_models(options)
    return build_app(build_service(options, table), options.drain_timeout)


def install_drain(service: Service, drain_timeout: float) -> bool:
    """Take over uvicorn's SIGTERM/SIGINT handling in this process to drain first.

    uvicorn installs its server's ``handle_exit`` for both signals before the app starts
    (in every worker too); found through that bound method, the server is told to exit
    only once the requests in flight are done. uvicorn re-raises the signals its own
    handler caught after shutting down (exit status -15); these are not, so a drained
    process exits 0. Returns whether uvicorn's handler was found.
    """
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if not isinstance(server, uvicorn.Server):
        return False
    loop = asyncio.get_running_loop()

    async def drain() -> None:
        deadline = loop.time() + drain_timeout
        while service.inflight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.005)
        server.should_exit = True

    def handle(sig: int, frame: FrameType | None) -> None:
        if server.should_exit or service.draining:
            # A second signal: stop waiting (a second SIGINT: force, as uvicorn does).
            if sig == signal.SIGINT and server.should_exit:
                server.force_exit = True
            server.should_exit = True
            return
        service.draining = True
        logger.info("Draining: %d requests in flight", service.inflight)
        loop.call_soon_threadsafe(lambda: _tasks.add(loop.create_task(drain())))

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    return True


_tasks: set[asyncio.Task[None]] = set()


def _uvicorn_config(options: ServeOptions, app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        workers=options.workers,
        factory=options.workers > 1,
        loop="auto",
        http="auto",
        access_log=options.access_log,
        log_level="info",
        ssl_keyfile=options.ssl_keyfile,
        ssl_certfile=options.ssl_certfile,
        timeout_graceful_shutdown=int(options.drain_timeout) + 1,
        lifespan="on",
    )


def run(options: ServeOptions, table: ModelTable) -> int:
    """Serve ``table`` (already loaded) until SIGTERM; the exit status (0 after a drain)."""
    if options.workers <= 1:
        app = build_app(build_service(options, table), options.drain_timeout)
        server = uvicorn.Server(_uvicorn_config(options, app))
        server.run()
        return 0 if server.started else 1
    from uvicorn.supervisors import Multiprocess

    folder = tempfile.mkdtemp(prefix="modelkeep-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    os.environ[_OPTIONS_ENV] = json.dumps(asdict(options))
    try:
        config = _uvicorn_config(options, "modelkeep.serve.server:worker_app")
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
