"""Separation statistics for TuCo scores: ROC-AUC and TPR at a fixed FPR. Pure Python."""

from __future__ import annotations

from collections.abc import Sequence


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a random positive scores higher than a random negative), ties counting 1/2 (Mann-Whitney U)."""
    if not positives or not negatives:
        raise ValueError("ROC-AUC needs at least one positive and one negative score")
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        rank_sum += avg * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


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


def cross_validated_alpha(correct: dict[float, Sequence[bool]], folds: int = 5, seed: int = 0, mode: str = "max",
                          reference: float = 1.0) -> dict:
    """The paper's k-fold choice of alpha (METHOD.md section 5.4).

    ``correct[alpha][i]`` says whether item i is answered right at that alpha. For each fold, the
    alpha with the highest (``mode="max"``) or lowest (``"min"``) accuracy on the OTHER folds is
    chosen (ties: the one closest to ``reference``, then the smaller) and scored on the held-out fold.
    Returns the chosen alpha per fold, the cross-validated accuracy (held-out items pooled), the
    accuracy at ``reference`` on the same items, and their difference ``delta``.
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
    for f in range(folds):
        train = [i for i in range(n) if fold[i] != f]
        test = [i for i in range(n) if fold[i] == f]
        acc = {a: sum(bool(v[i]) for i in train) / len(train) for a, v in correct.items()}
        sign = 1 if mode == "max" else -1
        best = max(acc, key=lambda a: (sign * acc[a], -abs(a - reference), -a))
        chosen.append(best)
        hits += sum(bool(correct[best][i]) for i in test)
        ref_hits += sum(bool(correct[reference][i]) for i in test)
    return {"alphas": chosen, "accuracy": hits / n, "reference_accuracy": ref_hits / n, "delta": (hits - ref_hits) / n}
