"""The HTML report: escaping, colours, empty and huge runs, no torch, and a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuco.report.html import MAX_TABLE_ROWS, build_html, display_token, esc, tokens_html
from tuco.report.load import load_run
from tuco.report.svg import colour, text_colour
from tuco.runs import RowWriter, write_manifest

from test_cli import cli

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
PWN = "<script>document.title='pwned'</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def make_run(tmp_path, rows, name="scores.jsonl", manifest=True):
    out = tmp_path / name
    w = RowWriter(out)
    w.write(rows)
    w.close()
    if manifest:
        write_manifest(out, {"verb": "score", "base": XSS, "tuned": "t", "alpha": 1.0})
    return out


def score_row(i, prompt="hello", group=None, **extra):
    row = {"id": str(i), "prompt": prompt, "tuco": 0.1 + 0.8 * (i % 10) / 10, "preco": 0.5, "n_tokens": 3,
           "layer_ptc_l1": [1.0, 2.0, 3.0], "layer_ftc_l1": [0.5, 0.4, 0.3], **extra}
    if group is not None:
        row["group"] = group
    return row


def test_every_text_is_escaped(tmp_path):
    rows = [score_row(0, XSS, group=XSS, tokens=["<b>", "Ġ&amp;", XSS], token_tuco=[0.1, 0.5, 0.9], note=PWN),
            score_row(1, PWN, group="benign")]
    html = build_html(load_run(make_run(tmp_path, rows)), title=XSS)
    assert "<script>alert" not in html and "<img" not in html  # no raw tag from the data (no plots here)
    assert "document.title='pwned'" not in html.replace("document.title=&#x27;pwned&#x27;", "")
    assert esc(XSS) in html  # shown as text
    assert html.count("<script>") == 1  # only our own script
    assert "&lt;b&gt;" in html and " &amp;amp;" in html  # tokens escaped after marker replacement
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("script-src")[1]


def test_colour_scale():
    values = [i / 20 for i in range(21)]
    cols = [colour(v) for v in values]
    lum = [sum(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in cols]
    assert all(a >= b for a, b in zip(lum, lum[1:]))  # darker as TuCo grows
    assert colour(0.0) == "#ffffcc" and colour(1.0) == "#800026"
    assert colour(-3) == colour(0.0) and colour(7) == colour(1.0)
    assert colour(None) == colour(float("nan")) == "#dddddd"
    assert text_colour(0.9) == "#ffffff" and text_colour(0.1) == "#000000"


def test_tokens_carry_value_on_hover():
    html = tokens_html(["Ġhi", "Ċ"], [0.25, None])
    assert 'title="TuCo 0.2500"' in html and 'title="no value"' in html and 'data-tuco="0.250000"' in html
    assert display_token("Ġhello▁worldĊ") == " hello world\n"


def test_empty_run(tmp_path):
    html = build_html(load_run(make_run(tmp_path, [])))
    assert "This results file has no rows." in html and html.endswith("</html>")


def test_huge_run_is_bounded(tmp_path):
    rows = [score_row(i, "p" * 50, tokens=["a", "b"], token_tuco=[0.1, 0.2]) for i in range(MAX_TABLE_ROWS + 3000)]
    html = build_html(load_run(make_run(tmp_path, rows)))
    assert f"Showing the first {MAX_TABLE_ROWS} of {MAX_TABLE_ROWS + 3000} rows" in html
    assert html.count("<tr data-group") == MAX_TABLE_ROWS
    assert html.count('class="tokview"') == 200
    assert len(html) < 6_000_000


def test_summary_and_groups(tmp_path):
    rows = [score_row(i, group="a" if i < 3 else "b") for i in range(6)]
    html = build_html(load_run(make_run(tmp_path, rows)))
    assert "group=a" in html and "group=b" in html
    mean_a = sum(r["tuco"] for r in rows[:3]) / 3
    assert f"<td>{mean_a:.4f}</td>" in html


def test_run_directory_with_experiment_files(tmp_path):
    make_run(tmp_path, [score_row(0)])
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "input, not a result"}\n')
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.93, "n": 10}))
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
    (tmp_path / "fig.png").write_bytes(png)
    run = load_run(tmp_path)
    assert [f.name for f in run.files] == ["scores.jsonl"]
    html = build_html(run)
    assert "0.93" in html and "data:image/png;base64," in html and "fig.png" in html


def test_report_never_imports_torch(tmp_path):
    out = make_run(tmp_path, [score_row(0)])
    code = ("import sys; from tuco.report.html import build_html; from tuco.report.load import load_run; "
            f"build_html(load_run({str(out)!r})); from tuco.cli import report; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_cli_errors(tmp_path):
    res = cli("report", str(tmp_path / "nope"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "bad.jsonl").write_text("{broken\n")
    res = cli("report", str(tmp_path / "bad.jsonl"))
    assert res.returncode == 2 and "cannot read results file" in res.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (.ci/run installs it)")
def test_report_in_headless_chromium(tmp_path, llama_dirs):
    """Real tiny pair -> score --per-token + generate -> tuco report -> rendered by Chromium."""
    assert CHROMIUM, "chromium must be installed in CI"
    base, tuned = llama_dirs
    run = tmp_path / "run"
    run.mkdir()
    prompts = run / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": XSS, "group": "attack"}) + "\n" + json.dumps({"prompt": PWN, "group": "attack"})
                       + "\n" + json.dumps({"prompt": "How do I bake bread?", "group": "benign"}) + "\n")
    m = ["--base", str(base), "--tuned", str(tuned), "--device", "cpu"]
    cli("score", *m, "--prompts", str(prompts), "--per-token", "--out", str(run / "scores.jsonl"), check_rc=0)
    cli("generate", *m, "--prompts", str(prompts), "--alpha", "0.5", "1", "--max-new-tokens", "6", "--per-token",
        "--out", str(run / "generations.jsonl"), check_rc=0)
    res = cli("report", str(run), "-o", str(tmp_path / "report.html"), check_rc=0)
    page = Path(res.stdout.strip())
    profile = tmp_path / "chrome-profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body_tag = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-ready="1"' in body_tag  # our script ran
    assert "data-pwned" not in body_tag  # the payload's onerror handler did not run
    assert re.search(r"<title>(.*?)</title>", dom).group(1) != "pwned"  # nor its <script>
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the payload shows as text
    for marker in ("Configuration", "Summary", "TuCo distribution", "Per-layer profile", "Tokens coloured by TuCo",
                   'class="tok"', "<svg", "3 of 3 rows", "6 of 6 rows"):
        assert marker in dom, marker
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2200",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
