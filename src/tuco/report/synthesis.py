"""A synthesis over adapters as the report shows it first: per primary claim the pooled estimate, its
Knapp-Hartung 95% interval, tau, I^2, the prediction interval for a new adapter and the verdict, with each
adapter's own finding in the rows below it. Pure data from ``synthesis.json``
(``tuco.experiments.synthesis.synthesize_runs``); the templates escape every text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuco.report.findings import TONES
from tuco.report.text import fmt, number


@dataclass(frozen=True)
class AdapterRow:
    """One adapter's finding on a synthesised claim."""

    label: str
    measured: str
    n: str
    verdict: str
    tone: str


@dataclass(frozen=True)
class ClaimRow:
    """One primary claim's synthesis over adapters (numbers None where it was not synthesised)."""

    experiment: str
    claim: str
    k: int
    estimate: float | None
    low: float | None
    high: float | None
    pred_low: float | None
    pred_high: float | None
    tau: float | None
    i2: float | None
    p_holm: float | None
    verdict: str
    tone: str
    measured: str
    paper: str
    adapters: list[AdapterRow]
    calibration: str = ""


@dataclass(frozen=True)
class SynthesisView:
    """The synthesis section: its claims and the adapters they pool."""

    adapters: list[str]
    holm_family: int
    claims: list[ClaimRow]
    nulls: str = ""


def _adapter(a: dict[str, Any]) -> AdapterRow:
    verdict = str(a.get("verdict") or "")
    measured = str(a.get("measured") or "")
    if not measured and number(a.get("estimate")) is not None:
        measured = f"{fmt(a.get('estimate'))} [{fmt(a.get('low'))}, {fmt(a.get('high'))}]"
    return AdapterRow(str(a.get("adapter") or ""), measured, str(a.get("n_text") or fmt(a.get("n"))), verdict, TONES.get(verdict, "meh"))


def null_rate(calibration: Any) -> str:
    """A claim's false-positive count on null adapters as text ("3/20 [4%, 38%]"), with the exploratory
    difference between the adapters' and the nulls' mean estimates; "" without one."""
    if not isinstance(calibration, dict):
        return ""
    if calibration.get("missing"):
        return "not run on the nulls (uncalibrated)"
    if not calibration.get("testable"):
        return "not testable on the nulls"
    text = f"{calibration.get('fired')}/{calibration.get('testable')} [{_pct(calibration.get('low'))}, {_pct(calibration.get('high'))}]"
    beyond = calibration.get("beyond_nulls")
    if isinstance(beyond, dict):
        text += f"; adapters - nulls {fmt(beyond.get('estimate'))} [{fmt(beyond.get('low'))}, {fmt(beyond.get('high'))}] (exploratory)"
    return text


def _pct(value: Any) -> str:
    v = number(value)
    return "-" if v is None else f"{v:.0%}"


def _claim(c: dict[str, Any]) -> ClaimRow:
    verdict = str(c.get("verdict") or "")
    return ClaimRow(
        experiment=str(c.get("experiment") or ""),
        claim=str(c.get("claim") or ""),
        k=int(c.get("k") or 0),
        estimate=number(c.get("estimate")),
        low=number(c.get("low")),
        high=number(c.get("high")),
        pred_low=number(c.get("pred_low")),
        pred_high=number(c.get("pred_high")),
        tau=number(c.get("tau")),
        i2=number(c.get("i2")),
        p_holm=number(c.get("p_holm")),
        verdict=verdict,
        tone=TONES.get(verdict, "meh"),
        measured=str(c.get("measured") or ""),
        paper=str(c.get("paper") or ""),
        adapters=[_adapter(a) for a in c.get("adapters") or [] if isinstance(a, dict)],
        calibration=null_rate(c.get("calibration")),
    )


def synthesis_view(synthesis: dict[str, Any]) -> SynthesisView | None:
    """The section from a ``synthesis.json`` dict (None when it is empty)."""
    if not synthesis:
        return None
    adapters = [str(a.get("label") or "") for a in synthesis.get("adapters") or [] if isinstance(a, dict)]
    claims = [_claim(c) for c in synthesis.get("claims") or [] if isinstance(c, dict)]
    cal = synthesis.get("calibration")
    nulls = f"{cal.get('nulls')} null adapters ({cal.get('null') or 'no safety training'})" if isinstance(cal, dict) else ""
    return SynthesisView(adapters, int(synthesis.get("holm_family") or 0), claims, nulls)
