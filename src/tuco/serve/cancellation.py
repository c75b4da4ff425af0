"""Ending the work of a request whose client went away, for non-streaming responses too (vLLM's
``with_cancellation``).

A non-streaming handler awaits its rows for as long as they decode; nothing it does would notice the
client hanging up. ``with_cancellation`` races the handler against a task that polls
``request.is_disconnected()`` and cancels the handler when the client is gone: the handler's
``CancelledError`` cancels its job, whose rows leave the batch at the next pass. This only works when no
``BaseHTTPMiddleware`` (``@app.middleware("http")``) wraps the route: that middleware hands the route a
``receive`` on which ``is_disconnected()`` always answers False, so the server's middleware is plain ASGI
(``tuco.serve.middleware``). Streaming responses need none of this: Starlette cancels a stream whose
client disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

POLL_SECONDS = 0.1  # how often a waiting request checks that its client is still there
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never seen by the client

Handler = Callable[[Request], Awaitable[Response]]


async def until_disconnected(request: Request, every: float = POLL_SECONDS) -> None:
    """Return once the client of ``request`` has disconnected."""
    while not await request.is_disconnected():
        await asyncio.sleep(every)


def with_cancellation(handler: Handler) -> Handler:
    """Run ``handler`` cancelled as soon as its client disconnects (then answer 499, which nobody reads)."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        work = asyncio.ensure_future(handler(request))
        watch = asyncio.ensure_future(until_disconnected(request))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server itself is cancelling this request
            work.cancel()
            raise
        finally:
            watch.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return Response(status_code=CLIENT_CLOSED)

    return wrapper
