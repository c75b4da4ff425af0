"""conjugate: is TuCo ordered by the language's share of web text? (docs/method.md 5.2, conjugate prompting)

Paper: AdvBench requests in English, Japanese, Hungarian, Swahili and Malayalam; TuCo highest for English
and ordered by the language's share of web text (the lower the share, the lower TuCo). No number is given on
a correlation's scale, so the best verdict is "direction consistent".

Design (the primary claim: the paper's claim with a control that isolates it). The same requests, harmful
AND benign, in English (the reference) and in several languages: by default the project's translations of
the test split (``builtin:translations-broad``: 120 harmful and 80 benign requests in German, Japanese,
Indonesian, Hungarian, Malayalam and Swahili; ``src/tuco/data/TRANSLATIONS.md``). Per request, its drop in
language L is TuCo_L - TuCo_en (paired by request). A language changes the tokens, the length and the
script of ANY request, so per language

    D_L = (mean harmful drop) - (mean benign drop)

each mean over the requests of one set with a topic's requests averaged first (the clusters every interval
over requests uses; everyday requests are their own topic): what a language does to any request cancels,
what it does to the fine-tuning's hold on harmful requests stays. The primary is Spearman's rho between the
languages' web shares (``builtin.web_shares``: Common Crawl CC-MAIN-2024-42) and D_L, with the exact
permutation p over all orderings of the languages (``stats.correlation.spearman_exact``, one-sided
"greater": the paper expects languages with less web text to lower TuCo more, i.e. D_L rising with the
share). English is the reference, not a unit. The languages are the units: the test asks whether their
ordering by D_L follows their ordering by share, and each D_L carries the sampling noise of its requests
(the same requests in every language: what a request does in every language cancels from the ranks).

Fewest units. The exact one-sided p cannot go below 1 / L!: 1/24 = 0.042 with 4 languages, 1/120 = 0.0083
with 5, 1/720 = 0.0014 with 6. Holm over a suite's primary claims asks the smallest p to be below 0.05 / k
(0.005 with the k = 10 primaries of a suite), so the claim needs 6 languages (``MIN_LANGUAGES``; with fewer its verdict
is "too few to tell"). Its type-I error is at most 5% when the languages' D_L are exchangeable under the
null; with noise that grows as the share falls (SD ratio 6:1 across the six languages) it stays at 0.03
(tests/test_exp_conjugate.py simulates request-level rows through this module's code).

Exploratory: per language, D_L with its own interval (two independent sets of requests, topics as
clusters) and the harmful requests' drop alone (the paper's "English highest"); Spearman's rho of the
share with the harmful drop alone (the paper's analysis without the control); the prompts' lengths in
tokens per language and set (a confound: lower-share languages are split into more tokens, and the drop
of a longer prompt is not the same measurement). Encodings (leetspeak, rot13, ...: forms that need no
translator) give a second, weaker look at the same question: the harmful requests' drop minus the
benign requests' drop, pooled over the encodings as a SAMPLE of encodings (``stats.crossed.
crossed_difference_ci``: requests nested in topics, encodings crossed with both sets; the interval speaks
for new encodings, requests and topics; >= 2 encodings can reach p < 0.05, a distribution-free test would
need 6), and per encoding. The encodings are not the paper's claim (no ordering by share is tested) and
not a control of it, so they are exploratory: they would only cost the suite's Holm family power.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuco.attacks.encodings import ENCODINGS, encode_as
from tuco.data.builtin import TRANSLATION_LANGUAGES
from tuco.data.sources import SOURCE_HELP, load_prompts, load_translation_records, request_topics, topic_of
from tuco.errors import ConfigError
from tuco.experiments.base import (
    Experiment,
    ExperimentRun,
    Options,
    mean_of,
    opt,
    paired_claim,
    rows_of,
    values,
)
from tuco.measures.positions import POSITION_HELP, POSITIONS
from tuco.measures.prompts import Prompt
from tuco.stats.claims import Claim

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable
    from tuco.stats.intervals import Interval

PAPER = "English highest; TuCo ordered by the language's share of web text"
#: The fewest languages (besides the reference) the primary claim needs: the exact one-sided p reaches
#: 1/720 = 0.0014 with 6, below what Holm asks of the smallest p in a suite of 10 primaries (0.005); 1/120 with 5 does not.
MIN_LANGUAGES = 6
PRIMARY = (
    "Languages with less web text lower harmful requests' TuCo more than benign requests' "
    "(rank correlation of web share with D = harmful drop - benign drop, vs English; the benign drop is the control)"
)
PRIMARY_UNCONTROLLED = (
    "Languages with less web text lower harmful requests' TuCo more "
    "(rank correlation of web share with the harmful drop vs the reference; no benign control: the translations hold no benign requests)"
)


@dataclass
class ConjugateOptions(Options):
    translations: str = opt(
        "builtin:translations-broad",
        "the same requests in several languages: builtin:translations-broad, a JSONL file with one field per language "
        "(optional set: harmful/benign, topic, item) or hf:DAMO-NLP-SG/MultiJail (empty: none)",
    )
    languages: list[str] = opt(list(TRANSLATION_LANGUAGES), "fields (languages) of --translations to use (the first is the reference)")
    n: int = opt(40, "requests per set in each language (and in each encoding unless --n-encoded)", min=1)
    harmful: str = opt("builtin:harmful", f"harmful requests to encode ({SOURCE_HELP})")
    benign: str = opt("builtin:benign", f"benign requests given the same encodings: the control ({SOURCE_HELP}; empty: no control)")
    encodings: list[str] = opt(
        ["plain", "leetspeak", "rot13", "reversed", "spaced", "base64"],
        "built-in encodings of the requests (plain is the reference; empty for none)",
        choices=tuple(ENCODINGS),
    )
    n_encoded: int = opt(0, "requests per set in each encoding (0: --n)", min=0)
    position: str = opt("last", POSITION_HELP, choices=POSITIONS)
    batch_size: int = opt(8, "prompts per forward pass", min=1)
    seed: int = opt(0, "seed of the intervals' resampling")

    def check(self) -> None:
        if not self.encodings and not self.translations:
            raise ConfigError("nothing to compare: give --encodings and/or --translations")
        if self.encodings and "plain" not in self.encodings:
            raise ConfigError("--encodings needs plain (the reference every encoding is compared with)")
        if self.translations and len(self.languages) < 2:
            raise ConfigError("--languages needs the reference (first) and at least one more language")


def run(model: Decomposable, o: ConjugateOptions, rd: ExperimentRun) -> None:
    """The translations first (the primary claim's data), then the encodings."""
    if o.translations:
        records = load_translation_records(o.translations, o.languages, o.n)
        for lang in o.languages:
            for kind in ("harmful", "benign"):
                prompts = [
                    Prompt(
                        f"lang:{lang}:{r.item}",
                        text=r.texts[lang],
                        extra={
                            "condition": f"{kind}:lang:{lang}",
                            "set": kind,
                            "language": lang,
                            "item": f"tr:{r.item}",
                            "topic": r.topic or f"tr:{r.item}",
                        },
                    )
                    for r in records
                    if r.set == kind
                ]
                if prompts:
                    rd.score(prompts, chat=True, position=o.position, batch_size=o.batch_size)
    sets = [("harmful", o.harmful)] + ([("benign", o.benign)] if o.benign else [])
    for kind, spec in sets if o.encodings else []:
        base = [p for p in load_prompts(spec, limit=o.n_encoded or o.n) if isinstance(p, str)]
        topics = request_topics(spec)
        for e in o.encodings:
            prompts = [
                Prompt(
                    f"{kind}:{e}-{i}",
                    text=encode_as(e, p),
                    extra={"condition": f"{kind}:{e}", "set": kind, "encoding": e, "item": f"{kind}-{i}", "topic": topic_of(topics, p)},
                )
                for i, p in enumerate(base)
            ]
            rd.score(prompts, chat=True, position=o.position, batch_size=o.batch_size)


# --------------------------------------------------------------------------------------------
# Per-request drops and the per-language contrast D (pure functions of the rows).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drops:
    """Per request of one set: its drop (TuCo in a language or encoding minus TuCo in the reference), and its
    topic (the cluster)."""

    drop: dict[str, float]
    topic: dict[str, str]

    def clusters(self) -> list[str]:
        return [self.topic[i] for i in self.drop]


def _by_item(rows: list[dict[str, Any]], **match: Any) -> tuple[dict[str, float], dict[str, str]]:
    """(item -> mean TuCo, item -> topic) of the rows matching ``match``."""
    got: dict[str, list[float]] = {}
    topic: dict[str, str] = {}
    for r in rows_of(rows, **match):
        v = r.get("tuco")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
            item = str(r.get("item", r.get("id")))
            got.setdefault(item, []).append(float(v))
            topic[item] = str(r.get("topic") or item)
    return {k: statistics.fmean(v) for k, v in got.items()}, topic


def drops(rows: list[dict[str, Any]], kind: str, field: str, value: str, reference: str) -> Drops:
    """Per request of set ``kind``: TuCo with ``field`` = ``value`` minus TuCo with ``field`` = ``reference``
    (language or encoding), for the requests measured under both."""
    ref, _ = _by_item(rows, set=kind, **{field: reference})
    got, topic = _by_item(rows, set=kind, **{field: value})
    return Drops({i: got[i] - ref[i] for i in got if i in ref}, {i: topic[i] for i in got if i in ref})


def _cluster_mean(d: Drops) -> float:
    """The mean over topics of each topic's mean drop (``intervals.cluster_means``, then their mean)."""
    from tuco.stats.intervals import cluster_means

    return float(cluster_means(list(d.drop.values()), d.clusters()).mean())


def contrast(harmful: Drops, benign: Drops | None) -> float | None:
    """D: the harmful requests' mean drop minus the benign requests' (topics averaged first; the estimate of
    ``intervals.diff_ci`` with the topics as clusters); the harmful mean drop alone without benign requests."""
    if not harmful.drop:
        return None
    if benign is None:
        return _cluster_mean(harmful)
    if not benign.drop:
        return None
    return _cluster_mean(harmful) - _cluster_mean(benign)


def _languages(rows: list[dict[str, Any]], o: ConjugateOptions) -> list[str]:
    return [lang for lang in o.languages if rows_of(rows, language=lang)]


def _has_benign(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("language") is not None and r.get("set") == "benign" for r in rows)


def language_contrasts(rows: list[dict[str, Any]], languages: list[str]) -> dict[str, float]:
    """D per language (``languages[0]`` the reference), for the languages where it can be computed."""
    ref, out = languages[0], {}
    benign = _has_benign(rows)
    for lang in languages[1:]:
        d = contrast(drops(rows, "harmful", "language", lang, ref), drops(rows, "benign", "language", lang, ref) if benign else None)
        if d is not None:
            out[lang] = d
    return out


# --------------------------------------------------------------------------------------------
# Metrics, claims, plots.
# --------------------------------------------------------------------------------------------


def metrics(rows: list[dict[str, Any]], o: ConjugateOptions) -> dict[str, Any]:
    from tuco.data.builtin import web_shares

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
    langs = _languages(rows, o)
    if langs:
        shares, ref = web_shares(), langs[0]
        d = language_contrasts(rows, langs)
        table: dict[str, dict[str, Any]] = {}
        for lang in langs:
            entry: dict[str, Any] = {"web_share": shares.get(lang)}
            for kind in ("harmful", "benign"):
                mine = rows_of(rows, language=lang, set=kind)
                entry[f"{kind}_tuco"] = mean_of(values(mine))
                entry[f"{kind}_prompt_tokens"] = mean_of(values(mine, "n_tokens"))
                if lang != ref:
                    entry[f"{kind}_drop"] = mean_of(list(drops(rows, kind, "language", lang, ref).drop.values()))
            if lang != ref:
                entry["D"] = d.get(lang)
            table[lang] = entry
        m["reference_language"] = ref
        m["languages"] = table
    encodings = [e for e in o.encodings if e != "plain" and rows_of(rows, encoding=e)]
    if encodings:
        m["encodings"] = {
            e: {f"{kind}_drop": mean_of(list(drops(rows, kind, "encoding", e, "plain").drop.values())) for kind in ("harmful", "benign")}
            for e in encodings
        }
    return m


def _rank_claim(claim: str, what: str, languages: list[str], d: dict[str, float], *, primary: bool) -> Claim:
    """Spearman's rho of web share with ``d`` over the languages with a known share (exact permutation p,
    one-sided: rising with the share)."""
    from tuco.data.builtin import web_shares
    from tuco.stats.recompute import compute

    shares = web_shares()
    known = [lang for lang in languages if lang in d and lang in shares]
    extra: dict[str, Any] = {"languages": known, "unknown_share": [lang for lang in languages if lang in d and lang not in shares]}

    def made(interval: Interval | None = None, inputs: dict[str, Any] | None = None, reason: str = "") -> Claim:
        return Claim(
            claim, interval, "above", what, PAPER, primary, reason=reason, digits=2, extra=extra, inputs=inputs, min_n=MIN_LANGUAGES
        )

    if len(known) < 3:
        return made(reason=f"{len(known)} languages with a known web share and a measured drop (need 3; {MIN_LANGUAGES} for a verdict)")
    x, y = [shares[lang] for lang in known], [d[lang] for lang in known]
    if len(set(y)) == 1:
        return made(reason="every language has the same drop: no ranks to correlate")
    iv, inputs = compute("spearman_exact", x=x, y=y, alternative="greater")
    return made(iv, inputs)


def _language_claims(rows: list[dict[str, Any]], o: ConjugateOptions) -> list[Claim]:
    from tuco.stats.recompute import compute

    langs = _languages(rows, o)
    if not langs:
        reason = "no translations (--translations '')" if not o.translations else "no translated request was measured"
        return [Claim(PRIMARY, None, "above", "Spearman rho (web share, D)", PAPER, True, reason=reason, min_n=MIN_LANGUAGES)]
    ref, benign, out = langs[0], _has_benign(rows), []
    d = language_contrasts(rows, langs)
    what = "Spearman rho (web share, D)" if benign else "Spearman rho (web share, harmful drop)"
    out.append(_rank_claim(PRIMARY if benign else PRIMARY_UNCONTROLLED, what, langs[1:], d, primary=True))
    if benign:
        harmful_only = {lang: v for lang in langs[1:] if (v := contrast(drops(rows, "harmful", "language", lang, ref), None)) is not None}
        out.append(
            _rank_claim(
                "Without the benign control: languages with less web text lower harmful requests' TuCo more "
                "(rank correlation of web share with the harmful drop)",
                "Spearman rho (web share, harmful drop)",
                langs[1:],
                harmful_only,
                primary=False,
            )
        )
    for lang in langs[1:]:
        h = drops(rows, "harmful", "language", lang, ref)
        if benign:
            b = drops(rows, "benign", "language", lang, ref)
            claim = f"{lang} lowers harmful requests' TuCo more than benign requests' (D vs {ref})"
            what = "D (harmful drop - benign drop)"
            if len(set(h.clusters())) < 2 or len(set(b.clusters())) < 2:
                out.append(Claim(claim, None, "below", what, PAPER, reason="fewer than 2 topics in a set"))
            else:
                iv, inputs = compute(
                    "diff_ci",
                    a=list(b.drop.values()),
                    b=list(h.drop.values()),
                    clusters_a=b.clusters(),
                    clusters_b=h.clusters(),
                    seed=o.seed,
                )
                out.append(Claim(claim, iv, "below", what, PAPER, inputs=inputs))
        ref_tuco, _ = _by_item(rows, set="harmful", language=ref)
        lang_tuco, _ = _by_item(rows, set="harmful", language=lang)
        out.append(
            paired_claim(
                f"{lang} lowers harmful requests' TuCo (vs {ref})",
                ref_tuco,
                lang_tuco,
                expect="below",
                what="TuCo change",
                paper=PAPER,
                clusters=h.topic,
            )
        )
    return out


def _encoding_claims(rows: list[dict[str, Any]], o: ConjugateOptions) -> list[Claim]:
    from tuco.stats.crossed import MIN_STIMULI
    from tuco.stats.recompute import compute

    encodings = [e for e in o.encodings if e != "plain" and rows_of(rows, encoding=e)]
    if not encodings:
        return []
    out: list[Claim] = []
    per = {(kind, e): drops(rows, kind, "encoding", e, "plain") for kind in ("harmful", "benign") for e in encodings}
    benign = any(per[("benign", e)].drop for e in encodings)
    what = "harmful drop - benign drop"
    pooled = f"Encodings lower TuCo more for harmful requests than for benign ones ({len(encodings)} encodings as a sample)"
    if not benign:
        out.append(Claim(pooled, None, "below", what, None, reason="no benign control (--benign '')"))
    else:
        cells = [(kind, e, item, v, per[(kind, e)].topic[item]) for (kind, e), dr in per.items() for item, v in dr.drop.items()]
        try:
            iv, inputs = compute(
                "crossed_difference_ci",
                values=[c[3] for c in cells],
                rows=[c[2] for c in cells],
                cols=[c[1] for c in cells],
                sets=[c[0] for c in cells],
                first="harmful",
                row_groups=[f"{c[0]}:{c[4]}" for c in cells],
                seed=o.seed,
            )
            out.append(Claim(pooled, iv, "below", what, None, inputs=inputs, min_n=MIN_STIMULI))
        except ValueError as err:
            out.append(Claim(pooled, None, "below", what, None, reason=str(err)))
    for e in encodings:
        h, b = per[("harmful", e)], per[("benign", e)]
        if benign:
            claim = f"{e} lowers TuCo more for harmful requests than for benign ones"
            if len(set(h.clusters())) < 2 or len(set(b.clusters())) < 2:
                out.append(Claim(claim, None, "below", what, None, reason="fewer than 2 topics in a set"))
                continue
            iv, inputs = compute(
                "diff_ci", a=list(b.drop.values()), b=list(h.drop.values()), clusters_a=b.clusters(), clusters_b=h.clusters(), seed=o.seed
            )
            out.append(Claim(claim, iv, "below", what, None, inputs=inputs))
        else:
            plain, _ = _by_item(rows, set="harmful", encoding="plain")
            coded, _ = _by_item(rows, set="harmful", encoding=e)
            out.append(
                paired_claim(
                    f"{e} lowers TuCo of harmful requests", plain, coded, expect="below", what="TuCo change", paper=None, clusters=h.topic
                )
            )
    return out


def claims(rows: list[dict[str, Any]], o: ConjugateOptions, m: dict[str, Any]) -> list[Claim]:
    return _language_claims(rows, o) + _encoding_claims(rows, o)


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    from tuco.experiments.plotting import figure, save, strips

    strips(
        {c: values(rows, condition=c) for c in m["order_by_tuco"]},
        "conjugate prompting: TuCo per set and encoding / language",
        path / "conjugate.png",
    )
    table = {lang: e for lang, e in m.get("languages", {}).items() if e.get("D") is not None and e.get("web_share")}
    if len(table) >= 2:
        import math

        fig, ax = figure(5.0, 3.4)
        for lang, e in table.items():
            x = math.log10(e["web_share"])
            ax.scatter([x], [e["D"]], color="black")
            ax.annotate(lang, (x, e["D"]), textcoords="offset points", xytext=(4, 4))
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xlabel("web share (log10 percent of Common Crawl pages)")
        ax.set_ylabel(f"D vs {m.get('reference_language', 'en')}")
        ax.set_title("harmful drop - benign drop per language")
        save(fig, path / "conjugate_shares.png")


EXPERIMENT = Experiment(
    name="conjugate",
    question=(
        "Is TuCo ordered by the language's share of web text: do languages with less web text lower "
        "harmful requests' TuCo more than benign requests'?"
    ),
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
