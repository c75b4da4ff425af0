"""The measured findings in README.md, docs/findings-demo.md, docs/findings-gemma.md and docs/method.md,
generated from the runs, never hand-copied.

Snapshots first (one file per run or synthesis in docs/findings/), then the documents (``make findings``
runs the last step; tests/test_docs.py fails when the documents drift, tests/test_snapshots.py recomputes
every shipped finding from the per-item inputs its snapshot keeps):

    # one suite (a `tuco demo` output directory, or one analysis's run directory) -> one snapshot
    tuco demo --out runs/demo --overwrite
    python docs/findings.py collect runs/demo --label "demo pair (5.8M)" --out docs/findings/demo.json

    # adapters as samples: each seed's suite, their synthesis, its snapshot (the README's headline)
    tuco demo --pair gemma --seeds 0-4 --out runs/gemma-seeds        # or: tuco synthesize RUN... --out DIR
    python docs/findings.py collect runs/gemma-seeds/seed-0 --label "seed 0" --out docs/findings/gemma-seed0.json
    ...                                                              # (one collect per seed)
    python docs/findings.py collect-synthesis runs/gemma-seeds --label "Gemma, 5 adapters" \\
        --out docs/findings/gemma-synthesis.json

    # null adapters: each primary claim's false-positive rate; the synthesis judged against it
    python docs/null_calibration.py collect runs/demo-nulls --out docs/findings/demo-nulls.json
    python docs/findings.py calibrate demo-synthesis --nulls demo-nulls   # "fails null calibration" where due

    # the documents: every <!-- findings:KIND SNAPSHOT... --> block rewritten from the snapshots it names
    python docs/findings.py render README.md docs/findings-demo.md docs/findings-gemma.md docs/method.md  # = make findings
    python docs/findings.py render --check README.md docs/findings-demo.md docs/findings-gemma.md docs/method.md

``collect`` keeps, of every analysis run in a suite directory, what the documents show and what re-derives
it: every finding of metrics.json (claim, primary, verdict, estimate, interval, p, Holm p and family, n,
the paper's statement, range and direction) with the per-item ``inputs`` its interval was computed from
(``tuco.stats.recompute``), the options, the checkpoints, the commit that finished each run (and, for a
resumed run, the earlier commits whose rows it kept: ``earlier_git_shas``), and the tuned checkpoint's card
(its refusal rates on the test split, from the ``behaviour.json`` beside it, where there is one). Findings measured without
recorded inputs are listed in the snapshot (``without_inputs``) and printed. ``collect-synthesis`` keeps a
``synthesis.json`` (``tuco synthesize --out DIR``; ``tuco demo --seeds``): per primary claim the pooled
estimate, Knapp-Hartung interval, prediction interval for a new adapter, tau, I^2, verdict, and every
adapter's finding with its inputs.

A generated block names its kind and the snapshots it shows, by file stem; a snapshot that is not in
docs/findings/ fails ``render`` (the documents name only runs that exist):

    <!-- findings:summary demo gemma-seed0 gemma-seed1 -->   the primary claims, one column per snapshot
    <!-- /findings:summary -->
    <!-- findings:cards gemma-seed0 gemma-seed1 -->           each run's adapter: its card's refusal rates
    <!-- /findings:cards -->
    <!-- findings:synthesis gemma-synthesis -->               the synthesis headline + the per-adapter spread
    <!-- /findings:synthesis -->
    <!-- findings:nulls demo-nulls -->                        the false-positive table over null adapters
    <!-- /findings:nulls -->
    <!-- findings:gcg gemma-seed0 gemma-seed1 -->             every finding of one analysis, one table per
    <!-- /findings:gcg -->                                     snapshot, every adapter in the same format
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from tuco.errors import InputError, TucoError

HERE = Path(__file__).resolve().parent
SNAPSHOTS = HERE / "findings"
ORDER = ["web-vs-chat", "conjugate", "gcg", "many-shot", "jailbreak-success", "alpha-sweep", "output-vs-tuco"]
SUPPORTED = {
    "reproduced",
    "direction reproduced, weaker than the paper",
    "direction reproduced, stronger than the paper",
    "direction consistent",
}
#: What a snapshot keeps of a finding: what the documents show, and what re-judges and re-derives it.
KEEP = (
    "claim", "primary", "verdict", "estimate", "low", "high", "n", "n_text", "paper", "measured", "p", "p_holm",
    "holm_family", "paper_range", "expect", "null", "method", "min_n", "mde", "inputs",
)  # fmt: skip
#: The refusal rates of an adapter's card a snapshot keeps (``_card``), in the order the ``cards`` block shows them.
CARD_RATES = ("harmful_refusal", "benign_refusal", "lookalike_refusal", "everyday_refusal")
MARKER = re.compile(r"<!-- findings:(?P<kind>[\w-]+)(?P<args>[^>]*?) -->")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from err
    return data if isinstance(data, dict) else {}


def _family(runs: dict[str, Any]) -> str:
    """ "suite" when every judged primary finding was Holm-corrected over all the runs' primaries together
    (``tuco demo``), else "run" (each analysis its own family)."""
    judged = [
        f
        for r in runs.values()
        for f in r["findings"]
        if f.get("primary") and f.get("estimate") is not None and f.get("holm_family") is not None
    ]
    return "suite" if judged and all(f["holm_family"] == len(judged) for f in judged) else "run"


def collect(suite: Path, label: str) -> dict[str, Any]:
    """What the documents need, and what re-derives it, from every run directory in ``suite`` (or ``suite``
    itself when it is one): see the module docstring."""
    if (suite / "metrics.json").exists():
        runs = [suite]
    else:
        runs = sorted(d for d in suite.iterdir() if (d / "metrics.json").exists()) if suite.is_dir() else []
    if not runs:
        raise InputError(f"{suite}: no run directory with metrics.json; give a tuco demo output or an analysis's run directory")
    out: dict[str, Any] = {"label": label, "runs": {}}
    tuned: list[Path] = []
    for d in runs:
        metrics = _read(d / "metrics.json")
        manifest = _read(d / "rows.manifest.json") if (d / "rows.manifest.json").exists() else {}
        config = manifest.get("config", {})
        tuned += [Path(str(c)) for c in config.get("checkpoints", [])[-1:]]  # the fine-tuned end of the pair
        out["runs"][metrics["experiment"]] = {
            "options": config.get("options", {}),
            "checkpoints": [Path(str(c)).name for c in config.get("checkpoints", [])],
            "dtype": config.get("dtype"),
            "tuco_git_sha": (manifest.get("versions") or {}).get("tuco_git_sha"),
            **_earlier(manifest),
            "seconds": manifest.get("seconds"),
            "findings": [
                {**{k: f.get(k) for k in KEEP}, "also": (f.get("extra") or {}).get("behaviour")} for f in metrics.get("findings", [])
            ],
        }
    out["family"] = _family(out["runs"])
    card = _card(tuned)
    if card:
        out["card"] = card
    out["without_inputs"] = [
        f"{name}: {f['claim']}"
        for name, run in out["runs"].items()
        for f in run["findings"]
        if f.get("estimate") is not None and not f.get("inputs")
    ]
    return out


def _earlier(manifest: dict[str, Any]) -> dict[str, Any]:
    """The commits of earlier sessions of a resumed run, whose rows it kept (absent when there were none)."""
    shas = [v.get("tuco_git_sha") for v in manifest.get("earlier_versions") or [] if isinstance(v, dict)]
    return {"earlier_git_shas": shas} if shas else {}


def _card(tuned: list[Path]) -> dict[str, Any] | None:
    """The tuned checkpoint's measured behaviour on the test split (its card's refusal rates, tuned and base:
    ``tuco.demo.evaluate.write_gemma_card``), read from ``behaviour.json`` beside it; None without one."""
    for where in (d / "behaviour.json" for t in tuned for d in (t, t.parent)):
        test = _read(where).get("test") if where.is_file() else None
        if isinstance(test, dict) and "tuned" in test and "base" in test:
            return {
                "split": "test",
                **{k: test[k] for k in ("n_harmful", "n_benign", "n_everyday") if k in test},
                **{m: {k: v for k, v in test[m].items() if k in CARD_RATES} for m in ("tuned", "base")},
            }
    return None


def collect_synthesis(folder: Path, label: str) -> dict[str, Any]:
    """A synthesis over adapters (``folder/synthesis.json``, or that file itself) as a snapshot."""
    path = folder / "synthesis.json" if folder.is_dir() else folder
    if not path.is_file():
        raise InputError(f"{folder}: no synthesis.json; write one with tuco synthesize RUN... --out DIR (or tuco demo --seeds)")
    synthesis = _read(path)
    if not isinstance(synthesis.get("claims"), list):
        raise InputError(f"{path}: no 'claims' list; is it a tuco synthesis?")
    keep = ("adapters", "analyses", "holm_family", "claims", "calibration")
    without = [
        f"{c['experiment']}: {c['claim']} (adapter {a.get('adapter')})"
        for c in synthesis["claims"]
        for a in c.get("adapters") or []
        if a.get("estimate") is not None and not a.get("inputs")
    ]
    return {"label": label, "kind": "synthesis", **{k: synthesis.get(k) for k in keep}, "without_inputs": without}


def calibrate(synthesis: str, nulls: str) -> dict[str, Any]:
    """The synthesis snapshot ``synthesis`` judged against the nulls snapshot ``nulls`` (file stems):
    ``tuco.experiments.synthesis.calibrate_synthesis``, its source recorded as the nulls' stem so that
    tests/test_snapshots.py can apply it again."""
    from tuco.experiments.synthesis import calibrate_synthesis

    snap, table = load(synthesis), load(nulls)
    if not is_synthesis(snap) or table.get("kind") != "nulls":
        raise InputError(f"calibrate takes a synthesis snapshot and a nulls snapshot; {synthesis!r} / {nulls!r} are not")
    return calibrate_synthesis(snap, table, nulls)


def available() -> list[str]:
    """The snapshots in docs/findings/, by file stem."""
    return sorted(p.stem for p in SNAPSHOTS.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    """A snapshot in docs/findings/ by file stem; a missing one is an error naming the fix."""
    path = SNAPSHOTS / f"{name}.json"
    if not path.is_file():
        raise InputError(
            f"snapshot {name!r} is not in {SNAPSHOTS} (there: {', '.join(available()) or 'none'}); "
            f"collect it (python docs/findings.py collect RUN --label L --out docs/findings/{name}.json) "
            "or take it out of the document's block"
        )
    return _read(path)


def is_synthesis(snapshot: dict[str, Any]) -> bool:
    """True for a synthesis over adapters (``collect_synthesis``)."""
    return snapshot.get("kind") == "synthesis"


def _fmt(value: float | None, null: float | None = 0.0) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if not null else f"{value:.3f}"


def _pooled(c: dict[str, Any]) -> str:
    """A synthesised claim's headline in one cell: pooled [interval]; the prediction interval."""
    if c.get("estimate") is None:
        return str(c.get("measured") or "")
    null = c.get("null")
    pred = f"; a new adapter [{_fmt(c['pred_low'], null)}, {_fmt(c['pred_high'], null)}]" if c.get("pred_low") is not None else ""
    return f"{_fmt(c['estimate'], null)} [{_fmt(c['low'], null)}, {_fmt(c['high'], null)}]{pred}"


