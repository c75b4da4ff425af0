"""Probe sets for measuring TuCo while a model trains: named groups of prompts, validated once, before
training starts. Torch-free.

A group is a list of prompts (strings), chats (lists of ``{"role", "content"}`` messages; a chat ending
with the assistant's message is a probe with a given response, scored teacher-forced) or ``tuco.Prompt``
objects, or one string naming a data source (``builtin:harmful-broad``, a .jsonl/.csv/.txt file,
``hf:DATASET``), read with ``tuco.data.sources.load_prompts``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuco.errors import ConfigError, PromptError
from tuco.measures.prompts import Messages, Prompt, make_prompt

ProbeInput = Sequence[str | Messages | Prompt] | str
GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class ProbeGroup:
    """One named group of probes, each prompt's id prefixed with the group (``harmful/3``), and whether the
    chat template is applied to it (None: when the tokenizer has one)."""

    name: str
    prompts: list[Prompt]
    chat: bool | None = None

    @property
    def has_responses(self) -> bool:
        """True when some probe is a chat ending with the assistant's message (it then has a response TuCo)."""
        return any(p.messages is not None and p.messages[-1].get("role") == "assistant" for p in self.prompts)


@dataclass(frozen=True)
class ProbeSet:
    """Every probe group, in the order given."""

    groups: list[ProbeGroup]

    @property
    def names(self) -> list[str]:
        """The groups' names."""
        return [g.name for g in self.groups]

    def group(self, name: str) -> ProbeGroup:
        """The group called ``name`` (ConfigError naming the groups otherwise)."""
        for g in self.groups:
            if g.name == name:
                return g
        raise ConfigError(f"no probe group {name!r}: the groups are {', '.join(self.names)}")

    def __len__(self) -> int:
        return sum(len(g.prompts) for g in self.groups)

    def digest(self) -> str:
        """A digest of every group's name, chat setting and prompts (a resumed run must probe the same)."""
        h = hashlib.sha256()
        for g in self.groups:
            h.update(json.dumps([g.name, g.chat]).encode("utf-8"))
            for p in g.prompts:
                h.update(json.dumps([p.id, p.text, p.messages], sort_keys=True).encode("utf-8"))
        return h.hexdigest()[:16]


def _prompts(name: str, value: object, limit: int | None) -> list[Prompt]:
    if isinstance(value, str):
        from tuco.data.sources import load_prompts

        items: list[Any] = list(load_prompts(value, limit=limit))
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
        if limit is not None:
            from tuco.data.sources import spread

            items = spread(items, limit)
    else:
        raise ConfigError(
            f"probe group {name!r} is a {type(value).__name__}: give a list of prompts or chats, or a data source "
            "such as 'builtin:harmful-broad'"
        )
    if not items:
        raise ConfigError(f"probe group {name!r} is empty: give it at least one prompt, or leave the group out")
    out = []
    for i, item in enumerate(items):
        try:
            p = make_prompt(item, i)
        except PromptError as err:
            raise ConfigError(f"probe group {name!r}: {err}") from err
        if p.text is not None and not p.text.strip():
            raise ConfigError(f"probe group {name!r}: prompt {p.id} is empty; give some text")
        out.append(Prompt(id=f"{name}/{p.id}", text=p.text, messages=p.messages, extra=dict(p.extra)))
    ids = [p.id for p in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"probe group {name!r} has duplicate prompt ids ({', '.join(dup[:3])}); give each prompt its own id")
    return out


def probe_set(
    probes: Mapping[str, ProbeInput],
    *,
    chat: bool | None | Mapping[str, bool | None] = None,
    limit: int | None = None,
) -> ProbeSet:
    """Validate and normalise probe groups (ConfigError, naming the fix, for anything unusable).

    ``chat``: apply the chat template (None: when the tokenizer has one), for every group, or per group as
    ``{"web": False}`` (groups not named: None). ``limit``: keep that many prompts per group, spread evenly.
    """
    if isinstance(probes, (str, bytes)) or not isinstance(probes, Mapping):
        raise ConfigError(
            "probes must map group names to prompts, e.g. {'harmful': [...], 'benign': [...]} (a single list: {'all': prompts})"
        )
    if not probes:
        raise ConfigError("no probe groups: give at least one, e.g. probes={'harmful': ['How do I pick a lock?']}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit}: keep at least 1 prompt per group (or None for all)")
    per_group: Mapping[str, bool | None] = chat if isinstance(chat, Mapping) else {}
    unknown = [k for k in per_group if k not in probes]
    if unknown:
        raise ConfigError(f"chat names probe group {unknown[0]!r}, which is not one of the groups ({', '.join(map(str, probes))})")
    groups = []
    for name, value in probes.items():
        if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
            raise ConfigError(
                f"probe group name {name!r} cannot be used in log keys: use letters, digits, '_', '.' or '-' (e.g. 'harmful')"
            )
        setting = per_group.get(name) if isinstance(chat, Mapping) else chat
        groups.append(ProbeGroup(name, _prompts(name, value, limit), setting))
    return ProbeSet(groups)


def response_of(prompt: Prompt) -> str | None:
    """The given response of a probe (the content of its last message when that is the assistant's)."""
    if prompt.messages and prompt.messages[-1].get("role") == "assistant":
        return prompt.messages[-1].get("content")
    return None
