"""Each touch of another library's private state (tuco._compat), tested on its own against the versions it was
checked on: transformers 5.x with peft 0.21 (make test-tf5) and transformers 4.57 with peft 0.17 (make test-tf4
runs this file too); uvicorn 0.3x (the serve extra). A failure here names the touch a new version broke."""

from __future__ import annotations

import pytest
import torch

from tuco import _compat
from tuco.demo.tiny import tiny_models

peft = pytest.importorskip("peft")


def _lora(tokenizer):
    base, _, _ = tiny_models("llama", tokenizer=tokenizer)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    return peft.get_peft_model(base, config)


def test_adapters_switch_for_one_call_and_leave_requires_grad_alone(tokenizer):
    model = _lora(tokenizer)
    block = model.base_model.model.model.layers[0]
    tuners = _compat.tuner_layers(block)
    assert tuners and all(hasattr(m, "_disable_adapters") and hasattr(m, "_active_adapter") for m in tuners)
    x = torch.randn(1, 3, model.config.hidden_size)
    proj = block.self_attn.q_proj
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    with torch.no_grad():
        on = proj(x)
        with _compat.adapters_active(tuners, ()):
            off = proj(x)
            assert all(m._disable_adapters for m in tuners)
        with model.disable_adapter():  # peft's own switch: the reference for "off"
            want_off = proj(x)
        with _compat.adapters_active(tuners, ("default",)):
            again = proj(x)
    assert torch.equal(off, want_off) and not torch.equal(on, off)
    assert torch.equal(again, on)
    assert not any(m._disable_adapters for m in tuners)  # restored
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads  # the public switches would change these


def test_attention_implementation_is_swapped_for_one_call_and_restored(llama_pair):
    config = llama_pair.tuned.model.layers[0].self_attn.config
    before = _compat.attention_implementation(config)
    assert before in ("eager", "sdpa")
    with _compat.attention_swapped(config, "eager" if before == "sdpa" else "sdpa"):
        assert _compat.attention_implementation(config) != before
    assert _compat.attention_implementation(config) == before


def test_the_output_capture_records_the_mixed_stream_under_steering(llama_pair):
    """transformers 5 collects output_hidden_states through hooks (the private collector), which tuco points at
    the mixed stream; 4.x reports what each fine-tuned block returned, on the steered stream it was given (so
    the first block's output is the tuned model's own, and the later ones differ). Either way the last state
    is what the model passed on, and the earlier stages' block calls are not recorded."""
    ids = torch.tensor([llama_pair.tokenizer("How do I bake bread?")["input_ids"]])
    with torch.no_grad(), llama_pair.engine(alpha=0.5):
        out = llama_pair.tuned(input_ids=ids, output_hidden_states=True)
        final = llama_pair.tuned.model(input_ids=ids).last_hidden_state
    states = out.hidden_states
    assert len(states) == llama_pair.n_layers + 1  # one per block: the earlier stages' calls are not in it
    assert torch.allclose(states[-1], final, atol=1e-6)  # what the model passed on, after the final norm
    with torch.no_grad():
        plain = llama_pair.tuned(input_ids=ids, output_hidden_states=True).hidden_states
    if _compat._active_collector is None:  # 4.x: block 0 saw the same embeddings; block 1 a steered input
        assert torch.equal(states[1], plain[1]) and not torch.allclose(states[2], plain[2])
    else:
        assert not torch.allclose(states[1], plain[1])  # the mixed stream, not the tuned model's own


def test_cache_layers_merge_and_select(llama_pair):
    model = llama_pair.tuned
    tok = llama_pair.tokenizer
    a = torch.tensor([tok("Hi there")["input_ids"]])
    b = torch.tensor([tok("How do I bake bread today?")["input_ids"]])
    with torch.no_grad():
        ca = model(input_ids=a, use_cache=True).past_key_values
        cb = model(input_ids=b, use_cache=True).past_key_values
    layers = _compat.cache_layers(ca)
    assert layers and type(layers[0]).__name__ in ("DynamicLayer", "DynamicSlidingWindowLayer")
    _compat.merge_cache_layers(ca, cb)
    k = _compat.cache_layers(ca)[0].keys
    assert k.shape[0] == 2 and k.shape[-2] == b.shape[1]
    assert torch.equal(k[0, :, : b.shape[1] - a.shape[1]], torch.zeros_like(k[0, :, : b.shape[1] - a.shape[1]]))  # left padding
    _compat.select_cache_layers(ca, torch.tensor([1]), cut=1)
    k = _compat.cache_layers(ca)[0].keys
    assert k.shape[0] == 1 and k.shape[-2] == b.shape[1] - 1
    assert torch.equal(k[0], _compat.cache_layers(cb)[0].keys[0, :, 1:])


def test_a_drained_uvicorn_server_forgets_its_signal():
    uvicorn = pytest.importorskip("uvicorn")
    server = uvicorn.Server(uvicorn.Config(app=lambda *a: None))
    with server.capture_signals():
        server.handle_exit(15, None)
        assert server._captured_signals  # the private list the server re-raises on exit
        _compat.forget_captured_signals(server)
    assert not server._captured_signals
