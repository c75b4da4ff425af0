"""Calibration on null adapters: the demo suite on N random LoRAs at the shipped fine-tune's per-module update
norm (no safety training; ``tuco.demo.nulls.random_lora_like``), then each primary claim's false-positive
rate (``tuco.stats.nulls``) into OUT/nulls.json, and the CPU time it took.

    python docs/null_calibration.py run --nulls 0-19 --out runs/demo-nulls [--skip gcg]
    python docs/null_calibration.py collect runs/demo-nulls --out docs/findings/demo-nulls.json --package

Resumable: a null whose suite finished is read back, a half-finished one resumes. ``--skip`` leaves analyses
out (for CPU time; the table says which). ``tuco demo --pair demo --nulls 0-19`` runs the same without skipping.
``collect`` keeps, per null that finished its suite, every primary finding (verdict, estimate, interval, p,
Holm p and family) and the false-positive table; tests/test_null_calibration.py checks the table against
them with its own exact binomial test and fails when a claim that fires significantly more often than 5% is
still reported as found in the headline.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tuco" / "demo" / "null_calibration.json"
#: What the snapshot keeps of each null's primary findings: enough to re-judge every verdict with its suite's
#: Holm family (tests/test_null_calibration.py), not the per-item inputs (20 nulls x 9 claims).
KEEP = (
    "claim", "primary", "verdict", "estimate", "low", "high", "p", "p_holm", "holm_family", "n", "expect", "paper_range",
    "method", "null", "min_n",
)  # fmt: skip


def collect(out: Path, snapshot: Path) -> dict[str, Any]:
    """The snapshot of a nulls directory: per finished null, its primary findings; the rates over them."""
    from tuco.stats.nulls import as_dicts, false_positive_rates

    done = sorted((d for d in out.iterdir() if (d / "suite.json").is_file()), key=lambda d: int(d.name.rsplit("-", 1)[1]))
    if not done:
        raise SystemExit(f"{out}: no null has finished its suite")
    primaries: dict[str, dict[str, list[dict[str, Any]]]] = {}
    minutes: dict[str, float] = {}
    descriptives: dict[str, dict[str, Any]] = {}
    start = max(a.stat().st_mtime for a in out.glob("null-*/adapter"))
    for d in done:
        runs = sorted(r for r in d.iterdir() if (r / "metrics.json").is_file())
        metrics = {r.name: json.loads((r / "metrics.json").read_text(encoding="utf-8")) for r in runs}
        # what explains a claim that fires: per condition, its n and mean TuCo
        descriptives[d.name] = {name: m["per_condition"] for name, m in metrics.items() if isinstance(m.get("per_condition"), dict)}
        primaries[d.name] = {name: [{k: f.get(k) for k in KEEP} for f in m["findings"] if f.get("primary")] for name, m in metrics.items()}
        # wall time of its suite from the file times: the nulls run one after another once every adapter is
        # drawn, so a suite starts when the previous one wrote its last analysis (the first: the last adapter drawn)
        end = max((r / "metrics.json").stat().st_mtime for r in runs)
        minutes[d.name] = round((end - start) / 60, 2)
        start = end
    record = json.loads((out / "nulls.json").read_text(encoding="utf-8")) if (out / "nulls.json").is_file() else {}
    table = {
        "kind": "nulls",
        "label": "Null adapters of the demo pair",
        "pair": "demo",
        "null": "random LoRA at the shipped fine-tune's per-module update norm (tuco.demo.nulls.random_lora_like)",
        "nulls": [d.name for d in done],
        "skipped": record.get("skipped", []),
        "cpu_seconds": record.get("cpu_seconds"),
        "wall_seconds": record.get("wall_seconds"),
        "rates": as_dicts(false_positive_rates(list(primaries.values()))),
        "suite_wall_minutes": minutes,
        "descriptives": descriptives,
        "primaries": primaries,
    }
    snapshot.write_text(json.dumps(table, indent=1, default=str) + "\n", encoding="utf-8")
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run")
    r.add_argument("--nulls", default="0-19")
    r.add_argument("--out", required=True)
    r.add_argument("--skip", default="", help="analyses left out, comma-separated")
    c = sub.add_parser("collect")
    c.add_argument("dir")
    c.add_argument("--out", required=True)
    c.add_argument("--package", action="store_true", help="also write the rates into src/tuco/demo/null_calibration.json")
    args = ap.parse_args()
    if args.verb == "collect":
        table = collect(Path(args.dir), Path(args.out))
        if args.package:  # what `tuco demo` on the shipped pair prints from (tuco.demo.calibration)
            keep = {k: table[k] for k in ("pair", "null", "nulls")} | {
                "rates": [{k: v for k, v in r.items() if k != "estimates"} for r in table["rates"]]
            }
            PACKAGE.write_text(json.dumps(keep, indent=1) + "\n", encoding="utf-8")
        for rate in table["rates"]:
            print(f"{rate['experiment']}: {rate['claim']}: {rate['fired']}/{rate['testable']} fired ({rate['not_testable']} not testable)")
        return 0

    from tuco.demo.run import run_demo
    from tuco.demo.suites import null_adapter, parse_range, run_adapters, write_nulls

    out, skip = Path(args.out), tuple(s for s in args.skip.split(",") if s)
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    tuned = [(f"null-{s}", null_adapter("demo", s, out / f"null-{s}" / "adapter", "random")) for s in parse_range(args.nulls)]

    def suite(model, where):  # type: ignore[no-untyped-def]
        resume = (where / "suite.json").exists() or any(where.glob("*/rows.manifest.json"))
        return run_demo(model, where, "demo", resume=resume, skip=skip)

    results = run_adapters("demo", tuned, out, suite)
    table = write_nulls(out, results, "demo", "random")
    table.update(skipped=list(skip), wall_seconds=round(time.time() - t0, 1))
    table["cpu_seconds"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_utime - c0, 1)
    (out / "nulls.json").write_text(json.dumps(table, indent=1, default=str) + "\n", encoding="utf-8")
    for r in table["rates"]:
        print(f"{r['experiment']}: {r['claim']}: {r['fired']}/{r['testable']} fired ({r['not_testable']} not testable)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
