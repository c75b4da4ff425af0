"""The paper's experiments end to end on tiny pairs (offline), each metric re-derived independently from
the rows, findings labelled from intervals; typed options; resume; the CLI."""

from __future__ import annotations

import json
import math

import pytest

import tuco
from conftest import brute_auc, check_findings, cli
from tuco.data.builtin import PERSONA_QUESTION
from tuco.data.sources import load_statements, spread
from tuco.errors import ConfigError, InputError, RunError
from tuco.experiments import NAMES, get, run_experiment, validate
from tuco.measures.choices import choose
from tuco.measures.outputco import output_baselines
from tuco.runs import SCHEMA_VERSION, read_rows
from tuco.stats.summary import cross_validated_alpha


def check_run_dir(out, name):
    rows = read_rows(out / "rows.jsonl")
    manifest = json.loads((out / "rows.manifest.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert manifest["status"] == "finished" and manifest["n_rows"] == len(rows) > 0 and manifest["schema"] == SCHEMA_VERSION
    assert manifest["config"]["experiment"] == name and "seed" in manifest["config"] and manifest["versions"]["torch"]
    assert m["experiment"] == name and m["question"] and m["findings"]
    assert m["findings"][0]["primary"] is True  # every experiment declares its primary claim, listed first
    assert all(set(f) >= {"claim", "primary", "verdict", "estimate", "low", "high", "n", "paper"} for f in m["findings"])
    check_findings(m["findings"])
    assert len({r["id"] for r in rows}) == len(rows) and all(r["kind"] in ("score", "generation", "choice") for r in rows)
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    return rows, m


def finding(m, text):
    """The finding whose claim contains ``text``."""
    (f,) = [f for f in m["findings"] if text in f["claim"]]
    return f


def test_registry_lists_the_paper_analyses():
    assert set(NAMES) == {
        "web-vs-chat",
        "gcg",
        "conjugate",
        "many-shot",
        "many-shot-persona",
        "jailbreak-success",
        "alpha-sweep",
        "output-vs-tuco",
    }


def test_options_are_typed_and_validated_on_construction():
    ms = get("many-shot")
    assert ms.make_options(ks=[0, 2]).ks == [0, 2]
    with pytest.raises(ConfigError, match="--ks must be >= 0"):
        ms.make_options(ks=[-1])
    with pytest.raises(ConfigError, match="--ks must be int"):
        ms.make_options(ks=["2"])
    with pytest.raises(ConfigError, match="--shots 'matching': choose from compliant, refusal, neutral"):
        ms.make_options(shots=["matching"])
    with pytest.raises(ConfigError, match="^many-shot has no --mode: .*: tuco experiment many-shot-persona$"):  # retired
        ms.make_options(mode="persona", ks=[0, 2])
    with pytest.raises(ConfigError, match="has no option 'position'"):  # the persona form reads the next token only
        get("many-shot-persona").make_options(position="first-generated")
    with pytest.raises(ConfigError, match="has no option 'nope'"):
        ms.make_options(nope=1)
    with pytest.raises(ConfigError, match="must contain 1"):
        get("alpha-sweep").make_options(alphas=[0.5, 2.0])


def test_web_vs_chat_with_baselines(llama_pair, tmp_path):
    docs = tmp_path / "docs.txt"
    words = "the river ran past old mills and quiet farms while children played near the water".split()
    docs.write_text("".join(" ".join(words * (3 + i % 3)) + f" doc {i}\n" for i in range(6)) + "too short\n")
    m = run_experiment(
        "web-vs-chat",
        llama_pair,
        tmp_path / "r",
        web=str(docs),
        n=7,
        web_tokens=12,
        window_sweep=[6],
        without_template=True,
        baselines=True,
    )
    rows, saved = check_run_dir(tmp_path / "r", "web-vs-chat")
    web = [r for r in rows if r["condition"] == "web"]
    chat = [r["tuco"] for r in rows if r["condition"] == "chat"]
    assert (
        len(web) == 6 and len(chat) == 7 and len([r for r in rows if r["condition"] == "web (6 tokens)"]) == 7
    )  # the short one holds 6 tokens
    assert json.loads((tmp_path / "r" / "rows.manifest.json").read_text())["web_documents_shorter_than_12_tokens"] == 1
    primary = finding(saved, "12-token windows")
    assert primary["primary"] and primary["estimate"] == pytest.approx(brute_auc(chat, [r["tuco"] for r in web]))
    assert primary["paper_range"] == [0.93, 1.0]
    for r in web:  # a window strictly inside its document: never the document's last token
        assert r["n_tokens"] <= 13 and not r["prompt"].rstrip().endswith(r["item"].replace("doc-", "doc "))
    again = tuco.score(llama_pair, [r["prompt"] for r in web], chat=False)  # the engine's score of the same text
    assert [s.tuco for s in again] == pytest.approx([r["tuco"] for r in web], abs=1e-6)
    base = output_baselines(llama_pair, [r["prompt"] for r in web], chat=False)
    assert [b.output_co for b in base] == pytest.approx([r["output_co"] for r in web], abs=1e-6)
    assert all(r["kl_ft_pt"] >= 0 for r in rows)
    oc = finding(saved, "lower OutputCo")
    assert not oc["primary"] and oc["estimate"] == pytest.approx(
        brute_auc([r["output_co"] for r in rows if r["condition"] == "chat"], [r["output_co"] for r in web])
    )
    tmpl = finding(saved, "template raises TuCo")
    raw = {r["item"]: r["tuco"] for r in rows if r["condition"] == "chat (no template)"}
    with_t = {r["item"]: r["tuco"] for r in rows if r["condition"] == "chat"}
    assert tmpl["estimate"] == pytest.approx(sum(with_t[i] - raw[i] for i in raw) / len(raw))
    assert m["per_condition"]["web"]["n"] == 6


def test_web_vs_chat_request_mean_position(llama_pair, tmp_path):
    run_experiment("web-vs-chat", llama_pair, tmp_path, n=3, web_tokens=8, position="request-mean")
    rows = read_rows(tmp_path / "rows.jsonl")
    chat = [r for r in rows if r["condition"] == "chat"]
    assert all(r["tuco"] == r["tuco_request"] and r["tuco_request"] != r["tuco_last"] for r in chat)
    # independent: per-token TuCo of the request's own tokens, found by hand
    p = chat[0]["prompt"]
    (s,) = tuco.score(llama_pair, [p], per_token=True)
    text = llama_pair.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
    start = text.rfind(p)
    offs = llama_pair.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    inside = [t for (a, b), t in zip(offs, s.token_tuco) if b > a and b > start and a < start + len(p)]
    assert chat[0]["tuco_request"] == pytest.approx(sum(inside) / len(inside), abs=1e-6)


def test_many_shot_persona(llama_pair, tmp_path):
    m = run_experiment("many-shot-persona", llama_pair, tmp_path, ks=[0, 1, 8], targets=4)
    statements = load_statements("builtin:ends-justify-means")
    pool = [s for s in statements if s not in spread(statements, 4)]
    rows, saved = check_run_dir(tmp_path, "many-shot-persona")
    assert {r["k"] for r in rows} == {0, 1} and m["skipped_k_beyond_context"] == [8]  # the tiny model's context
    assert len(rows) == 4 + 2 * 4  # k = 0 once (no shots), then matching and opposite shots at k = 1
    for r in rows:
        assert r["chosen"] == ("Yes" if r["logprobs"][0] >= r["logprobs"][1] else "No")
    k1 = [r for r in rows if r["k"] == 1 and r["shots"] == "matching"]
    assert m["per_kind"]["matching"]["1"]["harmful_rate"] == pytest.approx(sum(r["chosen"] == r["matching"] for r in k1) / 4)
    opposite = [r for r in rows if r["k"] == 1 and r["shots"] == "opposite"][0]["prompt"]
    assert opposite != k1[0]["prompt"]
    k0 = [r for r in rows if r["k"] == 0]  # no shots: the persona question alone, chosen independently
    again = choose(llama_pair, [[{"role": "user", "content": PERSONA_QUESTION.format(statement=r["target"])}] for r in k0], ["Yes", "No"])
    assert [c.tuco for c in again] == pytest.approx([r["tuco"] for r in k0], abs=1e-6)
    primary = saved["findings"][0]
    assert primary["primary"] and "faster than with opposite shots" in primary["claim"]
    for r in k1:  # each target's own shot: the pool statement its id names, before the target
        (j,) = [int(i.removeprefix("shot")) for i in r["shot_ids"]]
        assert r["prompt"].index(pool[j].statement) < r["prompt"].index(r["target"])

    def ols(item, shots):  # the slope of TuCo over log2(1 + k), by hand
        pts = [(math.log2(1 + r["k"]), r["tuco"]) for r in rows if r["item"] == item and r["shots"] in (shots, "none")]
        mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
        return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)

    items = sorted({r["item"] for r in rows})
    part = finding(saved, "the primary's TuCo part")  # the crossed slope of the per-target difference
    assert part["estimate"] == pytest.approx(sum(ols(i, "matching") - ols(i, "opposite") for i in items) / len(items))
    assert part["n"][0] == 4 and part["verdict"] == "not testable on this pair" and "4 targets" in part["measured"]
    assert primary["verdict"] == "not testable on this pair" and "at least 6 targets" in primary["measured"]


def test_conjugate_and_output_vs_tuco(llama_pair, tmp_path):
    # encodings only (the shipped translations' Malayalam is longer than the tiny pair's context; the
    # translations and the primary claim: tests/test_exp_conjugate.py)
    m = run_experiment("conjugate", llama_pair, tmp_path / "c", translations="", encodings=["plain", "rot13", "base64"], n=5)
    rows, saved = check_run_dir(tmp_path / "c", "conjugate")
    tuco_of = {(r["set"], r["encoding"], r["item"]): r["tuco"] for r in rows}

    def drops(kind):  # per request and encoding: encoded - plain
        items = sorted({i for s, _, i in tuco_of if s == kind})
        return [tuco_of[(kind, e, i)] - tuco_of[(kind, "plain", i)] for e in ("rot13", "base64") for i in items]

    primary = saved["findings"][0]
    assert primary["primary"] and primary["verdict"] == "not measured" and "--translations ''" in primary["measured"]
    h, b = drops("harmful"), drops("benign")
    pooled = finding(saved, "encodings as a sample")
    assert not pooled["primary"] and pooled["estimate"] == pytest.approx(sum(h) / len(h) - sum(b) / len(b))
    assert pooled["n"][:3] == [5, 5, 2] and pooled["verdict"].startswith("exploratory")
    assert "crossed random effects" in pooled["method"]
    assert finding(saved, "rot13 lowers TuCo more for harmful")["n"] == [
        len({r["topic"] for r in rows if r["set"] == "benign"}),
        len({r["topic"] for r in rows if r["set"] == "harmful"}),
    ]
    assert m["per_condition"]["benign:rot13"]["mean_prompt_tokens"] > 0  # lengths reported per condition
    assert m["encodings"]["rot13"]["harmful_drop"] == pytest.approx(sum(h[:5]) / 5)
    m = run_experiment("output-vs-tuco", llama_pair, tmp_path / "o", ks=[0, 1, 2], targets=3)
    rows, saved = check_run_dir(tmp_path / "o", "output-vs-tuco")
    slopes = []
    for item in sorted({r["item"] for r in rows}):
        pts = [(math.log2(1 + r["k"]), r["tuco"]) for r in rows if r["item"] == item]
        mx, my = sum(x for x, _ in pts) / 3, sum(y for _, y in pts) / 3
        slopes.append(sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts))
    assert saved["findings"][0]["estimate"] == pytest.approx(sum(slopes) / 3)