def _cell(f: dict[str, Any] | None) -> str:
    if f is None:
        return "not run"
    if f.get("estimate") is None:
        return f"{f['verdict']}"
    verdict = f["verdict"] if f["verdict"] not in SUPPORTED else f"**{f['verdict']}**"
    also = f" (and {f['also']})" if f.get("also") else ""
    return f"{f['measured']}{also}, {f.get('n_text') or f.get('n')}: {verdict}"


def _primary(snapshot: dict[str, Any], experiment: str) -> list[dict[str, Any]]:
    if is_synthesis(snapshot):
        return [
            {**c, "primary": True, "measured": _pooled(c), "n_text": f"k={c['k']}", "also": None}
            for c in snapshot["claims"]
            if c["experiment"] == experiment
        ]
    run = snapshot["runs"].get(experiment)
    return [f for f in run["findings"] if f.get("primary")] if run else []


def primary_table(snapshots: list[dict[str, Any]]) -> str:
    """One row per primary claim (the claims of the first snapshot that has the experiment), one column per
    snapshot (a synthesis's column shows its pooled headline)."""
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


def synthesis_table(snapshot: dict[str, Any]) -> str:
    """The headline: per primary claim the pooled estimate [Knapp-Hartung 95% interval], the prediction
    interval for a new adapter, tau, I^2, k and the verdict; then (one click away) each adapter's finding."""
    from tuco.report.synthesis import null_rate

    cal = snapshot.get("calibration")
    rows = [
        "| experiment: primary claim | paper | pooled [95% interval] | a new adapter (95% prediction) | tau | I² | k | verdict |"
        + (" on nulls (fired / testable) |" if cal else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if cal else ""),
    ]
    for c in snapshot["claims"]:
        null = c.get("null")
        fp = f" {null_rate(c.get('calibration')) or '-'} |" if cal else ""
        if c.get("estimate") is None:
            head = f"| {c['experiment']}: {c['claim']} | {c.get('paper') or '-'} | {c.get('measured') or '-'}"
            rows.append(f"{head} | - | - | - | {c['k']} | {c['verdict']} |{fp}")
            continue
        pred = f"[{_fmt(c['pred_low'], null)}, {_fmt(c['pred_high'], null)}]" if c.get("pred_low") is not None else "- (k < 3)"
        verdict = f"**{c['verdict']}**" if c["verdict"] in SUPPORTED else c["verdict"]
        holm = f" (Holm p {c['p_holm']:.3g})" if c.get("p_holm") is not None else ""
        rows.append(
            f"| {c['experiment']}: {c['claim']} | {c.get('paper') or '-'} | {_fmt(c['estimate'], null)} "
            f"[{_fmt(c['low'], null)}, {_fmt(c['high'], null)}] | {pred} | {c['tau']:.3g} | {c['i2']:.0%} | {c['k']} "
            f"| {verdict}{holm} |{fp}"
        )
    spread = ["| experiment: primary claim | adapter | measured (95% interval) | n | verdict |", "|---|---|---|---|---|"]
    for c in snapshot["claims"]:
        for a in c.get("adapters") or []:
            n = a.get("n_text") or a.get("n") or ""
            spread.append(
                f"| {c['experiment']}: {c['claim']} | {a['adapter']} | {a.get('measured') or '-'} | {n} | {a.get('verdict') or ''} |"
            )
    labels = ", ".join(a["label"] for a in snapshot.get("adapters") or [])
    note = (
        f"{snapshot['label']}: a random-effects synthesis over {len(snapshot.get('adapters') or [])} adapters ({labels}); "
        f"the {snapshot.get('holm_family')} synthesised primary claims are judged in one Holm family."
    )
    if cal:
        note += (
            f" Calibrated on {cal['nulls']} null adapters ({cal.get('null')}; snapshot {cal['source']}): a claim that fires "
            'significantly more often than 5% on them (exact binomial test, Holm over the claims) "fails null calibration", '
            "whatever it found (the verdict it would have had is in the snapshot as uncalibrated_verdict)."
        )
    details = (
        "<details><summary>Each adapter's own finding (the spread behind the synthesis)</summary>\n\n"
        + "\n".join(spread)
        + "\n\n</details>"
    )
    return "\n".join(rows) + "\n\n" + note + "\n\n" + details


