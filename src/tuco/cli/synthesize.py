"""`tuco synthesize RUN...`: each primary claim over adapters (runs of one recipe, one per seed) as one
random-effects synthesis: the headline for a new adapter, the per-adapter findings below it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "synthesise runs of the same analyses on several adapters (seeds): one random-effects headline per primary claim"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "synthesize",
        help=HELP,
        description=HELP + " (pooled estimate, Knapp-Hartung interval, tau, I2, "
        "a prediction interval for a new adapter, the verdict under the same rules as a run).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="a tuco demo directory or an analysis's run directory, one per adapter")
    p.add_argument("--labels", default=None, metavar="A,B,...", help="a label per run (default: the directory names)")
    p.add_argument("--out", default=None, metavar="DIR", help="write DIR/synthesis.json and DIR/report.html (synthesis first)")
    p.add_argument(
        "--calibration",
        default=None,
        metavar="NULLS.json",
        help="judge against null adapters of the same pair (the nulls.json of tuco demo --nulls): a claim that fires "
        "significantly more often than 5%% on them is labelled 'fails null calibration'",
    )
    p.add_argument("--json", action="store_true", help="the synthesis as JSON on stdout")
    p.set_defaults(run=run)


def lines(synthesis: dict[str, Any]) -> list[str]:
    """One line per synthesised primary claim, then the adapters."""
    out = [f"{c['experiment']}: {c['claim']}: {c['measured']}: {c['verdict']}{_fp(c)}" for c in synthesis["claims"]]
    labels = ", ".join(a["label"] for a in synthesis["adapters"])
    return [*out, f"{len(synthesis['adapters'])} adapters ({labels}); {synthesis['holm_family']} primary claims judged together (Holm)"]


def _fp(claim: dict[str, Any]) -> str:
    cal = claim.get("calibration")
    return f" (fires on {cal['fired']}/{cal['testable']} null adapters)" if cal and cal.get("testable") else ""


def _nulls(path: Path) -> dict[str, Any]:
    import json

    from tuco.errors import InputError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"--calibration {path}: cannot read it as JSON ({err}); give the nulls.json of tuco demo --nulls") from err
    if not isinstance(data, dict):
        raise InputError(f"--calibration {path}: not a nulls table; give the nulls.json of tuco demo --nulls")
    return data


def run(args: argparse.Namespace) -> int:
    import json

    from tuco.errors import ConfigError
    from tuco.experiments.synthesis import calibrate_synthesis, synthesize_runs
    from tuco.runs import atomic_write_text

    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != len(args.runs):
        raise ConfigError(f"--labels gives {len(labels)} labels for {len(args.runs)} runs; give one per run")
    synthesis = synthesize_runs(args.runs, labels)
    if args.calibration:
        synthesis = calibrate_synthesis(synthesis, _nulls(Path(args.calibration)), args.calibration)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "synthesis.json", json.dumps(synthesis, indent=1, default=str) + "\n")
        from tuco.report.load import open_source
        from tuco.report.render import build_html

        atomic_write_text(out / "report.html", build_html(open_source(out), "tuco synthesis over adapters"))
    if args.json:
        print(json.dumps(synthesis, default=str))
        return 0
    for line in lines(synthesis):
        print(line)
    if args.out:
        print(f"synthesis: {Path(args.out) / 'synthesis.json'}, report: {Path(args.out) / 'report.html'}")
    return 0
