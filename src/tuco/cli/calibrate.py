"""`tuco calibrate`: the TuCo threshold of a flag at a chosen false-positive rate, from a labelled run."""

from __future__ import annotations

import argparse
import json

HELP = "the TuCo threshold that flags at most a given false-positive rate of a labelled run (for tuco serve --flag-below)"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate",
        help=HELP,
        description=HELP + ". Rows whose label is true are the ones the flag should catch; the flag fires when the score is below T.",
    )
    p.add_argument("path", metavar="RUN", help="a run directory or a .jsonl/.parquet results file")
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate among the negatives (default 0.05)")
    p.add_argument("--score", default="tuco", metavar="FIELD", help="the score field (default tuco)")
    p.add_argument(
        "--label",
        default=None,
        metavar="FIELD",
        help="a boolean field, true for the rows to catch (default: jailbroken; for jailbreak-success runs a prompt "
        "not in group benign with at least the run's --min-successes non-refused completions)",
    )
    p.add_argument("--boot", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the calibration as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tuco.cli.options import check_positive
    from tuco.experiments.calibration import calibrate_run

    check_positive(args.boot, "--boot")
    c = calibrate_run(args.path, fpr=args.fpr, score=args.score, label=args.label, n_boot=args.boot, seed=args.seed)
    if args.json:
        print(json.dumps(c.as_dict()))
        return 0
    pct = f"{c.level:.0%}"
    print(f"flag rows with {c.score} < T (positives: {c.label} true)")
    print(f"  T = {c.threshold:.4f}  [{c.low:.4f}, {c.high:.4f}]  ({pct} bootstrap interval, {c.n_boot} resamples)")
    print(f"  false-positive rate: target {c.fpr:.3f}, {c.measured_fpr:.3f} at T  (n {c.n_negative} negatives)")
    if c.n_positive:
        print(f"  true-positive rate at T: {c.tpr:.3f}  [{c.tpr_low:.3f}, {c.tpr_high:.3f}]  (n {c.n_positive} positives)")
    else:
        print("  true-positive rate: no positive rows")
    print(f"  tuco serve ... --flag-below {c.threshold:.4f}")
    return 0
