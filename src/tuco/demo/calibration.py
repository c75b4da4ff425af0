"""The shipped demo pair's null calibration, for the suite's own printout: which primary claims fire
significantly more often than 5% on null adapters of this pair (random LoRAs at the shipped fine-tune's
update norm; docs/method.md 9.8), so that a run of ``tuco demo`` does not present their verdicts as
findings about fine-tuning. ``null_calibration.json`` is the rates table of docs/findings/demo-nulls.json
(written by ``docs/null_calibration.py collect --package``; tests/test_null_calibration.py checks they agree).
The lines are also kept in the suite's ``suite.json`` (``null_calibration``), so its report shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).with_name("null_calibration.json")


def shipped_rates() -> dict[str, Any] | None:
    """The shipped demo pair's calibration table (None when the package has none)."""
    return json.loads(SHIPPED.read_text(encoding="utf-8")) if SHIPPED.is_file() else None


def null_calibration_lines(pair: str, shipped_fine_tune: bool) -> list[str]:
    """One line per primary claim that fails null calibration, for the demo pair run with its shipped
    fine-tune (the nulls are drawn at that fine-tune's norm); nothing for another pair or checkpoint."""
    table = shipped_rates() if pair == "demo" and shipped_fine_tune else None
    if not table:
        return []
    return [
        f"null calibration: {r['experiment']} fires on {r['fired']}/{r['testable']} null adapters of this pair (no training, "
        "the fine-tune's update norm): its verdict above is not specific to fine-tuning (docs/method.md 9.8)"
        for r in table["rates"]
        if r.get("too_high")
    ]


def annotate_suite(out: str | Path, pair: str, shipped_fine_tune: bool) -> list[str]:
    """``null_calibration_lines`` of a finished ``tuco demo`` suite, also written into its ``suite.json``
    (key ``null_calibration``; an empty list for another pair or checkpoint), so that a report of the
    suite, now or rebuilt later, shows them under its summary."""
    from tuco.report.load import NOTES_KEY
    from tuco.runs import atomic_write_text

    lines = null_calibration_lines(pair, shipped_fine_tune)
    path = Path(out) / "suite.json"
    if path.is_file():
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary[NOTES_KEY] = lines
        atomic_write_text(path, json.dumps(summary, indent=1, default=str) + "\n")
    return lines
