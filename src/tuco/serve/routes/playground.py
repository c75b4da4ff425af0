"""The playground: a page at ``/`` that is a client of this server's own API (no build step, no network:
its HTML, script and style ship in ``tuco/serve/static/``), and the two routes it needs besides the
completions and scoring ones:

- ``GET /v1/tuco/info``: what the page shows and offers (model, layers, stages, default alpha, the
  calibrated flag threshold, the token limit, whether "save as run" is on);
- ``POST /v1/tuco/runs``: "save as run" (``tuco.serve.saving``).

``GET /playground/palette.json`` is the report's TuCo colour scale (``tuco.palette``), exported when the
server starts, so the page colours tokens exactly as ``tuco report`` does. The page is served with a
Content-Security-Policy that lets only its own script and style run and connect only to this server;
all user and model text is set with ``textContent``.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import TypedDict

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tuco import palette
from tuco.errors import TucoError
from tuco.serve import protocol, saving
from tuco.serve.protocol import APIError
from tuco.serve.state import Kept, server_of

router = APIRouter()

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
ASSETS = {"playground.js": "text/javascript; charset=utf-8", "playground.css": "text/css; charset=utf-8"}
WAIT_SECONDS = 10.0  # how long "save as run" waits for a response that is still being stopped


def static(name: str) -> bytes:
    """A file the package ships in ``tuco/serve/static/``."""
    return (resources.files("tuco.serve") / "static" / name).read_bytes()


def palette_json() -> dict[str, object]:
    """The report's TuCo colour scale: the stops (value, RGB), grey for a missing value, where text turns
    white, the legend's gradient, and the PTC/FTC series colours."""
    return {
        "stops": [[x, list(rgb)] for x, rgb in palette.STOPS],
        "missing": palette.MISSING,
        "dark_above": 0.62,  # palette.text_colour: white text above this TuCo
        "gradient": palette.tuco_gradient(),
        "ptc": palette.PTC,
        "ftc": palette.FTC,
    }


@router.get("/", include_in_schema=False)
async def page() -> Response:
    return Response(static("index.html"), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/playground/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    if name == "palette.json":
        return Response(json.dumps(palette_json()), media_type="application/json", headers=PAGE_HEADERS)
    if name not in ASSETS:
        raise APIError(404, f"no route GET /playground/{name}")
    return Response(static(name), media_type=ASSETS[name], headers=PAGE_HEADERS)


class Info(TypedDict):
    model: str
    layers: int
    stages: int
    stage_names: list[str]
    chat_template: bool
    alpha: str
    flag_below: float | None
    max_tokens: int
    context: int | None
    runs: bool


@router.get("/v1/tuco/info", response_model=None)
async def info(request: Request) -> Info:
    server = server_of(request)
    server.authorize(request)
    model, settings = server.model, server.settings
    return {
        "model": settings.model_name,
        "layers": model.n_layers,
        "stages": model.n_stages,
        "stage_names": [str(n) for n in model.stage_names],
        "chat_template": bool(getattr(model.tokenizer, "chat_template", None)),
        "alpha": settings.alpha.text,
        "flag_below": settings.flag_below,
        "max_tokens": settings.max_tokens,
        "context": server.limits.context,
        "runs": settings.runs is not None,
    }


@router.post("/v1/tuco/runs")
async def save(request: Request) -> Response:
    """Write earlier responses of this server as a new run directory under ``--runs``."""
    server = server_of(request)
    server.authorize(request)
    runs = server.settings.runs
    if runs is None:
        raise APIError(400, "saving runs is off: start the server with tuco serve --runs DIR", code="runs_disabled")
    call = protocol.parse_save(await server.body(request))
    out = saving.target(runs, call.name)
    missing = [r for r in call.responses if r not in server.kept]
    if missing:
        raise APIError(
            404,
            f"unknown response id {missing[0]!r}: only this server's last {len(server.kept)} responses can be saved",
            param="responses",
            code="unknown_response",
        )
    kept: list[tuple[str, Kept]] = [(r, server.kept[r]) for r in dict.fromkeys(call.responses)]
    deadline = time.monotonic() + WAIT_SECONDS
    for rid, k in kept:  # a response being stopped right now ends within a pass or two
        if not await asyncio.to_thread(k.job.ended.wait, max(0.0, deadline - time.monotonic())):
            raise APIError(409, f"response {rid} is still running; stop it or wait for it to end", code="still_running")
    written = await server.off_loop(saving.rows, server, kept)
    if not written:
        raise APIError(400, "none of these responses got as far as its prompt's TuCo; nothing to save", param="responses")
    try:
        await asyncio.to_thread(saving.write, server, out, written, [r for r, _ in kept])
    except TucoError as err:  # the folder appeared meanwhile, or cannot be written
        raise APIError(409, str(err), param="name", code="run_not_written") from err
    return JSONResponse({"path": str(out), "rows": len(written)})
