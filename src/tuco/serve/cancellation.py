"""Ending the work of a request whose client went away, for non-streaming responses too (vLLM's
``with_cancellation`` idea).

A non-streaming handler awaits its rows for as long as they decode; nothing it does would notice the
client hanging up. ``cancel_on_disconnect`` races that wait against a task that polls
``request.is_disconnected()``, and raises ``Disconnected`` (the wait cancelled) once the client is gone; the
handler then cancels its job, whose rows leave the batch at the next pass.

Two conditions, both kept by the server: the race starts only after the handler has read the whole body
(``is_disconnected()`` takes whatever message is waiting, and a body chunk it took would be lost), and no
``BaseHTTPMiddleware`` (``@app.middleware("http")``) wraps the route (it hands the route a ``receive`` on
which ``is_disconnected()`` always answers False: the server's middleware is plain ASGI,
``tuco.serve.middleware``). Streaming responses need none of this: Starlette cancels a stream whose client
disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")
POLL_SECONDS = 0.1  # how often a waiting request checks that its client is still there
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never seen by the client


class Disconnected(Exception):
    """The client of the request hung up before its answer was ready."""


async def until_disconnected(request: Request, every: float = POLL_SECONDS) -> None:
    """Return once the client of ``request`` has disconnected."""
    while not await request.is_disconnected():
        await asyncio.sleep(every)


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result; ``Disconnected`` (and ``work`` cancelled) as soon as the client of ``request``
    hangs up. Call it only once the request's body has been read."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server itself is cancelling this request
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Disconnected
