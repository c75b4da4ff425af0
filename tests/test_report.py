"""The HTML report: findings first, natural order, readable distributions and profiles, a collapsed rows
table, paired and extreme token views, comparisons of runs; escaping by the templates, CSP, no torch; a
real headless browser (first screen holds the findings). The model behind it: tests/test_report_model.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import string
import subprocess
from html import escape as html_escape
from pathlib import Path

import pytest

from conftest import cli
from tuco.palette import text_colour, tuco_colour
from tuco.report.findings import overview
from tuco.report.load import open_source
from tuco.report.pack import unpack
from tuco.report.render import TEMPLATES, build_comparison, build_html
from tuco.report.tables import MAX_TABLE_ROWS
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


def page_data(html):
    """The page's compressed data block (rows tables, token views), unpacked."""
    return unpack(re.search(r'<script type="application/gzip" id="tuco-data">([A-Za-z0-9+/=]*)</script>', html).group(1))


def view_tokens(data, k=0):
    """The tokens of token view ``k``: (text, TuCo text or None, [background, text colour]) per token."""
    return [(t[0], t[1], data["colours"][t[2]]) for _, toks in data["views"][k]["segments"] if not isinstance(toks, str) for t in toks]


def esc(text):
    return html_escape(text, quote=True).replace("&#x27;", "&#39;").replace("&quot;", "&#34;")  # markupsafe's entities


def test_every_text_is_escaped(tmp_path):
    rows = [
        score_row(0, XSS, group=XSS, tokens=["<b>", "Ġ&amp;", "Ġ<script>", XSS], token_tuco=[0.1, 0.5, 0.9, 0.2], note=PWN),
        score_row(1, PWN, group="benign"),
    ]
    hostile = {**FINDING, "claim": XSS, "measured": PWN, "primary": True, XSS: PWN}
    metrics = {"experiment": XSS, "question": PWN, "paper": XSS, "findings": [hostile, {**FINDING, "primary": False}]}
    out = make_experiment(tmp_path, rows, metrics)
    (out / f"{XSS[:20].replace('/', '_')}.png").write_bytes(b"\x89PNG fake")  # a hostile plot name
    html = build_html(open_source(out), title=XSS)
    assert "<script>alert" not in html and "<img src=x" not in html  # no raw tag from the data
    assert "document.title='pwned'" not in html
    assert esc(XSS) in html and esc(PWN) in html  # shown as text
    assert html.count("<script>") == 1  # only our own script
    texts = [t for t, _, _ in view_tokens(page_data(html))]  # drawn by the script with textContent: as text
    assert texts == ["<b>", " &amp;", " <script>", XSS]  # the token's literal "&amp;" decoded once, not re-escaped
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1]


def test_the_script_is_the_one_the_policy_allows(tmp_path):
    html = build_html(open_source(make_run(tmp_path, [score_row(0)])))
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)  # the data block is <script type=...>
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html and "addEventListener" in script


def test_templates_escape_by_construction():
    """Autoescape is on and no template marks data as safe: escaping does not depend on discipline."""
    for t in TEMPLATES.glob("*.j2"):
        text = t.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, t.name
    for p in TEMPLATES.parent.glob("*.py"):
        py = p.read_text()
        assert "<td" not in py and "<span" not in py and "<tr" not in py, p.name  # no markup in Python
        if p.name != "render.py":
            assert "Markup" not in py and "markupsafe" not in py, p.name  # only render.py marks its static CSS/script/policy


def test_findings_come_before_the_detail(tmp_path):
    rows = [score_row(i, group=f"k={k}") for i, k in enumerate([16, 2, 0, 1, 4, 8] * 2)]
    metrics = {"experiment": "many-shot", "question": "Does TuCo fall?", "paper": "falls", "findings": [FINDING]}
    html = build_html(open_source(make_experiment(tmp_path, rows, metrics)))
    order = [
        html.index(m) for m in ('class="findings"', "reproduced", "Summary by condition", "Distribution", "Rows (12)", "Configuration of")
    ]
    assert order == sorted(order)
    summary = html[html.index("Summary by condition") : html.index("Distribution")]
    assert re.findall(r"<tr><td>k=(\d+)</td>", summary) == ["0", "1", "2", "4", "8", "16"]  # natural order, not text order
    assert "all: pools 6 group groups at alpha 1" in summary  # one alpha: the overall row says what it pools


