"""Random-effects synthesis over adapters: hand-computed answers, adapters that disagree in sign, and the
coverage of the pooled interval at k = 5 by simulation (>= 93% at nominal 95%, with and without between-
adapter variance). Monte-Carlo SE of a coverage near 0.95 with 2000 data sets: 0.0049."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tuco.stats.intervals import Interval, auc_ci
from tuco.stats.synthesis import SE_RATIO_FOR_UNION, se_from_interval, synthesize, synthesize_intervals

T2 = 4.302653  # t quantile 0.975 on 2 df
T1 = 12.706205  # on 1 df


def test_hand_computed_homogeneous():
    """Estimates 1, 2, 3 with SE 1: Q = 1 + 0 + 1 = 2 = k - 1, so tau^2 = 0 and I^2 = 0; the Knapp-Hartung
    factor is Q / (k - 1) = 1, SE(mu) = sqrt(1/3); interval 2 +- 4.302653 sqrt(1/3); the prediction interval
    2 +- 12.706205 sqrt(1/3)."""
    s = synthesize([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert (s.estimate, s.k, s.tau2, s.tau, s.i2, s.q) == pytest.approx((2.0, 3, 0.0, 0.0, 0.0, 2.0))
    assert s.q_p == pytest.approx(math.exp(-1))  # chi-square on 2 df: P(X > 2) = e^-1
    assert (s.low, s.high) == pytest.approx((2 - T2 / math.sqrt(3), 2 + T2 / math.sqrt(3)), rel=1e-6)
    assert (s.pred_low, s.pred_high) == pytest.approx((2 - T1 / math.sqrt(3), 2 + T1 / math.sqrt(3)), rel=1e-6)
    from scipy import stats

    assert s.p == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))


def test_hand_computed_heterogeneous():
    """Estimates 0, 0, 6 with SE 1: Q = 4 + 4 + 16 = 24; Paule-Mandel solves 24 / (1 + tau^2) = 2, tau^2 = 11
    (DerSimonian-Laird agrees with equal SEs: 22 / (3 - 1)); I^2 = 22/24; SE(mu) = sqrt(12/3) = 2 (the
    Knapp-Hartung factor is 1); P(chi2_2 > 24) = e^-12; the prediction interval 2 +- t_1 sqrt(11 + 4)."""
    s = synthesize([0.0, 0.0, 6.0], [1.0, 1.0, 1.0])
    assert (s.estimate, s.tau2, s.i2, s.q) == pytest.approx((2.0, 11.0, 22 / 24, 24.0))
    assert s.q_p == pytest.approx(math.exp(-12))
    assert (s.low, s.high) == pytest.approx((2 - 2 * T2, 2 + 2 * T2), rel=1e-6)
    assert s.pred_high - s.estimate == pytest.approx(T1 * math.sqrt(15), rel=1e-6)


def test_the_ad_hoc_correction_keeps_agreeing_estimates_from_a_too_narrow_interval():
    """Estimates that agree more than their SEs say (q = 0.02 / 2): the interval keeps the width the SEs
    imply (factor max(1, q) = 1) instead of shrinking by sqrt(q)."""
    s = synthesize([1.0, 1.1, 0.9], [1.0, 1.0, 1.0])
    assert s.high - s.estimate == pytest.approx(T2 / math.sqrt(3), rel=1e-6)


def test_adapters_that_disagree_in_sign():
    """Two adapters with tight intervals on opposite sides of 0 and three more: the pooled interval and the
    prediction interval for a new adapter both include both signs (no verdict for the recipe)."""
    intervals = [(0.07, 0.069, 0.074), (-0.005, -0.007, -0.003), (0.02, 0.018, 0.022), (0.001, -0.001, 0.003), (0.04, 0.037, 0.043)]
    est = [e for e, _, _ in intervals]
    ses = [se_from_interval(lo, hi) for _, lo, hi in intervals]
    assert ses[0] == pytest.approx(0.005 / (2 * 1.959964), rel=1e-5)
    s = synthesize(est, ses)
    assert s.low < 0 < s.high and not s.significant and s.p > 0.05
    assert s.pred_low is not None and s.pred_high is not None and s.pred_low < -0.005 and s.pred_high > 0.07
    assert s.i2 > 0.99 and s.q_p < 1e-10 and s.tau == pytest.approx(0.0306, abs=0.001)
    # the same through Interval objects (identity scale: null 0)
    ivs = [Interval(e, lo, hi, 0.01, (32,), "t") for e, lo, hi in intervals]
    pooled = synthesize_intervals(ivs)
    assert pooled.scale == "identity" and pooled.estimate == pytest.approx(s.estimate) and pooled.low < 0 < pooled.high


def test_two_adapters_have_no_prediction_interval_and_bad_inputs_raise():
    s = synthesize([0.1, 0.2], [0.01, 0.01])
    assert s.pred_low is None and s.pred_high is None and any("fewer than 3" in n for n in s.notes)
    assert s.interval.n == (2,) and "pred_low" not in s.interval.extra
    for args, match in [
        (([0.1], [0.01]), "at least 2"),
        (([0.1, 0.2], [0.01]), "one standard error"),
        (([0.1, 0.2], [0.01, 0.0]), "> 0"),
        (([0.1, float("nan")], [0.01, 0.01]), "finite"),
    ]:
        with pytest.raises(ValueError, match=match):
            synthesize(*args)
    with pytest.raises(ValueError, match="high < low"):
        se_from_interval(1.0, 0.0)


def test_very_unequal_standard_errors_widen_to_the_equal_weight_interval():
    ses = [0.0005, 0.001, 0.002, 0.004, 0.01]
    assert max(ses) / min(ses) > SE_RATIO_FOR_UNION
    s = synthesize([0.003, 0.001, 0.002, -0.004, 0.02], ses)
    y = np.array([0.003, 0.001, 0.002, -0.004, 0.02])
    half = 2.776445 * y.std(ddof=1) / math.sqrt(5)
    assert "equal-weight" in s.method and s.low <= y.mean() - half + 1e-9 and s.high >= y.mean() + half - 1e-9


def test_auc_intervals_pool_on_the_identity_scale_clipped_or_on_logits_on_request():
    rng = np.random.default_rng(0)
    ivs = [auc_ci(rng.normal(1.0 + 0.2 * j, 1, 30), rng.normal(0, 1, 30)) for j in range(4)]
    s = synthesize_intervals(ivs)
    assert s.scale == "identity" and s.null == 0.5 and 0.5 < s.low < s.estimate < s.high <= 1
    assert s.estimate == pytest.approx(synthesize([iv.estimate for iv in ivs], [se_from_interval(iv.low, iv.high) for iv in ivs]).estimate)
    lg = synthesize_intervals(ivs, scale="logit")
    assert lg.scale == "logit" and 0.5 < lg.low < lg.estimate < lg.high < 1 and "logit" in lg.method
    assert min(iv.estimate for iv in ivs) < lg.estimate < max(iv.estimate for iv in ivs)
    # a perfect separation (a bound at 1) has no logit; on the identity scale the bounds stay in [0, 1]
    perfect = [auc_ci(np.linspace(1, 2, 8), np.linspace(0, 0.9, 8)), auc_ci(np.linspace(1, 2, 6), np.linspace(0.5, 1.2, 6))]
    s2 = synthesize_intervals(perfect + ivs[:1])
    assert s2.high <= 1.0 and s2.pred_high is not None and s2.pred_high <= 1.0
    with pytest.raises(ValueError, match="strictly inside"):
        synthesize_intervals([*ivs, perfect[0]], scale="logit")
    with pytest.raises(ValueError, match="different nulls"):
        synthesize_intervals([ivs[0], Interval(0.1, 0.0, 0.2, 0.1, (10,), "t")])


@pytest.mark.parametrize("tau", [0.0, 0.002, 0.01])
@pytest.mark.parametrize("ratio", [1.0, 3.0, 20.0])
def test_coverage_at_five_adapters(tau, ratio):
    """k = 5 adapters, SEs geometric around 0.002 with max/min = ratio; true mean 0.01. Measured coverage
    (2000 data sets), ratio 1 / 3 / 20: tau = 0: 0.996 / 0.997 / 1.000; tau = 0.002 (about the SEs): 0.981 /
    0.960 / 0.979; tau = 0.01: 0.954 / 0.947 / 0.961. (Without the union above a ratio of 5, tau = 0.002 at
    ratio 20 gave 0.88 in 20000 data sets.)"""
    rng = np.random.default_rng(int(tau * 1e4) + int(ratio))
    se = 0.002 * ratio ** np.linspace(-0.5, 0.5, 5)
    hits = 0
    reps = 2000
    y = 0.01 + rng.normal(size=(reps, 5)) * np.sqrt(se**2 + tau**2)
    for row in y:
        s = synthesize(row, se)
        hits += s.low <= 0.01 <= s.high
    cover = hits / reps
    assert cover >= 0.93, cover


# --- tuco synthesize RUN... --out DIR, and the report that shows the synthesis first -----------------------

XSS_CLAIM = "GCG <script>alert(1)</script> lowers TuCo"


def _tiny_run(path, seed, shift):
    """A finished analysis run as tuco writes it (metrics.json: judged findings whose intervals were
    computed through tuco.stats.recompute): a paired TuCo difference and an AUC on 24 items."""
    import json

    from tuco.stats.claims import Claim, judge
    from tuco.stats.recompute import compute

    rng = np.random.default_rng(seed)
    before = rng.normal(0.30, 0.02, 24)
    after = before + shift + rng.normal(0, 0.01, 24)
    diff, diff_in = compute("paired_diff_ci", before=before.tolist(), after=after.tolist())
    auc, auc_in = compute("auc_ci", positives=rng.normal(1.0, 1, 24).tolist(), negatives=rng.normal(0, 1, 24).tolist())
    claims = [
        Claim(XSS_CLAIM, diff, "below", "TuCo attacked - random", "attacked lower", primary=True, inputs=diff_in),
        Claim("Web text has lower TuCo", auc, "above", "AUC", "AUC 0.93-1.0", primary=True, paper_range=(0.93, 1.0), inputs=auc_in),
    ]
    findings = [f.__dict__ for f in judge(claims)]
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({"experiment": "gcg", "question": "gcg?", "findings": findings}))
    return path


def test_synthesize_writes_synthesis_json_and_the_report_shows_it_first(tmp_path):
    import json
    import re
    from html import escape

    from conftest import cli
    from tuco.report.load import open_source
    from tuco.report.render import build_html

    runs = [str(_tiny_run(tmp_path / f"seed{k}", k, shift)) for k, shift in enumerate([-0.010, -0.008, -0.012])]
    out = tmp_path / "syn"
    res = cli("synthesize", *runs, "--labels", "<b>s0</b>,s1,s2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    synthesis = json.loads((out / "synthesis.json").read_text())
    assert synthesis["holm_family"] == 2 and [a["label"] for a in synthesis["adapters"]] == ["<b>s0</b>", "s1", "s2"]
    html = (out / "report.html").read_text()
    assert html == build_html(open_source(out), "tuco synthesis over adapters")
    assert "<script>alert(1)" not in html and "<b>s0</b>" not in html and escape(XSS_CLAIM, quote=False) in html
    head = html.index("Synthesis over 3 adapters")
    for c in synthesis["claims"]:
        assert c["k"] == 3 and c["pred_low"] is not None
        pooled = html.index(escape(c["claim"], quote=False), head)
        row = html[pooled : html.index("</tr>", pooled)]
        for key in ("estimate", "low", "high", "pred_low", "pred_high", "tau"):
            assert f"{c[key]:.4f}" in row, (key, row)
        assert f"{100 * c['i2']:.0f}%" in row and c["verdict"] in row and f"{c['p_holm']:.4f}" in row
        adapter_rows = [m.start() for m in re.finditer(r'<tr class="adapter">', html)]
        assert len(adapter_rows) == 6 and all(pos > head for pos in adapter_rows)
        # each claim's adapters follow it, with their own numbers
        first = html.index('<tr class="adapter">', pooled)
        assert html.index("adapter &lt;b&gt;s0&lt;/b&gt;", pooled) == first + len('<tr class="adapter"><td>&nbsp;&nbsp;')
        for a in c["adapters"]:
            assert a["measured"] in html[pooled:] and escape(a["verdict"], quote=False) in html[pooled:]
    # the gcg claim: three adapters below 0, pooled below 0 with its prediction interval
    gcg = synthesis["claims"][0]
    assert gcg["claim"] == XSS_CLAIM and gcg["high"] < 0 and gcg["pred_low"] < gcg["low"]


def test_a_synthesis_json_that_is_not_one_is_refused(tmp_path):
    from tuco.errors import InputError
    from tuco.report.load import open_source

    (tmp_path / "synthesis.json").write_text('{"adapters": []}')
    with pytest.raises(InputError, match="no synthesis"):
        open_source(tmp_path)
    (tmp_path / "synthesis.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        open_source(tmp_path)


def test_demo_over_seeds_writes_the_synthesis_and_its_report(tmp_path, monkeypatch):
    """``tuco demo --seeds`` (``run_many``): the seeds' suites (here tiny runs in place of the measured ones),
    then out/synthesis.json and out/report.html with the synthesis first."""
    import json

    from tuco.demo import suites

    shifts = {0: -0.010, 1: -0.008, 2: -0.012}
    monkeypatch.setattr(suites, "seed_adapter", lambda pair, seed, store, say: Path(str(seed)))
    monkeypatch.setattr(
        suites,
        "run_adapters",
        lambda pair, tuned, out, suite, **kw: {
            label: {"gcg": json.loads((_tiny_run(out / label / "gcg", int(str(p)), shifts[int(str(p))]) / "metrics.json").read_text())}
            for label, p in tuned
        },
    )
    got = suites.run_many("demo", tmp_path, seeds=[0, 1, 2])
    assert json.loads((tmp_path / "synthesis.json").read_text())["claims"] == json.loads(json.dumps(got["claims"], default=str))
    html = (tmp_path / "report.html").read_text()
    assert "Synthesis over 3 adapters" in html and "adapter seed-0" in html
    assert f"{got['claims'][0]['estimate']:.4f}" in html
    from tuco.errors import ConfigError

    for few in ([0], [0, 1]):  # a synthesis needs 3 adapters: refused before any training or suite
        with pytest.raises(ConfigError, match="at least 3 adapters"):
            suites.run_many("demo", tmp_path / "few", seeds=few)
    assert not (tmp_path / "few").exists()


def test_a_constant_part_of_a_conjunction_is_not_pooled():
    """An intersection-union part with zero-width intervals (a harmful-answer rate of 0 at every k) has no
    standard error to pool: constant on the claim's side on every adapter -> p 0, against it -> 1, constant
    on some adapters only -> 1 (cannot support the claim)."""
    from tuco.experiments.synthesis import _part_p
    from tuco.stats.intervals import Interval

    const = lambda v: Interval(v, v, v, 0.0 if v else 1.0, (16,), "constant", 0.0)  # noqa: E731
    wide = Interval(0.05, 0.03, 0.07, 0.001, (16,), "t", 0.0)
    assert _part_p([const(0.1), const(0.2), const(0.1)], "above") == 0.0
    assert _part_p([const(0.0), const(-0.0), const(0.0)], "above") == 1.0
    assert _part_p([const(-0.0), wide, wide], "above") == 1.0
    assert 0.0 < _part_p([wide, wide, wide], "above") < 0.05


def test_a_claim_that_fires_on_nulls_fails_calibration_through_the_cli(tmp_path):
    """``tuco synthesize --calibration nulls.json``: a claim whose false-positive count on null adapters is
    significantly above 5% keeps its numbers but its fired verdict becomes "fails null calibration" (the old
    one kept as uncalibrated_verdict), in synthesis.json, in the printout and in the report's table with its
    count; a claim that passes calibration keeps its verdict and shows its count; a bad nulls file is one line."""
    import json

    from conftest import cli
    from tuco.stats.nulls import as_dicts, false_positive_rates

    runs = [str(_tiny_run(tmp_path / f"seed{k}", k, shift)) for k, shift in enumerate([-0.010, -0.008, -0.012])]
    plain = json.loads(cli("synthesize", *runs, "--json").stdout)
    gcg, web = plain["claims"]
    assert gcg["verdict"] == "direction consistent" and web["verdict"].startswith(("reproduced", "direction reproduced"))
    # 20 nulls: the gcg claim fires on 9 of them, the AUC claim on 1 (within 5%)
    nulls_runs = [
        {"gcg": [dict(claim=gcg["claim"], primary=True, verdict="opposite" if i < 9 else "not significant"),
                 dict(claim=web["claim"], primary=True, verdict="reproduced" if i == 0 else "not significant")]}
        for i in range(20)
    ]  # fmt: skip
    table = {"null": "random LoRA", "nulls": [f"null-{i}" for i in range(20)], "rates": as_dicts(false_positive_rates(nulls_runs))}
    (tmp_path / "nulls.json").write_text(json.dumps(table))
    out = tmp_path / "syn"
    res = cli("synthesize", *runs, "--calibration", str(tmp_path / "nulls.json"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    got = json.loads((out / "synthesis.json").read_text())
    g, w = got["claims"]
    assert g["verdict"] == "fails null calibration" and g["uncalibrated_verdict"] == "direction consistent"
    assert g["calibration"]["fired"] == 9 and g["calibration"]["too_high"] and g["estimate"] == gcg["estimate"]
    assert w["verdict"] == web["verdict"] == w["uncalibrated_verdict"] and not w["calibration"]["too_high"]
    assert got["calibration"] == {"source": str(tmp_path / "nulls.json"), "null": "random LoRA", "nulls": 20}
    assert "fails null calibration (fires on 9/20 null adapters)" in res.stdout
    html = (out / "report.html").read_text()
    assert "<th>on nulls</th>" in html and "9/20 [" in html and "1/20 [" in html and "Calibrated on 20 null adapters" in html
    # applying it twice is applying it once
    from tuco.experiments.synthesis import calibrate_synthesis

    assert calibrate_synthesis(got, table, "again")["claims"] == got["claims"]
    # a claim the nulls did not run keeps its verdict, shown as uncalibrated
    only_gcg = dict(table, rates=[r for r in table["rates"] if r["claim"] == gcg["claim"]])
    part = calibrate_synthesis(plain, only_gcg, "part")
    assert part["claims"][1]["verdict"] == web["verdict"] and part["claims"][1]["calibration"] == {"missing": True}
    from tuco.report.synthesis import null_rate

    assert null_rate(part["claims"][1]["calibration"]) == "not run on the nulls (uncalibrated)"
    for k, content in enumerate(
        [
            "[1, 2]",
            '{"rates": [1]}',
            '{"rates": [{"claim": "c"}]}',
            json.dumps(dict(table, rates=[dict(table["rates"][0], estimates="abc")])),
        ]
    ):
        (tmp_path / f"bad{k}.json").write_text(content)
        bad = cli("synthesize", *runs, "--calibration", str(tmp_path / f"bad{k}.json"))
        assert bad.returncode != 0 and "bad" in bad.stderr and "Traceback" not in bad.stderr, (content, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = cli("synthesize", *runs, "--calibration", str(tmp_path / "none.json"))
    assert missing.returncode != 0 and "cannot read it" in missing.stderr and "Traceback" not in missing.stderr


def test_a_seed_stopped_between_training_and_its_card_gets_only_its_card(tmp_path, monkeypatch):
    """``seed_adapter`` trains a missing seed and writes its card (refusal rates on the test split); a seed
    whose training finished but whose card did not (a run stopped in between) gets only its card; a seed
    with both is used as it is."""
    from tuco.demo import evaluate, gemma_recipe, suites

    done: list[str] = []

    def train(out, recipe):
        done.append(f"train {recipe.seed}")
        Path(out).mkdir(parents=True)
        (Path(out) / "adapter_config.json").write_text("{}")

    def card(out):
        done.append("card")
        (Path(out) / "behaviour.json").write_text("{}")

    monkeypatch.setattr(gemma_recipe, "train_gemma", train)
    monkeypatch.setattr(evaluate, "write_gemma_card", card)
    out = suites.seed_adapter("gemma", 3, tmp_path, say=lambda _: None)
    assert out == tmp_path / "gemma-seed3" and done == ["train 3", "card"]
    (out / "behaviour.json").unlink()
    assert suites.seed_adapter("gemma", 3, tmp_path, say=lambda _: None) == out and done == ["train 3", "card", "card"]
    assert suites.seed_adapter("gemma", 3, tmp_path, say=lambda _: None) == out and done == ["train 3", "card", "card"]
