"""Memory stays flat while scoring many prompts (10,000 by default). Not a test.

Scores prompts through the same path as `tuco score` (length-bucketed batches, one recorder per
batch) on a tiny random pair and samples the process's resident memory every 1,000 prompts.
Prints one JSON object on its last line: the samples and the growth after warm-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tuco.demo.tiny import tiny_models  # noqa: E402
from tuco.measures.scoring import iter_scores  # noqa: E402
from tuco.models.pair import ModelPair  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    base, tuned, tok = tiny_models("llama")
    pair = ModelPair(tuned=tuned, base=base, tokenizer=tok)
    g = torch.Generator().manual_seed(0)
    samples = []
    chunk = 1000
    for start in range(0, args.prompts, chunk):
        ids = [
            torch.randint(10, 300, (int(torch.randint(4, 64, (1,), generator=g)),), generator=g).tolist()
            for _ in range(min(chunk, args.prompts - start))
        ]
        for _ in iter_scores(pair, ids, batch_size=args.batch_size):
            pass
        gc.collect()
        samples.append(round(rss_mb(), 1))
    warm = samples[1] if len(samples) > 1 else samples[0]
    print(json.dumps({"prompts": args.prompts, "rss_mb_every_1000": samples, "growth_after_warmup_mb": round(samples[-1] - warm, 1)}))


if __name__ == "__main__":
    main()