def test_primary_findings_first_and_exploratory_marked(tmp_path):
    found = [
        {"claim": "side claim", "primary": False, "estimate": 0.12, "low": 0.01, "high": 0.2, "verdict": "not significant", "n": 40},
        {"claim": "main claim", "primary": True, "measured": "AUC 0.9 [0.8, 1.0]", "p_holm": 0.004, "verdict": "reproduced", "n": 40},
    ]
    html = build_html(open_source(make_experiment(tmp_path, [score_row(0)], {"experiment": "e", "findings": found})))
    start = html.index('<table class="findings">')
    table = html[start : html.index("</table>", start)]
    assert table.index("main claim") < table.index("side claim") and "p (Holm)" in table and "0.0040" in table
    assert table.count('class="tag exploratory"') == 1 and table.count('class="tag primary"') == 1
    assert "0.120 [0.010, 0.200]" in table  # measured from the numbers when there is no text
    old = build_html(open_source(make_experiment(tmp_path / "old", [score_row(0)], {"experiment": "e", "findings": [FINDING]})))
    assert 'class="tag' not in old and "p (Holm)" not in old  # old runs: no marks, no column


def test_rows_table_starts_collapsed_with_empty_columns_hidden(tmp_path):
    rows = [score_row(i, group="a", response="") for i in range(40)]
    html = build_html(open_source(make_run(tmp_path, rows)))
    start = html.index('<table class="rows')
    table = html[start : html.index("</table>", start)]
    head = table[: table.index("</thead>")]
    assert "response" not in head and "tuco" in head
    data = page_data(html)["tables"][0]
    assert data["visible"] == 12 and data["columns"] == re.findall(r'title="click to sort">([^<]*)</th>', head)
    assert len(data["rows"]) == 40  # every row is in the page (filter/sort over all), the script shows 12
    tuco = data["columns"].index("tuco")
    assert data["rows"][0][tuco] == ["0.1000"] and data["rows"][0][0] == "0"  # a number (fixed width), a text


def test_tokens_ranked_per_condition_and_paired(tmp_path):
    rows = []
    for k in (0, 16):
        for i in range(6):
            rows.append(score_row(len(rows), f"q{i}", group=f"k={k}", item=i, tokens=["a", "b"], token_tuco=[0.1 * i, 0.2]))
    html = build_html(open_source(make_run(tmp_path, rows)))
    tokens = html[html.index("Tokens coloured by TuCo") : html.index("Paired:")]
    k0, k16 = tokens.split('<h4 class="stratum">k=16</h4>')
    assert "Most fine-tuning-driven" in k0 and "Least fine-tuning-driven" in k16
    assert "group k=16" not in k0 and "group k=0" not in k16  # each ranking holds its own condition's rows only
    assert html.count('class="pair"') == 3 and "first vs last group" in html
    assert html.count('class="tokview"') <= 8 + 2 * 3


def test_tokens_carry_value_on_hover(tmp_path):
    html = build_html(open_source(make_run(tmp_path, [score_row(0, tokens=["Ġhi", "Ċ"], token_tuco=[0.25, None])])))
    assert view_tokens(page_data(html)) == [
        (" hi", "0.2500", [tuco_colour(0.25), text_colour(0.25)]),
        ("\n", None, [tuco_colour(None), text_colour(None)]),
    ]
    assert '<details class="tokview" data-view="0" open>' in html  # the first view opens drawn; the others when opened


def test_colour_scale():
    values = [i / 20 for i in range(21)]
    cols = [tuco_colour(v) for v in values]
    lum = [sum(int(c[k : k + 2], 16) for k in (1, 3, 5)) for c in cols]
    assert all(a >= b for a, b in zip(lum, lum[1:]))  # darker as TuCo grows
    assert tuco_colour(0.0) == "#ffffcc" and tuco_colour(1.0) == "#800026"
    assert tuco_colour(-3) == tuco_colour(0.0) and tuco_colour(7) == tuco_colour(1.0)
    assert tuco_colour(None) == tuco_colour(float("nan")) == "#dddddd"
    assert text_colour(0.9) == "#ffffff" and text_colour(0.1) == "#000000"


