"""One rank of a 2-process DDP Trainer run on CPU (gloo) with TucoCallback (tests/test_callback.py starts it
with torchrun): every rank trains, only rank 0 measures and writes; a stop rule stops every rank."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

import tuco
from tuco.demo.tiny import tiny_config, tiny_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_callback import CHAT, PROBES, TEXTS, collate  # noqa: E402


def main(out: str, stop: bool) -> None:
    torch.set_num_threads(1)
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", len(tok), layers=2, hidden=32))
    ids = [{"input_ids": tok(t)["input_ids"]} for t in TEXTS * 8]
    args = TrainingArguments(
        output_dir=out,
        max_steps=10,
        per_device_train_batch_size=2,
        learning_rate=5e-3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        ddp_backend="gloo",
        seed=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=ids, data_collator=collate(tok.pad_token_id), processing_class=tok)
    assert trainer.args.world_size == 2, trainer.args.world_size
    watch = ["harmful:tuco:rise=0.01:stop"] if stop else None
    cb = tuco.TucoCallback(PROBES, every=5, chat=CHAT, watch=watch).attach(trainer)
    trainer.train()
    rank = int(os.environ["RANK"])
    report = {
        "rank": rank,
        "wrapped": type(trainer.model_wrapped).__name__,
        "steps": trainer.state.global_step,
        "measured": [m.step for m in cb.measurements],
        "logged": [h["step"] for h in trainer.state.log_history if "tuco/harmful" in h],
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "stop")
