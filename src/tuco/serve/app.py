"""The application factory of `tuco serve` and the uvicorn runner that drains on SIGTERM.

``create_app`` assembles the routes (one module per family in ``tuco.serve.routes``), the plain-ASGI
guard (``tuco.serve.middleware``: Host and Content-Type checks, request counts), the error handlers
(every refusal is an OpenAI error object with a 4xx status) and the lifespan that starts and stops the
model thread. ``run`` serves it with uvicorn, restricts the Host header when bound to a loopback address,
and exits 0 after draining the requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tuco.serve.middleware import Guard, loopback_hosts
from tuco.serve.protocol import APIError
from tuco.serve.routes import completions, playground, scoring, system, tokenization
from tuco.serve.state import Server, Settings

if TYPE_CHECKING:
    import uvicorn

    from tuco.models.decomposable import Decomposable

__all__ = ["Settings", "create_app", "run"]


def create_app(model: Decomposable, settings: Settings) -> FastAPI:
    """The application serving ``model`` (a pair or chain) with ``settings``."""
    server = Server(model, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.worker.start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, server.worker.stop)
        server.executor.shutdown(wait=False)

    app = FastAPI(title="tuco serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    for module in (completions, scoring, tokenization, system):
        app.include_router(module.router)
    if settings.playground:
        app.include_router(playground.router)

    async def api_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, APIError)  # registered for APIError only
        headers = {"Retry-After": str(settings.retry_after)} if err.status == 429 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    async def http_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, StarletteHTTPException)  # registered for HTTPException only
        message = f"no route {request.method} {request.url.path}" if err.status_code in (404, 405) else str(err.detail)
        return JSONResponse(APIError(err.status_code, message).body(), status_code=err.status_code)

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(Guard, server=server)
    return app


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(
    model: Decomposable, settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve ``model`` until SIGTERM/SIGINT; then finish the requests in flight (up to ``drain_seconds``) and
    return. ``on_ready(url)`` is called once the server listens (``url``: its address, the real port when
    ``port`` is 0). Bound to a loopback address, only requests whose Host header names it are answered."""
    import uvicorn

    if is_loopback(host):  # until the real port is known (port 0), nothing is answered
        settings.allowed_hosts = loopback_hosts(port) if port else set()
    app = create_app(model, settings)
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", timeout_graceful_shutdown=settings.drain_seconds, lifespan="on"
    )

    def ready(bound: int) -> None:
        if is_loopback(host):
            settings.allowed_hosts = loopback_hosts(bound)
        if on_ready is not None:
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{bound}")

    _drained_server(config, ready).run()


def _bound_port(server: uvicorn.Server, default: int) -> int:
    for s in getattr(server, "servers", []):
        for sock in s.sockets or ():
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
    return default


def _drained_server(config: uvicorn.Config, ready: Callable[[int], None]) -> uvicorn.Server:
    """uvicorn's server, exiting normally after a drained SIGTERM (uvicorn re-raises the signal otherwise),
    telling ``ready`` the port it listens on."""
    import uvicorn

    from tuco._compat import forget_captured_signals

    class Drained(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                forget_captured_signals(self)  # drained: exit with 0 rather than by the signal again

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                ready(_bound_port(self, config.port))

    return Drained(config)
