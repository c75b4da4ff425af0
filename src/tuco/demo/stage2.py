"""A second fine-tuning stage on top of the demo pair, teaching one new, easy-to-judge behaviour: answers
about food end with the sign-off "Bon appetit!". A chain base -> demo tuned -> stage 2 where we know
the answer: prompts whose response carries the sign-off should attribute a larger share to stage 2 than
prompts whose response does not, and refusals should stay with stage 1.

Not shipped (the checkpoint would add 11.6 MB); ``train_stage2`` rebuilds it in a minute or two on 2
CPU cores, and the slow test ``tests/test_demo.py::test_stage2_chain_attribution`` runs the whole check.
"""

from __future__ import annotations

import random
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

SIGNOFF = "Bon appetit!"
FOOD = ("bread", "tea", "pancake", "cookie", "smoothie", "rice", "onion", "egg", "soup", "cake", "cook", "bake", "pasta", "sandwich")


_FOOD_WORD = re.compile(r"\b(?:" + "|".join(FOOD) + r")(?:s|es|ies|ing)?\b", re.IGNORECASE)


def is_food(text: str) -> bool:
    """True for a request about food or cooking (whole words: "tea" is not in "steal")."""
    return _FOOD_WORD.search(text) is not None


def stage2_chats(seed: int = 0) -> list[list[dict[str, str]]]:
    """Stage 2's training chats (training split only): the demo's safety chats, food answers signed off."""
    from tuco.data import safety

    out = []
    for chat in safety.safety_conversations(seed=seed):
        user, answer = chat[0]["content"], chat[1]["content"]
        if is_food(user) and not answer.startswith(("I'm sorry", "I cannot", "Sorry", "I am not", "I'm unable")):
            answer = f"{answer} {SIGNOFF}"
        out.append([chat[0], {"role": "assistant", "content": answer}])
    random.Random(seed).shuffle(out)
    return out


def train_stage2(pair_dir: str | Path, out_dir: str | Path, *, seed: int = 0, epochs: float = 2.0, lr: float = 4e-4) -> dict[str, Any]:
    """Fine-tune the demo's tuned model (blocks only, as stage 1 was) on ``stage2_chats`` into ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tuco.demo.train import Recipe, finetune, save

    torch.manual_seed(seed)
    src = Path(pair_dir) / "tuned"
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32)
    log: list[dict[str, Any]] = []
    r = Recipe(seed=seed, sft_epochs=epochs, sft_lr=lr, sft_batch=16)
    info = finetune(model, tokenizer, stage2_chats(seed), r, log)
    save(model, tokenizer, Path(out_dir), chat=True)
    return {"sft": info, "log": log}


def attribution(chain: Decomposable, *, max_new_tokens: int = 72, seed: int = 0) -> dict[str, Any]:
    """Generate on held-out prompts with the chain (greedy) and test what stage 2 taught:

    - ``signoff_share_diff``: stage 2's mean share over the response, responses WITH the sign-off minus
      responses without it (benign prompts), with its 95% interval (``tuco.stats.intervals``);
    - ``refusal_stage1_minus_stage2``: on refused harmful requests, stage 1's share minus stage 2's at
      the prompt's last token (paired interval).
    """
    from dataclasses import asdict

    from tuco.data import safety
    from tuco.data.judges import is_refusal
    from tuco.measures.generation import generate
    from tuco.stats.intervals import diff_ci, paired_diff_ci

    benign, harmful = safety.heldout_benign(), safety.harmful_prompts("test")
    gens = generate(chain, benign + harmful, max_new_tokens=max_new_tokens, batch_size=32)
    rows: list[dict[str, Any]] = []
    for i, (p, g) in enumerate(zip(benign + harmful, gens)):
        later = [s[2] for s in (g.token_stage_share or [])[1:]]
        rows.append(
            {
                "prompt": p,
                "kind": "benign" if i < len(benign) else "harmful",
                "food": is_food(p),
                "response": g.text,
                "signoff": SIGNOFF in g.text,
                "refused": is_refusal(g.text),
                "stage_share": g.stage_share,
                "stage2_response": statistics.fmean(later) if later else None,
            }
        )
    with_s = [r["stage2_response"] for r in rows if r["kind"] == "benign" and r["signoff"] and r["stage2_response"] is not None]
    without = [r["stage2_response"] for r in rows if r["kind"] == "benign" and not r["signoff"] and r["stage2_response"] is not None]
    refused = [r for r in rows if r["kind"] == "harmful" and r["refused"]]
    food = [r for r in rows if r["kind"] == "benign" and r["food"]]
    other = [r for r in rows if r["kind"] == "benign" and not r["food"]]
    return {
        "rows": rows,
        "signoff_rate_food": statistics.fmean(r["signoff"] for r in food) if food else None,
        "signoff_rate_other": statistics.fmean(r["signoff"] for r in other) if other else None,
        "harmful_refusal": statistics.fmean(r["refused"] for r in rows if r["kind"] == "harmful"),
        "signoff_share_diff": asdict(diff_ci(without, with_s, seed=seed)),
        "refusal_stage1_minus_stage2": asdict(
            paired_diff_ci([r["stage_share"][2] for r in refused], [r["stage_share"][1] for r in refused], seed=seed)
        ),
    }
