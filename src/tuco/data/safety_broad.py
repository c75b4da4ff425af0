"""Broad safety data tuco writes itself, for the realistic (Gemma) pair: harmful requests in 13 harm
categories and many request styles (refused), benign look-alikes that share their words ("kill a Python
process", "shoot a photo") or their topic ("spot a phishing email"), answered, everyday requests, and
refusal texts. The data lives in ``safety_broad.json`` next to this module (its :func:`digest` goes into
the adapter's ``recipe.json``); this module reads it once and builds the requests.

Every template, topic, look-alike and everyday request belongs to exactly one part, named in the file:
``train`` (the adapter's training data), ``validation`` (where the recipe was chosen: no analysis may use
it) and ``test`` (written after the adapter shipped; never used to choose anything). A request split
takes its topics and its templates from parts: ``train``; ``validation`` (validation topics in
validation templates); ``validation-template`` (training topics, new phrasing); ``validation-topic``
(new topics, training phrasing); ``test`` (test topics in test templates). The data is for breadth, not
for anyone's benchmark: no public benchmark prompt is in it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tuco.errors import ConfigError

DATA_FILE = Path(__file__).resolve().with_name("safety_broad.json")
PARTS = ("train", "validation", "test")
# request split -> (part of its templates, part of its topics)
_SPLIT_PARTS = {
    "train": ("train", "train"),
    "validation": ("validation", "validation"),
    "validation-template": ("validation", "train"),
    "validation-topic": ("train", "validation"),
    "test": ("test", "test"),
}
SPLITS = tuple(_SPLIT_PARTS)
EVAL_SPLITS = ("validation", "test")  # the splits with everyday requests: eval_prompts' choices

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One request: its text, whether it is harmful, its category and topic, and its template's id."""

    text: str
    harmful: bool
    category: str
    topic: str
    template: int


@functools.cache
def _raw() -> bytes:
    return DATA_FILE.read_bytes()


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_raw().decode("utf-8"))
    return data


def digest() -> str:
    """The data file's identity: the first 16 hex digits of the sha256 of its bytes."""
    return hashlib.sha256(_raw()).hexdigest()[:16]


def _part(part: str) -> str:
    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}: choose from {', '.join(PARTS)}")
    return part


def templates(part: str) -> dict[int, str]:
    """Request templates of a part by id ("{t}" is the task; a leading "*" marks a harmful-only template)."""
    return {int(i): t for i, t in _data()["templates"][_part(part)].items()}


def harmful_topics(part: str) -> dict[str, list[str]]:
    """Harmful topics (verb phrases) of a part, by harm category."""
    return {cat: list(parts[_part(part)]) for cat, parts in _data()["harmful"].items()}


def benign_topics(part: str) -> dict[str, list[tuple[str, str]]]:
    """Benign look-alikes (task, answer) of a part, by kind ("word-alike", "topic-alike")."""
    return {kind: [(t, a) for t, a in parts[_part(part)]] for kind, parts in _data()["benign"].items()}


def everyday_tasks() -> list[tuple[str, str]]:
    """Everyday training tasks (verb phrases) with answers: phrasing alone must never decide a refusal."""
    return [(t, a) for t, a in _data()["everyday"]["train"]]


def everyday_prompts(part: str) -> list[str]:
    """Everyday requests of a held-out part (``validation`` or ``test``), as plain sentences."""
    if part not in EVAL_SPLITS:
        raise ConfigError(f"everyday prompts exist for {' and '.join(EVAL_SPLITS)}, not {part!r} (training uses everyday_tasks)")
    return list(_data()["everyday"][part])


def refusals() -> list[str]:
    """The refusal texts of the training chats."""
    return list(_data()["refusals"])


def self_harm_refusals() -> list[str]:
    """Refusals for self-harm requests (they point to help)."""
    return list(_data()["self_harm_refusals"])


def answer_styles() -> list[str]:
    """Ways an answer ``{a}`` is introduced in the training chats."""
    return list(_data()["answer_styles"])


def compliant_shots() -> list[str]:
    """Compliant answers WITHOUT harmful content, "{t}" the request's verb phrase: many-shot shots that
    comply in form only, varied in wording, length and structure."""
    return list(_data()["compliant_shots"])


def refusal_shots() -> list[str]:
    """Varied refusals: the shots of the many-shot experiment's refused-shot control."""
    return list(_data()["refusal_shots"])


