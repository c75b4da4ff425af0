"""How a token is picked, in one place: ``Sampling`` (validated once, where it is built), the one seeding rule
and the one sampler, shared by ``tuco.generate``, every run (``generate_to``, the experiments) and
``tuco serve``. Torch-free at import (the CLI builds its flags from ``Sampling``).

Seeding rule: every sequence draws from its own ``torch.Generator``, seeded by ``row_seed(seed, key,
sample)`` from the caller's seed, the sequence's key (a run: the prompt's id and the measurement's tag;
the server: the prompt's index in the request) and the sample number. So a row's sample depends on its
prompt, its alpha, its seed and nothing else: not on the batch it shares, the rows beside it, a resume,
the number of ranks or the global RNG. The same prompt at two alphas draws the same random numbers (a
paired comparison of alphas).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuco.errors import ConfigError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Sampling:
    """Decoding settings: ``max_new_tokens``; ``temperature`` 0 is greedy, > 0 samples (nucleus ``top_p``);
    ``seed`` makes sampling reproducible (None: fresh randomness)."""

    max_new_tokens: int = field(default=64, metadata={"help": "tokens to generate per response", "metavar": "N"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy; > 0 samples at this temperature", "metavar": "X"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling in (0, 1] (with --temperature > 0)", "metavar": "P"})
    seed: int | None = field(
        default=None,
        metadata={"help": "seed for sampling (each prompt draws its own numbers: resumable, batch-independent)", "metavar": "S"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1 (a whole number), got {self.max_new_tokens!r}")
        if not self.temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_p is not None and self.top_p < 1 and self.temperature == 0:
            raise ConfigError(f"top_p {self.top_p} only applies when sampling: add a temperature > 0 (--temperature 1), or drop top_p")

    @property
    def greedy(self) -> bool:
        """True when every token is the most likely one (no randomness)."""
        return self.temperature == 0

    def settings(self) -> dict[str, object]:
        """What of it decides a run's rows (plan digests, run configs)."""
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}


def row_seed(seed: int, key: str, sample: int = 0) -> int:
    """The seed of one sequence's generator, from the caller's seed, the sequence's key and its sample number
    (the one seeding rule; see the module docstring)."""
    digest = hashlib.sha256(repr((seed, key, sample)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of its own for one sequence (``seed`` None: from the operating system's randomness)."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1))
    return g


def pick(logits: torch.Tensor, sampling: Sampling, gen: torch.Generator | None) -> int:
    """Greedy (temperature 0) or a sample at ``temperature`` from the top-``top_p`` nucleus of ``logits`` [V]."""
    if sampling.greedy:
        return int(logits.argmax())
    scores = logits / sampling.temperature
    if sampling.top_p is not None and sampling.top_p < 1:
        ordered, order = scores.sort(descending=False)
        outside = ordered.softmax(-1).cumsum(-1) <= 1 - sampling.top_p  # the low tail whose mass is at most 1 - top_p
        outside[-1] = False  # the most likely token always stays
        scores = scores.scatter(-1, order, ordered.masked_fill(outside, float("-inf")))
    import torch

    return int(torch.multinomial(scores.softmax(-1), 1, generator=gen))
