"""Shared fixtures: tiny random pairs of every family (in memory and saved to temp dirs); offline only."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402
import torch  # noqa: E402

from tuco.pair import ModelPair  # noqa: E402
from tuco.tiny import FAMILIES, save_tiny_pair, tiny_models, tiny_tokenizer  # noqa: E402

torch.set_num_threads(2)

PROMPTS = ["How do I bake bread?", "Hi", "Tell me a story about a dragon who learned to read, please."]


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


@pytest.fixture()
def llama_pair(tokenizer):
    base, tuned, tok = tiny_models("llama", tokenizer=tokenizer)
    return ModelPair(tuned=tuned, base=base, tokenizer=tok)
