"""The thread that owns the model: a bounded queue of jobs, admission into the running batch (one
``tuco.measures.decoding.Decoder``), teacher-forced scoring between its passes, stop strings, and events
back to the asyncio request handlers.

Each loop: rows of cancelled jobs are marked to leave; queued jobs are admitted (in order) while the batch
has room for all their rows; admitted score jobs run as one scoring pass (``tuco.measures.scoring``, each
at its own alpha, inside the decoder's engine); admitted generation jobs are prefilled together (one
forward pass, each row at its own alpha); then one decoding step runs for every running row (one forward
pass). After every pass each row's new token goes through its ``TextStream`` (incremental detokenisation,
stop strings) and an ``Event`` is posted to its job's asyncio queue with ``call_soon_threadsafe``: the
model thread never waits for the event loop. The event loop takes the worker's condition only for O(1)
bookkeeping (queue a job, mark one cancelled); the model thread never holds it during a pass, a scoring pass
or detokenisation.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from tuco.engine.alpha import Alpha
from tuco.measures.decoding import Decoder, Row
from tuco.serve.text import TextStream

if TYPE_CHECKING:
    from tuco.measures.scoring import Score
    from tuco.models.decomposable import Decomposable

log = logging.getLogger("tuco.serve")


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already (HTTP 429)."""


class Draining(Exception):
    """The server is shutting down and takes no new jobs (HTTP 503)."""


@dataclass
class Event:
    """What the worker tells a request handler: ``kind`` "token" (one row's new token: the text it made safe
    to send, its own text ``piece``, id, TuCo, position and, when the row records them, per-layer norms),
    "done" (a row finished), "end" (the whole job finished) or "error"."""

    kind: Literal["token", "done", "end", "error"]
    row: int = -1
    text: str = ""
    piece: str = ""
    token: int = -1
    tuco: float = 0.0
    index: int = -1  # the token's position among the row's generated tokens
    layers: tuple[list[float], list[float]] | None = None
    message: str = ""


@dataclass(eq=False, kw_only=True)
class Job:
    """One request's work on its way through the model thread, and the asyncio queue its handler reads.
    ``ended`` is set (from the model thread) once its last event is posted."""

    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    enqueued: float = field(default_factory=time.monotonic)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def n_rows(self) -> int:
        """Rows of the batch this job needs at once."""
        raise NotImplementedError

    async def finished(self) -> str | None:
        """(On the event loop) wait for the job to end: None when it did, else the error's message."""
        while True:
            event = await self.events.get()
            if event.kind == "end":
                return None
            if event.kind == "error":
                return event.message

    def post(self, event: Event) -> None:
        """Hand ``event`` to the handler's event loop (dropped if that loop is gone)."""
        if event.kind in ("end", "error"):
            self.ended.set()
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop closed: nobody is listening any more
            pass


@dataclass(eq=False, kw_only=True)
class GenerationJob(Job):
    """Rows to decode (one per prompt and choice) with their text streams."""

    rows: list[Row]
    streams: list[TextStream]
    remaining: int = -1
    reported: set[int] = field(default_factory=set)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def running(self) -> int:
        """Rows still decoding."""
        return sum(not r.finished for r in self.rows)


@dataclass(eq=False, kw_only=True)
class ScoreJob(Job):
    """A prompt and a given response, scored teacher-forced at ``alpha`` (``score``: the result)."""

    prompt_ids: list[int]
    response_ids: list[int]
    alpha: Alpha
    score: Score | None = None

    @property
    def n_rows(self) -> int:
        return 1


