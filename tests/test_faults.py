"""Run integrity under faults and hostile input.

Fast: a corpus of hostile inputs through every reader (prompt files, data sources, results files,
suffix files): each is scored or refused with a one-line error, never a traceback, never a lost row.
Slow: SIGKILL at seeded random moments (and inside the merge and the manifest write), 1 and 2
processes, then resume: the rows equal an uninterrupted run (bench/faults.py holds the harness).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import cli
from tuco.runs import read_rows

BENCH = Path(__file__).resolve().parent.parent / "bench" / "faults.py"

GOOD = {"prompt": "How do I bake bread?"}
CORPUS = {
    "separators.jsonl": "\n".join(json.dumps({"id": f"s{i}", "prompt": f"a{c}b"}) for i, c in enumerate("\u2028\u2029\u0085\r\x0b\x0c\x1c"))
    + "\n",
    "controls.txt": "nul\x00byte\nesc\x1b[31mred\ntab\there\n",
    "bom_crlf.jsonl": "\ufeff" + json.dumps(GOOD) + "\r\n" + json.dumps({"prompt": "second"}) + "\r\n",
    "bom_crlf.csv": '\ufeffprompt\r\nfirst\r\n"multi\r\nline"\r\n',
    "empty.txt": "\n\n   \n",
    "empty_prompt.jsonl": json.dumps({"prompt": ""}) + "\n" + json.dumps(GOOD) + "\n",
    "duplicates.jsonl": json.dumps({"id": "a", "prompt": "x"}) + "\n" + json.dumps({"id": "a", "prompt": "y"}) + "\n",
    "not_object.jsonl": '[1, 2]\n"text"\n' + json.dumps(GOOD) + "\n",
    "bad_messages.jsonl": json.dumps({"messages": [{"role": 1}]}) + "\n" + json.dumps({"messages": "hi"}) + "\n" + json.dumps(GOOD) + "\n",
    "huge_line.jsonl": json.dumps({"id": "huge", "prompt": "x " * 5_000_000}) + "\n" + json.dumps(GOOD) + "\n",
}
BINARY = {
    "invalid_utf8.jsonl": b'{"prompt": "ok"}\n{"prompt": "\xff\xfe bad"}\n',
    "invalid_utf8.txt": b"fine\n\xc3\x28 broken\n",
    "invalid_utf8.csv": b"prompt\n\xff\n",
}


def _files(tmp_path):
    for name, text in CORPUS.items():
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
        yield tmp_path / name
    for name, data in BINARY.items():
        (tmp_path / name).write_bytes(data)
        yield tmp_path / name


def test_hostile_prompt_files_are_scored_or_refused_in_one_line(tmp_path, models_args):
    for path in _files(tmp_path):
        out = tmp_path / f"{path.name}.out.jsonl"
        res = cli("score", *models_args, "--prompts", str(path), "--out", str(out), "--batch-size", "3")
        assert "Traceback" not in res.stderr, path.name
        assert res.returncode in (0, 1, 2), path.name
        if res.returncode == 2:
            assert res.stderr.strip().splitlines()[-1].startswith("tuco score: error:"), (path.name, res.stderr)
            continue
        rows = read_rows(out)
        manifest = json.loads(out.with_name(out.stem + ".manifest.json").read_text())
        assert manifest["status"] == "finished" and manifest["n_rows"] == len(rows)
        assert manifest["n_rows"] + manifest["n_skipped"] == manifest["n_prompts"], path.name  # nothing lost silently
        assert (res.returncode == 1) == (manifest["n_skipped"] > 0), path.name
    sep = read_rows(tmp_path / "separators.jsonl.out.jsonl")
    assert [r["prompt"] for r in sep] == [f"a{c}b" for c in "\u2028\u2029\u0085\r\x0b\x0c\x1c"]
    assert (
        "'a' appear more than once"
        in cli("score", *models_args, "--prompts", str(tmp_path / "duplicates.jsonl"), "--out", str(tmp_path / "d.jsonl")).stderr
    )


def test_hostile_sources_results_and_suffix_files(tmp_path, models_args):
    list(_files(tmp_path))
    for name in ("invalid_utf8.jsonl", "not_object.jsonl", "empty.txt"):
        res = cli("experiment", "web-vs-chat", "--validate", "--chat", str(tmp_path / name))
        assert "Traceback" not in res.stderr and res.returncode in (0, 2), (name, res.stderr)
    (tmp_path / "suffix.txt").write_bytes(b"\xff\xfe\n")
    res = cli("experiment", "gcg", "--validate", "--suffixes", str(tmp_path / "suffix.txt"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    bad = tmp_path / "broken.jsonl"
    bad.write_bytes(b'{"id": "0", "tuco": 0.5}\n\xff\xfe{}\n')
    res = cli("report", str(bad))
    assert res.returncode == 2 and "line 2 is not a result row" in res.stderr and "Traceback" not in res.stderr


def _bench():
    spec = importlib.util.spec_from_file_location("faults", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_one_process():
    got = _bench().run_faults(kills=6, seed=0, processes=1, n_prompts=600)
    assert got["runs_resumed"] == 6 and got["rows_lost"] == 0  # run_faults raises on any difference
    assert {"random", "merge", "manifest"} <= set(got["kill_points"])
    assert got["random_kills_mid_run"] == 6


@pytest.mark.slow
def test_sigkill_of_the_launcher_kills_its_ranks_and_resume_completes():
    got = _bench().run_faults(kills=2, seed=1, processes=2, n_prompts=600, inside=False)
    assert got["runs_resumed"] == 2 and got["ranks_seen"] == 4 and got["orphan_ranks"] == 0
    assert got["random_kills_mid_run"] == 2  # each kill cut a run short