def test_empty_run(tmp_path):
    html = build_html(open_source(make_run(tmp_path, [])))
    assert "This run has no rows." in html and html.endswith("</html>")


def test_huge_run_is_bounded(tmp_path):
    rows = [score_row(i, "p" * 50, tokens=["a", "b"], token_tuco=[0.1, 0.2]) for i in range(MAX_TABLE_ROWS + 3000)]
    html = build_html(open_source(make_run(tmp_path, rows)))
    assert f"first {MAX_TABLE_ROWS} of {MAX_TABLE_ROWS + 3000} rows" in html
    assert html.count('class="tokview"') <= 8
    assert len(html) < 2_000_000


def test_strips_state_their_fitted_range(tmp_path):
    rows = [score_row(i, group=g, tuco=t) for i, (g, t) in enumerate([("a", 0.47), ("a", 0.48), ("b", 0.52), ("b", 0.53)])]
    html = build_html(open_source(make_run(tmp_path, rows)))
    assert re.search(r"x: TuCo from 0\.4\d+ to 0\.5\d+ \(the axis is fitted to the data", html)
    svg = html[html.index('aria-label="values per group"') : html.index("</svg>", html.index('aria-label="values per group"'))]
    assert ">0.48<" in svg and ">0.50<" in svg and ">1.00<" not in svg


def test_layer_profiles_only_when_the_rows_have_them(tmp_path):
    html = build_html(open_source(make_run(tmp_path, [score_row(i, group="a") for i in range(3)])))
    assert "Per-layer profiles" in html
    panels = html[html.index('aria-label="per-layer profiles"') :]
    assert re.search(r'text-anchor="middle">2</text>', panels) and re.search(r'text-anchor="end">0</text>', panels)  # layer and norm ticks
    rows = [{"id": str(i), "prompt": "p", "tuco": 0.3, "chosen": "Yes"} for i in range(3)]
    (tmp_path / "x").mkdir()
    html = build_html(open_source(make_run(tmp_path / "x", rows)))
    assert "Per-layer profiles" not in html and "No per-layer data" not in html


def test_runs_at_several_alphas_are_not_pooled(tmp_path):
    rows = [dict(score_row(i + 10 * a), alpha=a, tuco=0.0 if a == 0 else 0.5 + i / 100) for a in (0.0, 1.0) for i in range(3)]
    html = build_html(open_source(make_run(tmp_path, rows)))
    summary = html[html.index("Summary by condition") : html.index("Distribution")]
    assert "<th>alpha</th>" in summary and "all:" not in summary and "rows at different alphas (0, 1) are not pooled" in summary


def test_suite_of_runs(tmp_path):
    for name in ("web-vs-chat", "many-shot"):
        d = tmp_path / name
        d.mkdir()
        make_experiment(d, [score_row(0)], {"experiment": name, "question": f"{name}?", "paper": "p", "findings": [FINDING]})
    source = open_source(tmp_path)
    assert [c.name for c in source.children] == ["web-vs-chat", "many-shot"]
    html = build_html(source)
    assert html.index("web-vs-chat?") < html.index("many-shot?") < html.index("Details: web-vs-chat")


def test_a_prompt_file_in_a_run_directory_is_not_a_result(tmp_path):
    make_run(tmp_path, [score_row(0)], name="scores.jsonl")
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    assert [f.name for f in open_source(tmp_path).files] == ["scores.jsonl"]


def test_pairs_need_the_item_not_the_id(tmp_path):
    rows = []
    for k in (0, 16):
        for i in range(3):
            row = score_row(len(rows), f"q{i}", group=f"k={k}", tokens=["a"], token_tuco=[0.1])
            row["id"] = f"k{k}-{i}"  # ids carry the condition, as the experiments write them
            rows.append(row)
    assert 'class="pair"' not in build_html(open_source(make_run(tmp_path, rows, name="a.jsonl")))  # no item: nothing paired
    for r in rows:
        r["item"] = int(r["id"].split("-")[1])
    html = build_html(open_source(make_run(tmp_path, rows, name="b.jsonl")))
    assert html.count('class="pair"') == 3