class Worker:
    """Runs the model in one thread. ``submit`` queues a job (``QueueFull``/``Draining`` when it cannot);
    ``cancel`` makes a job's rows leave the batch at the next pass; ``stop`` finishes what runs and exits.

    ``on_pass(kind, rows)`` is called after every forward pass ("prefill", "decode" or "score", rows in it).
    """

    def __init__(self, model: Decomposable, *, max_batch: int, max_queue: int, on_pass: Callable[[str, int], None] | None = None) -> None:
        self.model, self.max_batch, self.max_queue = model, max_batch, max_queue
        self.on_pass = on_pass or (lambda kind, rows: None)
        self._queue: collections.deque[Job] = collections.deque()
        self._active: list[GenerationJob] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tuco-serve-model", daemon=True)
        self.passes = 0  # forward passes so far (every kind)

    # ---- called from the event loop (never blocks on the model: the condition is only held briefly) ----

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job`` (raises QueueFull when ``max_queue`` jobs wait already, Draining when stopping)."""
        with self._cond:
            if self._stopping:
                raise Draining("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} requests are queued already")
            if isinstance(job, GenerationJob):
                job.remaining = len(job.rows)
            self._queue.append(job)
            self._cond.notify()

    def cancel(self, job: Job) -> None:
        """The client went away: free the job's rows at the next pass."""
        with self._cond:
            job.cancelled = True
            self._cond.notify()

    @property
    def queued(self) -> int:
        """Jobs waiting for room in the batch."""
        return len(self._queue)

    @property
    def running_rows(self) -> int:
        """Rows decoding now (0 when idle: finished and cancelled rows are not counted)."""
        return sum(job.running for job in list(self._active))

    def stop(self, timeout: float | None = None) -> None:
        """Take no new jobs, finish the running and queued ones, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the worker thread ----

    def _run(self) -> None:
        while True:
            try:
                with Decoder(self.model, continuous=True) as decoder:
                    if self._serve(decoder):
                        return
            except Exception as err:  # noqa: BLE001 - a failed pass fails its jobs, never the server
                log.exception("forward pass failed")
                self._fail_active(f"the model failed on this batch: {type(err).__name__}: {err}")

    def _serve(self, decoder: Decoder) -> bool:
        """Run passes until stopped (True); an exception leaves with the active jobs still listed."""
        while True:
            with self._cond:
                while not (self._queue or self._active or self._stopping):
                    self._cond.wait()
                if self._stopping and not self._queue and not self._active:
                    return True
                for job in self._active:
                    if job.cancelled:
                        for row in job.rows:
                            decoder.finish(row, "cancelled")
                newcomers = self._admit(sum(job.running for job in self._active))
            scores = [j for j in newcomers if isinstance(j, ScoreJob)]
            if scores:
                self._score(decoder, scores)
            rows = [r for j in newcomers if isinstance(j, GenerationJob) for r in j.rows]
            if rows:
                decoder.add(rows)
                self._passed("prefill", len(rows))
                self._after_pass(decoder, rows)
            got = decoder.step()
            if got:
                self._passed("decode", len(got))
            self._after_pass(decoder, got)

    def _passed(self, kind: str, rows: int) -> None:
        self.passes += 1
        self.on_pass(kind, rows)

    def _admit(self, running: int) -> list[Job]:
        """Move queued jobs into the batch while all of a job's rows fit (in order; cancelled ones dropped)."""
        admitted: list[Job] = []
        while self._queue:
            job = self._queue[0]
            if job.cancelled:
                self._queue.popleft()
                job.post(Event("end"))
                continue
            if running + job.n_rows > self.max_batch:
                break
            self._queue.popleft()
            admitted.append(job)
            if isinstance(job, GenerationJob):
                running += job.n_rows
                self._active.append(job)
        return admitted

    def _score(self, decoder: Decoder, jobs: list[ScoreJob]) -> None:
        """One teacher-forced scoring pass for ``jobs`` (each at its own alpha), inside the decoder's engine
        (between two decoding steps; the running rows' caches are untouched)."""
        from tuco.measures.scoring import score_ids

        alpha = jobs[0].alpha if len(jobs) == 1 else Alpha.per_rows([j.alpha for j in jobs])
        try:
            scores = score_ids(
                self.model, [j.prompt_ids for j in jobs], alpha=alpha, responses=[j.response_ids for j in jobs], engine=decoder.engine
            )
        except Exception as err:  # noqa: BLE001 - a failed pass fails its jobs, never the server
            log.exception("scoring pass failed")
            for job in jobs:
                job.post(Event("error", message=f"the model failed on this batch: {type(err).__name__}: {err}"))
            return
        self._passed("score", len(jobs))
        for job, s in zip(jobs, scores):
            job.score = s
            job.post(Event("end"))

    def _after_pass(self, decoder: Decoder, rows: list[Row]) -> None:
        """Text and events for the rows that got a token; finished rows and jobs reported."""
        touched = set(map(id, rows))
        for job in list(self._active):
            for i, (row, stream) in enumerate(zip(job.rows, job.streams)):
                if id(row) in touched and row.tokens and row.finish_reason != "cancelled":
                    last = row.finished
                    piece, text = stream.feed(row.tokens[-1], last=last)
                    if stream.stopped:
                        decoder.finish(row, "stop")
                    layers = (row.token_layer_ptc_l1[-1], row.token_layer_ftc_l1[-1]) if row.token_layer_ptc_l1 else None
                    index = len(row.tokens) - 1
                    job.post(Event("token", i, text, piece, row.tokens[-1], row.token_tuco[-1], index, layers))
                if row.finished and i not in job.reported:
                    job.reported.add(i)
                    job.post(Event("done", i))
                    job.remaining -= 1
            if job.remaining == 0:
                with self._cond:
                    self._active.remove(job)
                job.post(Event("end"))

    def _fail_active(self, message: str) -> None:
        with self._cond:
            failed, self._active = self._active, []
        for job in failed:
            job.post(Event("error", message=message))
