"""`tuco demo` end to end at reduced size (on a pair trained by the recipe on a tiny budget), with its
metrics recomputed independently from the rows it wrote."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from tuco.demo.train import Recipe, train_demo
from tuco.judges import is_refusal
from tuco.runs import read_rows

from test_cli import cli
from test_demo_recipe import CHATS, DOCS


@pytest.fixture(scope="module")
def tiny_demo_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo-pair")
    r = Recipe(vocab_size=400, layers=2, hidden=64, heads=4, intermediate=128, context=1024, pretrain_tokens=20_000,
               pretrain_seq=64, pretrain_batch=8, pretrain_lr=3e-3, sft_epochs=0.5, sft_batch=8)
    with contextlib.redirect_stdout(io.StringIO()):
        train_demo(d, r, general_chats=CHATS, docs=DOCS)
    return d


def test_demo_quick_end_to_end(tmp_path, tiny_demo_pair):
    out = tmp_path / "run"
    res = cli("demo", "--quick", "--pair-dir", str(tiny_demo_pair), "--out", str(out))
    assert res.returncode == 0, res.stderr
    for name in ("rows.jsonl", "rows.manifest.json", "metrics.json", "web_vs_chat.png", "many_shot.png", "alpha.png", "report.html"):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    rows = read_rows(out / "rows.jsonl")
    web = [r["tuco"] for r in rows if r["experiment"] == "web-vs-chat" and r["group"] == "web"]
    chat = [r["tuco"] for r in rows if r["experiment"] == "web-vs-chat" and r["group"] == "chat"]
    brute = sum((c > w) + 0.5 * (c == w) for c in chat for w in web) / (len(chat) * len(web))
    assert m["web_vs_chat_auc"] == pytest.approx(brute, abs=1e-12)
    for a, v in m["alpha"].items():
        harm = [r for r in rows if r["experiment"] == "alpha" and r["alpha"] == float(a) and r["kind"] == "harmful"]
        assert v["harmful_refusal"] == pytest.approx(sum(is_refusal(r["response"]) for r in harm) / len(harm))
    assert set(m["alpha"]) == {"0.0", "0.5", "0.75", "1.0", "1.25", "1.5"}
    assert set(m["many_shot"]) | {str(k) for k in m["many_shot_skipped_k_beyond_context"]} == {"0", "1", "2", "4", "8", "16"}
    assert "web-vs-chat" in res.stdout or "web text vs chat" in res.stdout
    assert "ROC-AUC" in res.stdout and "findings" in res.stdout
