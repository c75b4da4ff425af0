"""Draw a training run's "TuCo over training steps" chart (the report's own, as one SVG file) for the README:

    python docs/training_curve.py runs/gemma-curve/tuco docs/training-gemma.svg

The run is what ``tuco demo-train --probe-every N`` (or any ``tuco.TucoCallback``) wrote. Torch-free."""

from __future__ import annotations

import sys
from pathlib import Path

from tuco.errors import InputError
from tuco.report.render import steps_svg as svg
from tuco.report.training import over_steps
from tuco.runs import load_run


def main(run: str, out: str) -> None:
    chart = over_steps(load_run(run).rows)
    if chart is None:
        raise InputError(f"{run} holds no rows at two or more training steps: give the run a TucoCallback wrote")
    Path(out).write_text(svg(chart), encoding="utf-8")
    print(f"{out}: {len(chart.steps)} steps ({chart.steps[0]} to {chart.last_step}), groups {', '.join(k[2] for k in chart.key)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/training_curve.py RUN_DIR OUT.svg")
    main(sys.argv[1], sys.argv[2])