def test_list_values_are_escaped_once(tmp_path):
    html = build_html(open_source(make_run(tmp_path, [score_row(0)], config={"verb": "score", "files": ["R&D.jsonl", "it's"]})))
    assert "R&amp;D.jsonl, it&#39;s" in html and "&amp;amp;" not in html


def test_comparison_aligns_runs_at_different_alphas(tmp_path):
    a = make_run(tmp_path, [score_row(i, alpha=1.0) for i in range(4)], name="a1.jsonl")
    b = make_run(tmp_path, [dict(score_row(i, alpha=0.5), tuco=0.05) for i in range(4)], name="a05.jsonl")
    html = build_comparison([open_source(a), open_source(b)])
    assert "<b>4</b> ids in every run" in html
    several = tmp_path / "g.jsonl"  # a generate run at two alphas: one row per (alpha, id)
    several.write_text("".join(json.dumps(score_row(i, alpha=al)) + "\n" for al in (0.0, 1.0) for i in range(3)))
    assert "<b>6</b> ids in every run" in build_comparison([open_source(several), open_source(several)])  # id @ alpha


def test_comparison_aligns_by_id_with_differences(tmp_path):
    a = make_run(tmp_path, [score_row(i) for i in range(5)], name="a.jsonl")
    rows_b = [dict(score_row(i), tuco=score_row(i)["tuco"] + 0.1) for i in range(1, 7)]
    b = make_run(tmp_path, rows_b, name="b.jsonl")
    html = build_comparison([open_source(a), open_source(b)])
    assert "<b>4</b> ids in every run" in html and "+0.1000" in html and "paired n=4" in html
    assert html.count('<table class="rows sortable"') == 1 and "2: b.jsonl − 1" in html  # the one rows-table template
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
    "<script>var o=document.querySelector('table.overview'), t=document.querySelector('table.findings');"
    "document.body.setAttribute('data-summary-bottom', o.rows[o.rows.length-1].getBoundingClientRect().bottom);"
    "document.body.setAttribute('data-top', t.getBoundingClientRect().top);</script>"
)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (.ci/run installs it)")
def test_demo_report_shows_its_findings_on_the_first_screen(tmp_path):
    """The demo's report: at 1280 x 900, the summary (every analysis's primary claims) ends, and the first
    experiment's findings table starts, inside the first screen. Measured by the layout engine on a copy of
    the page that carries a probe script (the page's own CSP would refuse it)."""
    assert CHROMIUM, "chromium must be installed in CI"
    cli("demo", "--quick", "--out", str(tmp_path / "demo"), check_rc=0)
    page = tmp_path / "demo" / "report.html"
    html = page.read_text()
    assert html.index('<table class="overview">') < html.index('class="findings"') < html.index("Summary by condition")
    probe = tmp_path / "probe.html"
    probe.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", PROBE + "</body>"))
    body = re.search(r"<body([^>]*)>", _dom(probe, tmp_path / "p1", ["--window-size=1280,900"])).group(1)
    summary = float(re.search(r'data-summary-bottom="([\d.]+)"', body).group(1))
    top = float(re.search(r'data-top="([\d.]+)"', body).group(1))
    assert summary <= 900 and top < 900, (summary, top)
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
    html = build_html(open_source(out))
    assert "Stage shares" in html and "0: base" in html and "2: dpo" in html and "Mean share per layer" in html
    assert "Tokens coloured by the stage that wrote most there" in html


SCRIPT_BREAK = "</script><img src=x onerror=alert(1)>"


