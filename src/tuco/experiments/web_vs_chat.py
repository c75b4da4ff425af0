"""web-vs-chat: is TuCo lower on pre-training-like text than on chat prompts? (METHOD.md 5.1)

Paper: one random 97-token substring of each of the first 1000 OpenWebText records vs HH-RLHF
conversations; ROC-AUC of TuCo with chat as the positive class 0.93-1.0 for most pairs (Zephyr 0.63).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Any

from tuco.data.sources import SOURCE_HELP, load_prompts
from tuco.experiments.base import RunDir
from tuco.experiments.plotting import histograms
from tuco.pair import ModelPair
from tuco.scoring import score
from tuco.stats import roc_auc

NAME = "web-vs-chat"
QUESTION = "Is TuCo lower on pre-training-like web text than on chat prompts? (ROC-AUC, chat = positive)"


@dataclass
class Options:
    web: str = field(default="builtin:web", metadata={"help": f"web-like text ({SOURCE_HELP}); paper: hf:Skylion007/openwebtext"})
    chat: str = field(default="builtin:chat", metadata={"help": f"chat prompts ({SOURCE_HELP}); paper: hf:Anthropic/hh-rlhf"})
    n: int = field(default=200, metadata={"help": "prompts per group (spread evenly over each set)"})
    web_tokens: int = field(default=97, metadata={"help": "random substring of this many tokens per web text (0: whole text)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per forward pass"})
    seed: int = field(default=0, metadata={"help": "seed of the substring positions"})


def substring(tokenizer: Any, text: str, n_tokens: int, rng: random.Random) -> str:
    """A random window of ``n_tokens`` tokens of ``text`` (decoded back to text), or all of a shorter text."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if n_tokens <= 0 or len(ids) <= n_tokens:
        return text
    start = rng.randrange(len(ids) - n_tokens + 1)
    return tokenizer.decode(ids[start : start + n_tokens])


def run(pair: ModelPair, o: Options, rd: RunDir) -> dict[str, Any]:
    rng = random.Random(o.seed)
    web = [substring(pair.tokenizer, t, o.web_tokens, rng) for t in load_prompts(o.web, limit=o.n, seed=o.seed) if isinstance(t, str)]
    chats = load_prompts(o.chat, limit=o.n, seed=o.seed)
    web_s = score(pair, web, chat=False, batch_size=o.batch_size)
    chat_s = score(pair, chats, chat=True, batch_size=o.batch_size)
    rd.add([{"group": "web", "id": f"web-{i}", "prompt": p, "tuco": s.tuco, "n_tokens": s.n_tokens} for i, (p, s) in enumerate(zip(web, web_s))])
    rd.add([{"group": "chat", "id": f"chat-{i}", "prompt": p if isinstance(p, str) else p[-1]["content"], "tuco": s.tuco,
             "n_tokens": s.n_tokens} for i, (p, s) in enumerate(zip(chats, chat_s))])
    w, c = [s.tuco for s in web_s], [s.tuco for s in chat_s]
    auc = roc_auc(c, w)
    histograms({"web": w, "chat": c}, f"web text vs chat prompts (ROC-AUC {auc:.2f})", rd.path / "web_vs_chat.png")
    return {"auc": auc, "mean_tuco_web": statistics.fmean(w), "mean_tuco_chat": statistics.fmean(c), "n_web": len(w), "n_chat": len(c),
            "paper": "ROC-AUC 0.93-1.0 for most pairs (Zephyr-gemma 0.63)"}
