"""The FastAPI application: routes, limits, auth and the path every prediction takes.

:func:`create_app` builds the app over a :class:`~modelkeep.serve.table.ModelTable` of models
that are already loaded and verified. Every prediction endpoint goes through
:meth:`Service.predict`, in this order: API key (401), model and version (404), content type
(415), body size while reading it (413), JSON (400), the protocol's shape and the row limit
(422, 413), the schema (422), then the model through the model's batcher. Errors are
:class:`~modelkeep.serve.errors.HTTPProblem`; anything else is a server fault, logged with
its traceback and answered 500 without details.

Routes are plain Starlette routes on the FastAPI app (no per-request dependency solving);
the OpenAPI document is generated from the served models (:mod:`modelkeep.serve.openapi`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelkeep._inputs import plain_value
from modelkeep._version import __version__
from modelkeep.errors import InputError, SchemaError
from modelkeep.serve import protocols
from modelkeep.serve.auth import KeyRing, bearer_token
from modelkeep.serve.batching import Batcher
from modelkeep.serve.core import Outcome, Predictor, Prepared, predictor_for
from modelkeep.serve.errors import HTTPProblem, problem_body, schema_problem
from modelkeep.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from modelkeep.serve.openapi import build_openapi, v2_datatype
from modelkeep.serve.table import ModelTable, ServedModel, UnknownModelError

if TYPE_CHECKING:
    from modelkeep.serve.log import PredictionLog
    from modelkeep.serve.swap import AliasWatcher, SwapEvent

__all__ = ["ServeConfig", "Service", "create_app"]

logger = logging.getLogger("modelkeep.serve")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_WAIT_MS = 0.0
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Paths answered while draining: probes and scrapes must keep working until the exit.
_ALWAYS = frozenset({"/livez", "/readyz", "/metrics", "/v2/health/live", "/v2/health/ready"})


@dataclass
class ServeConfig:
    """What the server was started with (the ``modelkeep serve`` options)."""

    max_body: int = DEFAULT_MAX_BODY
    max_rows: int = DEFAULT_MAX_ROWS
    max_batch: int = DEFAULT_MAX_BATCH
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    keys: KeyRing = field(default_factory=lambda: KeyRing([]))
    admin: KeyRing = field(default_factory=lambda: KeyRing([]))
    threads: int = 4


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _problem_response(problem: HTTPProblem, headers: dict[str, str] | None = None) -> Response:
    return _json_response(problem.body(), problem.status, {**problem.headers, **(headers or {})})


@dataclass
class _Entry:
    served: ServedModel
    predictor: Predictor
    batcher: Batcher


class Service:
    """The state behind the routes: models, batchers, limits, keys, metrics, log, drain."""

    def __init__(
        self,
        table: ModelTable,
        config: ServeConfig,
        *,
        log: PredictionLog | None = None,
        watcher: AliasWatcher | None = None,
    ) -> None:
        self.table = table
        self.config = config
        self.log = log
        self.watcher = watcher
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(config.threads, thread_name_prefix="modelkeep-predict")
        self._entries: dict[str, _Entry] = {}
        self.ready = False
        self.draining = False
        self.inflight = 0
        self._openapi: tuple[tuple[tuple[str, str], ...], dict[str, Any]] | None = None
        self._reported: dict[str, ServedModel] = {}  # what the model-info gauge shows
        for served in table.all():
            self._entry(served)
            self._reported[served.name] = served
            self.metrics.serving(
                served.name, served.version, served.manifest_hash, served.model.format
            )

    # ------------------------------------------------------------------------ models

    def _entry(self, served: ServedModel) -> _Entry:
        """The predictor and batcher of ``served`` (made once per served object)."""
        entry = self._entries.get(served.name)
        if entry is None or entry.served is not served:
            predictor = predictor_for(served)
            batch_rows = self.metrics.batch_rows.labels(served.name)
            batcher = Batcher(
                predictor,
                max_batch=self.config.max_batch,
                max_wait=self.config.max_wait_ms / 1000.0,
                executor=self.executor,
                on_batch=batch_rows.observe,
            )
            entry = _Entry(served, predictor, batcher)
            self._entries[served.name] = entry
        return entry

    def on_swap(self, event: SwapEvent) -> None:
        """Count a swap event (called from the watcher's thread)."""
        self.metrics.swaps.labels(event.name, "accepted" if event.accepted else "refused").inc()
        if not event.accepted:
            return
        try:
            new = self.table.get(event.name)
        except UnknownModelError:
            return
        old = self._reported.get(new.name)
        if old is not None and old is not new:
            self.metrics.retired(old.name, old.version, old.manifest_hash, old.model.format)
        self._reported[new.name] = new
        self.metrics.serving(new.name, new.version, new.manifest_hash, new.model.format)

    # ----------------------------------------------------------------------- checks

    def authorize(self, request: Request) -> None:
        keys = self.config.keys
        if keys and not keys.accepts(bearer_token(request.headers.get("authorization"))):
            raise HTTPProblem(
                401,
                "unauthorized",
                "This server needs an API key: send 'Authorization: Bearer <key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def model(self, name: str, version: str | None = None) -> ServedModel:
        try:
            served = self.table.get(name)
        except UnknownModelError as exc:
            raise HTTPProblem(404, "not_found", str(exc)) from None
        if version is not None and version != served.version:
            raise HTTPProblem(
                404,
                "not_found",
                f"Model {name!r} serves version {served.version}, not {version!r}.",
            )
        return served

    async def body(self, request: Request) -> Any:
        """The request's JSON document, with the content type and size limit enforced."""
        content_type = request.headers.get("content-type", "")
        media = content_type.partition(";")[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise HTTPProblem(
                415,
                "unsupported_media_type",
                f"Expected a JSON body (Content-Type: application/json), got "
                f"{media[:100] or 'no content type'!r}.",
            )
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
        return protocols.decode_json(b"".join(chunks))

    @staticmethod
    def _too_large(limit: int) -> HTTPProblem:
        return HTTPProblem(
            413,
            "body_too_large",
            f"The request body is over this server's limit of {limit} bytes (--max-body).",
        )

    @staticmethod
    def strict(request: Request) -> bool:
        text = request.query_params.get("strict")
        if text is None:
            return False
        value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
        if value is None:
            raise HTTPProblem(
                422,
                "schema",
                f"strict: expected true or false, got {text[:100]!r}.",
                [
                    {
                        "row": None,
                        "column": None,
                        "expected": "true or false",
                        "received": text[:100],
                        "message": "strict must be true or false",
                        "kind": "invalid_parameter",
                    }
                ],
            )
        return value

    # -------------------------------------------------------------------- predicting

    async def predict(
        self,
        request: Request,
        endpoint: str,
        parse: Callable[[Any, int], tuple[Any, int, Any]],
        respond: Callable[[ServedModel, Predictor, Outcome, str, Any, Prepared], Any],
        name: str | None,
        version: str | None = None,
    ) -> Response:
        """The one path of every prediction endpoint (see the module docstring)."""
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or ""
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        label = ""
        status = 200
        kind: str | None = None
        try:
            self.authorize(request)
            if name is None:
                name = self._single_model(request)
            served = self.model(name, version)
            label = served.name
            entry = self._entry(served)
            strict = self.strict(request)
            document = await self.body(request)
            X, rows, extra = parse(document, self.config.max_rows)
            prepared = self._validate(entry.predictor, X, rows, strict)
            if rows == 0:
                outcome = Outcome([], [] if entry.predictor.has_proba else None)
            else:
                outcome = await entry.batcher.predict(prepared)
                if outcome.error is not None:
                    raise schema_problem(outcome.error)
            body = respond(served, entry.predictor, outcome, request_id, extra, prepared)
            response = _json_response(body, headers=self._headers(served, request_id))
            self._count(served, entry.predictor, outcome)
            if self.log is not None and rows:
                self._log(served, entry.predictor, X, outcome, request_id, started)
        except HTTPProblem as problem:
            status, kind = problem.status, problem.kind
            response = _problem_response(problem, {"X-Request-Id": request_id})
        except ClientDisconnect:  # the client left mid-body: nobody to answer, no fault
            status, kind = 400, "client_disconnected"
            response = _json_response(
                problem_body(kind, "The client disconnected before sending its body.", []), 400
            )
        except Exception:  # a server fault: logged with its traceback, never its request
            logger.exception("Request %s to %s failed", request_id, endpoint)
            status, kind = 500, "internal"
            response = _json_response(
                problem_body("internal", f"Internal error (request {request_id}).", []),
                500,
                {"X-Request-Id": request_id},
            )
        self.metrics.observe(endpoint, label, status, time.perf_counter() - started, kind)
        return response

    def _single_model(self, request: Request) -> str:
        name = request.query_params.get("model")
        if name is not None:
            return name
        names = self.table.names()
        if len(names) == 1:
            return names[0]
        raise HTTPProblem(
            404,
            "not_found",
            f"This server serves {len(names)} models ({', '.join(names)}): name one with "
            "?model=NAME.",
        )

    @staticmethod
    def _validate(predictor: Predictor, X: Any, rows: int, strict: bool) -> Prepared:
        if rows == 0:
            return Prepared(None, 0)
        try:
            return predictor.validate(X, strict=strict)
        except SchemaError as exc:
            raise schema_problem(exc) from None
        except InputError as exc:  # an argument the input core refuses (its shape)
            raise HTTPProblem(
                422,
                "schema",
                str(exc),
                [
                    {
                        "row": None,
                        "column": None,
                        "expected": None,
                        "received": None,
                        "message": str(exc),
                        "kind": "invalid",
                    }
                ],
            ) from None

    @staticmethod
    def _headers(served: ServedModel, request_id: str) -> dict[str, str]:
        return {
            "X-Request-Id": request_id,
            "X-Model-Name": served.name,
            "X-Model-Version": served.version,
            "X-Manifest-Hash": served.manifest_hash,
        }

    def _count(self, served: ServedModel, predictor: Predictor, outcome: Outcome) -> None:
        n = len(outcome.labels)
        if not n:
            return
        self.metrics.rows.labels(served.name, served.version).inc(n)
        if predictor.classifier:
            counts: dict[Any, int] = {}
            for value in outcome.labels:
                counts[value] = counts.get(value, 0) + 1
            for value, count in counts.items():
                self.metrics.labels.labels(served.name, str(value)).inc(count)

    def _log(
        self,
        served: ServedModel,
        predictor: Predictor,
        X: Any,
        outcome: Outcome,
        request_id: str,
        started: float,
    ) -> None:
        log = self.log
        if log is None:
            return
        try:
            now = datetime.now(timezone.utc)
            latency = (time.perf_counter() - started) * 1000.0
            if isinstance(X, dict):
                names = list(X)
                records = [
                    dict(zip(names, values, strict=True))
                    for values in zip(*X.values(), strict=True)
                ]
            else:
                records = X
            columns = predictor.columns
            rows = []
            for i, record in enumerate(records):
                output: dict[str, Any] = {"label": outcome.labels[i]}
                if outcome.probabilities is not None:
                    probabilities = outcome.probabilities[i]
                    output["probabilities"] = dict(
                        zip(map(str, columns), probabilities, strict=True)
                    )
                rows.append(
                    {
                        "request_id": request_id,
                        "time": now,
                        "model": served.name,
                        "version": served.version,
                        "manifest_hash": served.manifest_hash,
                        "inputs": record,
                        "outputs": output,
                        "latency_ms": latency,
                    }
                )
            log.submit(rows)
            self.metrics.log_dropped.set(log.dropped)
            self.metrics.log_written.set(log.written)
        except Exception:  # logging never fails a request
            logger.exception("Logging request %s failed", request_id)

    # ------------------------------------------------------------------ descriptions

    def describe(self, served: ServedModel) -> dict[str, Any]:
        manifest = served.model.manifest
        parity = None
        for artifact in manifest.artifacts:
            if "parity" in artifact.details and (
                artifact.format == served.model.format or parity is None
            ):
                parity = artifact.details["parity"]
        labels = manifest.label_map()
        return {
            "name": served.name,
            "version": served.version,
            "manifest_hash": served.manifest_hash,
            "ref": served.ref,
            "format": served.model.format,
            "task": manifest.task,
            "model_type": manifest.model_type,
            "manifest_name": manifest.name,
            "manifest_version": manifest.version,
            "created_at": manifest.created_at.isoformat(),
            "description": manifest.description,
            "schema": [f.model_dump(mode="json") for f in manifest.features],
            "labels": None if labels is None else [[k, v] for k, v in labels.items()],
            "metrics": manifest.metrics,
            "parity": parity,
            "environment": manifest.environment.model_dump(mode="json"),
        }

    def openapi(self) -> dict[str, Any]:
        models = self.table.all()
        key = tuple((m.name, m.manifest_hash) for m in models)
        if self._openapi is None or self._openapi[0] != key:
            document = build_openapi(
                models,
                secured=bool(self.config.keys),
                admin=bool(self.config.admin),
                version=__version__,
            )
            self._openapi = (key, document)
        return self._openapi[1]


# ------------------------------------------------------------------------ responses


def _v1_parse(document: Any, limit: int) -> tuple[Any, int, Any]:
    X, rows = protocols.parse_v1(document, limit)
    return X, rows, None


def _mlflow_parse(document: Any, limit: int) -> tuple[Any, int, Any]:
    X, rows = protocols.parse_mlflow(document, limit)
    return X, rows, None


def _v2_parse(document: Any, limit: int) -> tuple[Any, int, Any]:
    return protocols.parse_v2(document, limit)


def _v1_respond(
    served: ServedModel,
    predictor: Predictor,
    outcome: Outcome,
    request_id: str,
    extra: Any,
    prepared: Prepared,
) -> dict[str, Any]:
    labels = [plain_value(v) for v in outcome.labels]
    predictions: list[dict[str, Any]]
    if not predictor.classifier:
        predictions = [{"value": v} for v in labels]
    elif outcome.probabilities is None:
        predictions = [{"label": v, "probabilities": None} for v in labels]
    else:
        columns = [str(c) for c in predictor.columns]
        predictions = [
            {"label": v, "probabilities": dict(zip(columns, p, strict=True))}
            for v, p in zip(labels, outcome.probabilities, strict=True)
        ]
    return {
        "model": served.name,
        "version": served.version,
        "manifest_hash": served.manifest_hash,
        "request_id": request_id,
        "predictions": predictions,
        "warnings": prepared.warnings,
    }


def _mlflow_respond(
    served: ServedModel,
    predictor: Predictor,
    outcome: Outcome,
    request_id: str,
    extra: Any,
    prepared: Prepared,
) -> dict[str, Any]:
    return {"predictions": [plain_value(v) for v in outcome.labels]}


def _v2_datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _v2_respond(
    served: ServedModel,
    predictor: Predictor,
    outcome: Outcome,
    request_id: str,
    extra: Any,
    prepared: Prepared,
) -> dict[str, Any]:
    labels = [plain_value(v) for v in outcome.labels]
    n = len(labels)
    outputs: list[dict[str, Any]]
    if not predictor.classifier:
        outputs = [{"name": "value", "shape": [n], "datatype": "FP64", "data": labels}]
    else:
        outputs = [
            {"name": "label", "shape": [n], "datatype": _v2_datatype(labels), "data": labels}
        ]
        if outcome.probabilities is not None:
            flat = [p for row in outcome.probabilities for p in row]
            outputs.append(
                {
                    "name": "probabilities",
                    "shape": [n, len(predictor.columns)],
                    "datatype": "FP64",
                    "data": flat,
                    "parameters": {"labels": [str(c) for c in predictor.columns]},
                }
            )
    return {
        "model_name": served.name,
        "model_version": served.version,
        "id": extra if extra is not None else request_id,
        "parameters": {"manifest_hash": served.manifest_hash, "warnings": prepared.warnings},
        "outputs": outputs,
    }


# --------------------------------------------------------------------------- drain


class Lifecycle:
    """ASGI middleware: counts requests in flight and answers 503 while draining."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.service
        if service.draining and scope["path"] not in _ALWAYS:
            body = orjson.dumps(
                problem_body("draining", "The server is shutting down; retry elsewhere.", [])
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        service.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            service.inflight -= 1


# ---------------------------------------------------------------------------- app


def create_app(service: Service) -> FastAPI:
    """The ASGI app over ``service`` (models already loaded and verified)."""
    app = FastAPI(
        title="modelkeep prediction service",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.openapi = service.openapi  # type: ignore[method-assign]

    def route(
        path: str, methods: list[str]
    ) -> Callable[
        [Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]
    ]:
        def add(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
            app.router.add_route(path, endpoint, methods=methods, include_in_schema=False)
            return endpoint

        return add

    @route("/livez", ["GET"])
    async def livez(request: Request) -> Response:
        return _json_response({"status": "live"})

    @route("/readyz", ["GET"])
    async def readyz(request: Request) -> Response:
        return _ready(service)

    @route("/v2/health/live", ["GET"])
    async def v2_live(request: Request) -> Response:
        return _json_response({"live": True})

    @route("/v2/health/ready", ["GET"])
    async def v2_ready(request: Request) -> Response:
        response = _ready(service)
        return response

    @route("/metrics", ["GET"])
    async def metrics(request: Request) -> Response:
        if service.log is not None:
            service.metrics.log_dropped.set(service.log.dropped)
            service.metrics.log_written.set(service.log.written)
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def guarded(request: Request, make: Callable[[], Any]) -> Response:
        try:
            service.authorize(request)
            return _json_response(make())
        except HTTPProblem as problem:
            return _problem_response(problem)

    @route("/v1/models", ["GET"])
    async def v1_models(request: Request) -> Response:
        return await guarded(
            request,
            lambda: {
                "models": [
                    {
                        "name": m.name,
                        "version": m.version,
                        "manifest_hash": m.manifest_hash,
                        "ref": m.ref,
                        "format": m.model.format,
                        "task": m.model.task,
                    }
                    for m in service.table.all()
                ]
            },
        )

    @route("/v1/models/{name}", ["GET"])
    async def v1_model(request: Request) -> Response:
        name = request.path_params["name"]
        return await guarded(request, lambda: service.describe(service.model(name)))

    @route("/v1/models/{name}/predict", ["POST"])
    async def v1_predict(request: Request) -> Response:
        return await service.predict(
            request, "v1_predict", _v1_parse, _v1_respond, request.path_params["name"]
        )

    @route("/v1/models/{name}/versions/{version}/predict", ["POST"])
    async def v1_predict_version(request: Request) -> Response:
        return await service.predict(
            request,
            "v1_predict",
            _v1_parse,
            _v1_respond,
            request.path_params["name"],
            request.path_params["version"],
        )

    @route("/invocations", ["POST"])
    async def invocations(request: Request) -> Response:
        return await service.predict(request, "invocations", _mlflow_parse, _mlflow_respond, None)

    @route("/v2", ["GET"])
    async def v2_server(request: Request) -> Response:
        return _json_response({"name": "modelkeep", "version": __version__, "extensions": []})

    @route("/v2/models/{name}", ["GET"])
    async def v2_model(request: Request) -> Response:
        name = request.path_params["name"]
        return await guarded(request, lambda: _v2_metadata(service.model(name)))

    @route("/v2/models/{name}/ready", ["GET"])
    async def v2_model_ready(request: Request) -> Response:
        try:
            served = service.model(request.path_params["name"])
        except HTTPProblem as problem:
            return _problem_response(problem)
        ready = service.ready and not service.draining
        return _json_response({"name": served.name, "ready": ready}, 200 if ready else 503)

    @route("/v2/models/{name}/infer", ["POST"])
    async def v2_infer(request: Request) -> Response:
        return await service.predict(
            request, "v2_infer", _v2_parse, _v2_respond, request.path_params["name"]
        )

    @route("/v2/models/{name}/versions/{version}/infer", ["POST"])
    async def v2_infer_version(request: Request) -> Response:
        return await service.predict(
            request,
            "v2_infer",
            _v2_parse,
            _v2_respond,
            request.path_params["name"],
            request.path_params["version"],
        )

    if service.config.admin:

        @route("/admin/reload", ["POST"])
        async def admin_reload(request: Request) -> Response:
            token = bearer_token(request.headers.get("authorization"))
            if not service.config.admin.accepts(token):
                return _problem_response(
                    HTTPProblem(
                        401,
                        "unauthorized",
                        "POST /admin/reload needs 'Authorization: Bearer <MODELKEEP_ADMIN_TOKEN>'.",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                )
            watcher = service.watcher
            if watcher is None:
                return _json_response({"events": []})
            import asyncio

            loop = asyncio.get_running_loop()
            events = await loop.run_in_executor(None, watcher.reload_now)
            return _json_response(
                {
                    "events": [
                        {
                            "name": e.name,
                            "old_version": e.old_version,
                            "new_version": e.new_version,
                            "accepted": e.accepted,
                            "reason": e.reason,
                        }
                        for e in events
                    ]
                }
            )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        kinds = {404: "not_found", 405: "method_not_allowed"}
        message = "No such endpoint." if status == 404 else str(getattr(exc, "detail", ""))
        return _json_response(problem_body(kinds.get(status, "http_error"), message, []), status)

    async def server_error(request: Request, exc: Exception) -> Response:
        logger.error("Unhandled error on %s", request.url.path, exc_info=exc)
        return _json_response(problem_body("internal", "Internal error.", []), 500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    app.add_middleware(Lifecycle, service=service)
    return app


def _ready(service: Service) -> Response:
    if service.ready and not service.draining and len(service.table):
        return _json_response({"status": "ready", "models": service.table.names()})
    reason = "draining" if service.draining else "loading"
    return _json_response(problem_body("not_ready", f"Not ready ({reason}).", []), 503)


def _v2_metadata(served: ServedModel) -> dict[str, Any]:
    outputs = [{"name": "label", "datatype": "BYTES", "shape": [-1]}]
    if served.model.task == "regression":
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    else:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]})
    return {
        "name": served.name,
        "versions": [served.version],
        "platform": f"modelkeep-{served.model.format}",
        "inputs": [
            {"name": f.name, "datatype": v2_datatype(f), "shape": [-1]} for f in served.model.schema
        ],
        "outputs": outputs,
    }


def environment_threads() -> int:
    """Prediction threads: ``$MODELKEEP_SERVE_THREADS`` or the CPU count (2 to 8)."""
    text = os.environ.get("MODELKEEP_SERVE_THREADS", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    return max(2, min(8, os.cpu_count() or 2))
