"""The report model on its own (pure data, no HTML): strata and natural order, the statistics it shows
against independent computations, what an overall row may pool, rankings within one alpha/condition,
fitted axes and ticks, tokens decoded from their tokenizer's alphabet, findings, tables from the schema."""

from __future__ import annotations

import random
import statistics

import numpy as np
import pytest

from tuco.report import charts
from tuco.report.findings import answer
from tuco.report.groups import natural_key, ranked, spread, strata, summary
from tuco.report.model import paired, profiles, tokens
from tuco.report.tables import TEXT_CHARS, rows_table
from tuco.report.text import ELLIPSIS, clip
from tuco.report.tokens import display_token, token_texts, token_view
from tuco.runs.schema import columns, group_field, headline


def gen_row(i, condition, alpha, tuco, item=None, **extra):
    return {
        "kind": "generation",
        "id": f"{condition}-{alpha}-{i}",
        "item": str(item if item is not None else i),
        "prompt": f"prompt {i}",
        "tuco": tuco,
        "alpha": alpha,
        "condition": condition,
        "response": "ok",
        "tokens": ["ok"],
        "token_tuco": [tuco],
        **extra,
    }


def test_natural_sort():
    assert sorted(["k=16", "k=2", "k=0", "alpha=1.25", "alpha=0.5", "alpha=1"], key=natural_key) == [
        "alpha=0.5",
        "alpha=1",
        "alpha=1.25",
        "k=0",
        "k=2",
        "k=16",
    ]
    # a hyphen after a word is not a minus sign: suffix-10 after suffix-9; alpha=-1 before alpha=0
    assert sorted(["suffix-10", "suffix-2", "suffix-0", "alpha=0", "alpha=-1", "k0-10", "k0-9"], key=natural_key) == [
        "alpha=-1",
        "alpha=0",
        "k0-9",
        "k0-10",
        "suffix-0",
        "suffix-2",
        "suffix-10",
    ]


def test_spread_matches_an_independent_computation():
    rng = random.Random(3)
    values = [rng.random() for _ in range(37)]
    s = spread(values)
    assert s.n == 37 and s.mean == pytest.approx(float(np.mean(values)), abs=1e-12)
    for got, q in ((s.q1, 25), (s.median, 50), (s.q3, 75)):
        assert got == pytest.approx(float(np.percentile(values, q)), abs=1e-12)
    assert (s.low, s.high) == (min(values), max(values)) and spread([]) is None


def test_strata_split_by_alpha_only_where_it_varies_inside_a_condition():
    rows = [gen_row(i, f"k={k}", 1.0, 0.5) for k in (16, 0, 2) for i in range(2)]
    assert [s.label for s in strata(rows, "condition")] == ["k=0", "k=2", "k=16"]
    rows += [gen_row(i, "k=0", 0.5, 0.2) for i in range(2)]  # k=0 now at two alphas
    assert [s.label for s in strata(rows, "condition")] == ["k=0 · alpha 0.5", "k=0 · alpha 1", "k=2 · alpha 1", "k=16 · alpha 1"]
    schema1 = [{"id": str(i), "prompt": "p", "prompt_tuco": 0.1 * i, "alpha": a} for i in range(2) for a in (1.0, 0.0)]
    assert group_field(schema1) == "alpha" and [s.label for s in strata(schema1, "alpha")] == ["0", "1"]


def test_the_overall_row_never_pools_alphas():
    one_alpha = [gen_row(i, c, 1.0, 0.1 * i) for c in ("clean", "attacked") for i in range(3)]
    sm = summary(strata(one_alpha, "condition"), "condition")
    assert (
        sm.overall is not None and sm.overall.n == 6 and sm.overall.mean == pytest.approx(statistics.fmean(headline(r) for r in one_alpha))
    )
    assert "2 condition groups at alpha 1" in sm.pooled and not sm.note
    sweep = [gen_row(i, f"alpha={a:g}", a, 0.0 if a == 0 else 0.5) for a in (0.0, 1.0) for i in range(3)]
    sm = summary(strata(sweep, "condition"), "condition")
    assert sm.overall is None and "different alphas (0, 1)" in sm.note and [n for n, _ in sm.lines] == ["alpha=0", "alpha=1"]