def test_a_prompt_that_closes_the_script_is_inert(tmp_path):
    """Row text lives in the compressed data block (no '<' in its alphabet) and in escaped HTML only."""
    rows = [score_row(0, "hi " + SCRIPT_BREAK, group=SCRIPT_BREAK, tokens=["hi", SCRIPT_BREAK], token_tuco=[0.2, 0.7])]
    html = build_html(open_source(make_run(tmp_path, rows)))
    assert "<img src=x" not in html and SCRIPT_BREAK not in html and "<!--" not in html
    assert html.count("</script>") == 2  # the data block's and our script's: the prompt closed neither
    assert esc(SCRIPT_BREAK) in html  # where the server draws it (the condition's name), escaped
    data = page_data(html)
    prompt = data["tables"][0]["columns"].index("prompt")
    assert data["tables"][0]["rows"][0][prompt] == "hi " + SCRIPT_BREAK  # the script sets it as textContent
    assert [t for t, _, _ in view_tokens(data)] == ["hi", SCRIPT_BREAK]
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


def _random_prompt(i):
    r = random.Random(i)  # random letters: text that compresses little (worse than real prompts)
    return " ".join("".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(2, 9))) for _ in range(25))


def test_a_run_with_many_rows_stays_light(tmp_path):
    """3,000 rows with distinct ~175-character prompts of random letters: the rows are compact data, not
    markup. Drawn as inline table rows this page was 1.11 MB (369 bytes a row); as data it is 0.51 MB."""
    n = 3000
    rows = [
        score_row(
            i,
            _random_prompt(i),
            group=f"k={i % 5}",
            tokens=[f"Ġt{k}" for k in range(12)],
            token_tuco=[random.Random(i + k).random() for k in range(12)],
        )
        for i in range(n)
    ]
    html = build_html(open_source(make_run(tmp_path, rows)))
    assert len(page_data(html)["tables"][0]["rows"]) == n  # every row is there
    assert len(html.encode()) < 200 * n, len(html.encode())


def test_the_page_opens_with_the_suite_summary(tmp_path):
    """One line per primary claim of each analysis (claim, estimate [interval], n, verdict) above every
    analysis's section: the lines the CLI prints (one shared function)."""
    from tuco.cli.findings import summary_lines

    results = {}
    for k, name in enumerate(("web-vs-chat", "many-shot")):
        d = tmp_path / name
        d.mkdir()
        found = [
            {**FINDING, "claim": f"claim {name}", "primary": True, "n_text": f"n={40 + k}", "measured": f"0.{k}1 [0.0{k}, 0.{k}9]"},
            {**FINDING, "claim": f"side {name}", "primary": False},
        ]
        results[name] = {"experiment": name, "question": f"{name}?", "findings": found}
        make_experiment(d, [score_row(0)], results[name])
    html = build_html(open_source(tmp_path))
    summary = html[html.index("<h2>Summary</h2>") : html.index("web-vs-chat?")]  # before the first analysis
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"measured\">(.*?)</td><td>(.*?)</td><td>.*?>(.*?)</span>", summary)
    assert rows == [
        ("web-vs-chat", "claim web-vs-chat", "0.01 [0.00, 0.09]", "n=40", "reproduced"),
        ("many-shot", "claim many-shot", "0.11 [0.01, 0.19]", "n=41", "reproduced"),
    ]
    assert "2 exploratory findings" in summary and "side " not in summary
    lines = summary_lines(results)
    assert lines == overview(results).lines
    assert lines == [
        "web-vs-chat: claim web-vs-chat: 0.01 [0.00, 0.09], n=40: reproduced",
        "many-shot: claim many-shot: 0.11 [0.01, 0.19], n=41: reproduced",
        "2 exploratory findings (--tables shows them; the report lists them)",
    ]


def test_plots_are_reencoded_small_and_look_the_same():
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from tuco.report.images import small_png

    fig, ax = plt.subplots(figsize=(6, 3.4))
    x = np.linspace(0, 4, 60)
    for k in range(4):
        ax.plot(x, np.sin(x + k), marker="o", label=f"series {k}")
        ax.fill_between(x, np.sin(x + k) - 0.2, np.sin(x + k) + 0.2, alpha=0.15)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100)
    plt.close(fig)
    png = buf.getvalue()
    small = small_png(png)
    assert len(small) < len(png) / 2
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(small)).convert("RGB"), dtype=float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0  # the same picture, to the eye
    assert small_png(b"\x89PNG not an image") == b"\x89PNG not an image"  # unreadable: kept as it is
