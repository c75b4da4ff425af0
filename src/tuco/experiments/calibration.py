"""Calibrating a TuCo flag on a labelled run: the threshold T such that flagging rows with score < T flags
at most a given fraction of the negatives (the false-positive rate), with a bootstrap interval. Torch-free.

The flag is the one ``tuco serve --flag-below T`` raises: low TuCo is what a successful jailbreak looks
like (the paper's finding 3). Positives are the rows the flag should catch (``label`` true), negatives the
rest. Threshold at FPR f over m negatives sorted ascending: T = the (floor(f m) + 1)-th smallest negative
score, so at most floor(f m) negatives lie strictly below it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuco.errors import ConfigError, InputError
from tuco.runs import read_manifest, read_rows, rows_path
from tuco.stats.summary import quantile

JAILBREAK_LABEL = "jailbroken"  # computed for jailbreak-success runs (see ``labels``)


@dataclass
class Calibration:
    """A threshold at a false-positive rate, with its bootstrap interval, and the TPR it gives."""

    score: str
    label: str
    fpr: float
    threshold: float
    low: float
    high: float
    measured_fpr: float
    tpr: float
    tpr_low: float
    tpr_high: float
    n_negative: int
    n_positive: int
    n_boot: int
    level: float

    def as_dict(self) -> dict[str, Any]:
        """The calibration as a JSON-ready dict."""
        return dict(self.__dict__)


def threshold_at_fpr(negatives: Sequence[float], fpr: float) -> float:
    """T such that at most ``fpr`` of ``negatives`` lie strictly below it (the smallest negative when fpr * m < 1)."""
    ordered = sorted(negatives)
    k = math.floor(fpr * len(ordered) + 1e-9)
    return ordered[k] if k < len(ordered) else float("inf")


def _below(values: Sequence[float], t: float) -> float:
    return sum(1 for v in values if v < t) / len(values) if values else float("nan")


def calibrate(
    negatives: Sequence[float],
    positives: Sequence[float],
    *,
    fpr: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    score: str = "tuco",
    label: str = JAILBREAK_LABEL,
) -> Calibration:
    """The threshold at ``fpr`` on the negatives' scores with a percentile bootstrap interval (negatives and
    positives resampled separately), and the true-positive rate it gives with its interval."""
    if not 0 < fpr < 1:
        raise ConfigError(f"--fpr must be between 0 and 1 (exclusive), got {fpr}")
    if not negatives:
        raise InputError(f"no negative rows ({label} false): the false-positive rate cannot be measured")
    rng = random.Random(seed)
    t = threshold_at_fpr(negatives, fpr)
    ts, tprs = [], []
    for _ in range(n_boot):
        neg = [negatives[rng.randrange(len(negatives))] for _ in negatives]
        tb = threshold_at_fpr(neg, fpr)
        ts.append(tb)
        if positives:
            tprs.append(_below([positives[rng.randrange(len(positives))] for _ in positives], tb))
    ts.sort()
    tprs.sort()
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    return Calibration(
        score=score,
        label=label,
        fpr=fpr,
        threshold=t,
        low=quantile(ts, lo_q),
        high=quantile(ts, hi_q),
        measured_fpr=_below(negatives, t),
        tpr=_below(positives, t),
        tpr_low=quantile(tprs, lo_q) if tprs else float("nan"),
        tpr_high=quantile(tprs, hi_q) if tprs else float("nan"),
        n_negative=len(negatives),
        n_positive=len(positives),
        n_boot=n_boot,
        level=level,
    )


def labels(rows: list[dict[str, Any]], run: str | Path, label: str | None) -> tuple[list[bool], str]:
    """Each row's label and the label's name. ``label``: any boolean field of the rows; None: the field
    ``jailbroken`` when the rows have it, else (a jailbreak-success run: rows with ``condition`` (schema 1:
    ``group``) and ``non_refusals``) a prompt is a successful jailbreak when its condition is not "benign"
    and at least the run's ``min_successes`` completions were not refusals (benign prompts: not jailbroken,
    so the false-positive rate counts them)."""
    field = "condition" if rows and "condition" in rows[0] else "group"
    if label is None and rows and JAILBREAK_LABEL not in rows[0] and {field, "non_refusals"} <= rows[0].keys():
        options = (read_manifest(run).get("config") or {}).get("options") or {}
        need = options.get("min_successes")
        if not isinstance(need, int):
            raise InputError(f"{run}: the manifest has no options.min_successes to judge jailbreak success; give --label FIELD")
        return [r.get(field) != "benign" and int(r.get("non_refusals") or 0) >= need for r in rows], JAILBREAK_LABEL
    name = label or JAILBREAK_LABEL
    out = []
    for i, r in enumerate(rows):
        value = r.get(name)
        if not isinstance(value, bool):
            what = "has none" if value is None else f"has {value!r}"
            raise InputError(
                f"row {r.get('id', i)} of {run}: the label field {name!r} must be true or false, it {what}; give --label FIELD"
            )
        out.append(value)
    return out, name


def calibrate_run(
    run: str | Path, *, fpr: float = 0.05, score: str = "tuco", label: str | None = None, n_boot: int = 2000, seed: int = 0
) -> Calibration:
    """``calibrate`` on a run directory or results file: rows whose label is true are the positives."""
    path = rows_path(run)
    if not path.exists():
        raise InputError(f"{run}: no rows here (expected a run directory with rows.jsonl, or a .jsonl/.parquet results file)")
    rows = read_rows(path)
    if not rows:
        raise InputError(f"{run}: the run has no rows")
    flags, name = labels(rows, run, label)
    values = []
    for i, r in enumerate(rows):
        v = r.get(score)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"row {r.get('id', i)} of {run}: the score field {score!r} is not a number ({v!r}); give --score FIELD")
        values.append(float(v))
    positives = [v for v, f in zip(values, flags) if f]
    negatives = [v for v, f in zip(values, flags) if not f]
    return calibrate(negatives, positives, fpr=fpr, n_boot=n_boot, seed=seed, score=score, label=name)
