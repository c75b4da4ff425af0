"""The server's one middleware, plain ASGI (a ``BaseHTTPMiddleware`` would make ``is_disconnected()``
always answer False, and non-streaming requests could not be cancelled): it refuses what no route should
see, and counts and logs the requests that the completion routes do not count themselves.

- **Host** (DNS rebinding): bound to a loopback address, the server answers only requests whose Host
  header names it (``localhost``, ``127.0.0.1`` or ``[::1]`` with its port): a web page on another
  site whose name was re-pointed at 127.0.0.1 sends its own name, and is refused (400).
- **Content-Type**: a POST must say ``application/json`` (415 otherwise). A ``text/plain`` or
  form POST is a "simple" cross-site request that any web page can send without the browser asking the
  server first; a JSON one is not.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tuco.serve.monitoring import log_request
from tuco.serve.protocol import APIError

if TYPE_CHECKING:
    from tuco.serve.state import Server

SELF_COUNTING = ("/v1/chat/completions", "/v1/completions", "/v1/tuco/score")  # count and log when they finish
KNOWN = (
    "/",
    "/v1/models",
    "/health",
    "/metrics",
    "/tokenizer_info",
    "/tokenize",
    "/detokenize",
    "/v1/tuco/info",
    "/v1/tuco/runs",
    "/playground/playground.js",
    "/playground/playground.css",
    "/playground/palette.json",
)
BODY_METHODS = ("POST", "PUT", "PATCH")


def loopback_hosts(port: int) -> set[str]:
    """The Host headers that name a server bound to a loopback address on ``port``."""
    names = ("localhost", "127.0.0.1", "[::1]")
    return {f"{n}:{port}" for n in names} | (set(names) if port == 80 else set())


def refusal(scope: Scope, allowed_hosts: set[str] | None) -> APIError | None:
    """Why a request is refused before any route sees it (None: it is not)."""
    headers = Headers(scope=scope)
    if allowed_hosts is not None:
        host = headers.get("host", "").strip().lower()
        if host not in allowed_hosts:
            shown = ", ".join(sorted(allowed_hosts))
            return APIError(
                400,
                f"this server answers requests for {shown} only, not for Host {host or '(none)'!r} (it is bound to a loopback "
                "address; a page of another site cannot reach it through DNS rebinding)",
                code="invalid_host",
            )
    if scope["method"] in BODY_METHODS:
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return APIError(
                415,
                f"the request body must be JSON, sent with 'Content-Type: application/json' (got {media or 'none'})",
                code="unsupported_media_type",
            )
    return None


class Guard:
    """Refuses requests to another host or with a body that is not JSON; counts and logs the rest of the
    routes (``tuco_requests``; one access-log line for each answer >= 400)."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        refused = refusal(scope, self.server.settings.allowed_hosts)
        if refused is not None:
            await JSONResponse(refused.body(), status_code=refused.status)(scope, receive, sending)
        else:
            await self.app(scope, receive, sending)
        path = str(scope["path"])
        if refused is not None or path not in SELF_COUNTING:
            self.server.monitor.requests.labels(path if path in KNOWN else "other", str(status)).inc()
            if status >= 400:
                client = scope.get("client")
                who = str(client[0]) if client else "-"
                log_request(who, str(scope["method"]), path, status, time.monotonic() - started, error=refused.message if refused else "")
