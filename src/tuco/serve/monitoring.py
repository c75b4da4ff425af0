"""What `tuco serve` reports about itself: Prometheus metrics (requests, latency, batch sizes, queue depth,
prompt TuCo by alpha) and one access-log line per request with its TuCo."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request

access_log = logging.getLogger("tuco.serve.access")

TUCO_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
MAX_ALPHA_LABELS = 32  # distinct alpha labels kept apart; any further alpha is counted as "other"


class Monitor:
    """The server's metrics, in a registry of its own (several servers in one process never mix)."""

    def __init__(self, queue_depth: Callable[[], float], running_rows: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tuco_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "tuco_request_seconds", "request latency (until the last byte of the response)", ["endpoint"], registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.batch = Histogram(
            "tuco_batch_rows", "rows in one forward pass, by pass kind (prefill, decode)", ["kind"], registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )  # fmt: skip
        self.tokens = Counter("tuco_generated_tokens", "tokens generated", registry=r)
        self.prompt_tuco = Histogram(
            "tuco_prompt_tuco", "TuCo at the prompt's last token, by alpha", ["alpha"], registry=r, buckets=TUCO_BUCKETS
        )
        self.flagged = Counter("tuco_flagged_choices", "choices whose prompt TuCo was below --flag-below", registry=r)
        queue = Gauge("tuco_queue_depth", "requests waiting for room in the batch", registry=r)
        queue.set_function(queue_depth)
        running = Gauge("tuco_running_rows", "sequences in the running batch", registry=r)
        running.set_function(running_rows)
        self._alphas: set[str] = set()

    def alpha_label(self, alpha_text: str) -> str:
        """The alpha's text as a label, at most ``MAX_ALPHA_LABELS`` distinct ones (then "other")."""
        if alpha_text in self._alphas or len(self._alphas) < MAX_ALPHA_LABELS:
            self._alphas.add(alpha_text)
            return alpha_text
        return "other"

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def choice_entry(
    index: int, alpha_text: str, prompt_tuco: float, response_tuco: float, tokens: int, finish: str | None, flagged: bool
) -> str:
    """One choice in the access log: its alpha, TuCo at the prompt and over the response, tokens, finish."""
    flag = " flagged" if flagged else ""
    return (
        f"[choice {index} alpha={alpha_text} prompt_tuco={prompt_tuco:.4f} response_tuco={response_tuco:.4f} "
        f"tokens={tokens} finish={finish}{flag}]"
    )


def log_request(
    client: str, method: str, path: str, status: int, seconds: float, choices: list[str] | None = None, error: str = ""
) -> None:
    """One access-log line: who, what, status, latency and, per choice, alpha and TuCo (a red-teaming run
    leaves a TuCo trail in the server's log without extra code)."""
    parts = [f'{client} "{method} {path}" {status} {seconds:.3f}s', *(choices or [])]
    if error:
        parts.append(f"error={error!r}")
    access_log.info(" ".join(parts))


class Access:
    """Counts, times and logs one request of a route that knows its choices (the completions, scoring)
    when it ends: one access-log line with each choice's alpha and TuCo."""

    def __init__(self, monitor: Monitor, request: Request) -> None:
        self.monitor, self.started, self.path, self.method = monitor, time.monotonic(), request.url.path, request.method
        self.client = request.client.host if request.client else "-"
        self.done = False

    def finish(self, status: int, entries: list[str] | None = None, error: str = "") -> None:
        """Count and log the request (once)."""
        if self.done:
            return
        self.done = True
        seconds = time.monotonic() - self.started
        self.monitor.requests.labels(self.path, str(status)).inc()
        self.monitor.latency.labels(self.path).observe(seconds)
        log_request(self.client, self.method, self.path, status, seconds, entries, error)
