"""Where an experiment's data comes from, named by one string: ``builtin:NAME`` (offline sets the
project wrote), ``hf:DATASET[:SUBSET]`` (public datasets of docs/method.md section 7 with declared schemas,
streamed: ``tuco.data.hub``; needs the ``datasets`` package and a network) or a local file path.

Three kinds of data: prompts (strings or chats), persona statements (yes/no behaviour) and
multiple-choice questions (MMLU format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from tuco.data import builtin
from tuco.data.builtin import Question, Statement
from tuco.errors import ConfigError, InputError, PromptError
from tuco.measures.prompts import Messages, read_prompts, read_utf8

SOURCE_HELP = "builtin:NAME, hf:DATASET[:SUBSET] or a local file"


# hf: sources read in this process and the revision each was read at (run manifests record them)
REVISIONS: dict[str, str | None] = {}


def _hub(spec: str, limit: int | None = None) -> list[Any]:
    """Items of an ``hf:NAME[:SUBSET]`` source (streamed), its revision recorded in REVISIONS."""
    from tuco.data import hub

    _, name, subset = _split_spec(spec)
    loaded = hub.load(name, subset, limit)
    REVISIONS[spec] = loaded.revision
    if not loaded.items:
        raise InputError(f"{spec} returned no rows")
    return loaded.items


def check_hub_source(kind: str, spec: str) -> str:
    """A hub source is declared (schema, what SUBSET means), its kind fits, and ``datasets`` is installed;
    online, its first row is read and checked against the declared columns."""
    import os

    from tuco.data import hub

    _, name, subset = _split_spec(spec)
    src = hub.source(name, subset)
    if (
        kind in ("statements", "questions", "prompts", "translations")
        and src.kind != kind
        and not (kind == "translations" and name == "DAMO-NLP-SG/MultiJail")
    ):
        raise ConfigError(f"{spec} holds {src.kind}, not {kind}")
    hub._datasets()
    where = (
        f"{src.repo}"
        + (f" config {src.config}" if src.config else "")
        + f", split {src.split}"
        + (f", file {src.data_files}" if src.data_files else "")
    )
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return f"{kind} {spec}: {where}; columns {', '.join(src.columns)} ({src.formats}); not read (offline)"
    list(hub.rows(src, limit=1))
    return f"{kind} {spec}: {where}; first row has the columns {', '.join(src.columns)}"


def _split_spec(spec: str) -> tuple[str, str, str | None]:
    kind, _, rest = spec.partition(":")
    name, _, subset = rest.partition(":")
    return kind, name, subset or None


def load_prompts(spec: str, *, limit: int | None = None) -> list[str | Messages]:
    """Prompts from ``builtin:NAME``, ``hf:NAME[:SUBSET]`` or a .jsonl/.csv/.txt file.

    ``limit`` keeps that many (deterministically): spread evenly over a built-in or local set; the FIRST
    ``limit`` rows of a hub source (streamed: only those are downloaded; the paper's "first 1000 records"
    of OpenWebText).
    """
    kind, name, subset = _split_spec(spec)
    if kind == "builtin":
        if name not in builtin.BUILTIN_PROMPTS:
            raise ConfigError(f"unknown built-in prompt set {name!r}: choose from {', '.join(sorted(builtin.BUILTIN_PROMPTS))}")
        items: list[str | Messages] = list(builtin.BUILTIN_PROMPTS[name]())
    elif kind == "hf":
        items = _hub(spec, limit)
    else:
        good, bad = read_prompts(spec)
        if bad:
            raise PromptError(f"{spec}: {bad[0]} (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else f"{spec}: {bad[0]}")
        items = [p.messages if p.messages is not None else (p.text or "") for p in good]
    if not items:
        raise PromptError(f"{spec!r} holds no prompts")
    return spread(items, limit)


def request_topics(spec: str) -> dict[str, str]:
    """Request text -> its topic (the task or harm topic it is a variant of): requests that share a topic
    are dependent, and every interval over requests treats a topic as one cluster. Built-in request sets
    know their topics; a local .jsonl file may give a ``topic`` field per record; otherwise (and for any
    request not listed) each request is its own topic."""
    kind, name, _ = _split_spec(spec)
    if kind == "builtin":
        return dict(builtin.BUILTIN_TOPICS[name]()) if name in builtin.BUILTIN_TOPICS else {}
    if kind != "hf" and spec.endswith(".jsonl"):
        out = {}
        for rec in read_jsonl(spec):
            text, topic = rec.get("prompt"), rec.get("topic")
            if isinstance(text, str) and isinstance(topic, (str, int)):
                out[text] = str(topic)
        return out
    return {}


def topic_of(topics: dict[str, str], text: str) -> str:
    """A request's topic (itself when its set names none)."""
    return topics.get(text, text)


