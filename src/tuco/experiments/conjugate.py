"""conjugate: does TuCo order languages by how much of the pre-training text they make up?
(docs/method.md 5.2, conjugate prompting)

The same harmful requests in other languages (translations the user supplies, e.g. MultiJail) or in
built-in encodings that need no translator (leetspeak, rot13, ...). Paper: AdvBench in English,
Japanese, Hungarian, Swahili, Malayalam; TuCo highest for English, ordered by the language's share
of web text.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuco.attacks.encodings import ENCODINGS, encode_as
from tuco.data.sources import SOURCE_HELP, load_prompts, load_translations
from tuco.errors import ConfigError
from tuco.experiments.base import (
    POSITION_HELP,
    POSITIONS,
    Experiment,
    ExperimentRun,
    Finding,
    Options,
    auc_finding,
    auc_summary,
    mean_of,
    opt,
    values,
)
from tuco.prompts import Prompt

PAPER = "English highest; TuCo ordered by the language's share of web text"


@dataclass
class ConjugateOptions(Options):
    harmful: str = opt("builtin:harmful", f"requests to encode ({SOURCE_HELP})")
    encodings: list[str] = opt(
        ["plain", "leetspeak", "rot13", "reversed", "spaced", "base64"],
        "built-in encodings of the requests (empty for none)",
        choices=tuple(ENCODINGS),
    )
    translations: str = opt("", "translated requests: a JSONL file with one field per language, or hf:DAMO-NLP-SG/MultiJail")
    languages: list[str] = opt(["en", "sw", "bn", "jv"], "fields (languages) of --translations to use")
    n: int = opt(40, "requests per language or encoding", min=1)
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "recorded in the manifest (deterministic)")

    def check(self) -> None:
        if not self.encodings and not self.translations:
            raise ConfigError("nothing to compare: give --encodings and/or --translations")


def run(model: Any, o: ConjugateOptions, rd: ExperimentRun) -> None:
    groups: dict[str, list[str]] = {}
    if o.encodings:
        base = [p for p in load_prompts(o.harmful, limit=o.n) if isinstance(p, str)]
        for e in o.encodings:
            groups[e] = [encode_as(e, p) for p in base]
    if o.translations:
        groups.update(load_translations(o.translations, o.languages, o.n))
    for g, prompts in groups.items():
        rd.score(
            [Prompt(f"{g}-{i}", text=p, extra={"condition": g, "item": i}) for i, p in enumerate(prompts)],
            chat=True,
            position=o.position,
            batch_size=o.batch_size,
        )


def metrics(rows: list[dict[str, Any]], o: ConjugateOptions) -> dict[str, Any]:
    groups = list(dict.fromkeys(r["condition"] for r in rows))
    ref = "plain" if "plain" in groups else ("en" if "en" in groups else groups[0])
    per = {}
    for g in groups:
        v = values(rows, condition=g)
        per[g] = {"mean_tuco": mean_of(v), "sem": statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0, "n": len(v)}
        if g != ref:
            per[g]["auc_vs_reference"] = auc_summary(values(rows, condition=ref), v, o.seed)
    order = sorted(per, key=lambda g: -(per[g]["mean_tuco"] if per[g]["mean_tuco"] is not None else float("-inf")))
    return {"per_group": per, "order_by_tuco": order, "reference": ref, "position": o.position}


def findings(m: dict[str, Any]) -> list[Finding]:
    ref = m["reference"]
    return [
        auc_finding(f"{g} has lower TuCo than {ref}", PAPER, s["auc_vs_reference"], what=f"AUC ({ref} = positive)")
        for g, s in m["per_group"].items()
        if "auc_vs_reference" in s
    ]


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    strips(
        {g: values(rows, condition=g) for g in m["order_by_tuco"]},
        "conjugate prompting: TuCo per language / encoding",
        path / "conjugate.png",
    )


EXPERIMENT = Experiment(
    name="conjugate",
    question="Does TuCo fall when the same harmful request comes in another language or encoding?",
    paper=PAPER,
    options=ConjugateOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    findings=findings,
    sources=lambda o: ([("prompts", o.harmful)] if o.encodings else []) + ([("translations", o.translations)] if o.translations else []),
)
