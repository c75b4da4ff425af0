"""GCG adversarial suffixes (Zou et al.) through the optional ``nanogcg`` package, or read from a file."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tuco.errors import ConfigError
from tuco.prompts import read_utf8

if TYPE_CHECKING:
    from tuco.model import Decomposable


def read_suffixes(path: str) -> list[str]:
    """Adversarial strings: one per line (blank lines ignored, each stripped), or, from a ``.json`` file, a
    list of strings or of ``{"suffix": ...}`` records (a gcg run's ``suffixes.json``: exact strings, spaces
    kept, so suffixes optimised against one model transfer to another unchanged)."""
    text = read_utf8(path, "suffix file")
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"suffix file {path!r} is not valid JSON ({err.msg}, line {err.lineno})") from None
        items = data if isinstance(data, list) else None
        found = [x.get("suffix") if isinstance(x, dict) else x for x in items or []]
        out = [x for x in found if isinstance(x, str) and x.strip()]
        if items is None or len(out) != len(found):
            raise ConfigError(
                f'suffix file {path!r}: give a JSON list of strings or of {{"suffix": ...}} records (a gcg run\'s suffixes.json)'
            )
    else:
        out = [line.strip() for line in text.split("\n") if line.strip()]
    if not out:
        raise ConfigError(f"suffix file {path!r} holds no suffixes")
    return out


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
