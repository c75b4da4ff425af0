"""`tuco demo` (the paper's analyses on the shipped pair) and `tuco demo-train` (the recipe)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HELP = "run the paper's analyses on the shipped demo pair (offline, a few minutes on a CPU)"
TRAIN_HELP = "re-train the demo pair with the project's recipe (needs the demo-train data packages)"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP)
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run directory (default runs/demo)")
    p.add_argument("--pair-dir", default=None, metavar="DIR", help="a pair dir with base/ and tuned/ (default: the shipped one)")
    p.add_argument("--quick", action="store_true", help="a few prompts per analysis (seconds; for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
    t = sub.add_parser("demo-train", help=TRAIN_HELP, description=TRAIN_HELP)
    t.add_argument("--out", required=True, metavar="DIR", help="where base/, tuned/ and recipe.json go")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(run=run_train)


def _table(m: dict[str, Any]) -> list[Table]:
    t1 = Table(title="web text vs chat (paper: chat has higher TuCo, AUC 0.93-1.0)", show_edge=False)
    for c in ("mean TuCo web", "mean TuCo chat", "ROC-AUC", "chat without template"):
        t1.add_column(c, justify="right")
    t1.add_row(f"{m['mean_tuco_web']:.3f}", f"{m['mean_tuco_chat']:.3f}", f"{m['web_vs_chat_auc']:.2f}",
               f"{m['mean_tuco_chat_without_template']:.3f}")
    t2 = Table(title="many-shot: k compliant examples before a held-out harmful request", show_edge=False)
    t2.add_column("k", justify="right")
    t2.add_column("mean TuCo", justify="right")
    t2.add_column("refusal rate", justify="right")
    for k, v in m["many_shot"].items():
        t2.add_row(k, f"{v['mean_tuco']:.3f}", f"{v['refusal_rate']:.0%}")
    t3 = Table(title="steering: refusal rate vs alpha (held-out prompts)", show_edge=False)
    for c in ("alpha", "harmful refused", "benign refused", "mean TuCo", "ends turn"):
        t3.add_column(c, justify="right")
    for a, v in m["alpha"].items():
        t3.add_row(a, f"{v['harmful_refusal']:.0%}", f"{v['benign_refusal']:.0%}", f"{v['mean_tuco']:.3f}",
                   f"{v['end_of_turn_rate']:.0%}")
    t4 = Table(title="findings", show_edge=False)
    t4.add_column("paper")
    t4.add_column("this pair")
    for k, v in m["findings"].items():
        t4.add_row(k, v)
    return [t1, t2, t3, t4]


def _examples(out: Path, console: Console) -> None:
    from tuco.runs import read_rows

    rows = [r for r in read_rows(out / "rows.jsonl") if r["experiment"] == "alpha"]
    t = Table(title="example responses (first held-out harmful and benign request)", show_edge=False, show_lines=True)
    for c in ("alpha", "kind", "TuCo", "response"):
        t.add_column(c)
    firsts = {}
    for r in rows:
        firsts.setdefault((r["alpha"], r["kind"]), r)
    for (a, kind), r in sorted(firsts.items()):
        if a in (0.0, 1.0, 1.5):
            t.add_row(str(a), kind, f"{r['mean_tuco']:.3f}", r["response"][:120])
    console.print(t)


def run(args: argparse.Namespace) -> int:
    from tuco.demo import demo_pair_dirs
    from tuco.demo.run import FULL, QUICK, run_demo
    from tuco.errors import TucoError
    from tuco.pair import load_pair

    if args.pair_dir:
        base, tuned = Path(args.pair_dir) / "base", Path(args.pair_dir) / "tuned"
        if not (tuned / "config.json").exists():
            raise TucoError(f"--pair-dir {args.pair_dir!r} has no tuned/config.json")
    else:
        base, tuned = demo_pair_dirs()
    out = Path(args.out)
    t0 = time.time()
    pair = load_pair(str(base), str(tuned), dtype="float32", device="cpu")
    console = Console()
    with Console(stderr=True).status("running the demo analyses"):
        metrics = run_demo(pair, out, QUICK if args.quick else FULL, seed=args.seed)
    for table in _table(metrics):
        console.print(table)
    _examples(out, console)
    from tuco.report.html import build_html
    from tuco.report.load import load_run
    from tuco.runs import atomic_write_text

    atomic_write_text(out / "report.html", build_html(load_run(out), "tuco demo"))
    console.print(f"run directory: {out} (rows.jsonl, metrics.json, *.png, report.html) in {time.time() - t0:.0f} s")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from tuco.demo.evaluate import write_cards
    from tuco.demo.train import Recipe, train_demo

    record = train_demo(args.out, Recipe(seed=args.seed))
    behaviour = write_cards(args.out)
    print(f"trained in {record['wall_seconds']:.0f} s; tuned refuses {behaviour['tuned']['harmful_refusal']:.0%} of "
          f"held-out harmful and {behaviour['tuned']['benign_refusal']:.0%} of benign requests; cards in {args.out}")
    return 0