def test_rows_of_different_kinds_are_neither_pooled_nor_ranked_together():
    score = [{"kind": "score", "id": f"s{i}", "prompt": "p", "tuco": 0.9, "tokens": ["a"], "token_tuco": [0.9]} for i in range(2)]
    gens = [gen_row(i, None, 1.0, 0.1) for i in range(2)]
    parts = strata(score + gens, None)
    assert [p.label for p in parts] == ["all · generation", "all · score"]
    assert summary(parts, None).overall is None and "different kinds (generation, score)" in summary(parts, None).note


def test_rankings_stay_within_one_alpha():
    rows = [gen_row(i, "alpha=0", 0.0, 0.0) for i in range(4)] + [gen_row(i, "alpha=1", 1.0, 0.3 + 0.1 * i) for i in range(4)]
    got = tokens(rows, strata(rows, "condition"), "condition")
    at0, at1 = got.rankings
    assert at0.label == "alpha=0" and at0.same == 0.0 and len(at0.most) == 2 and not at0.least  # all TuCo 0: examples, no ranking
    assert [v.id for v in at1.most] == ["alpha=1-1.0-3", "alpha=1-1.0-2"] and [v.id for v in at1.least] == [
        "alpha=1-1.0-0",
        "alpha=1-1.0-1",
    ]
    most, least = ranked(rows[4:], 3)
    assert [headline(r) for r in most] == pytest.approx([0.6, 0.5, 0.4]) and [headline(r) for r in least] == pytest.approx([0.3])


def test_pairs_by_item_at_one_alpha():
    rows = [gen_row(i, c, 1.0, 0.1 * i, item=i) for c in ("k=0", "k=16") for i in range(5)]
    views = {id(r): token_view(r, "condition") for r in rows}
    got = paired(rows, "condition", views)
    assert len(got) == 3 and all(a.id.replace("k=0", "k=16") == b.id for a, b in got)
    mixed = rows + [gen_row(i, "k=0", 0.5, 0.1, item=i) for i in range(5)]  # k=0 also at alpha 0.5: pairs only at one alpha
    views = {id(r): token_view(r, "condition") for r in mixed}
    assert all(dict(a.meta)["alpha"] == dict(b.meta)["alpha"] for a, b in paired(mixed, "condition", views))


def test_fitted_axis_keeps_close_groups_apart():
    groups = [(name, vals, spread(vals)) for name, vals in (("a", [0.47, 0.471, 0.472]), ("b", [0.528, 0.529, 0.53]))]
    ch = charts.strips(groups, width=640)
    plot_w = 640 - ch.left - 14
    assert ch.rows[1].median - ch.rows[0].median > plot_w / 2  # on a fixed 0-1 axis they would be 37 px apart
    assert ch.axis.lo < 0.47 and ch.axis.hi > 0.53 and ch.axis.hi - ch.axis.lo < 0.1
    assert ch.ticks and all(ch.left <= t.at <= 640 for t in ch.ticks) and len({t.text for t in ch.ticks}) == len(ch.ticks)
    wide = charts.fitted_axis([0.0, 1.0])
    assert (wide.lo, wide.hi) == (0.0, 1.0) and [wide.label(t) for t in wide.ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]


def test_layer_profiles_have_ticks_and_quartile_bands():
    rows = [gen_row(i, "c", 1.0, 0.5, layer_ptc_l1=[10.0 * i, 20.0, 30.0, 40.0, 50.0, 60.0], layer_ftc_l1=[1.0] * 6) for i in range(5)]
    panels = profiles(strata(rows, "condition"))
    (p,) = panels.panels
    assert [t.text for t in p.xticks] == ["0", "2", "4"]  # layers 0..5
    assert [t.text for t in p.yticks][0] == "0" and len(p.yticks) >= 3
    assert all(p.y <= t.at <= p.y + p.h for t in p.yticks) and all(p.x <= t.at <= p.x + p.w for t in p.xticks)
    ptc = p.series[0]
    first = [float(xy.split(",")[1]) for xy in ptc.band.split()]
    q1, q3 = np.percentile([0, 10, 20, 30, 40], [25, 75])  # layer 0 across rows: band from q1 to q3
    y = lambda v: p.y + p.h - p.h * v / charts.axis(0.0, 60.0, 4).hi  # noqa: E731
    assert first[0] == pytest.approx(y(q3), abs=0.06) and first[-1] == pytest.approx(y(q1), abs=0.06)