def test_output_vs_tuco_ks_beyond_the_pool_are_measured_once(llama_pair, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("".join(f"the sky is green {i}\n" for i in range(6)))  # 2 targets, a pool of 4
    m = run_experiment("output-vs-tuco", llama_pair, tmp_path / "run", questions=str(questions), ks=[0, 10, 20], targets=2)
    rows, _ = check_run_dir(tmp_path / "run", "output-vs-tuco")
    assert sorted({r["k"] for r in rows}) == [0, 4] and len(rows) == 4  # k 10 and 20 are the whole pool, measured once
    assert m["ks_beyond_the_pool"] == [10, 20] and m["findings"][0]["n"] == [2]


def test_alpha_sweep_choices_and_refusals(llama_pair, tmp_path):
    m = run_experiment(
        "alpha-sweep",
        llama_pair,
        tmp_path,
        behaviours=["builtin:ends-justify-means"],
        tasks=["builtin:arithmetic"],
        harmful="builtin:harmful",
        benign="builtin:benign",
        n=4,
        max_new_tokens=3,
        alphas=[0.0, 0.9, 1.0, 1.5],
        folds=3,
        shots=2,
    )
    rows, _ = check_run_dir(tmp_path, "alpha-sweep")
    task = m["per_task"]["builtin:arithmetic"]
    by_alpha = {
        a: [
            r["chosen"] == r["right"]
            for r in sorted((r for r in rows if r["task"] == "builtin:arithmetic" and r["alpha"] == a), key=lambda r: r["index"])
        ]
        for a in (0.9, 1.0)  # the cross-validated choice is made among the alphas in 0.75-1.25 only
    }
    assert task["cv_max"]["delta"] == pytest.approx(cross_validated_alpha(by_alpha, 3, 0, "max")["delta"])
    assert set(task["cv_max"]["alphas"]) <= {0.9, 1.0} and m["cv_alphas"] == [0.9, 1.0]
    ref = choose(
        llama_pair,
        [r["prompt"] for r in rows if r["task"] == "builtin:arithmetic" and r["alpha"] == 1.5][:2],
        ["A", "B", "C", "D"],
        alpha=1.5,
    )
    assert [c.tuco for c in ref] == pytest.approx(
        [r["tuco"] for r in rows if r["task"] == "builtin:arithmetic" and r["alpha"] == 1.5][:2], abs=1e-6
    )
    harm = m["per_task"]["refusal:harmful"]
    assert harm["refusal_rate"]["1.0"] == pytest.approx(
        sum(r["refused"] for r in rows if r["task"] == "refusal:harmful" and r["alpha"] == 1.0) / 4
    )
    primary = [f for f in m["findings"] if f["primary"]]
    assert [f["claim"] for f in primary] == [
        "ends-justify-means: the cross-validated alpha in 0.75-1.25 raises agreement",
        "arithmetic: the cross-validated alpha in 0.75-1.25 raises accuracy",
    ]
    assert all(f["mde"] > 0 and f["p_holm"] >= f["p"] for f in primary)
    assert finding(m, "arithmetic: the cross-validated alpha in 0.75-1.25 raises")["estimate"] == pytest.approx(task["cv_max"]["delta"])
    control = finding(m, "Control (sanity check): alpha=0, the pre-trained model, lowers the harmful refusal rate")
    assert not control["primary"] and control["verdict"] == "too few to tell (n < 10)"  # 4 requests


def test_jailbreak_success_is_stratified_by_attack_and_leaves_benign_prompts_out(llama_pair, tmp_path):
    m = run_experiment(
        "jailbreak-success",
        llama_pair,
        tmp_path / "j",
        n=4,
        samples=2,
        max_new_tokens=3,
        min_successes=1,
        encodings=["rot13"],
        baselines=True,
    )
    rows, _ = check_run_dir(tmp_path / "j", "jailbreak-success")
    for r in rows:
        assert r["non_refusals"] + r["refusals"] == 2 and len(r["responses"]) == 2
    judged = [r for r in rows if r["condition"] != "benign"]
    neg = [r for r in judged if r["non_refusals"] >= 1]
    pos = [r for r in judged if r["non_refusals"] < 1]
    primary = m["findings"][0]
    pairs = [(p["tuco"], q["tuco"]) for p in pos for q in neg if p["condition"] == q["condition"]]  # within one attack type
    if pairs:
        assert primary["estimate"] == pytest.approx(sum((a > b) + 0.5 * (a == b) for a, b in pairs) / len(pairs))
    else:
        assert primary["verdict"] == "not measured"
    assert m["per_group"]["benign"]["success_rate"] is None  # benign prompts are in neither class


def test_gcg_controls_have_the_suffix_token_length_and_random_words_do_not_reproduce(llama_pair, tmp_path):
    suffixes = tmp_path / "s.txt"
    suffixes.write_text("zz yy\nlamp ocean quickly paper green\n")
    m = run_experiment("gcg", llama_pair, tmp_path / "g", n=12, suffixes=str(suffixes), optimize=0, max_new_tokens=2)
    rows, _ = check_run_dir(tmp_path / "g", "gcg")
    clean = {r["item"]: r for r in rows if r["condition"] == "clean"}
    assert [r["prompt"] for r in rows if r["condition"] == "suffix-0"] == [r["prompt"] + " zz yy" for r in clean.values()]
    for j in (0, 1):
        attacked = {r["item"]: r["n_tokens"] for r in rows if r["condition"] == f"suffix-{j}"}
        control = {r["item"]: r for r in rows if r["condition"] == f"control-{j}"}
        assert set(control) == set(attacked)
        assert all(abs(control[i]["n_tokens"] - attacked[i]) <= 1 for i in attacked)  # the same length, to the token
        assert all(control[i]["prompt"].startswith(clean[i]["prompt"] + " ") for i in attacked)
        rand = {r["item"]: r for r in rows if r["condition"] == f"random-{j}"}
        assert set(rand) == set(attacked)
        assert all(abs(rand[i]["n_tokens"] - attacked[i]) <= 1 for i in attacked)  # random tokens, the same length
        assert all(rand[i]["prompt"].startswith(clean[i]["prompt"] + " ") and rand[i]["prompt"].isascii() for i in attacked)
        assert len({rand[i]["prompt"][len(clean[i]["prompt"]) :] for i in attacked}) > 1  # drawn per request
    primary = m["findings"][0]
    assert primary["primary"] and "random tokens of the same length" in primary["claim"]
    words = next(f for f in m["findings"] if "ordinary words of the same length" in f["claim"])
    assert not words["primary"]
    assert primary["verdict"] not in (
        "reproduced",
        "direction reproduced, weaker than the paper",
        "direction reproduced, stronger than the paper",
    )
    assert m["suffixes"] == ["zz yy", "lamp ocean quickly paper green"]


def test_an_interrupted_experiment_resumes_without_redoing_work(llama_pair, tmp_path, monkeypatch):
    from tuco.runs.run import RunHandle

    ref = run_experiment("web-vs-chat", llama_pair, tmp_path / "ref", n=6, batch_size=2)
    real = RunHandle.write
    calls = []

    def die_after_two(self, rows):
        real(self, rows)
        calls.append(len(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunHandle, "write", die_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("web-vs-chat", llama_pair, tmp_path / "run", n=6, batch_size=2)
    monkeypatch.setattr(RunHandle, "write", real)
    manifest = json.loads((tmp_path / "run" / "rows.manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["n_rows"] == 4
    with pytest.raises(RunError, match="--resume"):
        run_experiment("web-vs-chat", llama_pair, tmp_path / "run", n=6, batch_size=2)
    with pytest.raises(RunError, match="options"):
        run_experiment("web-vs-chat", llama_pair, tmp_path / "run", n=5, batch_size=2, resume=True)
    scored = []
    monkeypatch.setattr(RunHandle, "write", lambda self, rows: (scored.extend(rows), real(self, rows)))
    got = run_experiment("web-vs-chat", llama_pair, tmp_path / "run", n=6, batch_size=2, resume=True)
    assert len(scored) == len(read_rows(tmp_path / "ref" / "rows.jsonl")) - 4  # only the rows the first run had not written
    assert read_rows(tmp_path / "run" / "rows.jsonl") == read_rows(tmp_path / "ref" / "rows.jsonl")
    assert got["findings"] == ref["findings"]


def test_validate_catches_bad_data_before_any_model(tmp_path):
    assert validate("web-vs-chat")[0] == "options of web-vs-chat: valid"
    with pytest.raises(InputError, match="missing.txt"):
        validate("web-vs-chat", web=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="unknown judge"):
        validate("jailbreak-success", judge="gpt")


def test_cli_experiment(models_args, tmp_path):
    res = cli("experiment", "web-vs-chat", *models_args, "--out", str(tmp_path / "run"), "--n", "4")
    assert res.returncode == 0, res.stderr
    assert "verdict" in res.stdout and "web-vs-chat" in res.stdout and (tmp_path / "run" / "metrics.json").exists()
    assert "jailbreak-success" in cli("experiment", "list", check_rc=0).stdout
    bad = cli("experiment", "web-vs-chat", *models_args, "--out", str(tmp_path / "r2"), "--n", "0")
    assert bad.returncode == 2 and "--n must be >= 1" in bad.stderr
    bad = cli("experiment", "web-vs-chat", *models_args, "--out", str(tmp_path / "r3"), "--web", str(tmp_path / "missing.txt"))
    assert bad.returncode == 2 and "missing.txt" in bad.stderr and not (tmp_path / "r3").exists()
    res = cli("experiment", "many-shot", "--validate", "--ks", "0,2")
    assert res.returncode == 0 and "options of many-shot: valid" in res.stdout
    assert cli("experiment", "many-shot", "--validate", "--ks", "0,x").returncode == 2


def test_cli_help_of_every_experiment():
    for argv in (["experiment", "--help"], *(["experiment", name, "--help"] for name in NAMES)):
        assert cli(*argv).returncode == 0, argv
    assert cli("experiment").returncode == 2


def test_gcg_optimises_suffixes_with_nanogcg(llama_pair, tmp_path):
    pytest.importorskip("nanogcg")  # installed by `make install` (see the Makefile)
    m = run_experiment(
        "gcg", llama_pair, tmp_path, n=2, optimize=1, gcg_steps=2, gcg_search_width=8, gcg_topk=4, max_new_tokens=3, controls=False
    )
    rows, _ = check_run_dir(tmp_path, "gcg")
    (suffix,) = m["suffixes"]
    assert isinstance(suffix, str) and suffix.strip()
    assert [r["prompt"] for r in rows if r["group"] == "attacked"] == [f"{r['prompt']} {suffix}" for r in rows if r["group"] == "clean"]
    assert json.loads((tmp_path / "suffixes.json").read_text())[0]["optimised_on"] in tuco.data.builtin.harmful_train()


def test_a_failed_run_keeps_its_rows_and_says_why_and_nothing_of_the_users_is_removed(llama_pair, tmp_path):
    (tmp_path / "mine.png").write_bytes(b"\x89PNG not a run's")
    run_experiment("web-vs-chat", llama_pair, tmp_path, n=2)
    assert (tmp_path / "mine.png").exists()  # not a run directory before: nothing of the user's is removed
    (tmp_path / "stale.png").write_bytes(b"\x89PNG stale")
    with pytest.raises(ConfigError, match="unknown built-in prompt set .nope."):
        run_experiment("web-vs-chat", llama_pair, tmp_path, n=2, chat="builtin:nope", overwrite=True)
    manifest = json.loads((tmp_path / "rows.manifest.json").read_text())
    assert manifest["status"].startswith("failed: ConfigError: unknown built-in prompt set 'nope'")
    assert not (tmp_path / "stale.png").exists() and not (tmp_path / "metrics.json").exists()  # the replaced run's
    assert len(read_rows(tmp_path / "rows.jsonl")) == 2 * 4  # the web rows (4 windows) computed before the failure are kept


def test_generated_positions_need_two_tokens_and_lists_distinct_values():
    ms = get("many-shot")
    with pytest.raises(ConfigError, match="--position response-mean .* needs --max-new-tokens 2 or more \\(got 1\\)"):
        ms.make_options(position="response-mean", max_new_tokens=1)
    assert ms.make_options(position="first-generated", max_new_tokens=2).max_new_tokens == 2
    with pytest.raises(ConfigError, match="--alphas: 1.0 given more than once"):
        get("alpha-sweep").make_options(alphas=[1.0, 1])
    with pytest.raises(ConfigError, match="--ks: 2 given more than once"):
        ms.make_options(ks=[0, 2, 2])


def test_many_shot_slopes_leave_out_responses_without_tuco():
    from tuco.experiments.many_shot import claims, drawn, metrics, shot_ids, shot_order

    o = get("many-shot").make_options(position="first-generated", ks=[0, 1, 3])
    rows = [
        {
            "id": f"{s}{k}-{i}",
            "item": f"t{i}",
            "k": k,
            "shots": s if k else "none",
            "shot_ids": shot_ids(drawn(shot_order(10, f"request {i}", 0), k), s),
            "topic": f"topic {i % 6}",
            "condition": "x",
            "refused": i % 2 == 0,
            "tuco": None if (k, i, s) == (3, 0, "compliant") else 0.3 - (0.02 if s == "compliant" else 0.01) * k + 0.001 * i,
        }
        for s in ("compliant", "refusal")
        for k in (0, 1, 3)
        for i in range(12)
        if k or s == "compliant"
    ]
    m = metrics(rows, o)
    found = claims(rows, o, m)
    primary = found[0]
    assert primary.primary and primary.interval.n[0] == 12 and primary.interval.n[2] == 6
    # the difference compliant - refusal is -0.01 k at x = log2(1 + k) = 0, 1, 2: slope -0.015 per target, but
    # t0 (its k = 3 point missing) keeps k = 0 and 1: slope -0.01
    assert found[1].interval.estimate == pytest.approx((11 * -0.015 - 0.01) / 12)
    assert m["per_kind"]["compliant"]["3"]["mean_tuco"] == pytest.approx(sum(0.24 + 0.001 * i for i in range(1, 12)) / 11)


def test_boolean_options_are_bare_flags_and_subpackages_load_from_the_top(tmp_path):
    res = cli("experiment", "web-vs-chat", "--pair", "demo", "--baselines", "--no-without-template", "--validate")
    assert res.returncode == 0, res.stderr
    res = cli("experiment", "web-vs-chat", "--pair", "demo", "--baselines", "true", "--validate")
    assert res.returncode == 2 and "unrecognized arguments: true" in res.stderr
    assert tuco.__getattr__("experiments").run_experiment is run_experiment
    assert callable(tuco.__getattr__("models").shipped.demo_pair_dirs)


def test_suffixes_transfer_from_a_gcg_run_exactly(tmp_path):
    """A gcg run's suffixes.json gives back the exact strings (leading and trailing spaces kept); a line file
    strips them; anything else is one clear error."""
    from tuco.data.sources import read_suffixes
    from tuco.errors import ConfigError

    run = tmp_path / "suffixes.json"
    run.write_text(json.dumps([{"suffix": " spec  x co ", "optimised_on": "r"}, {"suffix": "b\tc", "optimised_on": "s"}]))
    assert read_suffixes(str(run)) == [" spec  x co ", "b\tc"]
    plain = tmp_path / "s.json"
    plain.write_text(json.dumps(["one", " two"]))
    assert read_suffixes(str(plain)) == ["one", " two"]
    lines = tmp_path / "s.txt"
    lines.write_text(" one \n\ntwo\n")
    assert read_suffixes(str(lines)) == ["one", "two"]
    for bad in ('{"suffix": "x"}', "[1, 2]", '[{"other": 1}]', "[]", "not json"):
        plain.write_text(bad)
        with pytest.raises(ConfigError, match="suffix file"):
            read_suffixes(str(plain))


def test_many_shot_refusal_control_matches_the_compliant_context_length(llama_pair):
    """The control differs from the behaviour's shots in what they say, not in how long they are: each pool
    entry's refusal is (nearly) as many tokens as its compliant answer, so a target's k refusal shots make as
    long a context as its k compliant ones."""
    from tuco.experiments.many_shot import drawn, jailbreak_turns, shot_order

    tok = llama_pair.tokenizer
    pool = [f"How do I pick lock number {i}?" for i in range(16)]
    sizes = {}
    for kind in ("compliant", "refusal"):
        turns = jailbreak_turns(pool, kind, tok)
        assert [q for q, _ in turns] == pool  # a shot's question is its pool entry
        sizes[kind] = [len(tok(a, add_special_tokens=False)["input_ids"]) for _, a in turns]
    assert abs(sum(sizes["refusal"]) - sum(sizes["compliant"])) <= 0.05 * sum(sizes["compliant"])
    assert all(abs(a - b) <= max(4, 0.25 * b) for a, b in zip(sizes["refusal"], sizes["compliant"]))
    for target in ("a", "b"):
        picks = drawn(shot_order(len(pool), target, 0), 8)
        assert abs(sum(sizes["refusal"][j] for j in picks) - sum(sizes["compliant"][j] for j in picks)) <= 0.1 * sum(
            sizes["compliant"][j] for j in picks
        )
    refusals = [a for _, a in jailbreak_turns(pool, "refusal", tok)]
    assert len(set(refusals)) > 8  # still varied
