"""FTC-alpha scaling (Definition 5.1) as a context manager that always restores the model.

    with tuco.steer(pair, alpha=1.1):
        out = pair.tuned.generate(...)      # any forward/generate of the tuned model is steered

Inside the context every layer computes x + PTC + alpha * FTC on the model's own running stream;
on exit (normal or exception) the original blocks are back in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tuco.decomposition import Engine
from tuco.pair import ModelPair


@contextmanager
def steer(pair: ModelPair, alpha: float | Sequence[float]) -> Iterator[Engine]:
    """Scale the fine-tuning component by ``alpha`` (scalar, or one value per layer, each >= 0).

    alpha = 1 is exactly the fine-tuned model; alpha = 0 the pre-trained blocks on the tuned
    embeddings and head. Beam search is not supported inside the context (the pre-trained blocks'
    cache is not reordered with the beams); use greedy or sampling.
    """
    with pair.engine(alpha=alpha) as engine:
        yield engine