def test_byte_level_tokens_read_as_text(tokenizer):
    assert display_token("truthâĢĻs") == "truth’s" and display_token("ĠhelloĊ") == " hello\n"
    assert token_texts(["Ġca", "fÃ", "©"]) == [" ca", "f", "é"]  # a character split over tokens shows where it completes
    text = "The truth’s naïve café — 日本\n\tend"
    toks = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False).input_ids)
    assert "".join(token_texts(toks)) == text and "â" not in "".join(token_texts(toks))
    assert token_texts(["▁the", "▁caf", "<0xC3>", "<0xA9>", "<0x0A>"]) == [" the", " caf", "", "é", "\n"]  # SentencePiece
    assert token_texts(["café", "naïve"]) == ["café", "naïve"]  # not byte-level (no markers, not UTF-8 as bytes): as they are


def test_texts_are_cut_with_an_ellipsis():
    long = "word " * 200
    assert clip(long, 10) == long[:9] + ELLIPSIS and clip(long, 10, keep_end=True) == ELLIPSIS + long[-9:] and clip("short", 10) == "short"
    row = gen_row(0, "c", 1.0, 0.5, prompt=long)
    table = rows_table([row], "condition")
    cell = table.rows[0][table.columns.index("prompt")]
    assert cell.long and len(cell.text) == TEXT_CHARS and cell.text.endswith(ELLIPSIS)
    (prompt_segment, _) = token_view(row, "condition").segments
    assert prompt_segment.tokens is None and prompt_segment.text.startswith(ELLIPSIS)


def test_token_views_follow_the_row_kind():
    score = {"kind": "score", "id": "s", "prompt": "p", "tuco": 0.2, "tokens": ["a", "Ġb"], "token_tuco": [0.1, 0.3]}
    assert [s.label for s in token_view(score, None).segments] == ["prompt"]
    assert [t.text for t in token_view(score, None).segments[0].tokens] == ["a", " b"]
    forced = dict(score, response="x", response_tokens=["x"], response_token_tuco=[0.9])  # teacher-forced response
    assert [s.label for s in token_view(forced, None).segments] == ["prompt", "response"]
    old_gen = {"id": "g", "prompt": "p", "prompt_tuco": 0.4, "response": "ok", "tokens": ["ok"], "token_tuco": [0.4]}  # schema 1
    assert [s.label for s in token_view(old_gen, None).segments] == ["prompt", "response"]
    choice = {"kind": "choice", "id": "c", "prompt": "p", "tuco": 0.3, "chosen": "Yes", "tokens": ["Yes"], "token_tuco": [0.1]}
    assert token_view(choice, None) is None


def test_findings_primary_first_exploratory_marked_old_runs_unmarked():
    new = {
        "experiment": "e",
        "findings": [
            {"claim": "explore", "primary": False, "estimate": 0.1, "low": -0.2, "high": 0.3, "verdict": "not significant"},
            {
                "claim": "main",
                "primary": True,
                "measured": "AUC 0.9 [0.8, 1.0]",
                "p_holm": 0.012,
                "verdict": "reproduced",
                "alpha_grid": [1, 2],
            },
        ],
    }
    a = answer(new, "e", [])
    assert [f.claim for f in a.findings] == ["main", "explore"] and a.marks_primary and a.has_p
    assert a.findings[1].measured == "0.100 [-0.200, 0.300]" and a.findings[0].tone == "ok" and a.findings[1].tone == "meh"
    assert a.findings[0].extra == [("alpha_grid", "1, 2")]
    old = answer(
        {"experiment": "e", "findings": [{"claim": "c", "measured": "m", "verdict": "opposite", "ci": [0, 1], "n": "3 vs 4"}]}, "e", []
    )
    assert not old.marks_primary and not old.has_p and old.findings[0].tone == "bad" and old.findings[0].extra == []
    assert answer({}, "e", []) is None


def test_the_rows_table_takes_its_columns_from_the_schema():
    rows = [gen_row(i, "c", 1.0, 0.5, response="") for i in range(3)] + [
        {"kind": "choice", "id": "x", "prompt": "p", "tuco": 0.1, "chosen": "A"}
    ]
    table = rows_table(rows, "condition")
    assert table.columns == columns(rows, "condition") and "chosen" in table.columns and "response" not in table.columns
    tuco = table.columns.index("tuco")
    assert [c.sort for c in (r[tuco] for r in table.rows)] == [0.5, 0.5, 0.5, 0.1] and table.rows[0][tuco].text == "0.5000"
