"""Where the layers live: the registry, the generic search (with a warning), the error for an unknown
model, the per-position submodules of the fast path."""

from __future__ import annotations

import logging

import pytest
from torch import nn

import tuco
from conftest import PROMPTS
from tuco.demo.tiny import FAMILIES, tiny_models
from tuco.engine import layers
from tuco.errors import UnsupportedModelError


def test_every_registered_family_has_its_blocks_and_norm(models):
    _, tuned, _ = models
    assert len(layers.decoder_layers(tuned)) == 3 and layers.final_norm(tuned) is not None
    paths = layers.per_position_modules(tuned)
    assert "mlp" in paths and all(layers._get(layers.decoder_layers(tuned)[0], p) is not None for p in paths)


def test_fused_attention_families_restrict_only_the_output_projection(tokenizer):
    cases = (("phi3", "self_attn.o_proj", "post_attention_layernorm"), ("gpt2", "attn.c_proj", "ln_2"))
    for family, out, norm in (*cases, ("gpt_neox", "attention.dense", "post_attention_layernorm")):
        _, tuned, _ = tiny_models(family, tokenizer=tokenizer)
        assert layers.per_position_modules(tuned) == ("mlp", out, norm), family
    assert set(FAMILIES) <= set(layers.REGISTRY)


def test_gemma3_query_norm_is_not_per_position(tokenizer):
    """Gemma-3 normalises the queries after moving the heads before the positions ([B, H, T, hd]): slicing
    its input at a position would pick a head. Qwen3 and OLMo-2 normalise them per position."""
    for family, has_q_norm in (("gemma3_text", False), ("qwen3", True), ("olmo2", True)):
        _, tuned, _ = tiny_models(family, tokenizer=tokenizer)
        assert ("self_attn.q_norm" in layers.per_position_modules(tuned)) == has_q_norm, family
        assert layers._get(layers.decoder_layers(tuned)[0], "self_attn.q_norm") is not None


def test_generic_discovery_without_registry_entry_warns(monkeypatch, llama_pair, caplog):
    monkeypatch.delitem(layers.REGISTRY, "llama")
    monkeypatch.setattr(layers, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="tuco.engine.layers"):
        assert layers.layer_path(llama_pair.tuned) == "model.layers"
        assert len(tuco.score(llama_pair, PROMPTS[:1])) == 1
    assert caplog.text.count("not in tuco's layer registry") == 1 and "REGISTRY" in caplog.text


def test_unsupported_model_lists_families():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "odd", "num_hidden_layers": 3})()
            self.a = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.b = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

    with pytest.raises(UnsupportedModelError, match="model type 'odd'.*llama.*REGISTRY"):
        layers.decoder_layers(Odd())


def test_config_integers():
    cfg = type("C", (), {"n_layer": 4, "n_embd": 64})()
    assert layers.num_layers(cfg) == 4 and layers.hidden_size(cfg) == 64
    with pytest.raises(UnsupportedModelError, match="declares no hidden size"):
        layers.hidden_size(type("C", (), {})())
