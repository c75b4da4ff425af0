"""lm-eval integration: a tiny local task on the alpha-steered pair, checked against plain HF models."""

from __future__ import annotations

import json

import pytest

lm_eval = pytest.importorskip("lm_eval")

import tuco.integrations.lm_eval  # noqa: E402,F401  (registers the "tuco" model)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("task")
    rows = [{"question": f"Is {i} a small number?", "choices": ["yes", "no", "maybe"], "answer": i % 3} for i in range(6)]
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "tuco_tiny.yaml").write_text(
        "task: tuco_tiny\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {d / 'data.jsonl'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{question}} Answer:'\n"
        "doc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{answer}}'\n"
        "metric_list:\n  - metric: acc\n"
    )
    return d


def _loglikelihoods(model: str, model_args: str, task_dir) -> list[float]:
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=["tuco_tiny"],
        device="cpu",
        batch_size=2,
        task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True,
    )
    samples = sorted(out["samples"]["tuco_tiny"], key=lambda s: s["doc_id"])
    out = []
    for s in samples:
        for r in s["resps"]:  # one per choice: [(loglikelihood, is_greedy)]
            v = r[0] if isinstance(r, (list, tuple)) else r
            out.append(float(v[0] if isinstance(v, (list, tuple)) else v))
    return out


def test_alpha_one_is_the_tuned_model_and_zero_the_base(llama_dirs, task_dir):
    base, tuned = llama_dirs  # tiny pair: only the blocks differ, so alpha 0 is exactly the base model
    steered1 = _loglikelihoods("tuco", f"base={base},tuned={tuned},alpha=1", task_dir)
    steered0 = _loglikelihoods("tuco", f"base={base},tuned={tuned},alpha=0", task_dir)
    plain_tuned = _loglikelihoods("hf", f"pretrained={tuned}", task_dir)
    plain_base = _loglikelihoods("hf", f"pretrained={base},tokenizer={tuned}", task_dir)
    assert len(steered1) == 18
    assert steered1 == pytest.approx(plain_tuned, abs=1e-4)
    assert steered0 == pytest.approx(plain_base, abs=1e-4)
    assert max(abs(a - b) for a, b in zip(plain_tuned, plain_base)) > 1e-3  # the two models do differ
    steered15 = _loglikelihoods("tuco", f"base={base},tuned={tuned},alpha=1.5", task_dir)
    assert max(abs(a - b) for a, b in zip(steered15, plain_tuned)) > 1e-3


def test_per_layer_alpha_uses_the_one_syntax(llama_dirs, task_dir):
    base, tuned = llama_dirs
    per_layer = _loglikelihoods("tuco", f"base={base},tuned={tuned},alpha=1.5:1.5:1.5", task_dir)
    scalar = _loglikelihoods("tuco", f"base={base},tuned={tuned},alpha=1.5", task_dir)
    assert per_layer == pytest.approx(scalar, abs=1e-6)


def test_a_bad_alpha_fails_before_the_models_load(monkeypatch):
    from tuco.errors import ConfigError
    from tuco.integrations import lm_eval as harness

    def no_load(*args, **kwargs):
        raise AssertionError("models loaded before the alpha was checked")

    monkeypatch.setattr(harness, "load_pair", no_load, raising=False)
    monkeypatch.setattr("tuco.models.pair.load_pair", no_load)
    with pytest.raises(ConfigError, match="not a number"):
        harness.TucoLM(base="b", tuned="t", alpha="x")


@pytest.mark.slow
def test_launcher_runs_lm_eval_cli(llama_dirs, task_dir):
    import subprocess
    import sys

    base, tuned = llama_dirs
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuco.integrations.lm_eval",
            "--model",
            "tuco",
            "--model_args",
            f"base={base},tuned={tuned},alpha=1.2",
            "--tasks",
            "tuco_tiny",
            "--include_path",
            str(task_dir),
            "--device",
            "cpu",
            "--batch_size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "tuco_tiny" in res.stdout and "acc" in res.stdout
