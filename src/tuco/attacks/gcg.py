"""GCG adversarial suffixes (Zou et al.) through the optional ``nanogcg`` package, or read from a file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuco.errors import ConfigError

if TYPE_CHECKING:
    from tuco.models.decomposable import Decomposable


def attack(request: str, suffix: str) -> str:
    """The request with the adversarial string appended (as GCG optimises it)."""
    return f"{request} {suffix}"


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
) -> list[str]:
    """Optimise ``n`` suffixes against the tuned model, each on one request (cycled), with nanogcg."""
    try:
        import nanogcg
    except ImportError as err:
        raise ConfigError("optimising GCG suffixes needs nanogcg: pip install nanogcg (or give --suffixes FILE)") from err
    out = []
    for i in range(n):
        config = nanogcg.GCGConfig(
            num_steps=steps, seed=seed + i, search_width=search_width, topk=topk, verbosity="WARNING", use_prefix_cache=False
        )  # nanogcg 0.3 indexes legacy tuple caches (transformers 5: no)
        result = nanogcg.run(
            pair.tuned, pair.tokenizer, [{"role": "user", "content": requests[i % len(requests)] + " {optim_str}"}], f"{target}", config
        )
        out.append(result.best_string)
    return out
