"""Failing before any weights load: resume fingerprints, adapters on the wrong base, hub ids that cannot
resolve offline, files that are mostly undecodable."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import cli

from tuco.cli import common


@pytest.mark.parametrize(
    ("verb", "first", "second", "named"),
    [
        ("score", ["--alpha", "1"], ["--alpha", "0.5"], "alpha"),
        ("score", [], ["--per-token"], "per_token"),
        ("score", [], ["--next-turn"], "next_turn"),
        ("generate", ["--max-new-tokens", "3"], ["--max-new-tokens", "4"], "max_new_tokens"),
        ("generate", ["--max-new-tokens", "3"], ["--max-new-tokens", "3", "--alpha", "0,1"], "alphas"),
    ],
)
def test_resume_with_other_options_is_refused_before_the_model_loads(tmp_path, models_args, monkeypatch, verb, first, second, named):
    out = tmp_path / "run"
    cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), *first, check_rc=0)
    cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), "--resume", *first, check_rc=0)  # same options: resumes

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(common, "load", refuse)
    res = cli(verb, *models_args, "--prompt", "Hi", "--out", str(out), "--resume", *second)
    assert res.returncode != 0
    assert "different configuration" in res.stderr and named in res.stderr, res.stderr
    assert "the model was loaded" not in res.stderr


def test_load_pair_takes_paths_and_shipped_names(llama_dirs):
    import tuco
    from tuco.demo import demo_pair_dirs
    from tuco.errors import ConfigError

    base, tuned = llama_dirs
    pair = tuco.load_pair(Path(base), Path(tuned), device="cpu")
    assert pair.stage_names == [str(base), str(tuned)]
    demo = tuco.load_pair("demo", device="cpu")
    assert demo.stage_names == [str(d) for d in demo_pair_dirs()]
    assert tuco.score(demo, ["Hi"])[0].tuco > 0
    with pytest.raises(ConfigError, match="shipped pair by name"):
        tuco.load_pair("no-such-pair")
