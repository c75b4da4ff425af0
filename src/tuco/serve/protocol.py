"""The wire format of `tuco serve`, typed: request bodies validated into calls (``GenerateCall`` for
/v1/chat/completions and /v1/completions, ``ScoreCall`` for /v1/tuco/score, ``TokenizeCall``,
``DetokenizeCall``, ``SaveCall``), the JSON objects the routes answer with (``TypedDict``s) and
OpenAI-style error objects.

A call is validated once, where it is built: alpha (``tuco.engine.alpha.Alpha``, checked against the
model's layers and stages) and sampling (``tuco.measures.sampling.Sampling``) are parsed here, and any
problem with a request raises ``APIError`` (status, message, param, code), which the app answers as
``{"error": {...}}`` with a 4xx status. A ``GenerateCall`` builds its decode rows (``rows``) with the one
seeding rule. Parsing tokenises (chat templates included), so the routes run it off the event loop, on
the tokenizer's thread; nothing here runs a model.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from tuco.engine.alpha import Alpha
from tuco.errors import PromptError, TucoError
from tuco.measures.decoding import Row
from tuco.measures.sampling import Sampling, row_seed

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

STOP_MAX = 4  # OpenAI: up to 4 stop sequences
TOP_LOGPROBS_MAX = 20
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Kind = Literal["chat", "completion"]
ONE = Alpha.of(1.0)
JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
Body = dict[str, JSON]


# ---- errors ----


class ErrorObject(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    error: ErrorObject


class APIError(Exception):
    """A request the server refuses: HTTP ``status`` and an OpenAI error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> ErrorBody:
        """The JSON error object OpenAI clients parse."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# ---- responses ----


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TucoInfo(TypedDict):
    """The ``tuco`` object of a choice (and of a /v1/tuco/score answer). With ``tuco_tokens``: ``tokens``;
    with ``tuco_detail``: also each token's text ``pieces`` (before any stop-string cut), ``token_ids`` and
    per-layer norms ``layer_ptc``/``layer_ftc`` (||PTC_l||_1, ||FTC_l||_1 at the position that produced the
    token; null where not measured)."""

    alpha: str
    prompt: float
    response_mean: float
    tokens: NotRequired[list[float]]
    pieces: NotRequired[list[str]]
    token_ids: NotRequired[list[int]]
    layer_ptc: NotRequired[list[list[float] | None]]
    layer_ftc: NotRequired[list[list[float] | None]]


class TokenTuco(TypedDict):
    """The ``tuco`` object of a stream chunk that carries a token: its TuCo; the first token's chunk adds
    the prompt's; with ``tuco_detail`` the token's ``piece`` of text, ``token_id``, ``index`` and per-layer
    norms ``layer_ptc``/``layer_ftc``."""

    token: float
    prompt: NotRequired[float]
    piece: NotRequired[str]
    token_id: NotRequired[int]
    index: NotRequired[int]
    layer_ptc: NotRequired[list[float] | None]
    layer_ftc: NotRequired[list[float] | None]


def new_id(prefix: str) -> str:
    """A response id (``chatcmpl-...``, ``cmpl-...``, ``score-...``)."""
    return f"{prefix}-{secrets.token_hex(12)}"


def response_prefix(kind: Kind) -> str:
    return "chatcmpl" if kind == "chat" else "cmpl"


def now() -> int:
    """Unix time in seconds, the ``created`` field."""
    return int(time.time())


def tuco_object(alpha_text: str, prompt: float, tokens: list[float], with_tokens: bool) -> TucoInfo:
    """The ``tuco`` object of one choice: alpha, TuCo at the prompt's last token, the mean over the generated
    tokens (the prompt's when none was generated) and, when asked, TuCo at every generated token."""
    out: TucoInfo = {"alpha": alpha_text, "prompt": prompt, "response_mean": sum(tokens) / len(tokens) if tokens else prompt}
    if with_tokens:
        out["tokens"] = list(tokens)
    return out


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """The ``usage`` object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


# ---- calls ----


@dataclass(frozen=True)
class Limits:
    """What the server allows: rows per request (``n`` x prompts), generated tokens, the model's context."""

    max_rows: int = 16
    max_tokens: int = 512
    context: int | None = None


@dataclass
class GenerateCall:
    """One validated completion request: its prompts as token ids (chat: one, from the chat template), the
    alpha and sampling settings every row shares, and how to answer.

    ``max_tokens`` is what the request asked (0: the prompt's logprobs and TuCo only, completions with
    echo); ``logprobs``: top alternatives per token (None: no logprobs); ``echo``: completions only, the
    prompt before the text; ``tuco_tokens``/``tuco_detail``: what the ``tuco`` objects carry.
    ``display``: each prompt as a saved run's row shows it.
    """

    kind: Kind
    model: str
    prompts: list[list[int]]
    display: list[str]
    alpha: Alpha
    sampling: Sampling
    max_tokens: int
    n: int = 1
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None
    echo: bool = False
    tuco_tokens: bool = False
    tuco_detail: bool = False
    texts: list[str | None] = field(default_factory=list)  # completions: each prompt's text, when given as text

    @property
    def alpha_text(self) -> str:
        """The alpha's written form (``1``, ``1:1:0.5``, ``1/0.5``)."""
        return self.alpha.text

    @property
    def n_rows(self) -> int:
        """Sequences this call puts in the batch (one per prompt and choice)."""
        return len(self.prompts) * self.n

    def rows(self) -> list[Row]:
        """The decode rows, prompt by prompt, ``n`` choices each. With a seed, row (p, j) draws from its own
        generator seeded by ``row_seed(seed, str(p), j)`` (the one rule: a run keys by the prompt's id, and
        a plain prompt list's ids are "0", "1", ..., so the same prompt and seed give the same samples here
        and in ``tuco.runs.jobs.generate_to``)."""
        seed = self.sampling.seed
        return [
            Row(
                ids=ids,
                alpha=self.alpha,
                sampling=self.sampling,
                seed=None if seed is None else row_seed(seed, str(p), j),
                logprobs=self.logprobs,
                prompt_logprobs=self.echo and self.logprobs is not None,
                prompt_only=self.max_tokens == 0,
                layer_norms=self.tuco_detail,
            )
            for p, ids in enumerate(self.prompts)
            for j in range(self.n)
        ]


@dataclass
class ScoreCall:
    """One validated /v1/tuco/score request: a chat ending with the assistant's message, split into the
    prompt before it (``prompt_ids``) and the response's tokens (``response_ids``, as ``tuco score`` reads
    them), scored teacher-forced at ``alpha``."""

    model: str
    prompt_ids: list[int]
    response_ids: list[int]
    display: str
    response: str
    alpha: Alpha
    tuco_detail: bool = False

    @property
    def alpha_text(self) -> str:
        return self.alpha.text


@dataclass(frozen=True)
class TokenizeCall:
    text: str
    add_special_tokens: bool = True


@dataclass(frozen=True)
class DetokenizeCall:
    ids: list[int]


@dataclass(frozen=True)
class SaveCall:
    """Save the rows of earlier responses (``responses``: their ids) as the run ``name`` under ``--runs``."""

    name: str
    responses: list[str]


# ---- reading fields ----


def json_type(value: object) -> str:
    """A value's JSON type name, for messages."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def read_body(raw: bytes) -> Body:
    """The request body as a JSON object (400 when it is not JSON, or not an object)."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from err
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a JSON object, got {json_type(body)}")
    return body


def _bad(key: str, what: str, value: object) -> APIError:
    return APIError(400, f"'{key}' must be {what}, got {json_type(value)}", param=key)


def _bool(body: Body, key: str, default: bool = False) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(key, "a boolean", value)
    return value


def _str(body: Body, key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(key, "a string", value)
    return value


def _number(body: Body, key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, "a number", value)
    if not (math.isfinite(value) and lo <= value <= hi):
        raise APIError(400, f"'{key}' must be between {lo:g} and {hi:g}, got {value}", param=key)
    return float(value)


def _integer(body: Body, key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, "an integer", value)
    if not lo <= value <= hi:
        raise APIError(400, f"'{key}' must be between {lo} and {hi}, got {value}", param=key)
    return value


def _unsupported(body: Body) -> None:
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


def _stop(body: Body) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > STOP_MAX or not all(isinstance(s, str) and s for s in stops):
        raise APIError(400, f"'stop' must be a non-empty string or a list of up to {STOP_MAX} non-empty strings", param="stop")
    return [s for s in stops if isinstance(s, str)]


def parse_alpha(body: Body, default: Alpha, model: Decomposable) -> Alpha:
    """The request's ``alpha`` parsed once and checked against the model (``default``, the server's, checked
    when it started, when the request gives none)."""
    raw = body.get("alpha")
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise APIError(400, f"'alpha' must be a number or alpha text such as '1:1:0.5' (per layer), got {json_type(raw)}", param="alpha")
    try:
        return Alpha.of(raw).check(model.n_stages, model.n_layers)
    except TucoError as err:
        raise APIError(400, str(err), param="alpha") from err


def _sampling(max_tokens: int, temperature: float, top_p: float | None, seed: int | None) -> Sampling:
    """The decode settings, validated by ``Sampling`` itself (a refusal is a 400). ``top_p`` only applies
    when sampling; OpenAI accepts it with temperature 0, where it changes nothing, so it is dropped there."""
    try:
        return Sampling(
            max_new_tokens=max(1, max_tokens),
            temperature=temperature,
            top_p=top_p if top_p is not None and top_p < 1 and temperature > 0 else None,
            seed=seed,
        )
    except TucoError as err:
        raise APIError(400, str(err)) from err


def _generate(
    body: Body, kind: Kind, prompts: list[list[int]], display: list[str], model: Decomposable, limits: Limits, alpha: Alpha
) -> GenerateCall:
    _unsupported(body)
    parsed_alpha = parse_alpha(body, alpha, model)
    n = _integer(body, "n", 1, limits.max_rows) or 1
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
    asked = _integer(body, key, 0, 1 << 30)
    max_tokens = asked if asked is not None else (16 if kind == "completion" else room)
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
    seed = _integer(body, "seed", -(1 << 63), (1 << 63) - 1)
    stream = _bool(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("stream_options", "an object", options)
    return GenerateCall(
        kind=kind,
        model=_str(body, "model"),
        prompts=prompts,
        display=display,
        alpha=parsed_alpha,
        sampling=_sampling(max_tokens, temperature, top_p, seed),
        max_tokens=max_tokens,
        n=n,
        stop=_stop(body),
        stream=stream,
        include_usage=stream and options.get("include_usage") is True,
        tuco_tokens=_bool(body, "tuco_tokens"),
        tuco_detail=_bool(body, "tuco_detail"),
    )


# ---- chat messages ----


def _content(message: dict[str, JSON], i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text only
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            parts.append(str(part["text"]))
        return "".join(parts)
    raise APIError(400, f"messages[{i}].content must be a string or a list of text parts", param="messages")


def _messages(body: Body) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty array of {role, content} objects", param="messages")
    chat = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise APIError(400, f"messages[{i}] must be an object with a string 'role'", param="messages")
        chat.append({"role": str(m["role"]), "content": _content(m, i)})
    return chat


def parse_chat(raw: bytes, model: Decomposable, limits: Limits, default_alpha: Alpha = ONE) -> GenerateCall:
    """A /v1/chat/completions body as a ``GenerateCall``: the messages rendered by the tuned tokenizer's chat
    template (the same text ``tuco score``/``tuco generate`` feed for a chat)."""
    from tuco.measures.prompts import Prompt, encode

    body = read_body(raw)
    prompt = Prompt(id="request", messages=_messages(body))
    try:
        ids = encode(model.tokenizer, prompt, chat=True)
    except PromptError as err:
        raise APIError(400, str(err), param="messages") from err
    call = _generate(body, "chat", [ids], [prompt.display], model, limits, default_alpha)
    if _bool(body, "logprobs"):
        call.logprobs = _integer(body, "top_logprobs", 0, TOP_LOGPROBS_MAX) or 0
    return call


def parse_completion(raw: bytes, model: Decomposable, limits: Limits, default_alpha: Alpha = ONE) -> GenerateCall:
    """A /v1/completions body as a ``GenerateCall``: ``prompt`` is raw text (tokenised with the tokenizer's
    default special tokens, no chat template), a list of texts, token ids, or a list of token id lists."""
    body = read_body(raw)
    prompts, texts = _prompt_ids(body.get("prompt"), model)
    echo = _bool(body, "echo")
    display = [t if t is not None else json.dumps(ids) for t, ids in zip(texts, prompts)]
    call = _generate(body, "completion", prompts, display, model, limits, default_alpha)
    call.echo, call.texts = echo, texts
    call.logprobs = _integer(body, "logprobs", 0, TOP_LOGPROBS_MAX)
    if call.max_tokens == 0 and not (echo and call.logprobs is not None):
        raise APIError(400, "'max_tokens' 0 only scores the prompt: add echo and logprobs, or ask for >= 1 token", param="max_tokens")
    if call.max_tokens == 0 and call.stream:
        raise APIError(400, "'max_tokens' 0 cannot be streamed", param="stream")
    return call


def _ids(item: JSON) -> list[int] | None:
    if isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
        return [t for t in item if isinstance(t, int)]
    return None


def _prompt_ids(prompt: JSON, model: Decomposable) -> tuple[list[list[int]], list[str | None]]:
    tok = model.tokenizer
    vocab = len(tok)
    bad = APIError(400, "'prompt' must be a string, an array of strings, an array of token ids, or an array of such arrays", param="prompt")
    items: list[JSON]
    if isinstance(prompt, str) or _ids(prompt) is not None:
        items = [prompt]
    elif isinstance(prompt, list) and prompt:
        items = prompt
    else:
        raise bad
    out: list[list[int]] = []
    texts: list[str | None] = []
    for item in items:
        if isinstance(item, str):
            if not item:
                raise APIError(400, "'prompt' is empty; give some text", param="prompt")
            ids = list(tok(item)["input_ids"])
        else:
            given = _ids(item)
            if given is None:
                raise bad
            if any(not 0 <= t < vocab for t in given):
                raise APIError(400, f"'prompt' has token ids outside the vocabulary (0..{vocab - 1})", param="prompt")
            ids = given
        if not ids:
            raise APIError(400, "'prompt' has no tokens", param="prompt")
        texts.append(item if isinstance(item, str) else None)
        out.append(ids)
    return out, texts


# ---- tuco's own routes ----


def parse_score(raw: bytes, model: Decomposable, limits: Limits, default_alpha: Alpha = ONE) -> ScoreCall:
    """A /v1/tuco/score body: ``messages`` ending with the assistant's message (the response scored
    teacher-forced), ``alpha``, ``tuco_detail``. The response's tokens are what ``tuco score`` reads for the
    same chat (``tuco.measures.batching.encode_prompts``: the chat template's text after the generation
    prompt, up to the first end-of-sequence token)."""
    from tuco.measures.batching import encode_prompts
    from tuco.measures.prompts import Prompt

    body = read_body(raw)
    chat = _messages(body)
    if chat[-1]["role"] != "assistant":
        raise APIError(400, "the last message must be the assistant's: the response to score", param="messages")
    alpha = parse_alpha(body, default_alpha, model)
    (good, bad) = encode_prompts(model, [Prompt(id="request", messages=chat)], chat=True, system=None, responses=True)
    if bad:
        raise APIError(400, bad[0].reason.removeprefix("prompt request: "), param="messages", code="invalid_prompt")
    (e,) = good
    if e.response_ids is None or e.response is None:  # the last message is the assistant's: split_response gave one
        raise APIError(400, "the assistant's message has no response to score", param="messages")
    if len(e.response_ids) > limits.max_tokens:
        raise APIError(
            400, f"the response has {len(e.response_ids)} tokens, more than this server allows ({limits.max_tokens})", param="messages"
        )
    return ScoreCall(
        model=_str(body, "model"),
        prompt_ids=e.ids,
        response_ids=e.response_ids,
        display=e.prompt.display,
        response=e.response,
        alpha=alpha,
        tuco_detail=_bool(body, "tuco_detail"),
    )


def parse_tokenize(raw: bytes) -> TokenizeCall:
    """A /tokenize body (lm-evaluation-harness's remote tokenizer): ``prompt``, ``add_special_tokens``."""
    body = read_body(raw)
    text = body.get("prompt")
    if not isinstance(text, str):
        raise APIError(400, "'prompt' must be a string", param="prompt")
    return TokenizeCall(text, _bool(body, "add_special_tokens", True))


def parse_detokenize(raw: bytes, vocab: int) -> DetokenizeCall:
    """A /detokenize body: ``tokens``, token ids of this model."""
    body = read_body(raw)
    ids = body.get("tokens")
    if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab for t in ids):
        raise APIError(400, "'tokens' must be an array of token ids of this model", param="tokens")
    return DetokenizeCall([t for t in ids if isinstance(t, int)])


def parse_save(raw: bytes) -> SaveCall:
    """A /v1/tuco/runs body: ``name`` (letters, digits, ``.``, ``_``, ``-``; a new folder under ``--runs``)
    and ``responses`` (ids of earlier responses of this server)."""
    body = read_body(raw)
    name = body.get("name")
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise APIError(
            400,
            "'name' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (a folder under --runs)",
            param="name",
        )
    ids = body.get("responses")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise APIError(400, "'responses' must be a non-empty array of response ids", param="responses")
    return SaveCall(name, [i for i in ids if isinstance(i, str)])
