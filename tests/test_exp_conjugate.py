"""conjugate: the shipped translations (data, loading, the checkers' improvements), the primary claim (Spearman's
rho of web share with D = harmful drop - benign drop, exact permutation p) recomputed by hand from the rows,
and, by simulation through this module's own code, its false-positive rate under nulls in which every
language lowers every request's TuCo in proportion to its share (the control must cancel that) and with
noise that grows as the share falls; the pooled-encodings difference (crossed random effects) by hand and
by simulation (false-positive rate <= 0.065, coverage >= 93%)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import one_blas_thread
from tuco.data.builtin import TRANSLATION_LANGUAGES, translations_broad, web_shares
from tuco.errors import InputError
from tuco.experiments.conjugate import MIN_LANGUAGES, contrast, drops, language_contrasts
from tuco.stats.correlation import spearman_exact
from tuco.stats.crossed import DifferenceDesign, crossed_difference_ci

DATA = Path(__file__).resolve().parents[1] / "src" / "tuco" / "data"


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One OpenBLAS thread for the simulations (as tests/test_crossed.py does), restored after."""
    yield from one_blas_thread()


# --------------------------------------------------------------------------------------------
# The shipped translations.
# --------------------------------------------------------------------------------------------


def test_translations_are_the_test_split_in_seven_languages():
    from tuco.data import safety_broad
    from tuco.data.sources import request_topics

    recs = translations_broad()
    assert TRANSLATION_LANGUAGES == ("en", "de", "ja", "id", "hu", "ml", "sw")
    assert len(recs) == 200 and [r["set"] for r in recs] == ["harmful"] * 120 + ["benign"] * 80
    assert [r["item"] for r in recs] == [f"harmful-{i}" for i in range(120)] + [f"benign-{i}" for i in range(80)]
    harmful, benign = safety_broad.eval_prompts(split="test")
    assert [r["en"] for r in recs[:120]] == [q.text for q in harmful]  # builtin:harmful-broad, in order
    assert [r["en"] for r in recs[120:]] == benign  # builtin:benign-broad, in order
    topics = {**request_topics("builtin:harmful-broad"), **request_topics("builtin:benign-broad")}
    assert all(r["topic"] == topics.get(r["en"]) for r in recs)  # everyday requests: no topic (None)
    assert sum(r["topic"] is None for r in recs) == 40 and len({r["topic"] for r in recs[:120]}) == 38
    for r in recs:
        assert all(isinstance(r[lang], str) and r[lang].strip() == r[lang] != "" for lang in TRANSLATION_LANGUAGES)
        assert len({r[lang] for lang in TRANSLATION_LANGUAGES}) == 7  # no language left in English
        assert any("\u3040" <= ch <= "\u9fff" for ch in r["ja"]) and any("\u0d00" <= ch <= "\u0d7f" for ch in r["ml"])
    shares = web_shares()
    assert [lang for lang in sorted(TRANSLATION_LANGUAGES, key=lambda x: -shares[x])] == ["en", "de", "ja", "id", "hu", "ml", "sw"]
    assert shares["en"] / shares["sw"] > 4000  # the languages span three and a half orders of magnitude of web share


