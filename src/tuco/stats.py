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
