"""`tuco serve`: an OpenAI-compatible HTTP endpoint with alpha per request and TuCo in every response."""

from __future__ import annotations

import argparse

from tuco.cli.display import err_console
from tuco.cli.options import add_model_options, check_positive

HELP = "serve the pair over an OpenAI-compatible HTTP API, with alpha per request and TuCo in every response"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help=HELP,
        description=HELP
        + ". Requests that arrive together share one forward pass per step, whatever their alphas. A playground page at /"
        + " compares alphas side by side, every token coloured by its TuCo.",
    )
    add_model_options(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=8000, help="default 8000 (0: a free port, printed once the server listens)")
    g.add_argument("--api-key", default=None, metavar="KEY", help="require 'Authorization: Bearer KEY' (default: no key)")
    g.add_argument("--model-name", default="tuco", metavar="NAME", help="the model id /v1/models lists (default tuco)")
    g.add_argument("--alpha", default="1", metavar="ALPHA", help="alpha of requests that give none (default 1; same syntax as every verb)")
    g.add_argument("--max-batch", type=int, default=16, metavar="N", help="sequences in one forward pass (default 16)")
    g.add_argument("--max-queue", type=int, default=64, metavar="N", help="requests waiting for room; more get 429 (default 64)")
    g.add_argument("--max-tokens", type=int, default=512, metavar="N", help="largest max_tokens a request may ask for (default 512)")
    g.add_argument("--max-request-bytes", type=int, default=1 << 20, metavar="N", help="largest request body (default 1 MiB)")
    g.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of the forward passes (default: torch's); 1 is fastest for small models or a busy machine",
    )
    g.add_argument(
        "--runs",
        default=None,
        metavar="DIR",
        help="let the playground (and POST /v1/tuco/runs) save responses as run directories under DIR (default: saving is off)",
    )
    g.add_argument("--no-playground", action="store_true", help="serve the API only, no page at /")
    g.add_argument(
        "--flag-below",
        type=float,
        default=None,
        metavar="T",
        help="mark choices whose prompt TuCo is below T with tuco_flag: true (nothing is blocked); see tuco calibrate",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from tuco.cli.loading import load
    from tuco.engine.alpha import Alpha
    from tuco.errors import ConfigError

    for flag in ("max_batch", "max_queue", "max_tokens", "max_request_bytes"):
        check_positive(getattr(args, flag), "--" + flag.replace("_", "-"))
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
    alpha = Alpha.of(args.alpha)  # parsed once; checked against the model's shape once it is loaded
    runs = Path(args.runs).expanduser() if args.runs else None
    if runs is not None and runs.exists() and not runs.is_dir():
        raise ConfigError(f"--runs {args.runs} is a file; give a directory (saved runs are folders inside it)")
    try:
        from tuco.serve.app import Settings
        from tuco.serve.app import run as serve
    except ImportError as err:
        raise ConfigError(f"tuco serve needs FastAPI and uvicorn ({err.name} is missing): pip install 'tuco[serve]'") from err
    if args.threads is not None:
        check_positive(args.threads, "--threads")
        import torch

        torch.set_num_threads(args.threads)
    model = load(args)
    alpha.check(model.n_stages, model.n_layers)
    if runs is not None:
        runs.mkdir(parents=True, exist_ok=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("tuco.serve")  # the access log (tuco.serve.access) included
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        logger.addHandler(handler)
    settings = Settings(
        model_name=args.model_name,
        api_key=args.api_key,
        alpha=alpha,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        max_tokens=args.max_tokens,
        max_request_bytes=args.max_request_bytes,
        flag_below=args.flag_below,
        runs=runs,
        playground=not args.no_playground,
    )

    def ready(url: str) -> None:
        key = " (API key required)" if args.api_key else ""
        page = "" if args.no_playground else f"the playground at {url}/, "
        err_console.print(
            f"tuco serve: {page}the OpenAI API at {url}/v1{key}; model {args.model_name}, default alpha {alpha.text}; "
            "Ctrl-C or SIGTERM drains and stops",
            soft_wrap=True,
        )

    serve(model, settings, host=args.host, port=args.port, on_ready=ready)
    err_console.print("tuco serve: stopped (requests in flight finished)")
    return 0
