"""Prompt sets from JSONL/CSV/TXT files, and rendering a prompt into the token ids fed to the model.

A prompt is plain text or a chat (a list of ``{"role", "content"}`` messages). With the chat template
on, the ids end at the template's generation prompt, so "the last token" is where the assistant's
answer would start (docs/method.md section 2).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.errors import InputError, PromptError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Messages = list[dict[str, str]]


@dataclass
class Prompt:
    """One prompt: ``text`` or ``messages`` (exactly one), a stable ``id``, and extra fields carried through."""

    id: str
    text: str | None = None
    messages: Messages | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The prompt as one string, for output rows and tables."""
        if self.text is not None:
            return self.text
        return "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in self.messages or [])


@dataclass
class BadRow:
    """A row of a prompt file that could not be used, with its 1-based line number and the reason."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def _check_messages(messages: object) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise PromptError("'messages' must be a non-empty list of {role, content} objects")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise PromptError("each message needs a string 'role' and a string 'content'")
    if not any(m["content"].strip() for m in messages):
        raise PromptError("all messages are empty")
    return messages


def make_prompt(value: str | Messages | Prompt, index: int) -> Prompt:
    """A Prompt from a string, a message list or a Prompt; raises PromptError when it is empty."""
    if isinstance(value, Prompt):
        return value
    if isinstance(value, str):
        if not value.strip():
            raise PromptError(f"prompt {index} is empty: give some text")
        return Prompt(id=str(index), text=value)
    return Prompt(id=str(index), messages=_check_messages(value))


def _from_record(rec: object, index: int) -> Prompt:
    if not isinstance(rec, dict):
        raise PromptError(f"expected a JSON object with a 'prompt' or 'messages' field, got {type(rec).__name__}")
    extra = {k: v for k, v in rec.items() if k not in ("prompt", "messages", "id")}
    pid = str(rec["id"]) if rec.get("id") not in (None, "") else str(index)
    if "messages" in rec and rec["messages"] is not None:
        return Prompt(id=pid, messages=_check_messages(rec["messages"]), extra=extra)
    text = rec.get("prompt")
    if not isinstance(text, str):
        raise PromptError("missing a string field 'prompt' (or 'messages' for a chat)")
    if not text.strip():
        raise PromptError("'prompt' is empty")
    return Prompt(id=pid, text=text, extra=extra)


def read_utf8(path: str | Path, what: str) -> str:
    """A text file the user named, as UTF-8 (a BOM dropped): InputError naming it when missing or not UTF-8."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist" if not p.exists() else f"{what} {str(path)!r} is not a file")
    try:
        return p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{what} {str(path)!r} is not valid UTF-8 (byte {err.start}); save it as UTF-8") from err


