"""conjugate: does TuCo fall when a harmful request comes in another language or encoding, beyond what the
encoding does to any request? (docs/method.md 5.2, conjugate prompting)

The same requests plain and in built-in encodings that need no translator (leetspeak, rot13, ...) or in
translations the user supplies (e.g. MultiJail). Encodings make any text longer and stranger, and on the
realistic pair benign requests drop as much as harmful ones, so the encodings are applied to BENIGN
requests too, and the primary claim is a difference in differences: the harmful requests' drop exceeds
the benign requests' drop (each drop paired by request). Prompt lengths are reported per condition.
With translations, the paper's ordering claim (TuCo ordered by the language's share of web text) is a
rank correlation with an interval. Paper: AdvBench in English, Japanese, Hungarian, Swahili, Malayalam;
TuCo highest for English, ordered by the language's share of web text.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.attacks.encodings import ENCODINGS, encode_as
from tuco.data.sources import SOURCE_HELP, load_prompts, load_translations
from tuco.errors import ConfigError
from tuco.experiments.base import (
    POSITION_HELP,
    POSITIONS,
    Experiment,
    ExperimentRun,
    Options,
    auc_claim,
    item_means,
    mean_of,
    opt,
    paired_claim,
    rows_of,
    values,
)
from tuco.measures.prompts import Prompt
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable

PAPER = "English highest; TuCo ordered by the language's share of web text"


@dataclass
class ConjugateOptions(Options):
    harmful: str = opt("builtin:harmful", f"harmful requests to encode ({SOURCE_HELP})")
    benign: str = opt("builtin:benign", f"benign requests given the same encodings: the control ({SOURCE_HELP}; empty: no control)")
    encodings: list[str] = opt(
        ["plain", "leetspeak", "rot13", "reversed", "spaced", "base64"],
        "built-in encodings of the requests (plain is the reference; empty for none)",
        choices=tuple(ENCODINGS),
    )
    translations: str = opt("", "translated requests: a JSONL file with one field per language, or hf:DAMO-NLP-SG/MultiJail")
    languages: list[str] = opt(["en", "sw", "bn", "jv"], "fields (languages) of --translations to use (the first is the reference)")
    n: int = opt(40, "requests per set, language or encoding", min=1)
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of the rank-correlation interval")

    def check(self) -> None:
        if not self.encodings and not self.translations:
            raise ConfigError("nothing to compare: give --encodings and/or --translations")
        if self.encodings and "plain" not in self.encodings:
            raise ConfigError("--encodings needs plain (the reference every encoding is compared with)")


def run(model: Decomposable, o: ConjugateOptions, rd: ExperimentRun) -> None:
    sets = [("harmful", o.harmful)] + ([("benign", o.benign)] if o.benign else [])
    for kind, spec in sets if o.encodings else []:
        base = [p for p in load_prompts(spec, limit=o.n) if isinstance(p, str)]
        for e in o.encodings:
            prompts = [
                Prompt(
                    f"{kind}:{e}-{i}",
                    text=encode_as(e, p),
                    extra={"condition": f"{kind}:{e}", "set": kind, "encoding": e, "item": f"{kind}-{i}"},
                )
                for i, p in enumerate(base)
            ]
            rd.score(prompts, chat=True, position=o.position, batch_size=o.batch_size)
    if o.translations:
        for lang, prompts_of in load_translations(o.translations, o.languages, o.n).items():
            prompts = [
                Prompt(
                    f"lang:{lang}-{i}", text=p, extra={"condition": f"lang:{lang}", "set": "translated", "language": lang, "item": f"t-{i}"}
                )
                for i, p in enumerate(prompts_of)
            ]
            rd.score(prompts, chat=True, position=o.position, batch_size=o.batch_size)


def _drops(rows: list[dict[str, Any]], kind: str, encodings: list[str]) -> dict[str, float]:
    """Per request of one set: mean over the non-plain encodings of (TuCo encoded - TuCo plain)."""
    plain = item_means(rows, set=kind, encoding="plain")
    per_item: dict[str, list[float]] = {}
    for e in encodings:
        for item, v in item_means(rows, set=kind, encoding=e).items():
            if item in plain:
                per_item.setdefault(item, []).append(v - plain[item])
    return {k: statistics.fmean(v) for k, v in per_item.items()}


def metrics(rows: list[dict[str, Any]], o: ConjugateOptions) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    means: dict[str, float] = {}
    for c in dict.fromkeys(r["condition"] for r in rows):
        mine = rows_of(rows, condition=c)
        v = values(mine)
        per[c] = {
            "n": len(v),
            "mean_tuco": mean_of(v),
            "sem": statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0,
            "mean_prompt_tokens": mean_of(values(mine, "n_tokens")),
        }
        means[c] = statistics.fmean(v) if v else float("-inf")
    order = sorted(per, key=lambda c: -means[c])
    m: dict[str, Any] = {"per_condition": per, "order_by_tuco": order, "position": o.position}
    langs = [lang for lang in o.languages if f"lang:{lang}" in per]
    if langs:
        m["languages"] = {lang: per[f"lang:{lang}"]["mean_tuco"] for lang in langs}
    return m


def _rank_correlation(rows: list[dict[str, Any]], langs: list[str], shares: dict[str, float], seed: int) -> Claim:
    """Spearman correlation of the languages' mean TuCo with their web share; percentile interval from
    resampling requests (each request is measured in every language: one cluster)."""
    import numpy as np

    from tuco.stats.intervals import Interval

    known = [lang for lang in langs if lang in shares]
    what, claim = "Spearman rho (web share, mean TuCo)", "TuCo follows the language's share of web text"
    if len(known) < 3:
        return Claim(claim, None, "above", what, PAPER, reason=f"{len(known)} languages with a known web share (need 3)")
    table = {lang: item_means(rows, language=lang) for lang in known}
    items = sorted(set.intersection(*(set(t) for t in table.values())))
    if len(items) < 2:
        return Claim(claim, None, "above", what, PAPER, reason="no request measured in every language")
    x = np.array([[table[lang][i] for lang in known] for i in items])  # [items, languages]
    share_rank = np.argsort(np.argsort([shares[lang] for lang in known]))

    def rho(means: Any) -> float:
        r = np.argsort(np.argsort(means))
        return float(np.corrcoef(r, share_rank)[0, 1]) if np.ptp(r) else 0.0

    est = rho(x.mean(0))
    rng = np.random.default_rng(seed)
    boots = [rho(x[rng.integers(0, len(items), len(items))].mean(0)) for _ in range(2000)]
    lo, hi = (float(v) for v in np.quantile(boots, [0.025, 0.975]))
    p = min(1.0, 2 * min(float(np.mean(np.array(boots) <= 0)), float(np.mean(np.array(boots) >= 0))))
    iv = Interval(est, lo, hi, p, (len(items),), f"percentile bootstrap over requests, {len(known)} languages")
    return Claim(claim, iv, "above", what, PAPER, digits=2)


def claims(rows: list[dict[str, Any]], o: ConjugateOptions, m: dict[str, Any]) -> list[Claim]:
    out: list[Claim] = []
    encodings = [e for e in o.encodings if e != "plain"]
    if encodings:
        harmful, benign = _drops(rows, "harmful", encodings), _drops(rows, "benign", encodings)
        primary = "Encodings lower TuCo more for harmful requests than for benign ones (difference in differences)"
        if benign:
            from tuco.stats.intervals import diff_ci

            items_h, items_b = list(harmful.values()), list(benign.values())
            iv = diff_ci(items_b, items_h) if len(items_h) > 1 and len(items_b) > 1 else None
            out.append(Claim(primary, iv, "below", "harmful drop - benign drop", PAPER, primary=True, reason="too few requests"))
        else:
            out.append(
                Claim(primary, None, "below", "harmful drop - benign drop", PAPER, primary=True, reason="no benign control (--benign '')")
            )
        for e in encodings:
            for kind in ("harmful", "benign"):
                plain = item_means(rows, set=kind, encoding="plain")
                if plain:
                    out.append(
                        paired_claim(
                            f"{e} lowers TuCo of {kind} requests",
                            plain,
                            item_means(rows, set=kind, encoding=e),
                            expect="below",
                            what="TuCo change",
                            paper=PAPER if kind == "harmful" else None,
                        )
                    )
            out.append(
                auc_claim(
                    f"plain harmful requests have higher TuCo than {e} ones (AUC, plain = positive)",
                    rows_of(rows, set="harmful", encoding="plain"),
                    rows_of(rows, set="harmful", encoding=e),
                    paper=PAPER,
                )
            )
    langs = [lang for lang in o.languages if rows_of(rows, language=lang)]
    if langs:
        ref = item_means(rows, language=langs[0])
        for lang in langs[1:]:
            out.append(
                paired_claim(
                    f"{lang} has lower TuCo than {langs[0]}",
                    ref,
                    item_means(rows, language=lang),
                    expect="below",
                    what="TuCo change",
                    paper=PAPER,
                )
            )
        from tuco.data.builtin import web_shares

        out.append(_rank_correlation(rows, langs, web_shares(), o.seed))
    return out


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import strips

    strips(
        {c: values(rows, condition=c) for c in m["order_by_tuco"]},
        "conjugate prompting: TuCo per set and encoding / language",
        path / "conjugate.png",
    )


EXPERIMENT = Experiment(
    name="conjugate",
    question="Does TuCo fall more for harmful requests than for benign ones when both come in another encoding or language?",
    paper=PAPER,
    options=ConjugateOptions,
    run=run,
    metrics=metrics,
    plots=plots,
    claims=claims,
    sources=lambda o: (
        ([("prompts", o.harmful)] + ([("prompts", o.benign)] if o.benign else []) if o.encodings else [])
        + ([("translations", o.translations)] if o.translations else [])
    ),
)
