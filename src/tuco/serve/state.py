"""What every route of `tuco serve` shares: the settings, the model and its worker thread, the tokenizer's
thread, the limits, the metrics and the responses kept for "save as run".

The tokenizer runs on ONE thread of its own (``Server.off_loop``; a single-thread executor, as vLLM does,
so the event loop stays responsive): request bodies of up to 1 MiB are parsed, tokenised and rendered by
chat templates there, and responses' token texts are decoded there. The model thread shares the tokenizer
for incremental detokenisation; both take ``tokenizer_lock``, which no coroutine ever takes or awaits.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from starlette.requests import Request

from tuco.engine.alpha import Alpha
from tuco.serve import protocol
from tuco.serve.monitoring import Monitor
from tuco.serve.protocol import APIError, GenerateCall, ScoreCall
from tuco.serve.worker import Draining, GenerationJob, Job, QueueFull, ScoreJob, Worker

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

P = ParamSpec("P")
T = TypeVar("T")
KEEP_RESPONSES = 1024  # responses remembered for "save as run" (with --runs), oldest forgotten first


@dataclass
class Settings:
    """How the server behaves (the `tuco serve` options). ``allowed_hosts``: the Host headers answered
    (None: any; set by ``run`` when bound to a loopback address); ``runs``: where "save as run" writes
    (None: saving is off)."""

    model_name: str = "tuco"
    api_key: str | None = None
    alpha: Alpha = field(default_factory=lambda: Alpha.of(1.0))  # alpha of requests that give none
    max_batch: int = 16
    max_queue: int = 64
    max_tokens: int = 512
    max_request_bytes: int = 1 << 20
    flag_below: float | None = None
    retry_after: int = 1
    drain_seconds: int = 300
    runs: Path | None = None
    allowed_hosts: set[str] | None = None
    playground: bool = True


@dataclass
class Kept:
    """A response remembered for "save as run": what was asked and the job that answered it."""

    call: GenerateCall | ScoreCall
    job: GenerationJob | ScoreJob
    texts: list[str] = field(default_factory=list)  # generation: each choice's text as sent


class Server:
    """What the routes share: the model, its worker thread, the tokenizer's thread, limits, metrics."""

    def __init__(self, model: Decomposable, settings: Settings) -> None:
        self.model, self.settings = model, settings
        self.tokenizer_lock = threading.Lock()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tuco-serve-tokenizer")
        self.limits = protocol.Limits(max_rows=settings.max_batch, max_tokens=settings.max_tokens, context=model.max_length)
        self.worker = Worker(model, max_batch=settings.max_batch, max_queue=settings.max_queue, on_pass=self._on_pass)
        self.monitor = Monitor(queue_depth=lambda: self.worker.queued, running_rows=lambda: self.worker.running_rows)
        self.created = protocol.now()
        self.kept: collections.OrderedDict[str, Kept] = collections.OrderedDict()

    def _on_pass(self, kind: str, rows: int) -> None:
        self.monitor.batch.labels(kind).observe(rows)

    async def off_loop(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the tokenizer's thread, holding the tokenizer lock (shared with the
        model thread's detokenisation); the event loop only awaits the result."""

        def locked() -> T:
            with self.tokenizer_lock:
                return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.executor, locked)

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

    async def body(self, request: Request) -> bytes:
        """The raw body, refused (413) past ``max_request_bytes`` (from its declared length, before reading)."""
        limit = self.settings.max_request_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise APIError(413, f"the request body has {length} bytes, more than this server accepts ({limit})", code="request_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise APIError(413, f"the request body is larger than this server accepts ({limit} bytes)", code="request_too_large")
        return bytes(body)

    # ---- the model thread ----

    def submit(self, job: Job) -> None:
        """Queue a job (429 when the queue is full, 503 when draining)."""
        try:
            self.worker.submit(job)
        except QueueFull as err:
            raise APIError(429, f"the server is busy ({err}); retry later", code="queue_full", kind="rate_limit_error") from err
        except Draining as err:
            raise APIError(503, "the server is shutting down", code="draining", kind="server_error") from err

    def flagged(self, prompt_tuco: float) -> bool | None:
        """The ``tuco_flag`` of a choice (None without ``--flag-below``)."""
        below = self.settings.flag_below
        return None if below is None else prompt_tuco < below

    # ---- responses kept for "save as run" ----

    def keep(self, response_id: str, kept: Kept) -> None:
        """Remember a response (only when saving is on: ``--runs``), forgetting the oldest past ``KEEP_RESPONSES``."""
        if self.settings.runs is None:
            return
        self.kept[response_id] = kept
        while len(self.kept) > KEEP_RESPONSES:
            self.kept.popitem(last=False)


def server_of(request: Request) -> Server:
    """The ``Server`` of the app serving ``request``."""
    server: Server = request.app.state.server
    return server
