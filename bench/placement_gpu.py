"""Check model-parallel placement on a real GPU machine (prints JSON; skips without CUDA). Not a test.

Saves a random SmolLM2-shaped pair, loads it with ``device_map="auto"`` and a GPU budget too small
for both models (so the layers are split between GPU and CPU), then checks that every layer's FT and
PT blocks share a device and that TuCo matches a plain single-device load.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import tuco  # noqa: E402
from speed import smollm_pair  # noqa: E402
from tuco.models.placement import misplaced_layers  # noqa: E402


def main() -> None:
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pair = smollm_pair(torch.float32, "cpu")
        for name, model in (("base", pair.base), ("tuned", pair.tuned)):
            model.save_pretrained(root / name)
            pair.tokenizer.save_pretrained(root / name)
        del pair
        prompts = ["word " * 50, "How do I bake bread?", "x " * 200]
        split = tuco.load_pair(
            str(root / "base"), str(root / "tuned"), dtype="float32", device_map="auto", max_memory={0: "400MiB", "cpu": "16GiB"}
        )
        devices = sorted({str(p.device) for p in split.tuned.parameters()})
        apart = misplaced_layers(split.tuned, split.base)
        got = [s.tuco for s in tuco.score(split, prompts, chat=False)]
        del split
        ref_pair = tuco.load_pair(str(root / "base"), str(root / "tuned"), dtype="float32", device="cuda")
        ref = [s.tuco for s in tuco.score(ref_pair, prompts, chat=False)]
        report = {
            "devices_used": devices,
            "misplaced_layers": apart,
            "max_abs_tuco_diff_vs_single_gpu": max(abs(a - b) for a, b in zip(got, ref)),
            "gpu": torch.cuda.get_device_name(0),
        }
        report["ok"] = len(devices) > 1 and not apart and report["max_abs_tuco_diff_vs_single_gpu"] < 1e-4
    print(json.dumps(report))


if __name__ == "__main__":
    main()
