"""The measured findings in README.md and docs/findings-gemma.md, generated from the runs, never hand-copied.

Two steps (``make findings`` runs the second; tests/test_docs.py fails when the documents drift):

    python docs/findings.py collect runs/gemma-seed0 --label "Gemma, seed 0 (shipped)" --out docs/findings/gemma-seed0.json
    python docs/findings.py render README.md docs/findings-gemma.md

``collect`` keeps, of every experiment run in a suite directory (``tuco demo`` / ``tuco experiment``
outputs), what the documents show: the findings of metrics.json (claim, primary, verdict, estimate,
interval, n, paper), the options, the checkpoints and the tuco version. ``render`` rewrites the blocks
between ``<!-- findings:NAME -->`` and ``<!-- /findings:NAME -->`` markers from those snapshots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SNAPSHOTS = HERE / "findings"
ORDER = ["web-vs-chat", "conjugate", "gcg", "many-shot", "jailbreak-success", "alpha-sweep", "output-vs-tuco"]
SUPPORTED = {"reproduced", "direction reproduced, weaker than the paper", "direction reproduced, stronger than the paper"}


def collect(suite: Path, label: str) -> dict[str, Any]:
    """What the documents need from every run directory in ``suite`` (or ``suite`` itself when it is one)."""
    runs = [suite] if (suite / "metrics.json").exists() else sorted(d for d in suite.iterdir() if (d / "metrics.json").exists())
    if not runs:
        raise SystemExit(f"{suite}: no run directory with metrics.json")
    out: dict[str, Any] = {"label": label, "runs": {}}
    for d in runs:
        metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        manifest = json.loads((d / "rows.manifest.json").read_text(encoding="utf-8"))
        config = manifest.get("config", {})
        keep = ("claim", "primary", "verdict", "estimate", "low", "high", "n", "n_text", "paper", "measured", "p_holm", "mde")
        out["runs"][metrics["experiment"]] = {
            "options": config.get("options", {}),
            "checkpoints": [Path(str(c)).name for c in config.get("checkpoints", [])],
            "dtype": config.get("dtype"),
            "tuco_git_sha": (manifest.get("versions") or {}).get("tuco_git_sha"),
            "seconds": manifest.get("seconds"),
            "findings": [
                {**{k: f.get(k) for k in keep}, "also": (f.get("extra") or {}).get("behaviour")} for f in metrics.get("findings", [])
            ],
        }
    return out


def load(name: str) -> dict[str, Any]:
    """A snapshot in docs/findings/ by file stem."""
    return json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))


def _cell(f: dict[str, Any] | None) -> str:
    if f is None:
        return "not run"
    if f.get("estimate") is None:
        return f"{f['verdict']}"
    verdict = f["verdict"] if f["verdict"] not in SUPPORTED else f"**{f['verdict']}**"
    also = f" (and {f['also']})" if f.get("also") else ""
    return f"{f['measured']}{also}, {f.get('n_text') or f.get('n')}: {verdict}"


def _primary(snapshot: dict[str, Any], experiment: str) -> list[dict[str, Any]]:
    run = snapshot["runs"].get(experiment)
    return [f for f in run["findings"] if f.get("primary")] if run else []


def primary_table(snapshots: list[dict[str, Any]]) -> str:
    """One row per primary claim (the claims of the first snapshot that has the experiment), one column per snapshot."""
    head = "| experiment: primary claim | paper | " + " | ".join(s["label"] for s in snapshots) + " |"
    rows = [head, "|" + "---|" * (2 + len(snapshots))]
    for exp in ORDER:
        claims: list[str] = []
        for s in snapshots:
            for f in _primary(s, exp):
                if f["claim"] not in claims:
                    claims.append(f["claim"])
        for claim in claims:
            paper = next((f.get("paper") for s in snapshots for f in _primary(s, exp) if f["claim"] == claim), None) or "-"
            cells = [_cell(next((f for f in _primary(s, exp) if f["claim"] == claim), None)) for s in snapshots]
            rows.append(f"| {exp}: {claim} | {paper} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def experiment_table(snapshot: dict[str, Any], experiment: str) -> str:
    """Every finding of one experiment in one snapshot: primary first, then exploratory."""
    run = snapshot["runs"].get(experiment)
    if not run:
        return f"(no {experiment} run in {snapshot['label']})"
    rows = ["| | claim | measured (95% interval) | n | verdict |", "|---|---|---|---|---|"]
    for f in run["findings"]:
        kind = "primary" if f.get("primary") else "exploratory"
        holm = f" (Holm p {f['p_holm']:.3g})" if f.get("p_holm") is not None else ""
        mde = f"; detectable effect {f['mde']:.3f}" if f.get("mde") else ""
        also = f" (and {f['also']})" if f.get("also") else ""
        rows.append(
            f"| {kind} | {f['claim']} | {f.get('measured', '')}{also}{mde} | {f.get('n_text') or f.get('n') or ''} | {f['verdict']}{holm} |"
        )
    return "\n".join(rows)


BLOCKS: dict[str, Any] = {}


def block(name: str) -> Any:
    """Register a generated block by marker name."""

    def wrap(fn: Any) -> Any:
        BLOCKS[name] = fn
        return fn

    return wrap


def _snapshots(names: list[str]) -> list[dict[str, Any]]:
    return [load(n) for n in names if (SNAPSHOTS / f"{n}.json").exists()]


@block("summary")
def _summary() -> str:
    return primary_table(_snapshots(["demo", "gemma-seed0", "gemma-seed1", "gemma-seed2"]))


for _exp in ORDER:

    @block(f"gemma-{_exp}")
    def _section(exp: str = _exp) -> str:
        snaps = _snapshots(["gemma-seed0"])
        seeds = _snapshots(["gemma-seed0", "gemma-seed1", "gemma-seed2"])
        parts = [experiment_table(snaps[0], exp)] if snaps else [f"(no run of {exp} yet)"]
        if len(seeds) > 1:
            parts.append("Primary claims on every adapter seed (the spread is part of the finding):\n\n" + primary_table_for(seeds, exp))
        return "\n\n".join(parts)


def primary_table_for(snapshots: list[dict[str, Any]], experiment: str) -> str:
    """The primary claims of one experiment across snapshots."""
    rows = ["| adapter | claim | measured (95% interval) | n | verdict |", "|---|---|---|---|---|"]
    for s in snapshots:
        for f in _primary(s, experiment):
            also = f" (and {f['also']})" if f.get("also") else ""
            rows.append(f"| {s['label']} | {f['claim']} | {f.get('measured', '')}{also} | {f.get('n_text') or ''} | {f['verdict']} |")
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` with every registered block between its markers regenerated."""
    for name, fn in BLOCKS.items():
        start, end = f"<!-- findings:{name} -->", f"<!-- /findings:{name} -->"
        i = text.find(start)
        if i < 0:
            continue
        j = text.find(end, i)
        if j < 0:
            raise SystemExit(f"marker {start} has no {end}")
        text = text[: i + len(start)] + "\n" + fn() + "\n" + text[j:]
    return text


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="snapshot a suite's findings")
    c.add_argument("suite", type=Path)
    c.add_argument("--label", required=True)
    c.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("render", help="rewrite the generated blocks of documents")
    r.add_argument("docs", nargs="+", type=Path)
    r.add_argument("--check", action="store_true", help="fail (exit 1) when a document is out of date")
    args = p.parse_args(argv)
    if args.cmd == "collect":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(collect(args.suite, args.label), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    stale = []
    for doc in args.docs:
        text = doc.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(str(doc))
            if not args.check:
                doc.write_text(new, encoding="utf-8")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run: make findings)")
        return 1
    print("updated: " + ", ".join(stale) if stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