def spread(items: list, n: int | None) -> list:
    """``n`` items spread evenly over the list (all of it when ``n`` is None or larger)."""
    if n is None or n >= len(items):
        return list(items)
    if n < 1:
        raise ConfigError(f"a sample size must be >= 1, got {n}")
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)] if n > 1 else [items[0]]


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Records of a local JSONL data file (lines split on ``\\n`` only); InputError naming a bad line."""
    rows = []
    for n, line in enumerate(read_utf8(path, "data file").split("\n"), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {n} is not valid JSON ({err.msg}); fix or delete that line") from err
            if not isinstance(rec, dict):
                raise InputError(f"{path}: line {n} is not a JSON object")
            rows.append(rec)
    return rows


@dataclass(frozen=True)
class Translated:
    """One request in several languages: ``item`` (its id, the pairing key across languages), ``set``
    ("harmful" or "benign"), ``topic`` (requests of one topic are one cluster; None: its own) and
    ``texts`` (language -> text)."""

    item: str
    set: str
    topic: str | None
    texts: dict[str, str]


TRANSLATION_SETS = ("harmful", "benign")


def _translation_records(spec: str, languages: list[str]) -> list[dict[str, Any]]:
    kind, name, _ = _split_spec(spec)
    if kind == "builtin":
        if name not in builtin.BUILTIN_TRANSLATIONS:
            raise ConfigError(f"unknown built-in translations {name!r}: choose from {', '.join(sorted(builtin.BUILTIN_TRANSLATIONS))}")
        records: list[dict[str, Any]] = list(builtin.BUILTIN_TRANSLATIONS[name]())
    elif kind == "hf":
        from tuco.data import hub

        src = replace(hub.source(name, None), columns=tuple(languages))
        revision = hub.resolve_revision(src)
        REVISIONS[spec] = revision
        records = list(hub.rows(src, None, revision))
    else:
        records = read_jsonl(spec)
    if not records:
        raise InputError(f"{spec}: no records")
    return records


def load_translation_records(spec: str, languages: list[str], n: int | None = None) -> list[Translated]:
    """The same requests in several languages, from ``builtin:translations-broad``, a JSONL file with one
    field per language (optional fields: ``set``: harmful or benign, default harmful; ``topic``; ``item``)
    or a hub dataset (``hf:DAMO-NLP-SG/MultiJail``). ``n`` records per set, spread evenly over the set's
    records in file order; every record needs every language."""
    records = _translation_records(spec, languages)
    out: list[Translated] = []
    for i, rec in enumerate(records):
        kind = rec.get("set", "harmful")
        if kind not in TRANSLATION_SETS:
            raise InputError(f"{spec}: record {i + 1} has set {kind!r}; give harmful or benign (or leave the field out: harmful)")
        texts = {lang: rec.get(lang) for lang in languages}
        missing = [lang for lang, t in texts.items() if not (isinstance(t, str) and t.strip())]
        if missing:
            raise InputError(f"{spec}: record {i + 1} lacks a text for language {missing[0]!r}; fields are {sorted(rec)}")
        topic = rec.get("topic")
        out.append(
            Translated(
                item=str(rec.get("item") or f"{kind}-{i}"),
                set=str(kind),
                topic=str(topic) if isinstance(topic, (str, int)) else None,
                texts={lang: str(t) for lang, t in texts.items()},
            )
        )
    items = [t.item for t in out]
    if len(set(items)) != len(items):
        twice = next(i for i in items if items.count(i) > 1)
        raise InputError(f"{spec}: item {twice!r} appears twice; give every record its own item")
    return [t for kind in TRANSLATION_SETS for t in spread([t for t in out if t.set == kind], n)] if n is not None else out


def load_translations(spec: str, languages: list[str], n: int) -> dict[str, list[str]]:
    """The same requests in several languages (``load_translation_records``), as language -> texts: ``n``
    records spread over the whole set (harmful and benign alike)."""
    records = spread(load_translation_records(spec, languages), n)
    return {lang: [r.texts[lang] for r in records] for lang in languages}


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
        return [statement_from_record(r, f"{spec} row {i}") for i, r in enumerate(_hub(spec))]
    return [statement_from_record(r, f"{spec} line {i + 1}") for i, r in enumerate(read_jsonl(spec))]


def question_from_record(rec: dict[str, Any], where: str) -> Question:
    """An MMLU-format record: ``question``, ``choices`` (list) and ``answer`` (index or letter)."""
    q, choices, answer = rec.get("question"), rec.get("choices"), rec.get("answer")
    if isinstance(answer, str) and len(answer) == 1 and answer.upper() in "ABCDEFGH":
        answer = "ABCDEFGH".index(answer.upper())
    if (
        not isinstance(q, str)
        or not isinstance(choices, list)
        or len(choices) < 2
        or not isinstance(answer, int)
        or not 0 <= answer < len(choices)
    ):
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
        from tuco.data import hub

        src = hub.source(name, subset)
        revision = hub.resolve_revision(src)
        REVISIONS[spec] = revision
        dev = [question_from_record(r, f"{spec} dev {i}") for i, r in enumerate(hub.rows(replace(src, split="dev"), 5, revision))]
        test = [question_from_record(r, f"{spec} test {i}") for i, r in enumerate(hub.rows(src, None, revision))]
        return dev, test
    qs = [question_from_record(r, f"{spec} line {i + 1}") for i, r in enumerate(read_jsonl(spec))]
    if len(qs) < 6:
        raise PromptError(f"{spec}: needs at least 6 questions (5 few-shot examples and 1 to evaluate)")
    return qs[:5], qs[5:]


def source_digest(spec: str) -> str | None:
    """sha256 (16 hex) of a local data file's bytes (None for built-in and hub sources: tuco's version and
    the recorded hub revision pin those). A run's fingerprint carries it, so ``--resume`` after the file
    changed is refused before any model loads."""
    import hashlib
    from pathlib import Path

    kind, _, _ = _split_spec(spec)
    p = Path(spec).expanduser()
    if kind in ("builtin", "hf") or spec == "builtin" or not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


def check_source(kind: str, spec: str) -> str:
    """Check a data source before any model loads (offline where it can be): built-in names, local
    files (read and parsed), hub datasets (a known loader, the ``datasets`` package). Returns one line
    saying what was checked; raises a TucoError naming the problem."""
    source_kind, name, _ = _split_spec(spec)
    if kind == "suffixes":
        return f"suffixes {spec}: {len(read_suffixes(spec))} strings"
    if source_kind == "hf":
        return check_hub_source(kind, spec)
    loaders: dict[str, Any] = {
        "prompts": load_prompts,
        "statements": load_statements,
        "questions": lambda s: load_questions(s)[1],
        "translations": lambda s: _translation_records(s, []),
    }
    if kind not in loaders:
        raise ConfigError(f"unknown kind of data {kind!r}")
    if spec == "builtin":
        return f"{kind} {spec}: built in"
    got = loaders[kind](spec)
    return f"{kind} {spec}: {len(got)} items"


def read_suffixes(path: str) -> list[str]:
    """Adversarial strings: one per line (blank lines ignored, each stripped), or, from a ``.json`` file, a
    list of strings or of ``{"suffix": ...}`` records (a gcg run's ``suffixes.json``: exact strings, spaces
    kept, so suffixes optimised against one model transfer to another unchanged)."""
    text = read_utf8(path, "suffix file")
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"suffix file {path!r} is not valid JSON ({err.msg}, line {err.lineno})") from None
        items = data if isinstance(data, list) else None
        found = [x.get("suffix") if isinstance(x, dict) else x for x in items or []]
        out = [x for x in found if isinstance(x, str) and x.strip()]
        if items is None or len(out) != len(found):
            raise ConfigError(
                f'suffix file {path!r}: give a JSON list of strings or of {{"suffix": ...}} records (a gcg run\'s suffixes.json)'
            )
    else:
        out = [line.strip() for line in text.split("\n") if line.strip()]
    if not out:
        raise ConfigError(f"suffix file {path!r} holds no suffixes")
    return out
