"""The HTTP API (FastAPI): gateways score transactions before they authorise them.

``POST /v1/score`` takes one canonical transaction (the JSON of ``docs/events.md``),
``POST /v1/score/batch`` up to 1,000 (``{"transactions": [...]}``); both answer with the score,
the decision (``approve``, ``review``, ``block``), reasons, the model version, the account's
ring if any, and the server's latency. Callers authenticate with a bearer token carrying the
``score`` scope (:mod:`serve.tokens`): missing or invalid 401, wrong scope 403.

Bad input is answered 422 with every field error in one format, and nothing of it reaches the
state; a batch is all or nothing. Bodies above :data:`MAX_BODY_BYTES` get 413. Errors share one
shape: ``{"error": {"code", "message", "fields": [{"index", "field", "reason"}]}}``.

``GET /health`` (the process is up), ``GET /ready`` (a model is loaded; both 503 once a
feature worker's process is gone), ``GET /metrics``
(Prometheus: request latency histograms, decisions by type, the model version).
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations, and the
# dependency aliases are local to create_app
import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel

from ingest.errors import RecordRejected
from ingest.validate import Validator
from serve.enforcement import BlockList, EnforcementError
from serve.feature_worker import FeatureWorkerError
from serve.pipeline import ScoringPipeline
from serve.tokens import Claims, ScopeMissing, SigningKeys, TokenInvalid, Verifier

MAX_BATCH: Final = 1000
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
MAX_COMPANY: Final = 1000
"""The most transactions one micro-batch of concurrent requests holds (a request larger alone).

