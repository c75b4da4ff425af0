"""GCG adversarial suffixes (Zou et al.) through the optional ``nanogcg`` package, or read from a file.
nanogcg is given the tuned model as ``TargetLogits`` (``tuco.attacks.target_logits``): the LM head at the
target's positions only, the same search for less time on a large vocabulary."""

from __future__ import annotations

import contextlib
import gc
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    from tuco.attacks.target_logits import TargetLogits, target_positions

    out = []
    model = TargetLogits(pair.tuned, target_positions(pair.tokenizer, target))
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
