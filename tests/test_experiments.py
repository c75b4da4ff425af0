"""The paper's experiments end to end on tiny pairs (offline), each metric re-derived independently from
the rows, findings labelled from intervals; typed options; resume; the CLI."""

from __future__ import annotations

import json

import pytest

import tuco
from conftest import brute_auc, cli
from tuco.choices import choose
from tuco.data.builtin import PERSONA_QUESTION
from tuco.errors import ConfigError, RunError
from tuco.experiments import NAMES, get, run_experiment, validate
from tuco.outputco import output_baselines
from tuco.runs import read_rows
from tuco.stats import cross_validated_alpha


def check_run_dir(out, name):
    rows = read_rows(out / "rows.jsonl")
    manifest = json.loads((out / "rows.manifest.json").read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert manifest["status"] == "finished" and manifest["n_rows"] == len(rows) > 0
    assert manifest["config"]["experiment"] == name and "seed" in manifest["config"] and manifest["versions"]["torch"]
    assert m["experiment"] == name and m["question"] and m["findings"]
    for f in m["findings"]:
        assert f["verdict"] in ("reproduced", "not significant", "opposite", "not measured", "too few to tell (n < 10)") and f["n"]
    assert len({r["id"] for r in rows}) == len(rows)
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    return rows, m


def test_registry_lists_the_paper_analyses():
    assert set(NAMES) == {"web-vs-chat", "gcg", "conjugate", "many-shot", "jailbreak-success", "alpha-sweep", "output-vs-tuco"}


def test_options_are_typed_and_validated_on_construction():
    ms = get("many-shot")
    assert ms.make_options(ks=[0, 2]).ks == [0, 2]
    with pytest.raises(ConfigError, match="--ks must be >= 0"):
        ms.make_options(ks=[-1])
    with pytest.raises(ConfigError, match="--ks must be int"):
        ms.make_options(ks=["2"])
    with pytest.raises(ConfigError, match="--mode 'x': choose from persona, jailbreak"):
        ms.make_options(mode="x")
    with pytest.raises(ConfigError, match="--position first-generated needs --mode jailbreak"):
        ms.make_options(position="first-generated")
    with pytest.raises(ConfigError, match="has no option 'nope'"):
        ms.make_options(nope=1)
    with pytest.raises(ConfigError, match="must contain 1"):
        get("alpha-sweep").make_options(alphas=[0.5, 2.0])


def test_web_vs_chat_with_baselines(llama_pair, tmp_path):
    m = run_experiment("web-vs-chat", llama_pair, tmp_path, n=6, web_tokens=12, without_template=True, baselines=True)
    rows, saved = check_run_dir(tmp_path, "web-vs-chat")
    web = [r["tuco"] for r in rows if r["condition"] == "web"]
    chat = [r["tuco"] for r in rows if r["condition"] == "chat"]
    assert len(web) == len(chat) == 6 and len([r for r in rows if r["condition"] == "chat (no template)"]) == 6
    assert m["auc"]["auc"] == pytest.approx(brute_auc(chat, web)) and saved["auc"]["auc"] == pytest.approx(m["auc"]["auc"])
    lo, hi = m["auc"]["ci"]
    assert lo <= m["auc"]["auc"] <= hi
    assert all(r["n_tokens"] <= 13 for r in rows if r["condition"] == "web")  # the 12-token window (+ BOS)
    web_rows = [r for r in rows if r["condition"] == "web"]
    again = tuco.score(llama_pair, [r["prompt"] for r in web_rows], chat=False)  # the engine's score of the same text
    assert [s.tuco for s in again] == pytest.approx([r["tuco"] for r in web_rows], abs=1e-6)
    base = output_baselines(llama_pair, [r["prompt"] for r in web_rows], chat=False)
    assert [b.output_co for b in base] == pytest.approx([r["output_co"] for r in web_rows], abs=1e-6)
    assert all(r["kl_ft_pt"] >= 0 for r in rows)
    assert m["auc_output_co"]["auc"] == pytest.approx(
        brute_auc([r["output_co"] for r in rows if r["condition"] == "chat"], [r["output_co"] for r in web_rows])
    )


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
    m = run_experiment("many-shot", llama_pair, tmp_path, ks=[0, 1, 8], targets=4)
    rows, _ = check_run_dir(tmp_path, "many-shot")
    assert {r["k"] for r in rows} == {0, 1} and len(rows) == 8 and m["skipped_k_beyond_context"] == [8]
    for r in rows:
        assert r["chosen"] == ("Yes" if r["logprobs"][0] >= r["logprobs"][1] else "No")
    k1 = [r for r in rows if r["k"] == 1]
    assert m["per_k"]["1"]["harmful_rate"] == pytest.approx(sum(r["chosen"] == r["matching"] for r in k1) / 4)
    k0 = [r for r in rows if r["k"] == 0]  # no shots: the persona question alone, chosen independently
    again = choose(llama_pair, [[{"role": "user", "content": PERSONA_QUESTION.format(statement=r["target"])}] for r in k0], ["Yes", "No"])
    assert [c.tuco for c in again] == pytest.approx([r["tuco"] for r in k0], abs=1e-6)
    assert m["tuco_change"]["paired"] is True and m["tuco_change"]["n"] == [4, 4]


def test_many_shot_jailbreak_records_every_position(llama_pair, tmp_path):
    m = run_experiment(
        "many-shot", llama_pair, tmp_path, mode="jailbreak", ks=[0, 1], targets=3, max_new_tokens=4, position="response-mean"
    )
    rows, _ = check_run_dir(tmp_path, "many-shot")
    for r in rows:
        assert r["tuco"] == r["tuco_response"]
        assert r["tuco_last"] == r["token_tuco"][0]
        assert r["tuco_first_generated"] == (r["token_tuco"][1] if len(r["token_tuco"]) > 1 else None)
        assert isinstance(r["refused"], bool) and len(r["layer_ftc_l1"]) == 3
        assert r["tuco_request"] is not None and (r["k"] == 0) == (r["tuco_context"] is None or r["k"] == 0)
    assert set(m["per_k"]) == {"0", "1"} and "layer_ftc_l1" in m["per_k"]["1"]
    assert (tmp_path / "many_shot_layers.png").exists()


def test_conjugate_and_output_vs_tuco(llama_pair, tmp_path):
    m = run_experiment("conjugate", llama_pair, tmp_path / "c", encodings=["plain", "rot13", "base64"], n=5)
    rows, _ = check_run_dir(tmp_path / "c", "conjugate")
    plain = [r["tuco"] for r in rows if r["condition"] == "plain"]
    rot = [r["tuco"] for r in rows if r["condition"] == "rot13"]
    assert m["per_group"]["rot13"]["auc_vs_reference"]["auc"] == pytest.approx(brute_auc(plain, rot))
    m = run_experiment("output-vs-tuco", llama_pair, tmp_path / "o", ks=[0, 2], targets=3)
    rows, _ = check_run_dir(tmp_path / "o", "output-vs-tuco")
    assert m["tuco_change"]["diff"] == pytest.approx(
        sum(r["tuco"] for r in rows if r["k"] == 2) / 3 - sum(r["tuco"] for r in rows if r["k"] == 0) / 3
    )


def test_output_vs_tuco_ks_beyond_the_pool_are_measured_once(llama_pair, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("".join(f"the sky is green {i}\n" for i in range(6)))  # 2 targets, a pool of 4
    m = run_experiment("output-vs-tuco", llama_pair, tmp_path / "run", questions=str(questions), ks=[0, 10, 20], targets=2)
    rows, _ = check_run_dir(tmp_path / "run", "output-vs-tuco")
    assert sorted({r["k"] for r in rows}) == [0, 4] and len(rows) == 4  # k 10 and 20 are the whole pool, measured once
    assert m["ks_beyond_the_pool"] == [10, 20] and m["tuco_change"]["n"] == [2, 2]


def test_template_comparison_pairs_each_chat_with_itself():
    from tuco.experiments.web_vs_chat import metrics

    o = get("web-vs-chat").make_options(without_template=True)
    rows = [{"id": f"chat-{i}", "item": i, "condition": "chat", "tuco": 0.9 if i < 6 else 0.5 + 0.01 * i} for i in range(12)]
    rows += [
        {"id": f"raw-{i}", "item": i, "condition": "chat (no template)", "tuco": 0.5 + 0.01 * i} for i in range(6, 12)
    ]  # chats 6-11: text
    m = metrics(rows, o)
    assert m["auc_template"]["auc"] == pytest.approx(0.5) and m["auc_template"]["n_pos"] == 6
    m = metrics([r for r in rows if r["condition"] == "chat"], o)
    assert "auc_template" not in m and "no plain-text prompts" in m["auc_template_skipped"]


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
        alphas=[0.5, 1.0, 1.5],
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
        for a in (0.5, 1.0, 1.5)
    }
    assert task["cv_max"]["delta"] == pytest.approx(cross_validated_alpha(by_alpha, 3, 0, "max")["delta"])
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


def test_jailbreak_success_and_gcg_with_suffix_file(llama_pair, tmp_path):
    m = run_experiment(
        "jailbreak-success",
        llama_pair,
        tmp_path / "j",
        n=3,
        samples=2,
        max_new_tokens=3,
        min_successes=1,
        encodings=["rot13"],
        baselines=True,
    )
    rows, _ = check_run_dir(tmp_path / "j", "jailbreak-success")
    for r in rows:
        assert r["non_refusals"] + r["refusals"] == 2 and len(r["responses"]) == 2
    neg = [r["tuco"] for r in rows if r["condition"] != "benign" and r["non_refusals"] >= 1]
    pos = [r["tuco"] for r in rows if not (r["condition"] != "benign" and r["non_refusals"] >= 1)]
    if neg and pos:
        assert m["auc"]["auc"] == pytest.approx(brute_auc(pos, neg))
    else:
        assert m["auc"]["auc"] is None and m["findings"][0]["verdict"] == "not measured"
    suffixes = tmp_path / "s.txt"
    suffixes.write_text("zz yy\n")
    m = run_experiment("gcg", llama_pair, tmp_path / "g", n=3, suffixes=str(suffixes), max_new_tokens=3)
    rows, _ = check_run_dir(tmp_path / "g", "gcg")
    assert [r["prompt"] for r in rows if r["condition"] == "suffix-0"] == [
        r["prompt"] + " zz yy" for r in rows if r["condition"] == "clean"
    ]
    assert m["suffixes"] == ["zz yy"]


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
    assert len(scored) == 8  # only the 8 rows the first run had not written
    assert read_rows(tmp_path / "run" / "rows.jsonl") == read_rows(tmp_path / "ref" / "rows.jsonl")
    assert got["auc"] == ref["auc"]


def test_validate_catches_bad_data_before_any_model(tmp_path):
    assert validate("web-vs-chat")[0] == "options of web-vs-chat: valid"
    with pytest.raises(Exception, match="missing.txt"):
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
    res = cli("experiment", "many-shot", "--validate", "--ks", "0,2", "--mode", "jailbreak")
    assert res.returncode == 0 and "options of many-shot: valid" in res.stdout
    assert cli("experiment", "many-shot", "--validate", "--ks", "0,x").returncode == 2


def test_cli_help_of_every_experiment():
    for argv in (["experiment", "--help"], *(["experiment", name, "--help"] for name in NAMES)):
        assert cli(*argv).returncode == 0, argv
    assert cli("experiment").returncode == 2


def test_gcg_optimises_suffixes_with_nanogcg(llama_pair, tmp_path):
    pytest.importorskip("nanogcg")  # installed by `make install` (see the Makefile)
    m = run_experiment("gcg", llama_pair, tmp_path, n=2, optimize=1, gcg_steps=2, gcg_search_width=8, gcg_topk=4, max_new_tokens=3)
    rows, _ = check_run_dir(tmp_path, "gcg")
    (suffix,) = m["suffixes"]
    assert isinstance(suffix, str) and suffix.strip()
    assert [r["prompt"] for r in rows if r["group"] == "attacked"] == [f"{r['prompt']} {suffix}" for r in rows if r["group"] == "clean"]


def test_a_failed_run_keeps_its_rows_and_says_why_and_nothing_of_the_users_is_removed(llama_pair, tmp_path):
    (tmp_path / "mine.png").write_bytes(b"\x89PNG not a run's")
    run_experiment("web-vs-chat", llama_pair, tmp_path, n=2)
    assert (tmp_path / "mine.png").exists()  # not a run directory before: nothing of the user's is removed
    (tmp_path / "stale.png").write_bytes(b"\x89PNG stale")
    with pytest.raises(Exception, match="nope"):
        run_experiment("web-vs-chat", llama_pair, tmp_path, n=2, chat="builtin:nope", overwrite=True)
    manifest = json.loads((tmp_path / "rows.manifest.json").read_text())
    assert manifest["status"].startswith("failed: ConfigError: unknown built-in prompt set 'nope'")
    assert not (tmp_path / "stale.png").exists() and not (tmp_path / "metrics.json").exists()  # the replaced run's
    assert len(read_rows(tmp_path / "rows.jsonl")) == 2  # the web rows computed before the failure are kept


def test_generated_positions_need_two_tokens_and_lists_distinct_values():
    ms = get("many-shot")
    with pytest.raises(ConfigError, match="--position response-mean .* needs --max-new-tokens 2 or more \\(got 1\\)"):
        ms.make_options(mode="jailbreak", position="response-mean", max_new_tokens=1)
    assert ms.make_options(mode="jailbreak", position="first-generated", max_new_tokens=2).max_new_tokens == 2
    with pytest.raises(ConfigError, match="--alphas: 1.0 given more than once"):
        get("alpha-sweep").make_options(alphas=[1.0, 1])
    with pytest.raises(ConfigError, match="--ks: 2 given more than once"):
        ms.make_options(ks=[0, 2, 2])


def test_many_shot_metrics_leave_out_responses_without_tuco():
    from tuco.experiments.many_shot import metrics

    o = get("many-shot").make_options(mode="jailbreak", position="first-generated", ks=[0, 4])
    rows = [
        {"id": f"{k}-r{i}", "item": i, "k": k, "tuco": None if (k, i) == (4, 0) else 0.3 - 0.01 * k + 0.001 * i, "refused": i % 2 == 0}
        for k in (0, 4)
        for i in range(12)
    ]
    m = metrics(rows, o)
    assert m["tuco_change"]["n"] == [11, 11]  # the pair whose k=4 response ended at once is left out
    assert m["per_k"]["4"]["mean_tuco"] == pytest.approx(sum(0.26 + 0.001 * i for i in range(1, 12)) / 11)
    assert m["tuco_change"]["diff"] == pytest.approx(-0.04)


def test_a_verdict_needs_ten_items_per_group():
    from tuco.experiments.base import auc_finding, diff_finding

    tight = {"auc": 0.9, "ci": [0.8, 1.0]}
    assert auc_finding("c", "p", {**tight, "n_pos": 9, "n_neg": 40}).verdict == "too few to tell (n < 10)"
    assert auc_finding("c", "p", {**tight, "n_pos": 10, "n_neg": 10}).verdict == "reproduced"
    small = {"diff": -0.01, "ci": [-0.011, -0.009], "n": [2, 2], "paired": True}
    assert diff_finding("c", "p", small, expect="below", what="d").verdict == "too few to tell (n < 10)"
    assert diff_finding("c", "p", {**small, "n": [10, 10]}, expect="below", what="d").verdict == "reproduced"


def test_boolean_options_are_bare_flags_and_subpackages_load_from_the_top(tmp_path):
    res = cli("experiment", "web-vs-chat", "--pair", "demo", "--baselines", "--no-without-template", "--validate")
    assert res.returncode == 0, res.stderr
    res = cli("experiment", "web-vs-chat", "--pair", "demo", "--baselines", "true", "--validate")
    assert res.returncode == 2 and "unrecognized arguments: true" in res.stderr
    assert tuco.__getattr__("experiments").run_experiment is run_experiment
    assert callable(tuco.__getattr__("demo").demo_pair_dirs)