With a feature worker, smaller micro-batches keep both processes busy: measured with batches of
500 from 8 connections, 2,000 gave 16-18k transactions/s (each process busy only 66-84% of the
time, waiting for the other's large batch), 1,000 gave 23.8k and 500 22.6k. In process it makes
no difference (14.7k and 14.5k)."""
MAX_FLYING: Final = 8
"""Batches begun in the feature worker and not yet decided, at most (more: the caller waits)."""

log = logging.getLogger(__name__)


class RuleHit(BaseModel):
    """A rule that fired (or could not be decided) on the transaction."""

    rule_id: str
    result: str
    error: str | None = None


class ScoreResult(BaseModel):
    """The answer for one transaction (documentation of the JSON the routes write)."""

    txn_id: str
    score: float
    decision: str
    reasons: list[str]
    decided_by: str
    model_version: str
    ring_id: str | None
    replayed: bool
    ruleset_version: str | None
    challenge_id: str | None
    shadow_decision: str | None
    rules: list[RuleHit]
    latency_ms: float


class BatchResult(BaseModel):
    """The answers for a batch, in the order of its transactions."""

    results: list[ScoreResult]


class MicroBatcher:
    """Concurrent requests' transactions scored together, in one pipeline call.

    A request's transactions join a queue; the queue is drained by a callback scheduled on
    the event loop, so a request waits only for the requests already queued when it arrived,
    never for a timer: alone it is scored at once, and under load the transactions that came
    in while the previous batch was being scored go together (up to :data:`MAX_COMPANY`).
    Requests are scored in arrival order, each request's transactions in its own order.

    With a feature worker (the pipeline's ``worker``), a drained batch is begun (its features
    computed in the worker's process) and finished when the worker answers, signalled on the
    event loop by the worker's pipe; the loop never waits for the worker while fewer than
    :data:`MAX_FLYING` batches are in it, so this process parses the next requests and
    decides the batches answered while the worker computes: the two stages use two cores.
    """

    def __init__(
        self, pipeline: ScoringPipeline, observe: Callable[[int], None] = lambda size: None
    ) -> None:
        self._pipeline = pipeline
        self._observe = observe
        self._queue: list[tuple[list[Any], asyncio.Future[list[Any]]]] = []
        self._scheduled = False
        self._flying: deque[tuple[Any, list[tuple[list[Any], Any]]]] = deque()
        self._worker = pipeline.worker
        self._watching = False
        self.batches = 0
        self.largest = 0

    async def score(self, events: list[Any]) -> list[Any]:
        """The decisions for ``events``, scored with whatever company is waiting."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((events, done))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain, loop)
        return await done

    def settle(self) -> None:
        """Finish every batch in flight (before asking the feature worker anything else)."""
        while self._flying:
            self._finish_oldest()

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        taken, size = 0, 0
        for events, _ in self._queue:
            if taken and size + len(events) > MAX_COMPANY:
                break
            taken += 1
            size += len(events)
        group, self._queue = self._queue[:taken], self._queue[taken:]
        if self._queue:
            loop.call_soon(self._drain, loop)
        else:
            self._scheduled = False
        self.batches += 1
        self.largest = max(self.largest, size)
        self._observe(size)
        events = [e for events, _ in group for e in events]
        if self._worker is None:
            self._settle_group(group, lambda: self._pipeline.process(events))
            return
        try:
            batch = self._pipeline.begin(events)
        except Exception as exc:
            self._fail(group, exc, size)
            return
        self._flying.append((batch, group))
        if len(self._flying) > MAX_FLYING:  # the worker is behind: wait for it
            self._finish_oldest()
        if self._flying and not self._watching:
            loop.add_reader(self._worker.fileno(), self._on_answer, loop)
            self._watching = True

    def _on_answer(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._flying and self._worker.ready(self._flying[0][0].ticket):  # type: ignore[union-attr]
            self._finish_oldest()
        if not self._flying and self._watching:
            loop.remove_reader(self._worker.fileno())  # type: ignore[union-attr]
            self._watching = False

    def _finish_oldest(self) -> None:
        batch, group = self._flying.popleft()
        self._settle_group(group, lambda: self._pipeline.finish(batch))

    def _settle_group(
        self, group: list[tuple[list[Any], Any]], decide: Callable[[], list[Any]]
    ) -> None:
        try:
            decisions = decide()
        except Exception as exc:  # every waiting request learns of it; the server goes on
            self._fail(group, exc, sum(len(events) for events, _ in group))
            return
        start = 0
        for events, done in group:
            if not done.done():  # a caller that went away has a cancelled future
                done.set_result(decisions[start : start + len(events)])
            start += len(events)

    @staticmethod
    def _fail(group: list[tuple[list[Any], Any]], exc: Exception, size: int) -> None:
        log.exception("scoring a micro-batch of %d transactions failed", size, exc_info=exc)
        if isinstance(exc, FeatureWorkerError):  # not the request's fault: try another replica
            exc = ApiError(503, "unavailable", f"this replica cannot score: {exc}")
        for _, done in group:
            if not done.done():
                done.set_exception(exc)


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response written by orjson (FastAPI's own encoder costs more than scoring)."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class ApiError(Exception):
    """An error answered with :func:`error_response`."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []


def error_body(exc: ApiError) -> dict[str, Any]:
    """The one error shape."""
    body: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
    if exc.fields:
        body["error"]["fields"] = exc.fields
    return body


def error_response(exc: ApiError) -> JSONResponse:
    """An error as a response."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


class Metrics:
    """The API's Prometheus metrics, in a registry of their own."""

    def __init__(self, model_version: str) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "ringfence_request_seconds",
            "Server time per request",
            ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.decisions = Counter(
            "ringfence_decisions", "Decisions by type", ["decision"], registry=self.registry
        )
        self.batch_size = Histogram(
            "ringfence_microbatch_transactions",
            "Transactions per pipeline call (concurrent requests scored together)",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000),
        )
        info = Counter(
            "ringfence_model_info", "The model serving", ["model_version"], registry=self.registry
        )
        info.labels(model_version=model_version).inc(0)


class Scoring:
    """The scoring routes' work, shared by the FastAPI routes and :class:`FastPath`.

    Args:
        pipeline: the scoring pipeline (its ``process`` is called through a
            :class:`MicroBatcher`).
        keys: the keys tokens are verified against.
        validator: the canonical-record validator.
        metrics: where latencies and decisions are counted.
        now: the clock for token times.
    """

    def __init__(
        self,
        pipeline: ScoringPipeline,
        keys: SigningKeys,
        validator: Validator,
        metrics: Metrics,
        now: Callable[[], datetime],
    ) -> None:
        self.tokens = Verifier(keys)
        self.batcher = MicroBatcher(pipeline, metrics.batch_size.observe)
        self.validate = validator.validate
        self.now = now
        self._count = metrics.decisions.labels
        self._latency = {
            route: metrics.latency.labels(route=route) for route in ("score", "score_batch")
        }

    def authorise(self, header: str, scope: str) -> Claims:
        """The caller's claims from its ``Authorization`` header (ApiError 401/403 if not)."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "a bearer token is required")
        try:
            return self.tokens.verify(token.strip(), scope=scope, now=self.now())
        except TokenInvalid as exc:
            raise ApiError(401, "unauthenticated", str(exc)) from None
        except ScopeMissing as exc:
            raise ApiError(403, "forbidden", str(exc)) from None

    @staticmethod
    def parse(raw: bytes) -> Any:
        """A request body as JSON (ApiError 413 when too large, 422 when not JSON)."""
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                422, "invalid", "the body is not JSON", [{"field": "(body)", "reason": str(exc)}]
            ) from None

    def transaction(self, record: Any, index: int | None) -> Any:
        """One canonical transaction from its JSON (ApiError 422 naming the fields if not)."""
        where = {} if index is None else {"index": index}
        if not isinstance(record, dict):
            raise ApiError(
                422,
                "invalid",
                "a transaction must be a JSON object",
                [where | {"field": "(record)", "reason": "not an object"}],
            )
        record.setdefault("event_type", "transaction")
        if record["event_type"] != "transaction":
            raise ApiError(
                422,
                "invalid",
                "only transactions are scored",
                [where | {"field": "event_type", "reason": "must be 'transaction'"}],
            )
        try:
            return self.validate(record)
        except RecordRejected as exc:
            raise ApiError(
                422,
                "invalid",
                "the transaction is invalid",
                [where | {"field": e.field, "reason": e.reason} for e in exc.errors],
            ) from None

    def _answer(self, decisions: list[Any], started: float) -> list[dict[str, Any]]:
        latency_ms = round((time.perf_counter() - started) * 1e3, 3)
        out = []
        made: dict[str, int] = {}
        for d in decisions:
            made[d.decision] = made.get(d.decision, 0) + 1
            body = d.to_dict()
            body["latency_ms"] = latency_ms
            out.append(body)
        for decision, n in made.items():
            self._count(decision=decision).inc(n)
        return out

    async def score(self, raw: bytes, started: float) -> dict[str, Any]:
        """``POST /v1/score``: one transaction's answer."""
        event = self.transaction(self.parse(raw), None)
        result = self._answer(await self.batcher.score([event]), started)[0]
        self._latency["score"].observe(time.perf_counter() - started)
        return result

    async def score_batch(self, raw: bytes, started: float) -> dict[str, Any]:
        """``POST /v1/score/batch``: up to 1,000 transactions, in order; all or nothing."""
        body = self.parse(raw)
        items = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ApiError(
                422,
                "invalid",
                'expected {"transactions": [...]}',
                [{"field": "transactions", "reason": "missing or not a list"}],
            )
        if not 0 < len(items) <= MAX_BATCH:
            raise ApiError(
                422,
                "invalid",
                f"a batch holds 1 to {MAX_BATCH} transactions",
                [{"field": "transactions", "reason": f"{len(items)} given"}],
            )
        events, problems = [], []
        for i, record in enumerate(items):
            try:
                events.append(self.transaction(record, i))
            except ApiError as exc:
                problems += exc.fields
        if problems:
            raise ApiError(422, "invalid", "some transactions are invalid", problems)
        results = self._answer(await self.batcher.score(events), started)
        self._latency["score_batch"].observe(time.perf_counter() - started)
        return {"results": results}


class FastPath:
    """The two scoring routes answered straight from ASGI, ahead of FastAPI's routing.

    A single-transaction call spends more time in the framework's layers (routing, dependency
    solving, request objects, middleware) than in scoring; this middleware answers ``POST
    /v1/score`` and ``POST /v1/score/batch`` itself, through the same :class:`Scoring` the
    FastAPI routes call (same checks, same answers, same error shape), and hands every other
    request to the application. The FastAPI routes stay declared: they document the API in
    OpenAPI and serve when the fast path is off.
    """

    ROUTES: Final = {"/v1/score": "score", "/v1/score/batch": "score_batch"}

    def __init__(self, app: Any, scoring: Scoring) -> None:
        self.app = app
        self.scoring = scoring

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer a scoring call, or pass the request on."""
        route = self.ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        try:
            self.scoring.authorise(headers.get(b"authorization", b"").decode("latin-1"), "score")
            length = headers.get(b"content-length", b"")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise _too_large()
            raw = await _read_body(receive)
            if route == "score":
                out = await self.scoring.score(raw, started)
            else:
                out = await self.scoring.score_batch(raw, started)
            status, payload = 200, orjson.dumps(out)
        except ApiError as exc:
            status, payload = exc.status, orjson.dumps(error_body(exc))
            if exc.status == 401:
                extra.append((b"www-authenticate", b"Bearer"))
        except Exception:
            log.exception("%s failed", scope["path"])
            status = 500
            payload = orjson.dumps({"error": {"code": "internal", "message": "scoring failed"}})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def server_app(app: FastAPI) -> Any:
    """The ASGI application to hand a server (what ``ringfence serve`` runs).

    With the fast path on, :class:`FastPath` in front of the whole application, FastAPI's own
    middleware included (error pages, telemetry, body limits: about a tenth of a single call's
    time), so a scoring call crosses no framework layer; every other request goes on to ``app``
    as before. The application itself when the fast path is off.
    """
    return FastPath(app, app.state.scoring) if app.state.fast_path else app


def _too_large() -> ApiError:
    return ApiError(413, "too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")


async def _read_body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "disconnected", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(
    pipeline: ScoringPipeline,
    keys: SigningKeys,
    *,
    validator: Validator | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    fast_path: bool = True,
) -> FastAPI:
    """The API around a scoring pipeline; requests are verified against ``keys``.

    With ``fast_path`` (the default) the scoring routes are answered by :class:`FastPath`
    ahead of FastAPI's routing; without it, by the FastAPI routes. Both give the same answers.
    """
    metrics = Metrics(pipeline.version)
    Gauge(
        "ringfence_model_backend_failures",
        "Batches the model backend failed (scored in process instead)",
        registry=metrics.registry,
    ).set_function(lambda: pipeline.stats.backend_failures)
    scoring = Scoring(pipeline, keys, validator or Validator(), metrics, now)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Ringfence",
        summary="Fraud and fraud-ring scoring for payment gateways.",
        version="1",
        lifespan=lifespan,
    )
    app.add_exception_handler(ApiError, lambda _req, exc: error_response(exc))  # type: ignore[arg-type, return-value]
    app.state.scoring = scoring
    app.state.fast_path = fast_path
    if fast_path:
        app.add_middleware(FastPath, scoring=scoring)  # type: ignore[arg-type]

    def caller_of(scope: str) -> Callable[[Request], Any]:
        # coroutines: FastAPI would run plain functions in a thread pool, a hop per request
        async def check(request: Request) -> Claims:
            return scoring.authorise(request.headers.get("authorization", ""), scope)

        return check

    Caller = Annotated[Claims, Depends(caller_of("score"))]
    Investigator = Annotated[Claims, Depends(caller_of("investigate"))]
    Explaining = Annotated[Claims, Depends(caller_of("explain"))]

    async def raw_of(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise _too_large()
        return await request.body()

    async def body_of(request: Request) -> Any:
        return scoring.parse(await raw_of(request))

    @app.post("/v1/score", response_model=ScoreResult)
    async def score(request: Request, who: Caller) -> Response:
        """Score one transaction."""
        started = time.perf_counter()
        return json_response(await scoring.score(await raw_of(request), started))

    @app.post("/v1/score/batch", response_model=BatchResult)
    async def score_batch(request: Request, who: Caller) -> Response:
        """Score up to 1,000 transactions, in order; all or nothing."""
        started = time.perf_counter()
        return json_response(await scoring.score_batch(await raw_of(request), started))

    @app.post("/v1/challenges/{challenge_id}/verify")
    async def verify_challenge(challenge_id: str, request: Request, who: Caller) -> dict[str, Any]:
        """Complete a step-up challenge with the customer's TOTP code."""
        if pipeline.challenges is None:
            raise ApiError(404, "not_found", "step-up challenges are not enabled")
        body = await body_of(request)
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code.strip():
            raise ApiError(
                422, "invalid", "a code is required", [{"field": "code", "reason": "missing"}]
            )
        try:
            ch = pipeline.challenges.verify(challenge_id, code.strip())
        except EnforcementError as exc:
            status = 404 if "unknown" in str(exc) else 409
            raise ApiError(status, "challenge", str(exc)) from None
        return {
            "challenge_id": ch.id,
            "txn_id": ch.txn_id,
            "passed": ch.passed,
            "attempts": ch.attempts,
        }

    @app.get("/v1/transactions/{txn_id}/explanation")
    async def explanation(txn_id: str, who: Explaining) -> dict[str, Any]:
        """The full explanation of a scored transaction, computed on demand."""
        scoring.batcher.settle()  # nothing in flight: the explanation sees its transaction
        out = pipeline.explain(txn_id)
        if out is None:
            raise ApiError(404, "not_found", f"no scored transaction {txn_id}")
        return out

    def block_list() -> BlockList:
        if pipeline.blocks is None:
            raise ApiError(404, "not_found", "the block list is not enabled")
        return pipeline.blocks

    @app.get("/v1/blocks")
    async def blocks(who: Investigator) -> dict[str, Any]:
        """Active blocks, newest first."""
        return {"blocks": [b.to_dict() for b in block_list().active()]}

    @app.post("/v1/blocks/{kind}/{entity_id}/lift")
    async def lift(kind: str, entity_id: str, who: Investigator) -> dict[str, Any]:
        """Lift a block (audited with the investigator's identity)."""
        if not block_list().lift(kind, entity_id, by=who.client):
            raise ApiError(404, "not_found", f"no active block on {kind} {entity_id}")
        return {"lifted": True, "kind": kind, "id": entity_id, "by": who.client}

    @app.post("/v1/rings/{ring_id}/block")
    async def block_ring(ring_id: str, who: Investigator) -> dict[str, Any]:
        """Block every member account of a ring in one operation."""
        scoring.batcher.settle()
        ring = pipeline.features.ring(ring_id)
        if ring is None:
            raise ApiError(404, "not_found", f"no ring {ring_id}")
        n = block_list().block_ring(
            ring.id, ring.accounts, reason=f"ring {ring.id} ({ring.typology})", by=who.client
        )
        return {"ring_id": ring.id, "blocked_accounts": n, "by": who.client}

    def broken() -> Response | None:
        """503 when the service cannot score: its feature worker's process is gone.

        Liveness fails too: a restart rebuilds the state from the journal.
        """
        if pipeline.worker is None or pipeline.worker.alive:
            return None
        return json_response(
            {"status": "failed", "reason": "the feature worker's process is gone"}, 503
        )

    @app.get("/health", response_model=None)
    async def health() -> dict[str, str] | Response:
        """The process is up and can score."""
        return broken() or {"status": "ok"}

    @app.get("/ready", response_model=None)
    async def ready() -> dict[str, Any] | Response:
        """A model is loaded and scoring."""
        return broken() or {"status": "ready", "model_version": pipeline.version}

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