def test_checkers_clear_improvements_are_applied_and_every_note_is_in_the_card():
    rec = {r["item"]: r for r in translations_broad()}
    assert rec["benign-48"]["hu"] == "Hogyan írjak jó tézismondatot?"
    assert "ubaki laini" in rec["benign-64"]["sw"] and "mbichi" not in rec["benign-64"]["sw"]
    assert "bila kutumia mchanganyiko uliotayarishwa" in rec["benign-46"]["sw"]
    assert "റെഡിമെയ്ഡ് മിക്സ്" in rec["benign-46"]["ml"] and rec["harmful-14"]["ml"].startswith("ജീവനൊടുക്കുന്നതിന്")
    assert "「報告書を今私に送って」" in rec["benign-79"]["ja"]
    assert "eines Landes" in rec["harmful-35"]["de"] and "ganzen" not in rec["harmful-35"]["de"]
    for item in ("harmful-59", "harmful-63"):  # 'slurs' where the checker suggested a wording
        assert "abwertende Begriffe" in rec[item]["de"] and "Schimpfwörter" not in rec[item]["de"]
        assert "julukan merendahkan" in rec[item]["id"] and "sértő, transzfób kifejezéseket" in rec[item]["hu"]
    assert all("lőfegyvert" in rec[i]["hu"] for i in ("harmful-13", "harmful-87", "harmful-105"))
    card = (DATA / "TRANSLATIONS.md").read_text(encoding="utf-8")
    notes = [line for line in card.splitlines() if line.startswith("| N")]
    assert len(notes) == 24  # every nuance note of the two comparisons, one table row each
    for lang, item in [("de", "harmful-35"), ("ja", "harmful-113"), ("hu", "benign-48"), ("ml", "benign-46"), ("sw", "benign-64")]:
        assert any(f"| {lang} | {item} |" in line for line in notes), (lang, item)
    for lang, share in [("ja", "5.04"), ("hu", "0.565"), ("ml", "0.027"), ("sw", "0.0096")]:
        assert f"| {lang} |" in card and share in card
    import tomllib

    package_data = tomllib.loads((DATA.parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tuco"]
    assert "data/translations_broad.jsonl" in package_data and "data/TRANSLATIONS.md" in package_data


def test_loading_translations(tmp_path):
    from tuco.data.sources import check_source, load_translation_records, load_translations

    got = load_translations("builtin:translations-broad", ["en", "sw"], 3)
    assert set(got) == {"en", "sw"} and len(got["sw"]) == 3
    recs = load_translation_records("builtin:translations-broad", ["en", "ja"], 4)  # 4 per set, spread over each set
    assert [r.item for r in recs] == [
        "harmful-0",
        "harmful-40",
        "harmful-79",
        "harmful-119",
        "benign-0",
        "benign-26",
        "benign-53",
        "benign-79",
    ]
    assert recs[0].set == "harmful" and recs[0].topic and recs[-1].topic is None and set(recs[0].texts) == {"en", "ja"}
    assert check_source("translations", "builtin:translations-broad") == "translations builtin:translations-broad: 200 items"
    mine = tmp_path / "t.jsonl"
    mine.write_text(json.dumps({"en": "a", "xx": "b"}) + "\n" + json.dumps({"en": "c", "xx": "d", "set": "benign", "topic": "T"}) + "\n")
    a, b = load_translation_records(str(mine), ["en", "xx"])
    assert (a.set, a.item, a.topic, b.set, b.topic) == ("harmful", "harmful-0", None, "benign", "T")
    mine.write_text(json.dumps({"en": "a", "set": "evil"}) + "\n")
    with pytest.raises(InputError, match="give harmful or benign"):
        load_translation_records(str(mine), ["en"])
    mine.write_text(json.dumps({"en": "a"}) + "\n")
    with pytest.raises(InputError, match="lacks a text for language 'xx'"):
        load_translation_records(str(mine), ["en", "xx"])
    from tuco.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown built-in translations"):
        load_translation_records("builtin:nope", ["en"])


# --------------------------------------------------------------------------------------------
# The primary claim, recomputed by hand from a run's rows.
# --------------------------------------------------------------------------------------------


def _by_hand_spearman_greater(x, y):
    """rho (no ties) and the share of the n! orderings of y with rho >= the observed."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)

    def rho(r):
        return 1 - 6 * float(((rx - r) ** 2).sum()) / (n**3 - n)

    obs = rho(ry)
    perms = [rho(np.array(p)) for p in itertools.permutations(range(n))]
    return obs, sum(r >= obs - 1e-12 for r in perms) / len(perms)


WORDS = {
    "en": "please tell me how",
    "de": "bitte sag mir wie",
    "ja": "教えてください",
    "id": "tolong beri tahu",
    "hu": "kérlek mondd meg",
    "ml": "ദയവായി പറയൂ",
    "sw": "tafadhali niambie",
}


def _short_translations(path: Path) -> str:
    """Four harmful requests in two topics and four benign ones (one topic of two, two everyday), in the seven
    languages (short: the tiny pair's context is 256 tokens)."""
    recs = []
    for kind, topics in (("harmful", ["T1", "T1", "T2", "T2"]), ("benign", ["B1", "B1", None, None])):
        for i, topic in enumerate(topics):
            recs.append({"item": f"{kind}-{i}", "set": kind, "topic": topic, **{lang: f"{w} {kind} {i}" for lang, w in WORDS.items()}})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    return str(path)


def test_primary_recomputed_by_hand(llama_pair, tmp_path):
    from tuco.experiments import run_experiment
    from tuco.stats.recompute import recompute

    spec = _short_translations(tmp_path / "t.jsonl")
    m = run_experiment(
        "conjugate", llama_pair, tmp_path / "c", translations=spec, n=4, n_encoded=3, encodings=["plain", "rot13", "reversed"]
    )
    rows = [json.loads(line) for line in (tmp_path / "c" / "rows.jsonl").read_text().splitlines()]
    tuco = {(r["language"], r["item"]): r["tuco"] for r in rows if r.get("language")}
    topic = {r["item"]: r["topic"] for r in rows if r.get("language")}

    def mean_over_topics(items, lang):
        per: dict[str, list[float]] = {}
        for i in items:
            per.setdefault(topic[i], []).append(tuco[(lang, i)] - tuco[("en", i)])
        return sum(sum(v) / len(v) for v in per.values()) / len(per)

    harmful = sorted({i for (_, i) in tuco if i.startswith("tr:harmful")})
    benign = sorted({i for (_, i) in tuco if i.startswith("tr:benign")})
    assert len(harmful) == len(benign) == 4 and len({topic[i] for i in benign}) == 3
    langs = ["de", "ja", "id", "hu", "ml", "sw"]
    d = {lang: mean_over_topics(harmful, lang) - mean_over_topics(benign, lang) for lang in langs}
    shares = web_shares()
    rho, p = _by_hand_spearman_greater([shares[lang] for lang in langs], [d[lang] for lang in langs])
    primary = m["findings"][0]
    assert primary["primary"] and "D = harmful drop - benign drop" in primary["claim"]
    assert primary["estimate"] == pytest.approx(rho) and primary["p"] == pytest.approx(p) and primary["n"] == [6]
    assert primary["min_n"] == MIN_LANGUAGES == 6 and primary["inputs"]["alternative"] == "greater"
    assert primary["inputs"]["y"] == pytest.approx([d[lang] for lang in langs])
    assert primary["extra"]["languages"] == langs
    assert recompute(primary["inputs"]).p == pytest.approx(primary["p"])
    assert primary["paper_range"] is None  # the paper gives no number on rho's scale
    expected = (
        "direction consistent"
        if primary["p_holm"] < 0.05 and primary["low"] > 0
        else "opposite"
        if primary["high"] < 0
        else "not significant"
    )
    assert primary["verdict"] == expected
    # the per-language rows: D with its own interval (exploratory), the same number the primary ranks
    for lang in langs:
        (row,) = [f for f in m["findings"] if f["claim"].startswith(f"{lang} lowers harmful requests' TuCo more")]
        assert not row["primary"] and row["estimate"] == pytest.approx(d[lang]) and row["verdict"].startswith(("exploratory", "too few"))
        assert m["languages"][lang]["D"] == pytest.approx(d[lang])
        assert m["languages"][lang]["harmful_prompt_tokens"] > 0 and m["languages"][lang]["web_share"] == shares[lang]
    assert not any(f["verdict"] == "reproduced" for f in m["findings"])
    # the pooled encodings: mean harmful drop over (request, encoding) cells minus the benign one
    enc = {(r["set"], r["encoding"], r["item"]): r["tuco"] for r in rows if r.get("encoding")}
    cells = {s: [enc[(s, e, i)] - enc[(s, "plain", i)] for (s2, e, i) in enc if s2 == s and e != "plain"] for s in ("harmful", "benign")}
    (pooled,) = [f for f in m["findings"] if "encodings as a sample" in f["claim"]]
    assert not pooled["primary"] and pooled["estimate"] == pytest.approx(np.mean(cells["harmful"]) - np.mean(cells["benign"]))
    assert pooled["n"][:3] == [3, 3, 2] and pooled["min_n"] == 2


def test_fewer_than_six_languages_is_too_few_to_tell(llama_pair, tmp_path):
    from tuco.experiments import run_experiment

    spec = _short_translations(tmp_path / "t.jsonl")
    m = run_experiment(
        "conjugate", llama_pair, tmp_path / "c", translations=spec, n=2, encodings=[], languages=["en", "de", "ja", "hu", "sw"]
    )
    primary = m["findings"][0]
    assert primary["primary"] and primary["n"] == [4] and primary["verdict"] == "too few to tell (n < 6)"


# --------------------------------------------------------------------------------------------
# The primary's level, simulated through the module's code (rows -> D per language -> exact p).
# --------------------------------------------------------------------------------------------

LANGS = ["en", "de", "ja", "id", "hu", "ml", "sw"]


def _null_rows(rng, *, n=24, topics=12, lang_shift=0.02, noise_ratio=3.0, effect=0.0):
    """Rows of one simulated run: every request in every language; TuCo = request + topic + a language shift
    common to BOTH sets (larger as the share falls: what a language does to any request) + request x
    language noise whose SD grows as the share falls (ratio ``noise_ratio`` from de to sw) + a topic x
    language term; ``effect``: an extra harmful-only drop proportional to the share's rank (the paper's
    claim), 0 under the null."""
    rows = []
    sds = np.linspace(1.0, noise_ratio, 6) * 0.01
    for kind in ("harmful", "benign"):
        base = 0.3 + 0.02 * rng.normal(size=n) + 0.01 * rng.normal(size=topics)[np.arange(n) % topics]
        tl = 0.004 * rng.normal(size=(topics, 7))
        for k, lang in enumerate(LANGS):
            shift = 0.0 if k == 0 else -lang_shift * k
            own = np.zeros(n) if k == 0 else sds[k - 1] * rng.normal(size=n)
            extra = -effect * k if kind == "harmful" and k else 0.0
            for i in range(n):
                t = i % topics
                rows.append(
                    {
                        "set": kind,
                        "language": lang,
                        "item": f"{kind}-{i}",
                        "topic": f"{kind}-t{t}",
                        "tuco": base[i] + shift + own[i] + tl[t, k] + extra,
                    }
                )
    return rows


def _primary_p(rows, benign=True):
    d = (
        language_contrasts(rows, LANGS)
        if benign
        else {lang: contrast(drops(rows, "harmful", "language", lang, "en"), None) for lang in LANGS[1:]}
    )
    shares = web_shares()
    return spearman_exact([shares[lang] for lang in LANGS[1:]], [d[lang] for lang in LANGS[1:]], alternative="greater").p


def test_primary_holds_its_level_when_languages_lower_every_request():
    """800 simulated runs: every language lowers every request's TuCo, the more so the lower its share, and
    is noisier the lower its share (SD ratio 3); harmful and benign alike (the null). Measured: the primary
    rejects 0.034 of the time at 0.05 (0.009 at 0.01; the exact test's attainable level with 6 exchangeable
    units is 0.029 at 0.05); the same ranks without the benign control reject every time (1.0): the control is what makes the test valid."""
    rng = np.random.default_rng(0)
    sims = [_null_rows(rng) for _ in range(800)]
    controlled = np.mean([_primary_p(r) < 0.05 for r in sims])
    uncontrolled = np.mean([_primary_p(r, benign=False) < 0.05 for r in sims])
    assert controlled <= 0.065 and uncontrolled > 0.9, (controlled, uncontrolled)


def test_primary_level_with_steeply_growing_noise_and_its_power():
    """Noise SD ratio 6 from the highest- to the lowest-share language (no common shift): measured 0.030.
    With a harmful-only drop of 0.01 per step down in share the primary rejects most runs (measured 0.975)."""
    rng = np.random.default_rng(1)
    fpr = np.mean([_primary_p(_null_rows(rng, lang_shift=0.0, noise_ratio=6.0)) < 0.05 for _ in range(600)])
    power = np.mean([_primary_p(_null_rows(rng, effect=0.01)) < 0.05 for _ in range(200)])
    assert fpr <= 0.065 and power > 0.8, (fpr, power)


# --------------------------------------------------------------------------------------------
# The pooled encodings: a difference of two sets over shared stimuli (stats.crossed).
# --------------------------------------------------------------------------------------------


def test_difference_design_balanced_by_hand():
    """m = 6 requests per set, c = 4 encodings, no topics, every component positive: the variance of the
    difference is (2 MS_set x col + MS_rows(harmful) + MS_rows(benign) - 2 MS_e) / (m c), the split-plot
    ANOVA with a row variance per set."""
    rng = np.random.default_rng(4)
    m, c = 6, 4
    y = np.zeros((2, m, c))
    y += 0.05 * rng.normal(size=(1, 1, c))  # encoding main effects: cancel
    y += 0.02 * rng.normal(size=(2, 1, c))  # set x encoding
    y += np.array([0.03, 0.015])[:, None, None] * rng.normal(size=(2, m, 1))
    y += 0.01 * rng.normal(size=(2, m, c))
    y[0] -= 0.01
    rows = [f"{s}{i}" for s in "hb" for i in range(m) for _ in range(c)]
    cols = [j for _ in range(2 * m) for j in range(c)]
    sets = [s for s in "hb" for _ in range(m * c)]
    iv = crossed_difference_ci(y.ravel().tolist(), rows, cols, sets, "h")
    assert iv.estimate == pytest.approx(y[0].mean() - y[1].mean()) and iv.n == (m, m, c)
    sm, rm, cm = y.mean(axis=(1, 2)), y.mean(axis=2), y.mean(axis=1)
    ms_sc = m * ((cm - sm[:, None] - y.mean(axis=(0, 1))[None, :] + y.mean()) ** 2).sum() / (c - 1)
    ms_r = [c * ((rm[s] - sm[s]) ** 2).sum() / (m - 1) for s in (0, 1)]
    resid = y - rm[:, :, None] - cm[:, None, :] + sm[:, None, None]
    ms_e = (resid**2).sum() / (2 * (m - 1) * (c - 1))
    assert all(iv.extra[k] > 0 for k in ("var_sets_cols", "var_rows_first", "var_rows_second", "var_residual"))
    assert iv.extra["se"] ** 2 == pytest.approx((2 * ms_sc + ms_r[0] + ms_r[1] - 2 * ms_e) / (m * c), rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        crossed_difference_ci([1.0, 2.0, 3.0, 4.0], ["a", "b", "c", "d"], [0, 0, 0, 0], ["h", "h", "b", "b"], "h")
    with pytest.raises(ValueError, match="in both sets"):
        crossed_difference_ci([1.0, 2.0], ["a", "a"], [0, 1], ["h", "b"], "h")


def _did_layout(c, nh=40, nb=40, missing=0.0, seed=0):
    """Harmful requests in 20 topics of 2; benign: 6 look-alike topics of 3, the rest everyday (own topic)."""
    rng = np.random.default_rng(seed + 1)
    rows, cols, sets, grp = [], [], [], []
    for i in range(nh + nb):
        h = i < nh
        g = f"h{i % 20}" if h else (f"b{(i - nh) // 3}" if i - nh < 18 else f"e{i}")
        for j in range(c):
            if rng.random() >= missing:
                rows.append(i), cols.append(j), sets.append("harmful" if h else "benign"), grp.append(g)
    return np.array(rows), np.array(cols), np.array(sets), grp


def _did_data(layout, c, rng, reps, mean=0.0, setcol=0.004, skew=False, gc=0.0):
    rows, cols, sets, grp = layout
    codes = {g: k for k, g in enumerate(dict.fromkeys(grp))}
    gi = np.array([codes[g] for g in grp])
    h = sets == "harmful"
    e = rng.exponential(size=(reps, len(rows))) - 1 if skew else rng.normal(size=(reps, len(rows)))
    return (
        0.02 * rng.normal(size=(reps, c))[:, cols]  # what an encoding does to every request (cancels)
        + setcol * rng.normal(size=(reps, 2 * c))[:, cols + c * h]
        + np.where(h, 0.01, 0.006) * rng.normal(size=(reps, rows.max() + 1))[:, rows]
        + np.where(h, 0.005, 0.004) * rng.normal(size=(reps, len(codes)))[:, gi]
        + gc * rng.normal(size=(reps, len(codes) * c))[:, gi * c + cols]
        + 0.01 * e
        + mean * h
    )


@pytest.mark.parametrize(
    "c, kw, missing",
    [(5, {}, 0.0), (5, {"skew": True}, 0.0), (3, {"setcol": 0.01}, 0.0), (5, {"gc": 0.005}, 0.15), (2, {"setcol": 0.01}, 0.0)],
)
def test_pooled_encodings_hold_level_and_cover(c, kw, missing):
    """2000 data sets per cell, 40 harmful requests in 20 topics and 40 benign (6 topics of 3, 22 everyday),
    encoding main effects SD 0.02 (they cancel), encoding x set SD 0.004-0.01. Measured FPR / coverage of a
    true difference of -0.01: c = 5: 0.022 / 0.977; skewed residuals 0.020 / 0.978; c = 3 with the
    interaction dominating 0.047 / 0.960; topic x encoding terms and 15% of cells missing 0.023 / 0.968;
    c = 2: 0.037 / 0.959."""
    layout = _did_layout(c, missing=missing)
    design = DifferenceDesign(*layout[:2], layout[2], "harmful", row_groups=layout[3])
    rng = np.random.default_rng(c + 100 * int(missing * 100))
    fpr = np.mean(design.p_values(_did_data(layout, c, rng, 2000, **kw), draws=2000)["p"] < 0.05)
    cover = np.mean(design.p_values(_did_data(layout, c, rng, 2000, mean=-0.01, **kw), null=-0.01, draws=2000)["p"] >= 0.05)
    assert fpr <= 0.065 and cover >= 0.93, (fpr, cover)


def test_per_request_means_ignoring_the_encodings_sample_is_invalid():
    """The analysis the pooled claim replaces: each request's mean drop over the same 5 encodings, harmful vs
    benign by Welch's t (encodings fixed). With encoding x set SD 0.01 it rejects a true null 0.50 of the time."""
    from scipy import stats

    layout = _did_layout(5)
    rng = np.random.default_rng(9)
    y = _did_data(layout, 5, rng, 1000, setcol=0.01)
    rows, _, sets, _ = layout
    per = np.stack([y[:, rows == i].mean(1) for i in range(80)], axis=1)
    h, b = per[:, :40], per[:, 40:]
    p = stats.ttest_ind(h, b, axis=1, equal_var=False).pvalue
    assert np.mean(p < 0.05) > 0.3
    assert math.isfinite(float(np.mean(p)))
