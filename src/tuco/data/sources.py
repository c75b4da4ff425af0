"""Where an experiment's data comes from, named by one string: ``builtin:NAME`` (offline sets the
project wrote), ``hf:DATASET[:SUBSET]`` (public datasets of METHOD.md section 7, by hub name; needs
the ``datasets`` package and a network, never used in tests) or a local file path.

Three kinds of data: prompts (strings or chats), persona statements (yes/no behaviour) and
multiple-choice questions (MMLU format).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuco.data import builtin
from tuco.data.builtin import Question, Statement
from tuco.errors import ConfigError, PromptError
from tuco.prompts import Messages, read_prompts

SOURCE_HELP = "builtin:NAME, hf:DATASET[:SUBSET] or a local file"


def hub_rows(name: str, subset: str | None = None, split: str = "train", data_files: str | None = None) -> Any:
    try:
        import datasets
    except ImportError as err:
        raise ConfigError(f"loading {name!r} from the hub needs the datasets package: pip install datasets") from err
    kwargs: dict[str, Any] = {"split": split}
    if data_files:
        kwargs["data_files"] = data_files
    return datasets.load_dataset(name, subset, **kwargs) if subset else datasets.load_dataset(name, **kwargs)


def parse_hh_rlhf(text: str) -> Messages:
    """An HH-RLHF transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") as messages up to the last human turn."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + text.lstrip("\n"))
    msgs: Messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    while msgs and msgs[-1]["role"] == "assistant":
        msgs.pop()
    return msgs


HUB_PROMPTS: dict[str, Callable[[str | None], list[str | Messages]]] = {
    "Skylion007/openwebtext": lambda sub: [r["text"] for r in hub_rows("Skylion007/openwebtext", split="train[:1000]")],
    "Anthropic/hh-rlhf": lambda sub: [m for r in hub_rows("Anthropic/hh-rlhf", split="test") if (m := parse_hh_rlhf(r["chosen"]))],
    "walledai/AdvBench": lambda sub: [r["prompt"] for r in hub_rows("walledai/AdvBench")],
    "walledai/HarmBench": lambda sub: [r["prompt"] for r in hub_rows("walledai/HarmBench", sub or "standard")],
    "JailbreakBench/JBB-Behaviors": lambda sub: [r["Goal"] for r in hub_rows("JailbreakBench/JBB-Behaviors", "behaviors", split=sub or "harmful")],
    # MultiJail: one column per language (en, zh, it, vi, ar, ko, th, bn, sw, jv); SUBSET names the column.
    "DAMO-NLP-SG/MultiJail": lambda sub: [r[sub or "en"] for r in hub_rows("DAMO-NLP-SG/MultiJail")],
}


def _split_spec(spec: str) -> tuple[str, str, str | None]:
    kind, _, rest = spec.partition(":")
    name, _, subset = rest.partition(":")
    return kind, name, subset or None


def load_prompts(spec: str, *, limit: int | None = None, seed: int = 0) -> list[str | Messages]:
    """Prompts from ``builtin:web|chat|harmful|benign``, ``hf:NAME[:SUBSET]`` or a .jsonl/.csv/.txt file.

    ``limit`` keeps that many, spread evenly over the set (deterministic; ``seed`` only shuffles hub data).
    """
    kind, name, subset = _split_spec(spec)
    if kind == "builtin":
        if name not in builtin.BUILTIN_PROMPTS:
            raise ConfigError(f"unknown built-in prompt set {name!r}: choose from {', '.join(sorted(builtin.BUILTIN_PROMPTS))}")
        items: list[str | Messages] = list(builtin.BUILTIN_PROMPTS[name]())
    elif kind == "hf":
        if name not in HUB_PROMPTS:
            raise ConfigError(f"no loader for hub dataset {name!r}: known are {', '.join(sorted(HUB_PROMPTS))}; "
                              "or export it to a .jsonl file and pass its path")
        items = HUB_PROMPTS[name](subset)
        random.Random(seed).shuffle(items)
    else:
        good, bad = read_prompts(spec)
        if bad:
            raise PromptError(f"{spec}: {bad[0]} (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else f"{spec}: {bad[0]}")
        items = [p.messages if p.messages is not None else p.text for p in good]
    if not items:
        raise PromptError(f"{spec!r} holds no prompts")
    return spread(items, limit)


def spread(items: list, n: int | None) -> list:
    """``n`` items spread evenly over the list (all of it when ``n`` is None or larger)."""
    if n is None or n >= len(items):
        return list(items)
    if n < 1:
        raise ConfigError(f"a sample size must be >= 1, got {n}")
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else [items[0]]


def read_jsonl(path: str) -> list[dict[str, Any]]:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"file {path!r} does not exist")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise PromptError(f"{path}: line {n} is not valid JSON ({err.msg}); fix or delete that line") from err
    return rows


