"""How findings read in a terminal: one line per primary claim (claim: estimate [interval], n, verdict), a
count of exploratory findings, and the full table one flag away (``--tables``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def print_findings(metrics: dict[str, Any], console: Console) -> None:
    """The experiment's findings (primary claims first, then exploratory; measured with its interval and n,
    verdict, the paper) as a table whose numbers wrap but are never cut."""
    from rich.table import Table

    t = Table(title=f"{metrics['experiment']}: {metrics['question']}", show_edge=False, show_lines=False)
    t.add_column("claim", ratio=3)
    t.add_column("measured (95% interval)", ratio=2, overflow="fold")
    t.add_column("n", overflow="fold")
    t.add_column("verdict", ratio=2, overflow="fold")
    t.add_column("paper", ratio=2)
    for f in metrics.get("findings", []):
        kind = "PRIMARY" if f.get("primary") else "exploratory"
        p = f" (Holm p {f['p_holm']:.3g})" if f.get("p_holm") is not None else ""
        t.add_row(
            f"[{kind}] {f['claim']}", f.get("measured", ""), f.get("n_text", str(f.get("n", ""))), f["verdict"] + p, f.get("paper") or "-"
        )
    console.print(t)


def summary_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """One line per primary claim of each analysis, then how many exploratory findings there are: what a
    suite prints (the report opens with the same ``tuco.report.findings.overview``)."""
    from tuco.report.findings import overview

    return overview(results).lines
