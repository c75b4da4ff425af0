"""Steering a pair or chain (FTC-alpha scaling, Definition 5.1) as a context manager that always restores
the model, and checking an alpha against a model's stages and layers.

    with tuco.steer(pair, alpha=1.1):
        out = pair.tuned.generate(...)      # any forward/generate of the tuned model is steered
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tuco.engine.alpha import Alpha, AlphaLike
from tuco.models.decomposable import Decomposable


def check_alpha(alpha: AlphaLike, model: Decomposable) -> Alpha:
    """``alpha`` parsed and checked against ``model`` (its layers and, for a chain, its stages): ConfigError
    naming the mismatch otherwise."""
    return Alpha.of(alpha).check(model.n_stages, model.n_layers)


@contextmanager
def steer(pair: Decomposable, alpha: AlphaLike) -> Iterator[Any]:
    """Scale the fine-tuning component by ``alpha`` (scalar, or one value per layer, each >= 0; a chain:
    one entry per stage).

    alpha = 1 is exactly the fine-tuned model; alpha = 0 the pre-trained blocks on the tuned
    embeddings and head. Beam search is not supported inside the context (the pre-trained blocks'
    cache is not reordered with the beams); use greedy or sampling.
    """
    with pair.engine(alpha=alpha) as engine:
        yield engine
