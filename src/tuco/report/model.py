"""The report as data: a ``Page`` built from runs, with every statistic and chart position computed here
and no markup (the templates in ``templates/`` draw it). Unit-tested on its own.

Order of a page: a synthesis over adapters when the source is one (per primary claim the pooled headline,
the adapters' rows below it), then each experiment's answer (question, findings, plots), then per run the summary by
condition, distributions, per-layer profiles, stage shares (chains), tokens (the most and least
fine-tuning-driven per condition and alpha, paired conditions side by side), the rows table and the
configuration.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tuco.report import charts
from tuco.report.compare import Comparison, comparison
from tuco.report.findings import Answer, Overview, answer, overview
from tuco.report.groups import Stratum, Summary, alpha_of, natural_key, ranked, spread, strata, summary
from tuco.report.load import Source
from tuco.report.synthesis import SynthesisView, synthesis_view
from tuco.report.tables import Config, Table, config, rows_table
from tuco.report.tokens import TokenView, token_texts, token_view
from tuco.report.training import OverSteps, at_step, over_steps
from tuco.runs.schema import group_field, headline, pairs

EXTREMES = 4  # most and least fine-tuning-driven rows shown per side, shared among the strata
MAX_RANKED = 8  # strata whose rankings are shown
PAIRS = 3  # paired rows shown side by side
STAGE_BARS = 40  # prompts drawn as stage-share bars
HEADLINE_TEXT = "TuCo = ||Σ FTC||₁ / (||Σ PTC||₁ + ||Σ FTC||₁) at the last prompt token"


@dataclass(frozen=True)
class Ranking:
    """The most and least fine-tuning-driven rows of one stratum; where all share one TuCo (``same``: that
    value) there is no ranking, and ``most`` holds examples."""

    label: str
    most: list[TokenView]
    least: list[TokenView]
    same: float | None = None


@dataclass(frozen=True)
class Tokens:
    """Token views: rankings per stratum, and the same item under the first and the last condition."""

    rankings: list[Ranking]
    omitted: int
    pairs: list[tuple[TokenView, TokenView]]
    pair_field: str


@dataclass(frozen=True)
class StageToken:
    """A token coloured by the stage that wrote most at its position."""

    text: str
    stage: int | None
    title: str


@dataclass(frozen=True)
class Stages:
    """A chain's stage shares: per prompt, per layer, and per token."""

    bars: charts.Bars
    per_layer: charts.Bars | None
    views: list[tuple[str, list[StageToken]]]


@dataclass(frozen=True)
class Results:
    """Everything measured in one run."""

    anchor: str
    name: str
    n_rows: int
    summary: Summary | None
    strips: charts.Strips | None
    profiles: charts.Panels | None
    stages: Stages | None
    tokens: Tokens | None
    table: Table | None
    configs: list[Config]
    training: OverSteps | None = None  # a training run (TucoCallback): TuCo over steps; the other sections show its last step


@dataclass(frozen=True)
class Page:
    """One report page: a synthesis over adapters first (when there is one), then answers, then each run's
    results (or a comparison of runs)."""

    title: str
    subtitle: str
    answers: list[Answer]
    results: list[Results]
    comparison: Comparison | None = None
    synthesis: SynthesisView | None = None
    overview: Overview | None = None  # one line per primary claim of each analysis, above the answers
    notes: list[str] = field(default_factory=list)  # a suite's caveats, under its summary (e.g. null calibration)


def suite_overview(runs: list[Source]) -> Overview | None:
    """The summary the page opens with (the one ``tuco demo`` prints); None when no run has a primary claim."""
    found = overview({str(r.metrics.get("experiment") or r.name): r.metrics for r in runs if r.metrics})
    return found if found.headlines else None