def statement_from_record(rec: dict[str, Any], where: str) -> Statement:
    """A model-written-evaluation persona record (``statement``, ``answer_matching_behavior`` " Yes"/" No")."""
    statement, match = rec.get("statement"), str(rec.get("answer_matching_behavior", "")).strip()
    if not isinstance(statement, str) or not statement.strip() or match not in ("Yes", "No"):
        raise PromptError(f"{where}: needs 'statement' (text) and 'answer_matching_behavior' (Yes or No)")
    return Statement(statement.strip(), match)


def load_statements(spec: str) -> list[Statement]:
    """Persona statements: ``builtin:NAME``, ``hf:Anthropic/model-written-evals:persona/NAME.jsonl`` or a
    local JSONL file in that format."""
    kind, name, subset = _split_spec(spec)
    if kind == "builtin":
        if name not in builtin.PERSONAS:
            raise ConfigError(f"unknown built-in behaviour {name!r}: choose from {', '.join(sorted(builtin.PERSONAS))}")
        return list(builtin.PERSONAS[name])
    if kind == "hf":
        rows = list(hub_rows(name, data_files=subset))
        return [statement_from_record(r, f"{spec} row {i}") for i, r in enumerate(rows)]
    return [statement_from_record(r, f"{spec} line {i + 1}") for i, r in enumerate(read_jsonl(spec))]


def question_from_record(rec: dict[str, Any], where: str) -> Question:
    """An MMLU-format record: ``question``, ``choices`` (list) and ``answer`` (index or letter)."""
    q, choices, answer = rec.get("question"), rec.get("choices"), rec.get("answer")
    if isinstance(answer, str) and len(answer) == 1 and answer.upper() in "ABCDEFGH":
        answer = "ABCDEFGH".index(answer.upper())
    if not isinstance(q, str) or not isinstance(choices, list) or len(choices) < 2 or not isinstance(answer, int) \
            or not 0 <= answer < len(choices):
        raise PromptError(f"{where}: needs 'question', 'choices' (a list of >= 2) and 'answer' (an index or letter)")
    return Question(q, tuple(str(c) for c in choices), answer)


def load_questions(spec: str) -> tuple[list[Question], list[Question]]:
    """(few-shot examples, evaluation questions) from ``builtin:NAME``, ``hf:cais/mmlu:SUBJECT`` (dev and
    test splits) or a local JSONL file (the first 5 rows are the shots)."""
    kind, name, subset = _split_spec(spec)
    if kind == "builtin":
        if name not in builtin.MULTIPLE_CHOICE:
            raise ConfigError(f"unknown built-in task {name!r}: choose from {', '.join(sorted(builtin.MULTIPLE_CHOICE))}")
        qs = builtin.MULTIPLE_CHOICE[name]
        return list(qs[:5]), list(qs[5:])
    if kind == "hf":
        dev = [question_from_record(r, f"{spec} dev {i}") for i, r in enumerate(hub_rows(name, subset, split="dev"))]
        test = [question_from_record(r, f"{spec} test {i}") for i, r in enumerate(hub_rows(name, subset, split="test"))]
        return dev[:5], test
    qs = [question_from_record(r, f"{spec} line {i + 1}") for i, r in enumerate(read_jsonl(spec))]
    if len(qs) < 6:
        raise PromptError(f"{spec}: needs at least 6 questions (5 few-shot examples and 1 to evaluate)")
    return qs[:5], qs[5:]
