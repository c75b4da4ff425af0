"""The OpenAI wire format of `tuco serve`: request bodies validated into ``Call``s, the response and stream
chunk objects (each choice carrying its ``tuco`` object), and OpenAI-style error objects.

Every problem with a request raises ``APIError`` (status, message, param, code), which the app turns into
``{"error": {...}}`` with a 4xx status; nothing here runs a model.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from tuco.errors import PromptError, TucoError

STOP_MAX = 4  # OpenAI: up to 4 stop sequences
TOP_LOGPROBS_MAX = 20


class APIError(Exception):
    """A request the server refuses: HTTP ``status`` and an OpenAI error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        """The JSON error object OpenAI clients parse."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    """What the server allows: rows per request (``n`` x prompts), generated tokens, the model's context."""

    max_rows: int = 16
    max_tokens: int = 512
    context: int | None = None


@dataclass
class Call:
    """One validated request: its prompts as token ids (chat: one, from the chat template) and its settings.

    ``alpha``: the parsed alpha (``tuco.engine.alpha.parse_alpha``), ``alpha_text`` its text; ``logprobs``:
    top alternatives per token (None: no logprobs); ``echo``: completions only, the prompt before the text.
    """

    kind: str  # "chat" or "completion"
    model: str
    prompts: list[list[int]]
    alpha: Any
    alpha_text: str
    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    echo: bool = False
    tuco_tokens: bool = False
    texts: list[str | None] = field(default_factory=list)  # completions: each prompt's text, when given as text

    @property
    def rows(self) -> int:
        """Sequences this call puts in the batch (one per prompt and choice)."""
        return len(self.prompts) * self.n


# ---- reading fields ----