def profiles(parts: list[Stratum]) -> charts.Panels | None:
    """Per stratum, mean ||PTC_l||_1 and ||FTC_l||_1 per layer with their interquartile bands (None
    when no row carries per-layer norms)."""
    out = {}
    for part in parts:
        ptc = [r["layer_ptc_l1"] for r in part.rows if isinstance(r.get("layer_ptc_l1"), list) and r["layer_ptc_l1"]]
        ftc = [r["layer_ftc_l1"] for r in part.rows if isinstance(r.get("layer_ftc_l1"), list) and r["layer_ftc_l1"]]
        if ptc and ftc and len({len(p) for p in ptc + ftc}) == 1:
            out[part.label] = {"mean ||PTC_l||₁": _band(ptc), "mean ||FTC_l||₁": _band(ftc)}
    return charts.layer_panels(out) if out else None


def _band(per_row: list[list[float]]) -> charts.Band:
    columns = [s for c in zip(*per_row) if (s := spread([float(v) for v in c])) is not None]
    return [s.mean for s in columns], [s.q1 for s in columns], [s.q3 for s in columns]


def tokens(rows: list[dict[str, Any]], parts: list[Stratum], group: str | None) -> Tokens | None:
    """Rankings within each stratum (never across alphas) and paired conditions; None without token data."""
    viewed = {id(r): v for r in rows if (v := token_view(r, group)) is not None}
    if not viewed:
        return None
    shown = [p for p in parts if any(id(r) in viewed for r in p.rows)]
    k = max(1, EXTREMES // max(1, min(len(shown), MAX_RANKED)))
    rankings = []
    for part in shown[:MAX_RANKED]:
        mine = [r for r in part.rows if id(r) in viewed]
        most, least = ranked(mine, k)
        values = {headline(r) for r in mine}
        same = values.pop() if len(values) == 1 else None
        rankings.append(Ranking(part.label, [viewed[id(r)] for r in most], [viewed[id(r)] for r in least], same))
    return Tokens(rankings, len(shown) - len(rankings), paired(rows, group, viewed), group or "")


def paired(rows: list[dict[str, Any]], group: str | None, viewed: dict[int, TokenView]) -> list[tuple[TokenView, TokenView]]:
    """Up to PAIRS items under the first and the last condition (natural order); at one alpha each when
    alpha varies inside a condition (a condition that fixes its alpha, alpha=0 vs alpha=1, pairs across)."""
    if not group:
        return []
    names = sorted({str(r.get(group)) for r in rows if r.get(group) is not None}, key=natural_key)
    if len(names) < 2:
        return []
    mixed = any(len({alpha_of(r) for r in rows if str(r.get(group)) == name}) > 1 for name in names)
    alphas = [[r for r in rows if alpha_of(r) == a] for a in dict.fromkeys(map(alpha_of, rows))] if mixed else [rows]
    both = [
        (viewed[id(a)], viewed[id(b)])
        for sub in alphas
        for a, b in pairs(sub, names[0], names[-1], group)
        if id(a) in viewed and id(b) in viewed
    ]
    return both[:PAIRS]


def stages(rows: list[dict[str, Any]], source: Source) -> Stages | None:
    """A chain's stage shares per prompt and per layer (mean norms normalised per layer), and tokens
    coloured by the stage that wrote most there; None when no row carries stage shares."""
    chain = [r for r in rows if isinstance(r.get("stage_share"), list) and r["stage_share"]]
    if not chain:
        return None
    n = len(chain[0]["stage_share"])
    checkpoints = next((c for f in source.files if (c := (f.manifest.get("config") or {}).get("checkpoints"))), None)
    names = (
        [f"{k}: {str(c).rstrip('/').rsplit('/', 1)[-1]}" for k, c in enumerate(checkpoints)]
        if checkpoints and len(checkpoints) == n
        else [f"stage {k}" for k in range(n)]
    )
    bars = charts.stacked_bars([(str(r.get("id")), r["stage_share"]) for r in chain[:STAGE_BARS]], names)
    layered = [r["layer_stage_l1"] for r in chain if isinstance(r.get("layer_stage_l1"), list)]
    per_layer = None
    if layered:
        shares = []
        for layer in range(len(layered[0][0])):
            norms = [statistics.fmean(r[k][layer] for r in layered) for k in range(n)]
            shares.append((f"layer {layer}", [v / (sum(norms) or 1.0) for v in norms]))
        per_layer = charts.stacked_bars(shares, names)
    views: list[tuple[str, list[StageToken]]] = []
    for r in chain:
        if isinstance(r.get("tokens"), list) and isinstance(r.get("token_stage"), list) and len(views) < EXTREMES:
            texts = token_texts(r["tokens"])
            views.append(
                (
                    str(r.get("id")),
                    [StageToken(t, s, names[s] if isinstance(s, int) and s < n else str(s)) for t, s in zip(texts, r["token_stage"])],
                )
            )
    return Stages(bars, per_layer, views)


def results(source: Source, anchor: str) -> Results:
    """One run's results section."""
    rows = source.rows
    configs = [c for f in source.files if (c := config(f.name, f.manifest)) is not None]
    if not rows:
        return Results(anchor, source.name, 0, None, None, None, None, None, None, configs)
    table = rows_table(rows, group_field(rows))  # every row (a training run: every step)
    training = over_steps(rows)
    n_rows = len(rows)
    if training is not None:  # pooling steps would mix models: the per-run sections show the last step
        rows = at_step(rows, training.last_step)
    group = group_field(rows)
    parts = strata(rows, group)
    lines = [(p.label, p.values, s) for p in parts if (s := spread(p.values)) is not None]
    return Results(
        anchor,
        source.name,
        n_rows,
        summary(parts, group),
        charts.strips(lines),
        profiles(parts),
        stages(rows, source),
        tokens(rows, parts, group),
        table,
        configs,
        training,
    )


def page(source: Source, title: str | None = None) -> Page:
    """The report page of a run or a suite of runs: answers first, then each run's results; of a synthesis
    directory: the synthesis over adapters first, then the runs it holds (if any)."""
    if source.synthesis:
        return _synthesis_page(source, title)
    runs = source.runs
    n_rows = sum(len(r.rows) for r in runs)
    subtitle = f"source: {source.path} · {len(runs)} run{'s' if len(runs) > 1 else ''} · {n_rows} rows · {HEADLINE_TEXT}"
    answers = [a for r in runs if (a := answer(r.metrics, r.name, r.plots)) is not None]
    shown = [results(r, f"run-{k}") for k, r in enumerate(runs)]
    return Page(title or f"tuco report — {source.path.name}", subtitle, answers, shown, overview=suite_overview(runs), notes=source.notes)


def _synthesis_page(source: Source, title: str | None) -> Page:
    view = synthesis_view(source.synthesis)
    assert view is not None  # the caller checked source.synthesis
    runs = source.children
    subtitle = (
        f"source: {source.path} · synthesis over {len(view.adapters)} adapters ({', '.join(view.adapters)}) · "
        f"{view.holm_family} primary claims judged together (Holm)"
    )
    answers = [a for r in runs if (a := answer(r.metrics, r.name, r.plots)) is not None]
    shown = [results(r, f"run-{k}") for k, r in enumerate(runs)]
    return Page(title or f"tuco synthesis — {source.path.name}", subtitle, answers, shown, synthesis=view, overview=suite_overview(runs))


def comparison_page(sources: list[Source], title: str | None = None) -> Page:
    """The page comparing runs: every run's answers, then the prompt-by-prompt comparison."""
    answers = [a for s in sources for r in s.runs if (a := answer(r.metrics, r.name, r.plots)) is not None]
    heading = title or "tuco comparison — " + " vs ".join(s.path.name for s in sources)
    return Page(heading, "comparison of " + " · ".join(str(s.path) for s in sources), answers, [], comparison(sources))
