"""An experiment's answer as the report shows it first: its question, its findings (primary claims first,
exploratory ones marked), the paper's values and its plots. Pure data from ``metrics.json``.

A finding is a dict; every field is optional (runs of older versions lack the newer ones): ``claim``,
``measured`` (text) or ``estimate``/``low``/``high`` (numbers), ``n``, ``verdict``, ``paper``,
``primary`` (true: a claim tested as planned; false: exploratory), ``p_holm`` (a multiplicity-adjusted
p-value). Other scalar fields are shown as they are.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tuco.report.images import small_png
from tuco.report.text import fmt, number

KNOWN = ("claim", "measured", "estimate", "low", "high", "n", "verdict", "paper", "primary", "p_holm", "ci")
TONES = {
    "reproduced": "ok",
    "supported": "ok",
    "opposite": "bad",
    "contradicted": "bad",
    "fails null calibration": "bad",
}  # any other verdict: neutral


@dataclass(frozen=True)
class Finding:
    """One claim tested on a run, as shown."""

    claim: str
    measured: str
    n: str
    verdict: str
    tone: str
    paper: str
    primary: bool | None
    p_holm: float | None
    extra: list[tuple[str, str]]


@dataclass(frozen=True)
class Plot:
    """A PNG plot inlined as a data: URI (re-encoded small: ``tuco.report.images``)."""

    name: str
    uri: str


@dataclass(frozen=True)
class Answer:
    """An experiment's question, findings and plots."""

    name: str
    question: str
    paper: str
    findings: list[Finding]
    plots: list[Plot]

    @property
    def marks_primary(self) -> bool:
        """True when the findings say which claims are primary (then the others are marked exploratory)."""
        return any(f.primary is not None for f in self.findings)

    @property
    def has_p(self) -> bool:
        """True when some finding carries an adjusted p-value."""
        return any(f.p_holm is not None for f in self.findings)


def measured_text(f: dict[str, Any]) -> str:
    """What was measured: the finding's own text, else ``estimate [low, high]`` from its numbers."""
    if f.get("measured") not in (None, ""):
        return str(f["measured"])
    est, lo, hi = number(f.get("estimate")), number(f.get("low")), number(f.get("high"))
    if est is None:
        return ""
    return f"{est:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def finding(f: dict[str, Any]) -> Finding:
    """A finding dict (any version) as shown."""
    verdict = str(f.get("verdict") or "")
    primary = f.get("primary")
    extra = [(str(k), fmt(v)) for k, v in f.items() if k not in KNOWN and not isinstance(v, dict) and v not in (None, "")]
    return Finding(
        claim=str(f.get("claim") or ""),
        measured=measured_text(f),
        n=fmt(f.get("n")),
        verdict=verdict,
        tone=TONES.get(verdict, "meh"),
        paper=str(f.get("paper") or ""),
        primary=primary if isinstance(primary, bool) else None,
        p_holm=number(f.get("p_holm")),
        extra=extra,
    )


def answer(metrics: dict[str, Any], name: str, plots: list[tuple[str, bytes]]) -> Answer | None:
    """An experiment's answer from its metrics and plots (None for a run without metrics): primary
    findings first, in their order, then the others."""
    if not metrics:
        return None
    raw = [f for f in metrics.get("findings") or [] if isinstance(f, dict)]
    shown = sorted((finding(f) for f in raw), key=lambda f: f.primary is not True)
    images = [Plot(n, "data:image/png;base64," + base64.b64encode(small_png(data)).decode("ascii")) for n, data in plots]
    return Answer(
        str(metrics.get("experiment") or name), str(metrics.get("question") or ""), str(metrics.get("paper") or ""), shown, images
    )


@dataclass(frozen=True)
class Headline:
    """One primary claim of one analysis as a suite's summary line shows it."""

    analysis: str
    claim: str
    measured: str
    n: str
    verdict: str
    tone: str

    @property
    def line(self) -> str:
        """The line a terminal prints: ``analysis: claim: estimate [interval], n: verdict``."""
        return f"{self.analysis}: {self.claim}: {self.measured}{', ' + self.n if self.n else ''}: {self.verdict}"


@dataclass(frozen=True)
class Overview:
    """A suite's summary: each analysis's primary claims, how many findings are exploratory, and the Holm
    family the primary claims were judged in (None: not stated)."""

    headlines: list[Headline]
    exploratory: int
    holm_family: str | None

    @property
    def tail(self) -> str:
        """The closing line: the count of exploratory findings (and the Holm family)."""
        text = f"{self.exploratory} exploratory findings (--tables shows them; the report lists them)"
        return text + (f"; primary claims judged together (Holm over {self.holm_family})" if self.holm_family else "")

    @property
    def lines(self) -> list[str]:
        """Every line of the summary as a terminal prints it."""
        return [h.line for h in self.headlines] + [self.tail]


def overview(results: dict[str, dict[str, Any]]) -> Overview:
    """The summary of a suite from each analysis's ``metrics.json`` (by analysis name): one headline per
    primary claim, in order, and the count of the others. The CLI prints it and the report opens with it."""
    headlines, exploratory = [], 0
    for name, metrics in results.items():
        findings = [f for f in metrics.get("findings") or [] if isinstance(f, dict)]
        exploratory += sum(1 for f in findings if f.get("primary") is not True)
        for f in findings:
            if f.get("primary") is True:
                verdict = str(f.get("verdict") or "")
                n = str(f.get("n_text") or fmt(f.get("n")))
                headlines.append(Headline(name, str(f.get("claim") or ""), measured_text(f), n, verdict, TONES.get(verdict, "meh")))
    judged = (f for m in results.values() for f in m.get("findings") or [] if isinstance(f, dict))
    family = next((str(f["holm_family"]) for f in judged if f.get("holm_family")), None)
    return Overview(headlines, exploratory, family)
