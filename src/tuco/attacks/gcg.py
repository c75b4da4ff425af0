"""GCG adversarial suffixes (Zou et al.) through the optional ``nanogcg`` package, or read from a file.

nanogcg scores each candidate with the model's full logits, though it reads only the target's positions: on a
large vocabulary (Gemma's 262k) the LM head over every position is most of a step. ``TargetLogits`` gives it
the tuned model with the head computed at the last positions only (``logits_to_keep``); the rest of the
logits are NaN, so a read of them would turn the loss NaN and fail loudly instead of steering the search."""

from __future__ import annotations

import contextlib
import gc
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tuco.errors import ConfigError

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


def attack(request: str, suffix: str) -> str:
    """The request with the adversarial string appended (as GCG optimises it)."""
    return f"{request} {suffix}"


@dataclass(frozen=True)
class Optimised:
    """One optimised suffix and how its optimisation went: ``request`` it was optimised on, the target
    loss of the best string (``best_loss``) and of the first step (``first_loss``: the loss the search
    started from), and the number of ``steps`` run."""

    suffix: str
    request: str
    best_loss: float
    first_loss: float
    steps: int


@contextlib.contextmanager
def quiet_optimiser() -> Iterator[None]:
    """nanogcg's progress bar (tqdm, on ``sys.stderr``) and prints (``sys.stdout``) kept off the terminal while
    it optimises, so a suite's output reads in one screen; replayed on stderr if the optimisation fails, so
    nothing that explains a failure is lost. (Its warnings are left out by its own verbosity: ERROR.)"""
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held), contextlib.redirect_stdout(held):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise


class TargetLogits(torch.nn.Module):
    """A causal LM whose forward computes the LM head only at its last ``keep`` positions and returns logits
    of the full length, NaN before them (what nanogcg reads, the target's positions and the one before
    them, is computed; ``keep`` must cover them). ``device``, ``dtype`` and ``get_input_embeddings`` are
    the model's."""

    def __init__(self, model: torch.nn.Module, keep: int) -> None:
        super().__init__()
        self.model = model
        self.keep = keep

    @property
    def device(self) -> torch.device:
        """The wrapped model's device."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The wrapped model's dtype."""
        return next(self.model.parameters()).dtype

    def get_input_embeddings(self) -> torch.nn.Module:
        """The wrapped model's token embedding."""
        embeddings: torch.nn.Module = self.model.get_input_embeddings()  # type: ignore[operator]
        return embeddings

    def forward(self, inputs_embeds: torch.Tensor, **kwargs: Any) -> Any:
        """The model's output with ``logits`` of shape (batch, length, vocab), computed at the last ``keep``."""
        out = self.model(inputs_embeds=inputs_embeds, logits_to_keep=self.keep, **kwargs)
        batch, length = inputs_embeds.shape[:2]
        last = out.logits[:, -min(self.keep, length) :]
        full = last.new_full((batch, length, last.shape[-1]), float("nan"))
        full[:, length - last.shape[1] :] = last
        out.logits = full
        return out


def optimise_suffixes(
    pair: Decomposable,
    requests: list[str],
    n: int,
    *,
    steps: int = 250,
    target: str = "Sure, here is",
    seed: int = 0,
    search_width: int = 512,
    topk: int = 256,
) -> list[Optimised]:
    """Optimise ``n`` suffixes white-box against the tuned model, suffix ``i`` on request ``i`` (cycled)
    with seed ``seed + i``, with nanogcg; each with its losses. nanogcg's warnings, progress bars and prints
    stay off the terminal (its errors do not: ``quiet_optimiser``)."""
    try:
        import nanogcg
    except ImportError as err:
        raise ConfigError("optimising GCG suffixes needs nanogcg: pip install nanogcg (or give --suffixes FILE)") from err
    out = []
    # the target's positions and the one before them (nanogcg reads those); the space it may add is a token more
    model = TargetLogits(pair.tuned, len(pair.tokenizer(" " + target, add_special_tokens=False)["input_ids"]) + 2)
    # nanogcg runs a full gc.collect() before every batch of candidates (2-3 per step): in a process holding
    # many objects (a test session) that is ~0.5 s each, most of a small optimisation's time. Frozen objects
    # (everything alive now) are skipped by the collector; what the optimisation creates is still collected.
    gc.freeze()
    try:
        for i in range(n):
            request = requests[i % len(requests)]
            config = nanogcg.GCGConfig(
                num_steps=steps, seed=seed + i, search_width=search_width, topk=topk, verbosity="ERROR", use_prefix_cache=False
            )  # nanogcg 0.3 indexes legacy tuple caches (transformers 5: no)
            chat = [{"role": "user", "content": request + " {optim_str}"}]
            with quiet_optimiser():  # its dtype/CPU warnings and its progress bar: 20 lines of a demo's output
                result = nanogcg.run(model, pair.tokenizer, chat, f"{target}", config)
            losses = [float(x) for x in result.losses]
            if any(x != x for x in losses):  # NaN: nanogcg read logits TargetLogits did not compute
                raise RuntimeError(f"GCG loss is NaN on {request!r}: this nanogcg reads logits before the target's")
            first = losses[0] if losses else float(result.best_loss)
            out.append(Optimised(result.best_string, request, float(result.best_loss), first, len(losses)))
    finally:
        gc.unfreeze()
    return out
