"""The thread that owns the model: a bounded queue of jobs, admission into the running batch (one
``tuco.measures.decoding.Decoder``), stop strings, and events back to the asyncio request handlers.

Each loop: rows of cancelled jobs are marked to leave; queued jobs are admitted while the batch has room
for all their rows and prefilled together (one forward pass, each row at its own alpha); then one decoding
step runs for every running row (one forward pass). After every pass each row's new token goes through its
``TextStream`` (detokenised, stop strings cut) and an ``Event`` is posted to its job's asyncio queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuco.measures.decoding import Decoder, Row

log = logging.getLogger("tuco.serve")


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already (HTTP 429)."""


class Draining(Exception):
    """The server is shutting down and takes no new jobs (HTTP 503)."""


class TextStream:
    """Text of one row as its tokens arrive: what is safe to send, held back while it could still turn into
    a stop string or while the last character is incomplete; cut before the first stop string."""

    def __init__(self, tokenizer: Any, stops: list[str], lock: Any = None) -> None:
        self.tokenizer, self.stops = tokenizer, stops
        self.lock = lock if lock is not None else contextlib.nullcontext()  # shared with the request handlers' tokenizer use
        self.ids: list[int] = []
        self.sent = 0
        self.text = ""
        self.stopped = False

    def feed(self, token: int) -> str:
        """Add a token; return the text that became safe to send (sets ``stopped`` at a stop string)."""
        self.ids.append(token)
        with self.lock:
            self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.stopped = self.text[:cut], True
            return self._take(len(self.text))
        hold = max((_overlap(self.text, s) for s in self.stops), default=0)
        safe = len(self.text) - hold
        while safe > self.sent and self.text[safe - 1] == "\ufffd":  # a character whose bytes are not all here yet
            safe -= 1
        return self._take(safe)

    def flush(self) -> str:
        """At the end: whatever is left."""
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``stop``."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


@dataclass
class Event:
    """What the worker tells a request handler: ``kind`` "token" (one row's new token and the text it made
    safe to send), "done" (a row finished), "end" (the whole job finished) or "error"."""

    kind: str
    row: int = -1
    text: str = ""
    tuco: float = 0.0
    index: int = -1  # the token's position among the row's generated tokens
    message: str = ""


@dataclass(eq=False)
class Job:
    """One request's rows on their way through the batch, and the asyncio queue its handler reads."""

    rows: list[Row]
    streams: list[TextStream]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    enqueued: float = field(default_factory=time.monotonic)
    remaining: int = -1
    reported: set[int] = field(default_factory=set)

    def post(self, event: Event) -> None:
        """Hand ``event`` to the handler's event loop (dropped if that loop is gone)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop closed: nobody is listening any more
            pass


class Worker:
    """Runs the model in one thread. ``submit`` queues a job (``QueueFull``/``Draining`` when it cannot);
    ``cancel`` makes a job's rows leave the batch at the next pass; ``stop`` finishes what runs and exits.

    ``on_pass(kind, rows)`` is called after every forward pass ("prefill" or "decode", rows in it).
    """

    def __init__(self, model: Any, *, max_batch: int, max_queue: int, on_pass: Callable[[str, int], None] | None = None) -> None:
        self.model, self.max_batch, self.max_queue = model, max_batch, max_queue
        self.on_pass = on_pass or (lambda kind, rows: None)
        self._queue: collections.deque[Job] = collections.deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tuco-serve-worker", daemon=True)
        self.running_rows = 0

    # ---- called from the event loop ----

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
                with Decoder(self.model) as decoder:
                    if self._serve(decoder):
                        return
            except Exception as err:  # noqa: BLE001 - a failed pass fails its jobs, never the server
                log.exception("forward pass failed")
                self._fail_active(f"the model failed on this batch: {type(err).__name__}: {err}")

    def _serve(self, decoder: Decoder) -> bool:
        """Run passes until stopped (True) ; an exception leaves with the active jobs still listed."""
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
                newcomers = self._admit(sum(not r.finished for j in self._active for r in j.rows))
            rows = [r for job in newcomers for r in job.rows]
            if rows:
                decoder.add(rows)
                self.on_pass("prefill", len(rows))
                self._after_pass(decoder, rows)
            got = decoder.step()
            self.running_rows = len(decoder.rows)
            if got:
                self.on_pass("decode", len(got))
                self._after_pass(decoder, got)
            else:
                self._after_pass(decoder, [])

    def _admit(self, running: int) -> list[Job]:
        """Move queued jobs into the batch while all of a job's rows fit (in order; cancelled ones dropped)."""
        admitted: list[Job] = []
        while self._queue:
            job = self._queue[0]
            if job.cancelled:
                self._queue.popleft()
                job.post(Event("end"))
                continue
            if running + len(job.rows) > self.max_batch:
                break
            self._queue.popleft()
            running += len(job.rows)
            admitted.append(job)
            self._active.append(job)
        return admitted

    def _after_pass(self, decoder: Decoder, rows: list[Row]) -> None:
        """Text and events for the rows that got a token; finished rows and jobs reported."""
        touched = set(map(id, rows))
        for job in list(self._active):
            for i, (row, stream) in enumerate(zip(job.rows, job.streams)):
                if id(row) in touched and row.tokens and row.finish_reason != "cancelled":
                    text = stream.feed(row.tokens[-1])
                    if stream.stopped:
                        decoder.finish(row, "stop")
                    if row.finished:
                        text += stream.flush()
                    job.post(Event("token", i, text, row.token_tuco[-1], len(row.tokens) - 1))
                if row.finished and i not in job.reported:
                    job.reported.add(i)
                    job.post(Event("done", i))
                    job.remaining -= 1
            if job.remaining == 0:
                job.post(Event("end"))
                self._active.remove(job)

    def _fail_active(self, message: str) -> None:
        with self._cond:
            failed, self._active = self._active, []
        for job in failed:
            job.post(Event("error", message=message))