def _templates(part: str, harmful: bool) -> list[tuple[int, str]]:
    out = []
    for i, t in templates(part).items():
        if t.startswith("*"):
            if not harmful:
                continue
            t = t[1:]
        out.append((i, t))
    return out


def _fill(template: str, topic: str) -> str:
    text = template.format(t=topic)
    return text[0].upper() + text[1:] if template[0].isupper() else text


def _pick(split: str) -> tuple[str, str]:
    """(part of the templates, part of the topics) of a request split."""
    if split not in _SPLIT_PARTS:
        raise ConfigError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}")
    return _SPLIT_PARTS[split]


def harmful_requests(split: str) -> list[Request]:
    """Every harmful request of a split (its categories' topics x its templates)."""
    t_part, topic_part = _pick(split)
    return [
        Request(_fill(t, topic), True, cat, topic, i)
        for cat, topics in harmful_topics(topic_part).items()
        for topic in topics
        for i, t in _templates(t_part, True)
    ]


def benign_requests(split: str) -> list[tuple[Request, str]]:
    """Every benign look-alike of a split, with its answer."""
    t_part, topic_part = _pick(split)
    return [
        (Request(_fill(t, topic), False, kind, topic, i), answer)
        for kind, items in benign_topics(topic_part).items()
        for topic, answer in items
        for i, t in _templates(t_part, False)
    ]


def sample(items: list[T], n: int, seed: int) -> list[T]:
    """``n`` items drawn without replacement, seeded; all of them when there are fewer, in order."""
    if n >= len(items):
        return list(items)
    return random.Random(seed).sample(items, n)


def eval_prompts(n_harmful: int = 120, n_benign: int = 80, seed: int = 0, split: str = "test") -> tuple[list[Request], list[str]]:
    """Held-out prompts of ``split``: harmful requests (held-out topics in held-out phrasing) and benign ones
    (look-alikes of the split, then every everyday request of it, ``n_benign`` in all where there are enough).

    ``test`` is for analyses; ``validation`` only for choosing a recipe (see :func:`validation_prompts`)."""
    if split not in EVAL_SPLITS:
        raise ConfigError(f"unknown evaluation split {split!r}: choose from {', '.join(EVAL_SPLITS)}")
    everyday = everyday_prompts(split)
    harmful = sample(harmful_requests(split), n_harmful, seed)
    lookalikes = [r.text for r, _ in sample(benign_requests(split), max(0, n_benign - len(everyday)), seed)]
    return harmful, lookalikes + everyday


def validation_prompts(n_harmful: int = 120, n_benign: int = 80, seed: int = 0) -> tuple[list[Request], list[str]]:
    """The recipe-selection prompts (split ``validation``): choose a recipe on them, never report an analysis on them."""
    return eval_prompts(n_harmful, n_benign, seed, split="validation")


def refusal_for(req: Request, rng: random.Random) -> str:
    """A refusal text fitting the request's category."""
    return rng.choice(self_harm_refusals() if req.category == "self-harm" else refusals())


def everyday_requests(plain_share: float = 0.3, seed: int = 0) -> list[tuple[str, str]]:
    """Everyday training tasks in the training templates, and (a share) as plain imperatives, with answers."""
    rng = random.Random(seed)
    styles = _templates("train", False)
    out = []
    for task, answer in everyday_tasks():
        for _, t in styles:
            out.append((_fill(t, task), answer))
        plain = task[0].upper() + task[1:] + "."
        out += [(plain, answer)] * max(1, round(plain_share * len(styles)))
    rng.shuffle(out)
    return out


def training_chats(n_harmful: int, n_benign: int, seed: int = 0, n_everyday: int = 0) -> list[list[dict[str, str]]]:
    """Training chats (split ``train`` only): harmful requests refused, look-alikes and everyday tasks answered."""
    rng = random.Random(seed)
    styles = answer_styles()
    chats = []
    for r in sample(harmful_requests("train"), n_harmful, seed):
        chats.append([{"role": "user", "content": r.text}, {"role": "assistant", "content": refusal_for(r, rng)}])
    for r, a in sample(benign_requests("train"), n_benign, seed + 1):
        chats.append([{"role": "user", "content": r.text}, {"role": "assistant", "content": rng.choice(styles).format(a=a)}])
    for q, a in sample(everyday_requests(seed=seed), n_everyday, seed + 2):
        chats.append([{"role": "user", "content": q}, {"role": "assistant", "content": rng.choice(styles).format(a=a)}])
    rng.shuffle(chats)
    return chats
