"""Shared fixtures and helpers: tiny random pairs of every family (in memory and saved to temp dirs), the
CLI run in-process, prompt files; offline only."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

from tuco.demo.tiny import FAMILIES, save_tiny_pair, tiny_models, tiny_tokenizer  # noqa: E402
from tuco.models.pair import ModelPair  # noqa: E402

torch.set_num_threads(2)

PROMPTS = ["How do I bake bread?", "Hi", "Tell me a story about a dragon who learned to read, please."]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session", params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope="session")
def models(family, tokenizer):
    """(base, tuned, tokenizer) for one family."""
    return tiny_models(family, tokenizer=tokenizer)


@pytest.fixture()
def pair(models):
    base, tuned, tok = models
    return ModelPair(tuned=tuned, base=base, tokenizer=tok)


@pytest.fixture(scope="session")
def llama_dirs(tmp_path_factory):
    """A tiny llama pair saved as two checkpoint directories."""
    return save_tiny_pair(tmp_path_factory.mktemp("pair"), "llama")


@pytest.fixture(scope="session")
def models_args(llama_dirs):
    base, tuned = llama_dirs
    return ["--base", str(base), "--tuned", str(tuned), "--device", "cpu"]


@pytest.fixture()
def llama_pair(tokenizer):
    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    return ModelPair(tuned=tuned, base=base, tokenizer=tok)


@dataclass
class Result:
    """What a CLI call returned, printed and logged."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, check_rc: int | None = None) -> Result:
    """Run ``tuco ARGS`` in-process through ``main(argv)`` (no cold interpreter)."""
    from tuco.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    from tuco.cli import display

    console_file = display.err_console.file
    display.err_console.file = err
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exc:  # argparse errors and --help
                rc = int(exc.code or 0)
    finally:
        display.err_console.file = console_file
    res = Result(rc, out.getvalue(), err.getvalue())
    if check_rc is not None:
        assert res.returncode == check_rc, res.stderr
    return res


def cli_process(*args: str, timeout: float = 300, env: dict | None = None) -> Result:
    """Run ``python -m tuco ARGS`` as a real process (entry point, kills, data-parallel ranks)."""
    res = subprocess.run([sys.executable, "-m", "tuco", *args], capture_output=True, text=True, env=env or ENV, timeout=timeout)
    return Result(res.returncode, res.stdout, res.stderr)


def write_prompts(path, n):
    """A .jsonl prompt file of ``n`` prompts of varied lengths, each with an extra field ``k``."""
    path.write_text("".join(json.dumps({"prompt": f"prompt {i} " + "word " * (i % 9), "k": i}) + "\n" for i in range(n)))
    return path


def assert_same_rows(a, b, tol=1e-5):
    """Two runs' score rows: same ids in the same order, same numbers."""
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):
        assert x["n_tokens"] == y["n_tokens"]
        assert x["tuco"] == pytest.approx(y["tuco"], abs=tol)
        assert x["layer_ftc_l1"] == pytest.approx(y["layer_ftc_l1"], rel=1e-4, abs=1e-6)


def brute_auc(pos, neg):
    """P(pos > neg) + 1/2 P(tie), by enumerating every pair."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def hand_holm(ps):
    """Holm step-down adjusted p-values, written out independently of tuco.stats.intervals.holm."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def check_findings(findings, family=None):
    """Every recorded verdict is the one its own recorded interval, p-value (Holm over the measured, testable
    primary claims of ``family``, in order: the suite's findings when the analysis ran in a suite, else its own)
    and paper range give; an unmeasured claim has no numbers and says so."""
    from tuco.stats.claims import NOT_MEASURED, NOT_TESTABLE, verdict
    from tuco.stats.intervals import Interval

    family = findings if family is None else family
    primary = [f for f in family if f["primary"] and f["estimate"] is not None and f["verdict"] != NOT_TESTABLE]
    expected = dict(zip(map(id, primary), hand_holm([f["p"] for f in primary])))
    for f in findings:
        if f["estimate"] is None:
            assert f["verdict"] == NOT_MEASURED and f["low"] is None and f["high"] is None
            continue
        assert f["low"] <= f["estimate"] <= f["high"] and f["n"] and all(isinstance(k, int) for k in f["n"])
        if f["verdict"] == NOT_TESTABLE:
            continue
        if f["primary"]:
            assert f["p_holm"] == pytest.approx(expected[id(f)]), f["claim"]
        iv = Interval(f["estimate"], f["low"], f["high"], f["p"], tuple(f["n"]), f["method"], f["null"])
        paper_range = tuple(f["paper_range"]) if f["paper_range"] else None
        p_used = f["p_holm"] if f["primary"] else f["p"]
        assert f["verdict"] == verdict(iv, f["expect"], p_used, paper_range, primary=f["primary"], min_n=f.get("min_n", 10)), f["claim"]


def one_blas_thread():
    """A generator for a module fixture: numpy's bundled OpenBLAS set to one thread while the module runs,
    restored after (with several threads on cores other jobs keep busy, the small eigendecompositions of the
    simulations run 10-50x slower); elsewhere (no bundled OpenBLAS) nothing changes."""
    import ctypes
    import glob
    import os

    import numpy as np

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas*.so"))
    lib = ctypes.CDLL(libs[0]) if libs else None
    get = getattr(lib, "scipy_openblas_get_num_threads64_", None)
    put = getattr(lib, "scipy_openblas_set_num_threads64_", None)
    if get is None or put is None:
        yield
        return
    before = get()
    put(1)
    yield
    put(before)
