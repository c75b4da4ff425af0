"""The `tuco` command: in-process through ``main(argv)``; the real entry point and the torch-free help in
real processes. Tiny pairs saved to temp dirs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tuco
from conftest import ENV, cli, cli_process
from tuco.models.pair import load_pair
from tuco.runs import manifest_path, read_rows

README = Path(__file__).resolve().parent.parent / "README.md"


def test_entry_point_and_version():
    res = cli_process("--version")
    assert res.returncode == 0 and res.stdout.startswith("tuco ")


def test_help_and_report_never_import_torch(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"id": "0", "prompt": "p", "tuco": 0.5}\n')
    code = (
        "import sys\nfrom tuco.cli.main import main\n"
        "for argv in (['--help'], ['score', '--help'], ['experiment', 'many-shot', '--help'], ['experiment', 'gcg', '--help'],"
        " ['experiment', 'jailbreak-success', '--help'], ['experiment', 'list'], ['report', '--help'],"
        f" ['report', {str(tmp_path / 's.jsonl')!r}]):\n"
        "    try: main(argv)\n    except SystemExit: pass\n"
        "print('TORCH' if 'torch' in sys.modules or 'transformers' in sys.modules else 'LIGHT')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert res.stdout.strip().endswith("LIGHT"), res.stdout[-500:] + res.stderr[-2000:]
    assert (tmp_path / "s.report.html").exists()


def test_help_lists_the_contract():
    out = cli("score", "--help", check_rc=0).stdout
    for opt in (
        "--base",
        "--tuned",
        "--pair",
        "--chain",
        "--prompt",
        "--prompts",
        "--out",
        "--resume",
        "--overwrite",
        "--chat",
        "--no-chat",
        "--system",
        "--alpha",
        "--batch-size",
        "--dtype",
        "--device",
        "--processes",
        "--full-path",
    ):
        assert opt in out
    gen = cli("generate", "--help", check_rc=0).stdout
    for opt in ("--max-new-tokens", "--top-p", "--resume", "--overwrite", "--processes", "--pair"):
        assert opt in gen
    for verb in (["demo"], ["experiment", "many-shot"], ["report"]):
        assert "--out" in cli(*verb, "--help", check_rc=0).stdout


def test_experiment_many_shot_mode_persona_names_its_own_experiment(models_args, tmp_path):
    """The old spelling of the persona form fails before any model loads, in one line naming the new verb;
    the new verb takes the persona options and refuses the jailbreak-only ones."""
    res = cli("experiment", "many-shot", *models_args, "--mode", "persona", "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and not (tmp_path / "r").exists()
    (line,) = res.stderr.strip().splitlines()
    assert "tuco experiment many-shot-persona" in line and "--mode" in line, line
    assert "--mode" not in cli("experiment", "many-shot", "--help", check_rc=0).stdout  # retired: parsed, not offered
    ok = cli("experiment", "many-shot-persona", "--validate", "--behaviour", "builtin:ends-justify-means", "--ks", "0,1")
    assert ok.returncode == 0 and "options of many-shot-persona: valid" in ok.stdout, ok.stderr
    bad = cli("experiment", "many-shot-persona", "--validate", "--requests", "builtin:harmful")
    assert bad.returncode == 2 and "unrecognized arguments: --requests" in bad.stderr


def _help_blocks(text):
    return re.findall(r"`(tuco [a-z -]+) --help`:\n\n```\n(.*?)```", text, flags=re.S)


def test_readme_help_blocks_match_the_parser():
    blocks = _help_blocks(README.read_text())
    assert blocks, "the README shows no --help block"
    for command, shown in blocks:
        res = subprocess.run(
            [sys.executable, "-m", "tuco", *command.split()[1:], "--help"],
            capture_output=True,
            text=True,
            env={**ENV, "COLUMNS": "100"},
            timeout=60,
        )
        assert res.stdout.strip() == shown.strip(), f"README's `{command} --help` is stale: run `make readme-help`"


def test_score_jsonl_file_with_bad_lines(tmp_path, models_args, llama_dirs):
    prompts = tmp_path / "p.jsonl"
    prompts.write_bytes(
        (
            json.dumps({"prompt": "How do I bake bread?", "label": "benign"})
            + "\n"
            + "{not json\n"
            + json.dumps({"messages": [{"role": "user", "content": "Hi"}], "id": "chat-1"})
            + "\n"
            + json.dumps({"prompt": "  "})
            + "\n"
        ).encode()
        + b'{"prompt": "caf\xe9"}\n'
    )
    out = tmp_path / "scores.jsonl"
    res = cli("score", *models_args, "--prompts", str(prompts), "--out", str(out), "--batch-size", "2")
    assert res.returncode == 1, res.stderr  # three rows skipped, the others ran
    assert "line 2: malformed JSON" in res.stderr and "line 4: 'prompt' is empty" in res.stderr
    assert "line 5: not valid UTF-8" in res.stderr and "Traceback" not in res.stderr
    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["0", "chat-1"]
    assert rows[0]["label"] == "benign"
    for key in ("id", "prompt", "tuco", "preco", "n_tokens", "layer_ptc_l1", "layer_ftc_l1", "tuco_unscaled"):
        assert key in rows[0]
    assert len(rows[0]["layer_ftc_l1"]) == 3
    pair = load_pair(*map(str, llama_dirs))  # the CLI's numbers are the library's numbers
    (lib,) = tuco.score(pair, ["How do I bake bread?"])
    assert rows[0]["tuco"] == pytest.approx(lib.tuco, abs=1e-6) and rows[0]["n_tokens"] == lib.n_tokens
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["status"] == "finished" and manifest["n_rows"] == 2 and manifest["n_skipped"] == 3
    assert manifest["config"]["chat"] is True and manifest["fingerprint"]


def test_score_into_a_run_directory_parquet_csv_txt(tmp_path, models_args):
    csv = tmp_path / "p.csv"
    csv.write_bytes(b"\xef\xbb\xbfprompt,group\r\nHow do I bake bread?,a\r\nHi,b\r\n")  # BOM and CRLF
    txt = tmp_path / "p.txt"
    txt.write_text("How do I bake bread?\n\nHi\n")
    cli("score", *models_args, "--prompts", str(csv), "--out", str(tmp_path / "a.parquet"), check_rc=0)
    cli("score", *models_args, "--prompts", str(txt), "--out", str(tmp_path / "new" / "dir"), check_rc=0)  # created
    cli("score", *models_args, "--prompts", str(txt), "--no-chat", "--out", str(tmp_path / "c.jsonl"), check_rc=0)
    a, b, c = read_rows(tmp_path / "a.parquet"), read_rows(tmp_path / "new/dir/rows.jsonl"), read_rows(tmp_path / "c.jsonl")
    assert [r["group"] for r in a] == ["a", "b"]
    assert [r["tuco"] for r in a] == pytest.approx([r["tuco"] for r in b], abs=1e-7)
    assert (tmp_path / "new/dir/rows.manifest.json").exists() and not (tmp_path / "a.parquet.partial.jsonl").exists()
    assert c[0]["chat"] is False and c[0]["n_tokens"] < b[0]["n_tokens"]  # no template tokens
    assert c[0]["tuco"] != pytest.approx(b[0]["tuco"], abs=1e-6)


def test_score_per_token_and_alpha(tmp_path, models_args):
    out = tmp_path / "t.jsonl"
    cli("score", *models_args, "--prompt", "How do I bake bread?", "--per-token", "--alpha", "0.5", "--out", str(out), check_rc=0)
    (row,) = read_rows(out)
    assert len(row["tokens"]) == len(row["token_tuco"]) == row["n_tokens"]
    assert row["token_tuco"][-1] == pytest.approx(row["tuco"], abs=1e-6)
    assert row["alpha"] == 0.5 and row["tuco_unscaled"] > row["tuco"] > 0
    per_layer = tmp_path / "pl.jsonl"
    cli("score", *models_args, "--prompt", "How do I bake bread?", "--alpha", "1:1:0.5", "--out", str(per_layer), check_rc=0)
    assert read_rows(per_layer)[0]["alpha"] == "1:1:0.5"


def test_score_without_out_prints(models_args):
    res = cli("score", *models_args, "--prompt", "Hi", "--prompt", "How do I bake bread?", check_rc=0)
    lines = [ln.split("\t") for ln in res.stdout.strip().splitlines()]
    assert [ln[0] for ln in lines] == ["0", "1"] and all(0 < float(ln[1]) < 1 for ln in lines)


def test_generate_one_response_per_alpha(tmp_path, models_args):
    out = tmp_path / "g.jsonl"
    res = cli(
        "generate", *models_args, "--prompt", "Tell me a story", "--alpha", "0.5", "1", "1.5", "--max-new-tokens", "5", "--out", str(out)
    )
    assert res.returncode == 0, res.stderr
    rows = read_rows(out)
    assert [r["alpha"] for r in rows] == [0.5, 1.0, 1.5]
    for r in rows:
        assert 1 <= r["n_new_tokens"] <= 5
        assert len(r["token_tuco"]) == len(r["tokens"]) == r["n_new_tokens"]
        assert r["token_tuco"][0] == r["prompt_tuco"]
    assert "alpha" in res.stdout


def test_generate_sampling_is_seeded(tmp_path, models_args):
    args = ["--prompt", "Tell me", "--prompt", "Hi", "--temperature", "1.0", "--seed", "7", "--max-new-tokens", "6"]
    cli("generate", *models_args, *args, "--out", str(tmp_path / "a.jsonl"), check_rc=0)
    cli("generate", *models_args, *args, "--out", str(tmp_path / "b.jsonl"), check_rc=0)
    assert [r["token_ids"] for r in read_rows(tmp_path / "a.jsonl")] == [r["token_ids"] for r in read_rows(tmp_path / "b.jsonl")]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--base", "./missing/dir"], "base model path './missing/dir' does not exist"),
        (["--alpha", "-1"], "alpha must be a finite number >= 0"),
        (["--alpha", "abc"], "is not a number"),
        (["--alpha", "1:1"], "has 2 values but the model has 3 layers"),
        (["--prompt", ""], "no usable prompts"),
        (["--prompt", "word " * 400], "more than the model's context of 256"),
        (["--out", "x.csv"], "ends in .csv, which is not a rows format"),
        (["--prompts", "missing.jsonl"], "prompt file 'missing.jsonl' does not exist"),
        (["--dtype", "int3"], "unknown dtype 'int3'"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--pair", "demo"], "name the models one way"),
    ],
)
def test_bad_input_one_line_error(models_args, extra, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("not a run")
    args = list(models_args)
    if extra[:1] == ["--base"]:
        args[1] = extra[1]
        extra = []
    if "--prompt" not in extra and "--prompts" not in extra:
        extra = [*extra, "--prompt", "Hi"]
    res = cli("score", *args, *extra)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("tuco score: error:")


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--top-p", "5", "--temperature", "1"], "--top-p must be in (0, 1]"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
        (["--max-new-tokens", "300"], "plus 300 new tokens, more than the model's context of 256"),
    ],
)
def test_generate_bad_settings(models_args, extra, message):
    res = cli("generate", *models_args, "--prompt", "Hi", *extra)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_mismatched_pair_cli(tmp_path, llama_dirs):
    from tuco.demo.tiny import save_tiny_pair

    _, odd = save_tiny_pair(tmp_path, "llama", layers=2)
    res = cli("score", "--base", str(llama_dirs[0]), "--tuned", str(odd), "--prompt", "Hi")
    assert res.returncode == 2
    assert "number of layers: base has 3, tuned has 2" in res.stderr and "Traceback" not in res.stderr


def test_read_only_output_is_a_one_line_error(tmp_path, models_args):
    import os

    (tmp_path / "src.jsonl").write_text('{"id": "0", "prompt": "p", "tuco": 0.5}\n')
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes into read-only directories: use a read-only filesystem instead
        ro = Path("/proc/tuco-read-only")
    try:
        for args in (
            ["score", *models_args, "--prompt", "Hi", "--out", str(ro / "s.jsonl")],
            ["report", str(tmp_path / "src.jsonl"), "--out", str(ro / "r.html")],
        ):
            res = cli(*args)
            assert res.returncode == 2, res.stderr
            assert "not writable" in res.stderr or "cannot create" in res.stderr, res.stderr
            assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_chain_cli_scores_one_share_per_stage(tmp_path, tokenizer):
    import copy

    from tuco.demo.tiny import perturb_blocks, tiny_models
    from tuco.engine.layers import decoder_layers

    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    third = copy.deepcopy(tuned)
    perturb_blocks(third, decoder_layers(third), 0.3, seed=5)
    dirs = []
    for name, m in (("m0", base), ("m1", tuned), ("m2", third)):
        m.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
        dirs.append(str(tmp_path / name))
    out = tmp_path / "chain.jsonl"
    cli("score", "--chain", ",".join(dirs), "--prompt", "How do I bake bread?", "--out", str(out), "--device", "cpu", check_rc=0)
    (row,) = read_rows(out)
    assert len(row["stage_share"]) == 3 and sum(row["stage_share"]) == pytest.approx(1.0)
    assert len(row["layer_stage_l1"]) == 3 and len(row["layer_stage_l1"][0]) == 3
    gen = tmp_path / "g.jsonl"
    cli(
        "generate",
        "--chain",
        ",".join(dirs),
        "--prompt",
        "Hi",
        "--alpha",
        "1/0",
        "--max-new-tokens",
        "3",
        "--out",
        str(gen),
        "--device",
        "cpu",
        check_rc=0,
    )
    assert read_rows(gen)[0]["alpha"] == "1/0"


def _device_args(models_args, device):
    args = list(models_args)
    args[args.index("--device") + 1] = device
    return args


@pytest.mark.parametrize(
    "device,extra,message",
    [
        ("foo", [], "--device 'foo' is not a device"),
        ("cpu", ["--device-map", "foo"], "--device-map 'foo': give 'auto'"),
        ("cpu", ["--max-memory", "0=1GiB"], "--max-memory budgets the placement of --device-map auto"),
        ("cpu", ["--top-p", "0.5"], "only applies when sampling"),
    ],
)
def test_device_and_placement_errors_are_one_line(models_args, device, extra, message):
    command = "generate" if "--top-p" in extra else "score"
    res = cli(command, *_device_args(models_args, device), "--prompt", "Hi", *extra)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_cuda_without_cuda_is_a_one_line_error(models_args):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = cli("score", *_device_args(models_args, "cuda"), "--prompt", "Hi")
    assert res.returncode == 2 and "no usable CUDA device; use --device cpu" in res.stderr and "Traceback" not in res.stderr


def test_truncated_weights_are_a_one_line_error(tmp_path, llama_dirs):
    import shutil

    broken = tmp_path / "tuned"
    shutil.copytree(llama_dirs[1], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    res = cli("score", "--base", str(llama_dirs[0]), "--tuned", str(broken), "--prompt", "Hi")
    assert res.returncode == 2 and "cannot load tuned model" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_an_existing_run_is_refused_before_the_model_loads(tmp_path, models_args, monkeypatch):
    from tuco.cli import loading

    out = tmp_path / "s.jsonl"
    cli("score", *models_args, "--prompt", "Hi", "--out", str(out), check_rc=0)

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(loading, "load", no_load)
    res = cli("score", *models_args, "--prompt", "Hi", "--out", str(out))
    assert res.returncode == 2 and "already holds a run" in res.stderr
    res = cli("experiment", "web-vs-chat", *models_args, "--n", "2", "--out", str(tmp_path / "e.jsonl"))
    assert res.returncode == 2 and "writes a run directory" in res.stderr and "Traceback" not in res.stderr


def test_parquet_with_mixed_extra_types_is_refused_before_the_load(tmp_path, models_args):
    pytest.importorskip("pyarrow")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a", "score": 5}\n{"prompt": "b", "score": "high"}\n')
    res = cli("score", *models_args, "--prompts", str(prompts), "--out", str(tmp_path / "s.parquet"))
    assert res.returncode == 2 and "field 'score' has values of different types" in res.stderr, res.stderr
    assert not (tmp_path / "s.parquet.manifest.json").exists()


def test_alphas_that_differ_get_their_own_rows_and_a_repeated_alpha_is_refused(tmp_path, models_args):
    out = tmp_path / "g.jsonl"
    cli("generate", *models_args, "--prompt", "Hi", "--max-new-tokens", "2", "--alpha", "1", "1.0000001", "--out", str(out), check_rc=0)
    assert [r["alpha"] for r in read_rows(out)] == [1.0, 1.0000001]
    res = cli("generate", *models_args, "--prompt", "Hi", "--max-new-tokens", "2", "--alpha", "1,1.0")
    assert res.returncode == 2 and "alpha 1 is given more than once" in res.stderr


def test_generate_prints_the_samples_it_writes(tmp_path, models_args):
    args = ["--prompt", "Tell me", "--prompt", "Hi there you", "--prompt", "x", "--temperature", "1.0", "--seed", "3"]
    args += ["--max-new-tokens", "6", "--batch-size", "2", "--alpha", "1", "0.5", "--no-chat"]
    shown = cli("generate", *models_args, *args, check_rc=0).stdout
    cli("generate", *models_args, *args, "--out", str(tmp_path / "g.jsonl"), check_rc=0)
    import tuco
    from tuco.models.pair import load_pair

    pair = load_pair(models_args[1], models_args[3], device="cpu")
    prompts = ["Tell me", "Hi there you", "x"]
    for alpha in (1.0, 0.5):
        gens = tuco.generate(pair, prompts, alpha=alpha, temperature=1.0, seed=3, max_new_tokens=6, batch_size=2, chat=False)
        written = [r for r in read_rows(tmp_path / "g.jsonl") if r["alpha"] == alpha]
        assert [g.token_ids for g in gens] == [r["token_ids"] for r in written]  # library == file
    for r in read_rows(tmp_path / "g.jsonl"):  # screen == file (mean TuCo over the sampled tokens)
        assert f"{r['mean_tuco']:.4f}" in shown
