"""The demo pair's training recipe: our own byte-level BPE tokenizer with a chat template, a small
Llama pre-trained on plain prose, then fully fine-tuned on chats (loss on assistant tokens only).

Seeded and logged: ``train_demo(out_dir, ...)`` writes ``base/`` and ``tuned/`` checkpoint dirs
(safetensors, bfloat16) and ``recipe.json`` (data sizes, steps, losses, wall time).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch import nn
    from transformers import LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase

    from tuco.demo.probes import Probing
    from tuco.training.callback import TucoCallback

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TOKENIZER_CHATS = 2000  # general chats the tokenizer is trained on (with 20k pre-training documents)
SPECIALS = ["<pad>", "<s>", "</s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


@dataclass
class Recipe:
    """Every knob of the recipe (the defaults made the shipped pair)."""

    seed: int = 0
    # which general and safety chats the fine-tune draws (fixed across fine-tuning seeds, so that seeds differ
    # only in the order of the batches); None: ``seed`` (how the shipped pair was made, with seed 0)
    data_seed: int | None = None
    vocab_size: int = 4096
    layers: int = 6
    hidden: int = 256
    heads: int = 4
    intermediate: int = 688
    context: int = 1024
    pretrain_chars: int = 24_000_000
    pretrain_tokens: int = 4_500_000
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 4
    pretrain_seq: int = 1024
    sft_general: int = 1200
    sft_safety_repeat: int = 1  # safety chats appear this many times per epoch
    sft_epochs: float = 3.0
    sft_lr: float = 8e-4
    sft_batch: int = 16
    sft_max_len: int = 192
    # SFT trains only the decoder blocks: embeddings, final norm and (tied) head stay pre-trained, so
    # alpha = 0 is exactly the pre-trained model and all of fine-tuning lives in FTC. (Measured: with
    # them trainable, the pre-trained blocks on the tuned embeddings/head refused 25-30% of requests.)
    sft_blocks_only: bool = True
    bf16: bool = False  # bf16 autocast: measured ~20x SLOWER than float32 on the 2-core CI CPUs (86 vs 1.6k tok/s)


def train_tokenizer(texts: list[str], vocab_size: int, *, eos: str = "<|end|>", prepend_bos: bool = False) -> Any:
    """Byte-level BPE with BOS/EOS/PAD, chat-role tokens and an end-of-turn token ``<|end|>`` (the demo
    pair's; ``tuco.demo.tiny`` builds its test tokenizer with it too: ``eos="</s>"``, BOS prepended)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if prepend_bos:
        bos = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token=eos, pad_token="<pad>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def model_config(r: Recipe, tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    """The Llama config of the demo models."""
    from transformers import LlamaConfig

    return LlamaConfig(  # type: ignore[call-arg]  # transformers 5 reads rope_theta from kwargs
        vocab_size=len(tokenizer),
        hidden_size=r.hidden,
        intermediate_size=r.intermediate,
        num_hidden_layers=r.layers,
        num_attention_heads=r.heads,
        num_key_value_heads=r.heads,
        max_position_embeddings=r.context,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|end|>"),
        rope_theta=10000.0,
    )


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """The learning rate of both demo recipes at ``step`` of ``total``: linear warm-up to ``peak``, then a
    half cosine to 0 at ``total`` (and 0 after it).

    Not transformers' ``get_cosine_schedule_with_warmup``: its warm-up is ``step / warmup`` (0 at step 0),
    ours ``(step + 1) / warmup``, and the shipped pairs were trained with ours; the cosine part is the same.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _step(
    model: nn.Module, opt: torch.optim.Optimizer, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, lr: float, bf16: bool = False
) -> float:
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def pretrain(model: nn.Module, tokenizer: PreTrainedTokenizerBase, docs: list[str], r: Recipe, log: list) -> dict:
    """Next-token training on packed plain-prose sequences of ``pretrain_seq`` tokens."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for d in docs:
        stream += tokenizer(d, add_special_tokens=False)["input_ids"] + [eos]
        if len(stream) >= r.pretrain_tokens:
            break
    seq = r.pretrain_seq
    chunks = torch.tensor(stream[: len(stream) // seq * seq]).view(-1, seq)
    g = torch.Generator().manual_seed(r.seed)
    chunks = chunks[torch.randperm(len(chunks), generator=g)]
    opt = torch.optim.AdamW(model.parameters(), lr=r.pretrain_lr, betas=(0.9, 0.95), weight_decay=0.1)
    steps = len(chunks) // r.pretrain_batch
    model.train()
    t0 = time.time()
    for step in range(steps):
        batch = chunks[step * r.pretrain_batch : (step + 1) * r.pretrain_batch]
        loss = _step(
            model, opt, batch, batch, torch.ones_like(batch), cosine_lr(step, steps, r.pretrain_lr, min(100, steps // 10 + 1)), r.bf16
        )
        if step % 50 == 0 or step == steps - 1:
            log.append({"phase": "pretrain", "step": step, "loss": round(loss, 4), "s": round(time.time() - t0, 1)})
            print(json.dumps(log[-1]), flush=True)
    model.eval()
    return {"tokens": int(chunks.numel()), "steps": steps, "seconds": round(time.time() - t0, 1)}


@dataclass(frozen=True)
class ChatFormat:
    """How a chat template writes one turn: ``head`` (with ``{role}``), the content, ``end``, ``tail``."""

    head: str
    end: str
    tail: str = ""
    roles: dict[str, str] | None = None  # template role per message role (None: the message's own; missing: "user")
    bos: bool = False  # the chat starts with the tokenizer's BOS token
    strip: bool = False  # the template trims each turn's content


DEMO_CHAT = ChatFormat(head="<|{role}|>", end="<|end|>")
GEMMA_CHAT = ChatFormat(head="<start_of_turn>{role}\n", end="<end_of_turn>", tail="\n", roles={"assistant": "model"}, bos=True, strip=True)


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], max_len: int, fmt: ChatFormat = DEMO_CHAT
) -> tuple[list[int], list[int]] | None:
    """Token ids of a chat and labels that keep only the assistant's turns (content and end marker).

    Built turn by turn: each turn's text is delimited by special tokens, so this equals tokenizing the
    rendered template at once (a test pins it for both formats; Gemma's template folds a system message into the
    next user turn, which this does not: the training chats have none). None when longer than ``max_len``.
    """

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    ids = [tokenizer.bos_token_id] if fmt.bos else []
    labels = [-100] * len(ids)
    for m in messages:
        assistant = m["role"] == "assistant"
        role = m["role"] if fmt.roles is None else fmt.roles.get(m["role"], "user")
        head = encode(fmt.head.format(role=role))
        body = encode((m["content"].strip() if fmt.strip else m["content"]) + fmt.end)
        tail = encode(fmt.tail)
        ids += head + body + tail
        labels += [-100] * len(head) + (body if assistant else [-100] * len(body)) + [-100] * len(tail)
    return (ids, labels) if len(ids) <= max_len else None


def pad_batch(encoded: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, labels, attention mask) of encoded chats, right-padded to the longest (labels -100, mask 0)."""
    width = max(len(a) for a, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id)
    labels = torch.full((len(encoded), width), -100)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (a, b) in enumerate(encoded):
        ids[row, : len(a)], labels[row, : len(b)], mask[row, : len(a)] = torch.tensor(a), torch.tensor(b), 1
    return ids, labels, mask


def finetune(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[list[dict[str, str]]],
    r: Recipe,
    log: list,
    probe: TucoCallback | None = None,
) -> dict:
    """Full supervised fine-tuning, loss on assistant tokens only. ``probe`` (a ``tuco.TucoCallback``): TuCo
    on its probes at the start, every ``probe.every`` steps and at the end (training itself is unchanged)."""
    encoded = [e for c in chats if (e := encode_chat(tokenizer, c, r.sft_max_len)) is not None]
    rng = random.Random(r.seed)
    if r.sft_blocks_only:
        for name, p in model.named_parameters():
            p.requires_grad_(".layers." in f".{name}")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=r.sft_lr, betas=(0.9, 0.95), weight_decay=0.0)
    steps = int(len(encoded) * r.sft_epochs) // r.sft_batch
    order: list[int] = []
    model.train()
    t0 = time.time()
    pad = tokenizer.pad_token_id
    if probe is not None:
        probe.begin(model)
    for step in range(steps):
        if len(order) < r.sft_batch:
            more = list(range(len(encoded)))
            rng.shuffle(more)
            order += more
        idx, order = order[: r.sft_batch], order[r.sft_batch :]
        ids, labels, mask = pad_batch([encoded[i] for i in idx], pad)
        loss = _step(model, opt, ids, labels, mask, cosine_lr(step, steps, r.sft_lr, min(30, steps // 10 + 1)), r.bf16)
        if step % 25 == 0 or step == steps - 1:
            log.append({"phase": "sft", "step": step, "loss": round(loss, 4), "s": round(time.time() - t0, 1)})
            print(json.dumps(log[-1]), flush=True)
        if probe is not None and (
            m := probe.step_end(model, step + 1, epoch=(step + 1) * r.sft_batch / len(encoded), last=step == steps - 1)
        ):
            print(json.dumps({"phase": "tuco", "step": m.step, **{k: round(v, 4) for k, v in m.logs().items()}}), flush=True)
    if probe is not None:
        probe.end()
    model.eval()
    model.requires_grad_(True)
    return {"examples": len(encoded), "steps": steps, "seconds": round(time.time() - t0, 1)}


def save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path, chat: bool) -> None:
    """Save as bfloat16 safetensors with the tokenizer (the base's without a chat template)."""
    import copy

    path.mkdir(parents=True, exist_ok=True)
    held: Any = model  # PreTrainedModel.to is wrapped in a decorator mypy cannot see through
    held.to(torch.bfloat16).save_pretrained(path, safe_serialization=True)
    held.to(torch.float32)
    tok = copy.deepcopy(tokenizer)
    if not chat:
        tok.chat_template = None
    tok.save_pretrained(path)
    from tuco.runs import make_readable

    make_readable(path)
    if chat:
        from transformers import GenerationConfig

        GenerationConfig(
            eos_token_id=[tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.convert_tokens_to_ids("</s>")],
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
        ).save_pretrained(path)


def train_demo(
    out_dir: str | Path,
    recipe: Recipe | None = None,
    *,
    general_chats: list | None = None,
    docs: list[str] | None = None,
    probing: Probing | None = None,
) -> dict:
    """Train the demo pair into ``out_dir/base`` and ``out_dir/tuned``; returns (and writes) the recipe log.

    Two phases: pre-training (writes base/ and recipe.json), then ``finetune_demo`` (writes tuned/; ``probing``,
    a ``tuco.demo.probes.Probing``: TuCo while it fine-tunes, a run in ``out_dir/tuco``).
    """
    from transformers import LlamaForCausalLM

    from tuco.demo import data

    r = recipe or Recipe()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(r.seed)
    t0 = time.time()
    docs = docs if docs is not None else data.pretraining_text(r.pretrain_chars, seed=r.seed)
    chats = general_chats if general_chats is not None else data.general_chats(r.sft_general, seed=r.seed)
    # The tokenizer sees pre-training text and a fixed sample of general chats only, so that changing
    # the SFT data or its knobs later never changes phase 1 (the base model is reproducible on its own).
    tok_chats = general_chats if general_chats is not None else data.general_chats(TOKENIZER_CHATS, seed=r.seed)
    tok_texts = docs[:20000] + [m["content"] for c in tok_chats for m in c]
    tokenizer = train_tokenizer(tok_texts, r.vocab_size)
    model = LlamaForCausalLM(model_config(r, tokenizer))
    log: list = []
    pre = pretrain(model, tokenizer, docs, r, log)
    save(model, tokenizer, out / "base", chat=False)
    record = {
        "recipe": asdict(r),
        "params": sum(p.numel() for p in model.parameters()),
        "data": {"pretrain_docs": len(docs), "pretrain_chars": sum(map(len, docs))},
        "pretrain": pre,
        "log": log,
        "pretrain_wall_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    return finetune_demo(out, r, general_chats=chats, probing=probing)


def finetune_demo(
    out_dir: str | Path, recipe: Recipe | None = None, *, general_chats: list | None = None, probing: Probing | None = None
) -> dict:
    """Phase 2: full SFT of ``out_dir/base`` into ``out_dir/tuned``; completes recipe.json. ``probing`` (a
    ``tuco.demo.probes.Probing``): TuCo while it trains, against a frozen copy of the base's blocks."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tuco.data import safety
    from tuco.demo import data

    r = recipe or Recipe()
    out = Path(out_dir)
    record: dict = json.loads((out / "recipe.json").read_text())
    torch.manual_seed(r.seed + 1)
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(out / "base")
    tokenizer.chat_template = CHAT_TEMPLATE
    tuned = LlamaForCausalLM.from_pretrained(out / "base", dtype=torch.float32)
    data_seed = r.seed if r.data_seed is None else r.data_seed
    chats = general_chats if general_chats is not None else data.general_chats(r.sft_general, seed=data_seed)
    safety_chats = safety.safety_conversations(seed=data_seed)
    sft_chats = chats + safety_chats * r.sft_safety_repeat
    random.Random(r.seed).shuffle(sft_chats)
    log = [e for e in record["log"] if e["phase"] == "pretrain"]  # a re-run replaces the SFT entries
    record["log"] = log
    probe = None
    if probing is not None:
        from tuco.demo.probes import recipe_callback

        probe = recipe_callback("demo", out, probing, tokenizer)
    sft = finetune(tuned, tokenizer, sft_chats, r, log, probe)
    if probe is not None:
        from tuco.demo.probes import record as probe_record

        record["tuco"] = probe_record(probe)
    save(tuned, tokenizer, out / "tuned", chat=True)
    record["recipe"] = asdict(r)
    record["data"].update({"sft_general_chats": len(chats), "sft_safety_chats": len(safety_chats)})
    record["sft"] = sft
    record["wall_seconds"] = round(record.get("pretrain_wall_seconds", 0) + time.time() - t0, 1)
    (out / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def finetune_shipped(out_dir: str | Path, recipe: Recipe, *, probing: Probing | None = None) -> dict:
    """Phase 2 again on the SHIPPED base (copied into ``out_dir/base`` with its recipe.json): a new
    fine-tuning run of the demo pair for ``recipe.seed`` (the other seeds of the same fine-tune)."""
    import shutil

    from tuco.models.shipped import PAIR_DIR, demo_pair_dirs

    out = Path(out_dir)
    base, _ = demo_pair_dirs()
    out.mkdir(parents=True, exist_ok=True)
    if (out / "base").exists():
        shutil.rmtree(out / "base")
    shutil.copytree(base, out / "base")
    shutil.copy(PAIR_DIR / "recipe.json", out / "recipe.json")
    return finetune_demo(out, recipe, probing=probing)
