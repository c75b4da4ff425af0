"""The FastAPI application of `tuco serve` and the uvicorn runner that drains on SIGTERM.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (streaming or not),
``GET /health``, ``GET /metrics`` (Prometheus), and the tokenizer routes lm-evaluation-harness's remote
tokenizer reads (``GET /tokenizer_info``, ``POST /tokenize``, ``POST /detokenize``). Every refusal is an
OpenAI error object with a 4xx status; an API key, when set, is required on every route but /health and
/metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuco.measures.decoding import Row
from tuco.serve import protocol
from tuco.serve.monitoring import Monitor, choice_entry, log_request
from tuco.serve.protocol import APIError, Call
from tuco.serve.worker import Draining, Event, Job, QueueFull, TextStream, Worker

log = logging.getLogger("tuco.serve")
POLL_SECONDS = 0.25  # how often a waiting non-streaming request checks that its client is still there


@dataclass
class Settings:
    """How the server behaves (the `tuco serve` options)."""

    model_name: str = "tuco"
    api_key: str | None = None
    alpha: str = "1"  # alpha of requests that give none
    max_batch: int = 16
    max_queue: int = 64
    max_tokens: int = 512
    max_request_bytes: int = 1 << 20
    flag_below: float | None = None
    retry_after: int = 1
    drain_seconds: int = 300


class Server:
    """What the routes share: the model, its worker thread, the limits, the metrics."""

    def __init__(self, model: Any, settings: Settings) -> None:
        from tuco.models.pair import context_length

        self.model, self.settings = model, settings
        self.tokenizer_lock = threading.Lock()  # one fast tokenizer is not safe to use from two threads at once
        self.limits = protocol.Limits(max_rows=settings.max_batch, max_tokens=settings.max_tokens, context=context_length(model.config))
        self.worker: Worker = Worker(model, max_batch=settings.max_batch, max_queue=settings.max_queue, on_pass=self._on_pass)
        self.monitor = Monitor(queue_depth=lambda: self.worker.queued, running_rows=lambda: self.worker.running_rows)
        self.created = protocol.now()

    def _on_pass(self, kind: str, rows: int) -> None:
        self.monitor.batch.labels(kind).observe(rows)

    # ---- checks every route shares ----

    def authorize(self, request: Request) -> None:
        """Raise 401 unless the request carries ``Authorization: Bearer <key>`` (when a key is set)."""
        key = self.settings.api_key
        if key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise APIError(
                401, "missing or wrong API key: send 'Authorization: Bearer <key>' (tuco serve --api-key)", code="invalid_api_key"
            )

    async def read_json(self, request: Request) -> Any:
        """The body as JSON, refused (413) past ``max_request_bytes`` and (400) when it is not JSON."""
        limit = self.settings.max_request_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise APIError(413, f"the request body has {length} bytes, more than this server accepts ({limit})", code="request_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise APIError(413, f"the request body is larger than this server accepts ({limit} bytes)", code="request_too_large")
        try:
            return json.loads(bytes(body), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as err:
            raise APIError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from err

    # ---- completions ----

    def start(self, call: Call) -> Job:
        """Queue the call's rows (429 when the queue is full, 503 when draining)."""
        from tuco.measures.sampling import Sampling, row_seed

        rows, streams = [], []
        sampling = Sampling(max_new_tokens=max(1, call.max_tokens), temperature=call.temperature, top_p=call.top_p, seed=call.seed)
        for p, ids in enumerate(call.prompts):
            for j in range(call.n):
                rows.append(
                    Row(
                        ids=ids,
                        alpha=call.alpha,
                        sampling=sampling,
                        seed=None if call.seed is None else row_seed(call.seed, str(p), j),
                        logprobs=call.logprobs,
                        prompt_logprobs=call.echo and call.logprobs is not None,
                        prompt_only=call.max_tokens == 0,
                    )
                )
                streams.append(TextStream(self.model.tokenizer, call.stop, self.tokenizer_lock))
        job = Job(rows, streams, loop=asyncio.get_running_loop())
        try:
            self.worker.submit(job)
        except QueueFull as err:
            raise APIError(429, f"the server is busy ({err}); retry later", code="queue_full", kind="rate_limit_error") from err
        except Draining as err:
            raise APIError(503, "the server is shutting down", code="draining", kind="server_error") from err
        return job

    def choice(self, call: Call, job: Job, i: int) -> dict[str, Any]:
        """Choice ``i`` of a finished job in the OpenAI format, with its ``tuco`` object."""
        row, stream = job.rows[i], job.streams[i]
        out: dict[str, Any] = {"index": i, "finish_reason": row.finish_reason}
        tok = self.model.tokenizer
        if call.kind == "chat":
            out["message"] = {"role": "assistant", "content": stream.text}
            out["logprobs"] = self.chat_logprobs(row, range(len(row.tokens))) if call.logprobs is not None else None
        else:
            prompt_text = ""
            if call.echo:
                given = call.texts[i // call.n]
                with self.tokenizer_lock:
                    prompt_text = given if given is not None else tok.decode(row.ids)
            out["text"] = prompt_text + stream.text
            out["logprobs"] = self.completion_logprobs(row, call.echo) if call.logprobs is not None else None
        out["tuco"] = protocol.tuco_object(call.alpha_text, row.prompt_tuco, row.token_tuco, call.tuco_tokens)
        if self.settings.flag_below is not None:
            out["tuco_flag"] = row.prompt_tuco < self.settings.flag_below
        return out

    def token_text(self, ids: list[int]) -> list[str]:
        """Each token's own text."""
        with self.tokenizer_lock:
            return [self.model.tokenizer.decode([t]) for t in ids]

    def completion_logprobs(self, row: Row, echo: bool) -> dict[str, Any]:
        """The completions ``logprobs`` object (prompt tokens first with echo; the first one's logprob is null)."""
        ids = (row.ids if echo else []) + row.tokens
        chosen = (row.prompt_token_logprobs if echo else []) + list(row.token_logprobs)
        tops = (row.prompt_top_logprobs if echo else []) + list(row.top_logprobs)
        texts = self.token_text(ids)
        offsets, at = [], 0
        for t in texts:
            offsets.append(at)
            at += len(t)
        top_texts = [None if top is None else dict(zip(self.token_text(list(top)), top.values())) for top in tops]
        return {"tokens": texts, "token_logprobs": chosen, "top_logprobs": top_texts, "text_offset": offsets}

    def chat_logprobs(self, row: Row, indices: Any) -> dict[str, Any]:
        """The chat ``logprobs`` object for generated tokens ``indices``."""
        content = []
        for k in indices:
            (text,) = self.token_text([row.tokens[k]])
            top = row.top_logprobs[k]
            content.append(
                {
                    "token": text,
                    "logprob": row.token_logprobs[k],
                    "bytes": list(text.encode("utf-8")),
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}
                        for t, lp in zip(self.token_text(list(top)), top.values())
                    ],
                }
            )
        return {"content": content}

    def observe(self, call: Call, job: Job, cancelled: bool = False) -> list[str]:
        """Metrics of a finished (or ``cancelled``) job; its choices as access-log entries."""
        entries = []
        label = self.monitor.alpha_label(call.alpha_text)
        for i, row in enumerate(job.rows):
            flagged = self.settings.flag_below is not None and row.prompt_tuco < self.settings.flag_below
            if row.prompt_tuco == row.prompt_tuco:  # measured (not NaN: cancelled before its prefill)
                self.monitor.prompt_tuco.labels(label).observe(row.prompt_tuco)
            self.monitor.tokens.inc(len(row.tokens))
            if flagged:
                self.monitor.flagged.inc()
            finish = row.finish_reason or ("cancelled" if cancelled else None)
            entries.append(choice_entry(i, call.alpha_text, row.prompt_tuco, row.response_tuco, len(row.tokens), finish, flagged))
        return entries


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def create_app(model: Any, settings: Settings) -> FastAPI:
    """The application serving ``model`` (a pair or chain) with ``settings``."""
    server = Server(model, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.worker.start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, server.worker.stop)

    app = FastAPI(title="tuco serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server

    @app.exception_handler(APIError)
    async def api_error(request: Request, err: APIError) -> JSONResponse:
        headers = {"Retry-After": str(settings.retry_after)} if err.status == 429 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"no route {request.method} {request.url.path}" if err.status_code in (404, 405) else str(err.detail)
        return JSONResponse(APIError(err.status_code, message).body(), status_code=err.status_code)

    @app.middleware("http")
    async def count_and_log(request: Request, call_next: Any) -> Response:
        started = time.monotonic()
        response = await call_next(request)
        path = request.url.path
        if path not in ("/v1/chat/completions", "/v1/completions"):  # completions count and log when they finish
            server.monitor.requests.labels(path if path in KNOWN else "other", str(response.status_code)).inc()
            if response.status_code >= 400:
                client = request.client.host if request.client else "-"
                log_request(client, request.method, path, response.status_code, time.monotonic() - started)
        return response

    async def complete(request: Request, kind: str) -> Response:
        started, path = time.monotonic(), request.url.path
        client = request.client.host if request.client else "-"

        def finish(status: int, entries: list[str] | None = None, error: str = "") -> None:
            seconds = time.monotonic() - started
            server.monitor.requests.labels(path, str(status)).inc()
            server.monitor.latency.labels(path).observe(seconds)
            log_request(client, request.method, path, status, seconds, entries, error)

        try:
            server.authorize(request)
            body = await server.read_json(request)
            parse = protocol.parse_chat if kind == "chat" else protocol.parse_completion
            with server.tokenizer_lock:
                call = parse(body, model, server.limits, settings.alpha)
            job = server.start(call)
        except APIError as err:
            finish(err.status, error=err.message)
            raise
        if call.stream:
            return StreamingResponse(_stream(server, call, job, finish), media_type="text/event-stream")
        error = await _wait(server, request, job)
        if error is not None:
            finish(500 if error else 499, server.observe(call, job, cancelled=True), error=error or "client disconnected")
            if not error:
                return Response(status_code=499)
            raise APIError(500, error, code="model_error")
        choices = [server.choice(call, job, i) for i in range(len(job.rows))]
        finish(200, server.observe(call, job))
        return JSONResponse(
            {
                "id": protocol.new_id(kind),
                "object": "chat.completion" if kind == "chat" else "text_completion",
                "created": protocol.now(),
                "model": call.model or settings.model_name,
                "choices": choices,
                "usage": protocol.usage(sum(map(len, call.prompts)), sum(len(r.tokens) for r in job.rows)),
            }
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await complete(request, "completion")

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        server.authorize(request)
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model", "created": server.created, "owned_by": "tuco"}]}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_name, "running": server.worker.running_rows, "queued": server.worker.queued}

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = server.monitor.render()
        return Response(body, media_type=content_type)

    @app.get("/tokenizer_info")
    async def tokenizer_info(request: Request) -> dict[str, Any]:
        server.authorize(request)
        tok = model.tokenizer
        return {
            "eos_token": tok.eos_token,
            "bos_token": tok.bos_token,
            "pad_token": tok.pad_token,
            "chat_template": getattr(tok, "chat_template", None),
            "model_max_length": server.limits.context,
        }

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        server.authorize(request)
        body = await server.read_json(request)
        text = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise APIError(400, "'prompt' must be a string", param="prompt")
        special = body.get("add_special_tokens", True)
        with server.tokenizer_lock:
            ids = list(model.tokenizer(text, add_special_tokens=bool(special))["input_ids"])
        return {"tokens": ids, "count": len(ids), "max_model_len": server.limits.context}

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        server.authorize(request)
        body = await server.read_json(request)
        ids = body.get("tokens") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(model.tokenizer) for t in ids
        ):
            raise APIError(400, "'tokens' must be an array of token ids of this model", param="tokens")
        with server.tokenizer_lock:
            return {"prompt": model.tokenizer.decode(ids)}

    return app


KNOWN = ("/v1/models", "/health", "/metrics", "/tokenizer_info", "/tokenize", "/detokenize")


async def _wait(server: Server, request: Request, job: Job) -> str | None:
    """Wait for a job to end; None when it did, "" when the client went away (its rows are freed), else the error."""
    while True:
        try:
            event = await asyncio.wait_for(job.events.get(), POLL_SECONDS)
        except TimeoutError:
            if await request.is_disconnected():
                server.worker.cancel(job)
                return ""
            continue
        if event.kind == "end":
            return None
        if event.kind == "error":
            return event.message


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _stream(server: Server, call: Call, job: Job, finish: Any) -> AsyncIterator[str]:
    """Server-sent events in the OpenAI chunk format; each token's chunk carries its TuCo, each choice's last
    chunk the whole ``tuco`` object. A client that goes away cancels the job (its rows leave the batch)."""
    rid, created, model_name = protocol.new_id(call.kind), protocol.now(), call.model or server.settings.model_name
    obj = "chat.completion.chunk" if call.kind == "chat" else "text_completion"
    started: set[int] = set()
    ended = False

    def chunk(choice: dict[str, Any]) -> str:
        return _sse({"id": rid, "object": obj, "created": created, "model": model_name, "choices": [choice]})

    def token_choice(ev: Event) -> dict[str, Any]:
        row = job.rows[ev.row]
        tuco: dict[str, Any] = {"token": ev.tuco}
        first = ev.row not in started
        if first:
            started.add(ev.row)
            tuco["prompt"] = row.prompt_tuco
        choice: dict[str, Any] = {"index": ev.row, "finish_reason": None, "tuco": tuco}
        if call.kind == "chat":
            choice["delta"] = {"role": "assistant", "content": ev.text} if first else {"content": ev.text}
            choice["logprobs"] = server.chat_logprobs(row, [ev.index]) if call.logprobs is not None else None
        else:
            text = ev.text
            if first and call.echo:
                given = call.texts[ev.row // call.n]
                with server.tokenizer_lock:
                    text = (given if given is not None else server.model.tokenizer.decode(row.ids)) + text
            choice["text"] = text
            choice["logprobs"] = None
        return choice

    try:
        while True:
            ev = await job.events.get()
            if ev.kind == "token":
                yield chunk(token_choice(ev))
            elif ev.kind == "done":
                row = job.rows[ev.row]
                last = {"index": ev.row, "finish_reason": row.finish_reason, "logprobs": None}
                last["delta" if call.kind == "chat" else "text"] = {} if call.kind == "chat" else ""
                last["tuco"] = protocol.tuco_object(call.alpha_text, row.prompt_tuco, row.token_tuco, call.tuco_tokens)
                if server.settings.flag_below is not None:
                    last["tuco_flag"] = row.prompt_tuco < server.settings.flag_below
                yield chunk(last)
            elif ev.kind == "error":
                ended = True
                finish(500, error=ev.message)
                yield _sse(APIError(500, ev.message, code="model_error").body())
                return
            else:  # end
                ended = True
                if call.include_usage:
                    use = protocol.usage(sum(map(len, call.prompts)), sum(len(r.tokens) for r in job.rows))
                    yield _sse({"id": rid, "object": obj, "created": created, "model": model_name, "choices": [], "usage": use})
                yield "data: [DONE]\n\n"
                finish(200, server.observe(call, job))
                return
    finally:
        if not ended:  # the client went away mid-stream: its rows leave the batch at the next pass
            server.worker.cancel(job)
            finish(499, server.observe(call, job, cancelled=True), error="client disconnected")


def run(model: Any, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, on_ready: Any = None) -> None:
    """Serve ``model`` until SIGTERM/SIGINT; then finish the requests in flight (up to ``drain_seconds``) and return."""
    import uvicorn

    app = create_app(model, settings)
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=settings.drain_seconds, lifespan="on"
    )
    server = _DrainingServer(config)
    server.on_ready = on_ready
    server.run()


class _DrainingServer:
    """uvicorn's server, exiting normally after a drained SIGTERM (uvicorn re-raises the signal otherwise)."""

    def __new__(cls, config: Any) -> Any:
        import uvicorn

        class Drained(uvicorn.Server):
            on_ready: Any = None

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                with super().capture_signals():
                    yield
                    self._captured_signals.clear()  # drained: exit with 0 rather than by the signal again

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                if self.on_ready is not None and self.started:
                    self.on_ready()

        return Drained(config)
