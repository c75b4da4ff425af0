"""The HTML report: findings first, natural order, readable distributions and profiles, a collapsed rows
table, paired and extreme token views, comparisons of runs; escaping, CSP, no torch; a real headless
browser (first screen holds the findings)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import cli
from tuco.report.html import (
    MAX_TABLE_ROWS,
    build_comparison,
    build_html,
    display_token,
    esc,
    natural_key,
    tokens_html,
)
from tuco.report.load import load_run
from tuco.report.svg import colour, text_colour
from tuco.runs import open_run, read_rows

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
PWN = "<script>document.title='pwned'</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FINDING = {
    "claim": "TuCo is lower on successful jailbreaks",
    "paper": "AUC 0.83-0.94",
    "measured": "AUC 0.91 [0.85, 0.96]",
    "verdict": "reproduced",
    "ci": [0.85, 0.96],
    "n": "40 vs 12",
}


def make_run(tmp_path, rows, name="scores.jsonl", config=None):
    out = tmp_path / name
    with open_run(out, config or {"verb": "score", "checkpoints": [XSS, "t"], "alpha": 1.0}, mode="overwrite") as run:
        run.expect(r["id"] for r in rows)
        run.write(rows)
    return out


def score_row(i, prompt="hello", group=None, **extra):
    row = {
        "id": str(i),
        "prompt": prompt,
        "tuco": 0.1 + 0.8 * (i % 10) / 10,
        "preco": 0.5,
        "n_tokens": 3,
        "layer_ptc_l1": [1.0, 2.0, 3.0],
        "layer_ftc_l1": [0.5, 0.4, 0.3],
        **extra,
    }
    if group is not None:
        row["group"] = group
    return row


def make_experiment(tmp_path, rows, metrics):
    make_run(tmp_path, rows, name="rows.jsonl", config={"experiment": metrics["experiment"]})
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path


def test_every_text_is_escaped(tmp_path):
    rows = [
        score_row(0, XSS, group=XSS, tokens=["<b>", "Ġ&amp;", XSS], token_tuco=[0.1, 0.5, 0.9], note=PWN),
        score_row(1, PWN, group="benign"),
    ]
    metrics = {"experiment": XSS, "question": PWN, "paper": XSS, "findings": [{**FINDING, "claim": XSS, "measured": PWN}]}
    html = build_html(load_run(make_experiment(tmp_path, rows, metrics)), title=XSS)
    assert "<script>alert" not in html and "<img" not in html  # no raw tag from the data (no plots here)
    assert "document.title='pwned'" not in html.replace("document.title=&#x27;pwned&#x27;", "")
    assert esc(XSS) in html  # shown as text
    assert html.count("<script>") == 1  # only our own script
    assert "&lt;b&gt;" in html and " &amp;amp;" in html  # tokens escaped after marker replacement
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1]


def test_findings_come_before_the_detail(tmp_path):
    rows = [score_row(i, group=f"k={k}") for i, k in enumerate([16, 2, 0, 1, 4, 8] * 2)]
    metrics = {"experiment": "many-shot", "question": "Does TuCo fall?", "paper": "falls", "findings": [FINDING]}
    html = build_html(load_run(make_experiment(tmp_path, rows, metrics)))
    order = [
        html.index(m) for m in ('class="findings"', "reproduced", "Summary by condition", "Distribution", "Rows (12)", "Configuration of")
    ]
    assert order == sorted(order)
    summary = html[html.index("Summary by condition") : html.index("Distribution")]
    ks = re.findall(r"group=k=(\d+)", summary)
    assert ks == ["0", "1", "2", "4", "8", "16"]  # natural order, not text order


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


def test_rows_table_starts_collapsed_with_empty_columns_hidden(tmp_path):
    rows = [score_row(i, group="a", response="") for i in range(40)]
    html = build_html(load_run(make_run(tmp_path, rows)))
    start = html.index('<table class="rows')
    table = html[start : html.index("</table>", start)]
    head = table[: table.index("</thead>")]
    assert "response" not in head and "tuco" in head and 'data-visible="12"' in table
    assert table.count("<tr>") == 40 + 1  # every row is in the page (filter/sort over all), the script shows 12
    assert re.search(r'<td data-v="0\.1" class="num">0\.1000</td>', table)  # fixed width


def test_tokens_extremes_and_pairs(tmp_path):
    rows = []
    for k in (0, 16):
        for i in range(6):
            rows.append(score_row(len(rows), f"q{i}", group=f"k={k}", item=i, tokens=["a", "b"], token_tuco=[0.1 * i, 0.2]))
    html = build_html(load_run(make_run(tmp_path, rows)))
    assert "Most fine-tuning-driven" in html and "Least fine-tuning-driven" in html
    assert html.count('class="pair"') == 3 and "first vs last group" in html
    assert html.count('class="tokview"') <= 4 + 4 + 2 * 3


def test_colour_scale():
    values = [i / 20 for i in range(21)]
    cols = [colour(v) for v in values]
    lum = [sum(int(c[k : k + 2], 16) for k in (1, 3, 5)) for c in cols]
    assert all(a >= b for a, b in zip(lum, lum[1:]))  # darker as TuCo grows
    assert colour(0.0) == "#ffffcc" and colour(1.0) == "#800026"
    assert colour(-3) == colour(0.0) and colour(7) == colour(1.0)
    assert colour(None) == colour(float("nan")) == "#dddddd"
    assert text_colour(0.9) == "#ffffff" and text_colour(0.1) == "#000000"


def test_tokens_carry_value_on_hover():
    html = tokens_html(["Ġhi", "Ċ"], [0.25, None])
    assert 'title="TuCo 0.2500"' in html and 'title="no value"' in html
    assert display_token("Ġhello▁worldĊ") == " hello world\n"


def test_empty_run(tmp_path):
    html = build_html(load_run(make_run(tmp_path, [])))
    assert "This run has no rows." in html and html.endswith("</html>")


def test_huge_run_is_bounded(tmp_path):
    rows = [score_row(i, "p" * 50, tokens=["a", "b"], token_tuco=[0.1, 0.2]) for i in range(MAX_TABLE_ROWS + 3000)]
    html = build_html(load_run(make_run(tmp_path, rows)))
    assert f"first {MAX_TABLE_ROWS} of {MAX_TABLE_ROWS + 3000} rows" in html
    assert html.count('class="tokview"') <= 8
    assert len(html) < 2_000_000


def test_layer_profiles_only_when_the_rows_have_them(tmp_path):
    html = build_html(load_run(make_run(tmp_path, [score_row(i, group="a") for i in range(3)])))
    assert "Per-layer profiles" in html
    rows = [{"id": str(i), "prompt": "p", "tuco": 0.3, "chosen": "Yes"} for i in range(3)]
    (tmp_path / "x").mkdir()
    html = build_html(load_run(make_run(tmp_path / "x", rows)))
    assert "Per-layer profiles" not in html and "No per-layer data" not in html


def test_suite_of_runs(tmp_path):
    for name in ("web-vs-chat", "many-shot"):
        d = tmp_path / name
        d.mkdir()
        make_experiment(d, [score_row(0)], {"experiment": name, "question": f"{name}?", "paper": "p", "findings": [FINDING]})
    run = load_run(tmp_path)
    assert [c.name for c in run.children] == ["web-vs-chat", "many-shot"]
    html = build_html(run)
    assert html.index("web-vs-chat?") < html.index("many-shot?") < html.index("Details: web-vs-chat")


def test_pairs_need_the_item_not_the_id(tmp_path):
    rows = []
    for k in (0, 16):
        for i in range(3):
            row = score_row(len(rows), f"q{i}", group=f"k={k}", tokens=["a"], token_tuco=[0.1])
            row["id"] = f"k{k}-{i}"  # ids carry the condition, as the experiments write them
            rows.append(row)
    assert 'class="pair"' not in build_html(load_run(make_run(tmp_path, rows, name="a.jsonl")))  # no item: nothing paired
    for r in rows:
        r["item"] = int(r["id"].split("-")[1])
    html = build_html(load_run(make_run(tmp_path, rows, name="b.jsonl")))
    assert html.count('class="pair"') == 3


def test_list_values_are_escaped_once():
    from tuco.report.html import _fmt

    assert _fmt(["R&D.jsonl", "it's"]) == "R&amp;D.jsonl, it&#x27;s"


def test_comparison_aligns_runs_at_different_alphas(tmp_path):
    a = make_run(tmp_path, [score_row(i, alpha=1.0) for i in range(4)], name="a1.jsonl")
    b = make_run(tmp_path, [dict(score_row(i, alpha=0.5), tuco=0.05) for i in range(4)], name="a05.jsonl")
    html = build_comparison([load_run(a), load_run(b)])
    assert "<b>4</b> ids in every run" in html
    several = tmp_path / "g.jsonl"  # a generate run at two alphas: one row per (alpha, id)
    several.write_text("".join(json.dumps(score_row(i, alpha=al)) + "\n" for al in (0.0, 1.0) for i in range(3)))
    assert "<b>6</b> ids in every run" in build_comparison([load_run(several), load_run(several)])  # id @ alpha


def test_comparison_aligns_by_id_with_differences(tmp_path):
    a = make_run(tmp_path, [score_row(i) for i in range(5)], name="a.jsonl")
    rows_b = [dict(score_row(i), tuco=score_row(i)["tuco"] + 0.1) for i in range(1, 7)]
    b = make_run(tmp_path, rows_b, name="b.jsonl")
    html = build_comparison([load_run(a), load_run(b)])
    assert "<b>4</b> ids in every run" in html and "+0.1000" in html and "paired n=4" in html
    res = cli("report", str(a), str(b), check_rc=0)
    assert Path(res.stdout.strip()).name == "a.compare.html"


def test_report_cli_errors(tmp_path):
    res = cli("report", str(tmp_path / "nope"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "bad.jsonl").write_text("{broken\n")
    res = cli("report", str(tmp_path / "bad.jsonl"))
    assert res.returncode == 2 and "line 1 is not a result row" in res.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _dom(page, profile, extra=()):
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", *extra, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (.ci/run installs it)")
def test_report_in_headless_chromium(tmp_path, models_args):
    """Real tiny pair -> score --per-token + generate -> tuco report -> rendered by Chromium."""
    assert CHROMIUM, "chromium must be installed in CI"
    run = tmp_path / "run"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"prompt": XSS, "group": "attack"})
        + "\n"
        + json.dumps({"prompt": PWN, "group": "attack"})
        + "\n"
        + json.dumps({"prompt": "How do I bake bread?", "group": "benign"})
        + "\n"
    )
    cli("score", *models_args, "--prompts", str(prompts), "--per-token", "--out", str(run / "scores.jsonl"), check_rc=0)
    cli(
        "generate",
        *models_args,
        "--prompts",
        str(prompts),
        "--alpha",
        "0.5",
        "1",
        "--max-new-tokens",
        "6",
        "--per-token",
        "--out",
        str(run / "generations.jsonl"),
        check_rc=0,
    )
    res = cli("report", str(run / "scores.jsonl"), "--out", str(tmp_path / "report.html"), check_rc=0)
    page = Path(res.stdout.strip())
    dom = _dom(page, tmp_path / "profile")
    body_tag = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body_tag  # our script ran
    assert "data-pwned" not in body_tag  # the payload's onerror handler did not run
    assert re.search(r"<title>(.*?)</title>", dom).group(1) != "pwned"  # nor its <script>
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the payload shows as text
    for marker in (
        "Summary by condition",
        "Distribution",
        "Per-layer profiles",
        "Tokens coloured by TuCo",
        'class="tok"',
        "<svg",
        "showing 3 of 3 rows",
    ):
        assert marker in dom, marker
    assert len(read_rows(run / "generations.jsonl")) == 6


PROBE = (
    "<script>var t=document.querySelector('table.findings'), r=t.rows[1].getBoundingClientRect();"
    "document.body.setAttribute('data-top', t.getBoundingClientRect().top);"
    "document.body.setAttribute('data-row-bottom', r.bottom);</script>"
)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (.ci/run installs it)")
def test_demo_report_shows_its_findings_on_the_first_screen(tmp_path):
    """The demo's report: at 1280 x 900, the first experiment's findings table starts, and its first
    finding ends, inside the first screen. Measured by the layout engine on a copy of the page that
    carries a probe script (the page's own CSP would refuse it)."""
    assert CHROMIUM, "chromium must be installed in CI"
    cli("demo", "--quick", "--out", str(tmp_path / "demo"), check_rc=0)
    page = tmp_path / "demo" / "report.html"
    html = page.read_text()
    assert html.index('class="findings"') < html.index("Summary by condition")
    probe = tmp_path / "probe.html"
    probe.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", PROBE + "</body>"))
    body = re.search(r"<body([^>]*)>", _dom(probe, tmp_path / "p1", ["--window-size=1280,900"])).group(1)
    top = float(re.search(r'data-top="([\d.]+)"', body).group(1))
    bottom = float(re.search(r'data-row-bottom="([\d.]+)"', body).group(1))
    assert top < 900 and bottom <= 900, (top, bottom)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-top.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}", "--window-size=1280,900", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000


def test_chain_rows_show_stage_bars_and_dominant_stage_tokens(tmp_path):
    rows = [
        dict(
            score_row(i),
            stage_share=[0.6, 0.3, 0.1],
            layer_stage_l1=[[1.0, 1.0, 1.0], [0.5, 0.2, 0.1], [0.0, 0.1, 0.3]],
            tokens=["a", "b"],
            token_stage=[0, 2],
            token_tuco=[0.1, 0.2],
        )
        for i in range(3)
    ]
    out = make_run(tmp_path, rows, config={"verb": "score", "checkpoints": ["/m/base", "/m/sft", "/m/dpo"]})
    html = build_html(load_run(out))
    assert "Stage shares" in html and "0: base" in html and "2: dpo" in html and "Mean share per layer" in html
    assert "Tokens coloured by the stage that wrote most there" in html
