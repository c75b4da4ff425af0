"""conjugate: does TuCo order languages by how much of the pre-training text they make up?
(METHOD.md 5.2, conjugate prompting)

The same harmful requests in other languages (translations the user supplies, e.g. MultiJail) or in
built-in encodings that need no translator (leetspeak, rot13, ...). Paper: AdvBench in English,
Japanese, Hungarian, Swahili, Malayalam; TuCo highest for English, ordered by the language's share
of web text.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tuco.attacks.encodings import encode_as
from tuco.data.sources import SOURCE_HELP, hub_rows, read_jsonl, load_prompts, spread
from tuco.errors import ConfigError
from tuco.experiments.base import RunDir, names
from tuco.experiments.plotting import figure, save
from tuco.pair import ModelPair
from tuco.scoring import score
from tuco.stats import roc_auc

NAME = "conjugate"
QUESTION = "Does TuCo fall when the same harmful request comes in another language or encoding?"


@dataclass
class Options:
    harmful: str = field(default="builtin:harmful", metadata={"help": f"requests to encode ({SOURCE_HELP})"})
    encodings: str = field(default="plain,leetspeak,rot13,reversed,spaced,base64", metadata={
        "help": "built-in encodings of the requests ('' for none): plain, leetspeak, rot13, reversed, spaced, base64"})
    translations: str = field(default="", metadata={
        "help": "translated requests: a JSONL file with one field per language, or hf:DAMO-NLP-SG/MultiJail"})
    languages: str = field(default="en,sw,bn,jv", metadata={"help": "fields (languages) of --translations to use"})
    n: int = field(default=40, metadata={"help": "requests per language or encoding"})
    batch_size: int = field(default=8, metadata={"help": "prompts per forward pass"})
    seed: int = field(default=0, metadata={"help": "recorded in the manifest (deterministic)"})


def _translations(o: Options) -> dict[str, list[str]]:
    if not o.translations:
        return {}
    langs = names(o.languages)
    records = list(hub_rows(o.translations[3:])) if o.translations.startswith("hf:") else read_jsonl(o.translations)
    records = spread(records, o.n)
    out: dict[str, list[str]] = {}
    for lang in langs:
        texts = [r.get(lang) for r in records]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise ConfigError(f"{o.translations}: some records lack a text for language {lang!r}; fields are {sorted(records[0])}")
        out[lang] = texts
    return out


def run(pair: ModelPair, o: Options, rd: RunDir) -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    enc = names(o.encodings)
    if enc:
        base = [p for p in load_prompts(o.harmful, limit=o.n) if isinstance(p, str)]
        for e in enc:
            groups[e] = [encode_as(e, p) for p in base]
    groups.update(_translations(o))
    if not groups:
        raise ConfigError("nothing to compare: give --encodings and/or --translations")
    tucos: dict[str, list[float]] = {}
    for g, prompts in groups.items():
        got = score(pair, prompts, chat=True, batch_size=o.batch_size)
        rd.add([{"group": g, "id": f"{g}-{i}", "prompt": p, "tuco": s.tuco} for i, (p, s) in enumerate(zip(prompts, got))])
        tucos[g] = [s.tuco for s in got]
    ref = "plain" if "plain" in tucos else ("en" if "en" in tucos else next(iter(tucos)))
    per = {g: {"mean_tuco": statistics.fmean(v), "sem": statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0, "n": len(v),
               **({"auc_vs_" + ref: roc_auc(tucos[ref], v)} if g != ref else {})} for g, v in tucos.items()}
    order = sorted(per, key=lambda g: -per[g]["mean_tuco"])
    fig, ax = figure()
    ax.bar(range(len(order)), [per[g]["mean_tuco"] for g in order], yerr=[per[g]["sem"] for g in order], color="#d62728", alpha=0.8)
    ax.set_xticks(range(len(order)), order, rotation=30)
    ax.set_ylabel("mean TuCo")
    ax.set_title("conjugate prompting: TuCo per language / encoding")
    save(fig, rd.path / "conjugate.png")
    return {"per_group": per, "order_by_tuco": order, "reference": ref,
            "paper": "English highest; TuCo ordered by the language's share of web text"}