def _runs_only(kind: str, snapshots: list[dict[str, Any]], names: list[str]) -> None:
    for s, n in zip(snapshots, names):
        if is_synthesis(s) or s.get("kind") == "nulls":
            raise InputError(f"block {kind!r} shows runs; {n!r} is a {s['kind']} snapshot (name it in a {s['kind']!r} block)")


def _summary(names: list[str]) -> str:
    return primary_table([load(n) for n in names])


def _synthesis(names: list[str]) -> str:
    snaps = [load(n) for n in names]
    for s, n in zip(snaps, names):
        if not is_synthesis(s):
            raise InputError(f"block 'synthesis' shows a synthesis; {n!r} is a run (collect one with collect-synthesis)")
    return "\n\n".join(synthesis_table(s) for s in snaps)


def _experiment(exp: str) -> Callable[[list[str]], str]:
    def block(names: list[str]) -> str:
        snaps = [load(n) for n in names]
        _runs_only(exp, snaps, names)
        return "\n\n".join(f"*{s['label']}*\n\n{experiment_table(s, exp)}" for s in snaps)

    return block


def nulls_table(snapshot: dict[str, Any]) -> str:
    """Per primary claim: how often it fired on the null adapters (fired / testable, exact 95% interval),
    the exact binomial p of "above 5%" and its Holm p, how many nulls could not test it, the verdicts, and
    the smallest false-positive rate this many nulls catch with 80% power."""
    rows = [
        "| experiment: primary claim | fired / testable | rate [exact 95%] | p (> 5%) | Holm p | not testable | verdicts on the nulls "
        "| estimate on the nulls: median [min, max] | 80% power at |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(snapshot["rates"], key=lambda r: (ORDER.index(r["experiment"]) if r["experiment"] in ORDER else 99, r["claim"])):
        verdicts = "; ".join(f"{v} x{n}" for v, n in sorted((r.get("verdicts") or {}).items(), key=lambda kv: -kv[1]))
        found = r.get("estimates") or []
        null = next(
            (f.get("null") for fs in snapshot["primaries"].values() for f in fs.get(r["experiment"], []) if f["claim"] == r["claim"]), 0.0
        )
        spread = f"{_fmt(median(found), null)} [{_fmt(min(found), null)}, {_fmt(max(found), null)}]" if found else "-"
        if not r["testable"]:
            rows.append(f"| {r['experiment']}: {r['claim']} | 0 / 0 | - | - | - | {r['not_testable']} | {verdicts} | {spread} | - |")
            continue
        flag = " **too high**" if r.get("too_high") else ""
        rows.append(
            f"| {r['experiment']}: {r['claim']} | {r['fired']} / {r['testable']}{flag} | {r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}] "
            f"| {r['p']:.3g} | {r['p_holm']:.3g} | {r['not_testable']} | {verdicts} | {spread} | {r['detectable']:.0%} |"
        )
    cpu = f", {snapshot['cpu_seconds'] / 60:.0f} CPU minutes" if snapshot.get("cpu_seconds") else ""
    skipped = f"; left out: {', '.join(snapshot['skipped'])}" if snapshot.get("skipped") else ""
    return (
        "\n".join(rows)
        + f"\n\n{snapshot['label']}: {snapshot['null']}; {len(snapshot['nulls'])} nulls{cpu}{skipped}. A claim fires when its "
        'verdict is significant in either direction ("opposite" counts); "80% power at" is the smallest false-positive rate '
        "this many testable nulls detect with 80% power at the Holm level of the first step."
    )


def _nulls(names: list[str]) -> str:
    snaps = [load(n) for n in names]
    for s, n in zip(snaps, names):
        if s.get("kind") != "nulls":
            raise InputError(f"block 'nulls' shows a nulls snapshot; {n!r} is not one (docs/null_calibration.py collect)")
    return "\n\n".join(nulls_table(s) for s in snaps)


def cards_table(snapshots: list[dict[str, Any]]) -> str:
    """One row per snapshot: its adapter's refusal rates on the test split, tuned (alpha 1) and base."""
    head = "| adapter | harmful requests refused (base) | benign refused | of them lookalikes | of them everyday | n |"
    rows = [head, "|---|---|---|---|---|---|"]
    for s in snapshots:
        c = s["card"]
        t, b = c["tuned"], c["base"]
        benign, everyday = c.get("n_benign", 0), c.get("n_everyday", 0)
        n = f"{c.get('n_harmful', '?')} harmful; {benign} benign = {benign - everyday} lookalikes + {everyday} everyday"
        rates = [f"{t[k]:.0%} ({b[k]:.0%})" if k == "harmful_refusal" else f"{t[k]:.0%}" for k in CARD_RATES]
        rows.append(f"| {s['label']} | " + " | ".join(rates) + f" | {n} |")
    return "\n".join(rows)


def _cards(names: list[str]) -> str:
    snaps = [load(n) for n in names]
    _runs_only("cards", snaps, names)
    for s, n in zip(snaps, names):
        if not s.get("card"):
            raise InputError(f"block 'cards': {n!r} has no card; collect it where its adapter's behaviour.json is readable")
    return cards_table(snaps)


BLOCKS: dict[str, Callable[[list[str]], str]] = {
    "summary": _summary,
    "cards": _cards,
    "synthesis": _synthesis,
    "nulls": _nulls,
    **{e: _experiment(e) for e in ORDER},
}


def render(text: str) -> str:
    """``text`` with every ``<!-- findings:KIND SNAPSHOT... -->`` block regenerated from the snapshots it
    names; an unknown kind, a block that names no snapshot or a snapshot not in docs/findings/ is an error."""
    out, pos = [], 0
    for m in MARKER.finditer(text):
        if m.start() < pos:
            continue
        kind, names = m["kind"], m["args"].split()
        end = f"<!-- /findings:{kind} -->"
        if kind not in BLOCKS:
            raise InputError(f"unknown findings block {kind!r} ({m[0]}); one of: {', '.join(BLOCKS)}")
        if not names:
            raise InputError(f"block {m[0]} names no snapshot; name them by file stem, e.g. <!-- findings:{kind} demo -->")
        j = text.find(end, m.end())
        if j < 0:
            raise InputError(f"marker {m[0]} has no {end}")
        out += [text[pos : m.end()], "\n", BLOCKS[kind](names), "\n"]
        pos = j
    return "".join(out) + text[pos:]


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="snapshot a suite's findings (with their per-item inputs)")
    c.add_argument("suite", type=Path)
    c.add_argument("--label", required=True)
    c.add_argument("--out", required=True, type=Path)
    s = sub.add_parser("collect-synthesis", help="snapshot a synthesis over adapters (a tuco synthesize --out DIR)")
    s.add_argument("dir", type=Path)
    s.add_argument("--label", required=True)
    s.add_argument("--out", required=True, type=Path)
    k = sub.add_parser("calibrate", help="judge a synthesis snapshot against a nulls snapshot (both in docs/findings/)")
    k.add_argument("synthesis", help="the synthesis snapshot's file stem, e.g. demo-synthesis")
    k.add_argument("--nulls", required=True, help="the nulls snapshot's file stem, e.g. demo-nulls")
    r = sub.add_parser("render", help="rewrite the generated blocks of documents")
    r.add_argument("docs", nargs="+", type=Path)
    r.add_argument("--check", action="store_true", help="fail (exit 1) when a document is out of date")
    args = p.parse_args(argv)
    try:
        if args.cmd == "collect":
            snap = collect(args.suite, args.label)
            _write(args.out, snap)
        if args.cmd == "collect-synthesis":
            snap = collect_synthesis(args.dir, args.label)
            _write(args.out, snap)
        if args.cmd == "calibrate":
            _write(SNAPSHOTS / f"{args.synthesis}.json", calibrate(args.synthesis, args.nulls))
            return 0
        if args.cmd in ("collect", "collect-synthesis"):
            for line in snap["without_inputs"]:
                print(f"without per-item inputs (cannot be re-derived): {line}", file=sys.stderr)
            return 0
        stale = []
        for doc in args.docs:
            text = doc.read_text(encoding="utf-8")
            new = render(text)
            if new != text:
                stale.append(str(doc))
                if not args.check:
                    doc.write_text(new, encoding="utf-8")
    except TucoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run: make findings)")
        return 1
    print("updated: " + ", ".join(stale) if stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