def _get(body: dict[str, Any], key: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds:
        raise APIError(400, f"'{key}' must be {what}, got {json_type(value)}", param=key)
    if not isinstance(value, kinds):
        raise APIError(400, f"'{key}' must be {what}, got {json_type(value)}", param=key)
    return value


def json_type(value: Any) -> str:
    """A value's JSON type name, for messages."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _number(body: dict[str, Any], key: str, default: float | None, lo: float, hi: float) -> float | None:
    value = _get(body, key, (int, float), "a number", default)
    if value is None:
        return None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise APIError(400, f"'{key}' must be between {lo:g} and {hi:g}, got {value}", param=key)
    return float(value)


def _integer(body: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    value = _get(body, key, (int,), "an integer", default)
    if value is None:
        return None
    if not lo <= value <= hi:
        raise APIError(400, f"'{key}' must be between {lo} and {hi}, got {value}", param=key)
    return int(value)


def _unsupported(body: dict[str, Any]) -> None:
    """Refuse settings that would change the result but tuco does not implement (never ignored silently)."""
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise APIError(400, f"'{key}' is not supported by tuco serve; leave it out (or 0)", param=key)
    for key in ("logit_bias", "tools", "functions", "tool_choice", "function_call"):
        if body.get(key):
            raise APIError(400, f"'{key}' is not supported by tuco serve; leave it out", param=key)
    fmt = body.get("response_format")
    if fmt not in (None, {"type": "text"}):
        raise APIError(400, "'response_format' other than text is not supported by tuco serve", param="response_format")
    if body.get("best_of") not in (None, 1) or body.get("suffix"):
        raise APIError(400, "'best_of' and 'suffix' are not supported by tuco serve", param="best_of")


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > STOP_MAX:
        raise APIError(400, f"'stop' must be a non-empty string or a list of up to {STOP_MAX} non-empty strings", param="stop")
    return list(stops)


def _alpha(body: dict[str, Any], default: str, model: Any) -> tuple[Any, str]:
    from tuco.engine.alpha import Alpha

    raw = body.get("alpha", default)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise APIError(400, f"'alpha' must be a number or alpha text such as '1:1:0.5' (per layer), got {json_type(raw)}", param="alpha")
    try:
        alpha = Alpha.of(raw).check(model.n_stages, model.n_layers)
    except TucoError as err:
        raise APIError(400, str(err), param="alpha") from err
    return alpha, alpha.text


def _common(body: dict[str, Any], kind: str, prompts: list[list[int]], model: Any, limits: Limits, default_alpha: str) -> Call:
    _unsupported(body)
    alpha, text = _alpha(body, default_alpha, model)
    n = _integer(body, "n", 1, 1, limits.max_rows) or 1
    if len(prompts) * n > limits.max_rows:
        raise APIError(400, f"{len(prompts)} prompts x n={n} is more than the {limits.max_rows} rows one request may use", param="n")
    longest = max(len(p) for p in prompts)
    room = limits.max_tokens if limits.context is None else min(limits.max_tokens, limits.context - longest)
    if room < 1:
        raise APIError(
            400,
            f"the prompt has {longest} tokens, the model's context is {limits.context}; shorten it",
            param="messages" if kind == "chat" else "prompt",
            code="context_length_exceeded",
        )
    key = "max_completion_tokens" if kind == "chat" and body.get("max_completion_tokens") is not None else "max_tokens"
    default = 16 if kind == "completion" else room
    max_tokens = _integer(body, key, default, 0, 1 << 30)
    assert max_tokens is not None  # a default is given
    if max_tokens > limits.max_tokens:
        raise APIError(
            400, f"'{key}' {max_tokens} is more than this server allows ({limits.max_tokens}, tuco serve --max-tokens)", param=key
        )
    if limits.context is not None and longest + max_tokens > limits.context:
        raise APIError(
            400,
            f"the prompt has {longest} tokens plus {max_tokens} to generate, more than the model's context of {limits.context}; "
            f"shorten the prompt or lower '{key}'",
            param=key,
            code="context_length_exceeded",
        )
    temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p == 0.0:
        raise APIError(400, "'top_p' must be in (0, 1]", param="top_p")
    stream = _get(body, "stream", (bool,), "a boolean", False)
    options = _get(body, "stream_options", (dict,), "an object", {})
    return Call(
        kind=kind,
        model=str(body.get("model") or ""),
        prompts=prompts,
        alpha=alpha,
        alpha_text=text,
        n=n,
        max_tokens=max_tokens,
        temperature=float(temperature if temperature is not None else 1.0),
        top_p=top_p if top_p is not None and top_p < 1 and temperature != 0 else None,
        seed=_integer(body, "seed", None, -(1 << 63), (1 << 63) - 1),
        stop=_stop(body),
        stream=stream,
        include_usage=bool(options.get("include_usage", False)) if stream else False,
        tuco_tokens=_get(body, "tuco_tokens", (bool,), "a boolean", False),
    )


# ---- the two request kinds ----


def _content(message: dict[str, Any], i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            parts.append(part["text"])
        return "".join(parts)
    raise APIError(400, f"messages[{i}].content must be a string or a list of text parts", param="messages")


def parse_chat(body: Any, model: Any, limits: Limits, default_alpha: str = "1") -> Call:
    """A /v1/chat/completions body as a ``Call``: the messages rendered by the tuned tokenizer's chat template
    (the same text ``tuco score``/``tuco generate`` feed for a chat)."""
    from tuco.measures.prompts import Prompt, encode

    body = _object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty array of {role, content} objects", param="messages")
    chat = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise APIError(400, f"messages[{i}] must be an object with a string 'role'", param="messages")
        chat.append({"role": m["role"], "content": _content(m, i)})
    try:
        ids = encode(model.tokenizer, Prompt(id="request", messages=chat), chat=True)
    except PromptError as err:
        raise APIError(400, str(err), param="messages") from err
    call = _common(body, "chat", [ids], model, limits, default_alpha)
    if _get(body, "logprobs", (bool,), "a boolean", False):
        call.logprobs = _integer(body, "top_logprobs", 0, 0, TOP_LOGPROBS_MAX)
    return call


def parse_completion(body: Any, model: Any, limits: Limits, default_alpha: str = "1") -> Call:
    """A /v1/completions body as a ``Call``: ``prompt`` is raw text (tokenised with the tokenizer's default
    special tokens, no chat template), a list of texts, token ids, or a list of token id lists."""
    body = _object(body)
    prompts, texts = _prompt_ids(body.get("prompt"), model)
    echo = _get(body, "echo", (bool,), "a boolean", False)
    call = _common(body, "completion", prompts, model, limits, default_alpha)
    call.echo, call.texts = echo, texts
    call.logprobs = _integer(body, "logprobs", None, 0, TOP_LOGPROBS_MAX)
    if call.max_tokens == 0 and not (echo and call.logprobs is not None):
        raise APIError(400, "'max_tokens' 0 only scores the prompt: add echo and logprobs, or ask for >= 1 token", param="max_tokens")
    if call.max_tokens == 0 and call.stream:
        raise APIError(400, "'max_tokens' 0 cannot be streamed", param="stream")
    return call


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, got {json_type(body)}")
    return body


def _prompt_ids(prompt: Any, model: Any) -> tuple[list[list[int]], list[str | None]]:
    tok = model.tokenizer
    vocab = len(tok)
    bad = APIError(400, "'prompt' must be a string, an array of strings, an array of token ids, or an array of such arrays", param="prompt")
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        items = [prompt]
    elif isinstance(prompt, list) and prompt:
        items = prompt
    else:
        raise bad
    out, texts = [], []
    for item in items:
        texts.append(item if isinstance(item, str) else None)
        if isinstance(item, str):
            if not item:
                raise APIError(400, "'prompt' is empty; give some text", param="prompt")
            ids = list(tok(item)["input_ids"])
        elif isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
            if any(not 0 <= t < vocab for t in item):
                raise APIError(400, f"'prompt' has token ids outside the vocabulary (0..{vocab - 1})", param="prompt")
            ids = list(item)
        else:
            raise bad
        if not ids:
            raise APIError(400, "'prompt' has no tokens", param="prompt")
        out.append(ids)
    return out, texts


# ---- responses ----


def new_id(kind: str) -> str:
    """A response id (``chatcmpl-...`` / ``cmpl-...``)."""
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


def now() -> int:
    """Unix time in seconds, the ``created`` field."""
    return int(time.time())


def tuco_object(alpha_text: str, prompt: float, tokens: list[float], with_tokens: bool) -> dict[str, Any]:
    """The ``tuco`` object of one choice: alpha, TuCo at the prompt's last token, the mean over the generated
    tokens (the prompt's when none was generated) and, when asked, TuCo at every generated token."""
    out: dict[str, Any] = {
        "alpha": alpha_text,
        "prompt": prompt,
        "response_mean": sum(tokens) / len(tokens) if tokens else prompt,
    }
    if with_tokens:
        out["tokens"] = list(tokens)
    return out


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The ``usage`` object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
