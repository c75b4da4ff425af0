"""Calibration on null adapters: the demo suite on N random LoRAs at the shipped fine-tune's per-module update
norm (no safety training; ``tuco.demo.nulls.random_lora_like``), then each primary claim's false-positive
rate (``tuco.stats.nulls``) into OUT/nulls.json, and the CPU time it took.

    python docs/null_calibration.py --nulls 0-19 --out runs/demo-nulls [--skip gcg]

Resumable: a null whose suite finished is read back, a half-finished one resumes. ``--skip`` leaves analyses
out (for CPU time; the table says which). ``tuco demo --pair demo --nulls 0-19`` runs the same without skipping.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nulls", default="0-19")
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip", default="", help="analyses left out, comma-separated")
    args = ap.parse_args()

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