def _lines(p: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) of a text file split on ``\\n`` only, CRLF and a UTF-8 BOM removed; text is
    None for a line that is not valid UTF-8 (reported as a bad row, the others go on)."""
    with p.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield n, None if b"\x00" in raw else raw.decode("utf-8")  # NUL bytes: binary data, not text
            except UnicodeDecodeError:
                yield n, None


UNDECODABLE_LIMIT = 20  # undecodable lines, outnumbering the good ones, after which a file is refused as not text


def _check_decodable(path: str | Path, undecodable: int, good: int) -> None:
    """Raise InputError once a file looks like binary data: ``UNDECODABLE_LIMIT`` lines that are not UTF-8
    text, more than the prompts read so far (one message, not a line per row)."""
    if undecodable >= UNDECODABLE_LIMIT and undecodable > good:
        raise InputError(
            f"{str(path)!r} does not look like a text file: {undecodable} lines are not UTF-8 text (against {good} usable "
            "prompts so far); give a .jsonl, .csv or .txt file saved as UTF-8"
        )


def _undecodable(text: str) -> bool:
    """True when ``text`` carries bytes that were not UTF-8 (decoded with ``surrogateescape``)."""
    return any("\udc80" <= c <= "\udcff" for c in text)


def read_prompts(path: str | Path) -> tuple[list[Prompt], list[BadRow]]:
    """Read a prompt file: ``.jsonl`` (field ``prompt`` or ``messages``), ``.csv`` (column ``prompt``)
    or ``.txt`` (one prompt per line). Returns the good prompts and the bad rows (the others still run):
    malformed JSON, a missing or empty field, a line that is not UTF-8.

    Ids are the ``id`` field when present, else the 0-based row index (blank lines of a .txt skipped).
    Lines are split on ``\\n`` only (a U+2028 inside a prompt is text, not a line break); a UTF-8 byte
    order mark and Windows line ends are accepted.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"prompt file {str(path)!r} does not exist")
    if p.is_dir():
        raise InputError(f"prompt file {str(path)!r} is a directory: give a .jsonl, .csv or .txt file")
    suffix = p.suffix.lower()
    good: list[Prompt] = []
    bad: list[BadRow] = []
    undecodable = 0
    if suffix == ".jsonl":
        index = 0
        for line_no, line in _lines(p):
            if line is None:
                bad.append(BadRow(line_no, "not valid UTF-8 text; save the file as UTF-8"))
                undecodable += 1
                _check_decodable(path, undecodable, len(good))
                index += 1
                continue
            if not line.strip():
                continue
            try:
                good.append(_from_record(json.loads(line), index))
            except json.JSONDecodeError as err:
                bad.append(BadRow(line_no, f"malformed JSON ({err.msg} at column {err.colno})"))
            except PromptError as err:
                bad.append(BadRow(line_no, str(err)))
            index += 1
    elif suffix == ".csv":
        text = p.read_bytes().decode("utf-8-sig", errors="surrogateescape")  # bad bytes: that record only
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None or "prompt" not in reader.fieldnames:
            raise InputError(f"{str(path)!r}: CSV needs a header row with a 'prompt' column, got {reader.fieldnames}")
        if _undecodable(" ".join(reader.fieldnames)):
            raise InputError(f"{str(path)!r}: the CSV header is not valid UTF-8; save the file as UTF-8")
        for index, rec in enumerate(reader):
            if None in rec:
                n = len(rec[None])
                bad.append(
                    BadRow(reader.line_num, f"{n} more field(s) than the header's {len(reader.fieldnames)}; quote commas inside a value")
                )
            elif any(isinstance(v, str) and (_undecodable(v) or "\x00" in v) for v in rec.values()):
                bad.append(BadRow(reader.line_num, "not valid UTF-8 text; save the file as UTF-8"))
                undecodable += 1
                _check_decodable(path, undecodable, len(good))
            else:
                try:
                    good.append(_from_record(dict(rec), index))
                except PromptError as err:
                    bad.append(BadRow(reader.line_num, str(err)))
    elif suffix == ".txt":
        index = 0
        for line_no, line in _lines(p):
            if line is None:
                bad.append(BadRow(line_no, "not valid UTF-8 text; save the file as UTF-8"))
                undecodable += 1
                _check_decodable(path, undecodable, len(good))
            elif line.strip():
                good.append(Prompt(id=str(index), text=line))
                index += 1
    else:
        raise InputError(f"unsupported prompt file type {suffix!r} ({str(path)!r}): use .jsonl, .csv or .txt")
    return good, bad


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def split_response(prompt: Prompt) -> tuple[Prompt, str | None]:
    """(the prompt before the response, the response) of a chat whose last message is the assistant's;
    ``(prompt, None)`` for any other prompt. The first keeps the id and extra fields."""
    msgs = prompt.messages
    if not msgs or msgs[-1].get("role") != "assistant":
        return prompt, None
    if not any(m["content"].strip() for m in msgs[:-1]):
        raise PromptError(f"prompt {prompt.id}: the assistant's response has no message before it to respond to")
    return Prompt(id=prompt.id, messages=list(msgs[:-1]), extra=prompt.extra), msgs[-1]["content"]


