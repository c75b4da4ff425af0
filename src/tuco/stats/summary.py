"""Small statistics the analyses and the report share: TPR at a fixed FPR, the k-fold choice of alpha, one
quantile, a paired/unpaired bootstrap difference of means. Pure Python.

Intervals and claims live in ``tuco.stats.intervals`` and ``tuco.stats.claims``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def tpr_at_fpr(positives: Sequence[float], negatives: Sequence[float], fpr: float = 0.05) -> float:
    """Largest fraction of positives above a threshold that lets at most ``fpr`` of negatives through."""
    negs = sorted(negatives, reverse=True)
    allowed = int(fpr * len(negs))
    threshold = negs[allowed] if allowed < len(negs) else float("-inf")
    return sum(1 for v in positives if v > threshold) / len(positives) if positives else 0.0


def fold_ids(n: int, folds: int, seed: int) -> list[int]:
    """A seeded assignment of ``n`` items to ``folds`` folds of near-equal size (item i -> fold)."""
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    out = [0] * n
    for rank, i in enumerate(order):
        out[i] = rank % folds
    return out


def cross_validated_alpha(
    correct: Mapping[float, Sequence[bool]], folds: int = 5, seed: int = 0, mode: str = "max", reference: float = 1.0
) -> dict:
    """The paper's k-fold choice of alpha (docs/method.md section 5.4).

    ``correct[alpha][i]`` says whether item i is answered right at that alpha. For each fold, the
    alpha with the highest (``mode="max"``) or lowest (``"min"``) accuracy on the OTHER folds is
    chosen (ties: the one closest to ``reference``, then the smaller) and scored on the held-out fold.
    Returns the chosen alpha per fold, the cross-validated accuracy (held-out items pooled), the
    accuracy at ``reference`` on the same items, their difference ``delta``, and ``item_delta`` (each
    item's held-out correctness at its fold's chosen alpha minus at the reference: for intervals).
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if reference not in correct:
        raise ValueError(f"the alpha grid must contain the reference alpha {reference}")
    n = len(correct[reference])
    if n < folds:
        raise ValueError(f"{n} items cannot be split into {folds} folds")
    fold = fold_ids(n, folds, seed)
    chosen, hits, ref_hits = [], 0, 0
    item_diff = [0.0] * n
    for f in range(folds):
        train = [i for i in range(n) if fold[i] != f]
        test = [i for i in range(n) if fold[i] == f]
        acc = {a: sum(bool(v[i]) for i in train) / len(train) for a, v in correct.items()}
        sign = 1 if mode == "max" else -1
        best = max(acc, key=lambda a: (sign * acc[a], -abs(a - reference), -a))
        chosen.append(best)
        hits += sum(bool(correct[best][i]) for i in test)
        ref_hits += sum(bool(correct[reference][i]) for i in test)
        for i in test:
            item_diff[i] = float(bool(correct[best][i])) - float(bool(correct[reference][i]))
    return {
        "alphas": chosen,
        "accuracy": hits / n,
        "reference_accuracy": ref_hits / n,
        "delta": (hits - ref_hits) / n,
        "item_delta": item_diff,
    }


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (q in [0, 1]) of values sorted ascending, linearly interpolated: the one
    quantile of tuco (bootstrap differences, quartiles in the report, calibration thresholds)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = q * (len(sorted_values) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_mean_diff(
    a: Sequence[float], b: Sequence[float], *, paired: bool, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(b) - mean(a) with a percentile bootstrap interval: (difference, low, high).

    ``paired``: a[i] and b[i] are the same item under two conditions (resampled together).
    """
    import random

    if not a or not b:
        raise ValueError("both groups need values")
    if paired and len(a) != len(b):
        raise ValueError("paired groups must have the same length")
    rng = random.Random(seed)
    diff = sum(b) / len(b) - sum(a) / len(a)
    stats = []
    for _ in range(n_boot):
        if paired:
            idx = [rng.randrange(len(a)) for _ in a]
            stats.append(sum(b[i] - a[i] for i in idx) / len(idx))
        else:
            aa = [a[rng.randrange(len(a))] for _ in a]
            bb = [b[rng.randrange(len(b))] for _ in b]
            stats.append(sum(bb) / len(bb) - sum(aa) / len(aa))
    stats.sort()
    return diff, quantile(stats, (1 - level) / 2), quantile(stats, 1 - (1 - level) / 2)