def _chat_messages(prompt: Prompt, system: str | None) -> Messages:
    messages = list(prompt.messages) if prompt.messages is not None else [{"role": "user", "content": prompt.text or ""}]
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def render(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, chat: bool | None = None, system: str | None = None) -> str:
    """The exact text fed to the model.

    ``chat=None`` uses the chat template when the tokenizer has one. With the template, a plain-text
    prompt becomes one user message (after ``system`` if given) and the generation prompt is added.
    """
    use_chat = has_chat_template(tokenizer) if chat is None else chat
    if not use_chat:
        if prompt.messages is not None:
            raise PromptError(f"prompt {prompt.id} is a chat ('messages') but the chat template is off; use --chat")
        if system:
            return f"{system}\n\n{prompt.text}"
        return prompt.text or ""
    if not has_chat_template(tokenizer):
        raise PromptError("the tuned tokenizer has no chat template; use --no-chat (or pass a tokenizer that has one)")
    try:
        return str(tokenizer.apply_chat_template(_chat_messages(prompt, system), tokenize=False, add_generation_prompt=True))
    except Exception as err:  # noqa: BLE001 - jinja templates raise anything (e.g. "System role not supported")
        raise PromptError(f"prompt {prompt.id}: the chat template rejected it: {err}") from err


def encode(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, chat: bool | None = None, system: str | None = None) -> list[int]:
    """Token ids of a prompt: the chat template's text (special tokens already in it), or the raw text
    with the tokenizer's default special tokens (e.g. BOS) when the template is off."""
    use_chat = has_chat_template(tokenizer) if chat is None else chat
    text = render(tokenizer, prompt, chat=use_chat, system=system)
    ids = tokenizer(text, add_special_tokens=not use_chat)["input_ids"]
    if not ids:
        raise PromptError(f"prompt {prompt.id} has no tokens")
    return list(ids)


def encode_response(
    tokenizer: PreTrainedTokenizerBase, head: Prompt, response: str, *, system: str | None = None, eos: Collection[int] = ()
) -> list[int]:
    """Token ids of a given response, as the model would have generated them after ``head`` (the prompt
    ``split_response`` left): what the chat template writes after the generation prompt when the
    conversation ends with the assistant's ``response``, up to and including the first end-of-sequence
    id in ``eos`` (e.g. ``<|end|>``, Gemma's ``<end_of_turn>``; what follows it, such as a newline, is
    never generated). Raises PromptError when the template renders the earlier turns differently once
    the response is added (the response's start cannot be told)."""
    if not has_chat_template(tokenizer):
        raise PromptError("the tuned tokenizer has no chat template to place a response in; use --next-turn, or a tokenizer with one")
    before = render(tokenizer, head, chat=True, system=system)
    messages = [*_chat_messages(head, system), {"role": "assistant", "content": response}]
    try:
        whole = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))
    except Exception as err:  # noqa: BLE001 - jinja templates raise anything
        raise PromptError(f"prompt {head.id}: the chat template rejected the conversation with its response: {err}") from err
    if not whole.startswith(before):
        raise PromptError(
            f"prompt {head.id}: the chat template writes the earlier turns differently once the response is added, so "
            "the response's tokens cannot be told apart; score the next turn instead with --next-turn"
        )
    ids = list(tokenizer(whole[len(before) :], add_special_tokens=False)["input_ids"])
    ends = [i for i, t in enumerate(ids) if t in eos]
    ids = ids[: ends[0] + 1] if ends else ids
    if not ids:
        raise PromptError(f"prompt {head.id}: the response has no tokens")
    return ids


def as_prompts(values: Sequence[str | Messages | Prompt]) -> list[Prompt]:
    """Prompts from a sequence of strings, message lists or Prompts (raises PromptError on an empty one)."""
    return [make_prompt(v, i) for i, v in enumerate(values)]
