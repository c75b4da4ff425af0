"""What the many-shot experiments (many-shot, many-shot-persona) find in their rows: the harmful-answer
marking, each shot kind's means per k, the primary claim (an intersection-union test of three crossed slopes,
the paper's claim with the control's shots as the comparison), the exploratory slopes and the plots
(docs/method.md 5.2, 9.7). The design and the slopes: ``shot_slopes``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from tuco.experiments.base import mean_of, rows_of, values
from tuco.experiments.shot_slopes import MIN_UNITS, crossed_slope, design_counts, kind_rows, shortfall, slope_claim, slope_inputs
from tuco.stats.claims import Claim

PAPER = "TuCo falls as k grows (k = 1..128) while the harmful-answer rate rises"
POSITION_KEYS = {
    "tuco_last": "TuCo at the last prompt token",
    "tuco_request": "TuCo over the request",
    "tuco_context": "TuCo over the shots",
    "tuco_first_generated": "TuCo at the first generated token",
    "tuco_response": "TuCo over the response",
}


def _harmful(r: dict[str, Any]) -> bool | None:
    if "refused" in r and r["refused"] is not None:
        return not r["refused"]
    if "chosen" in r:
        return bool(r["chosen"] == r["matching"])
    return None


def with_harmful(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``harmful`` (1.0 / 0.0): a judged response that was not refused, or a chosen answer that
    matches the behaviour."""
    return [dict(r, harmful=float(bool(_harmful(r)))) for r in rows]


def shot_metrics(rows: list[dict[str, Any]], kinds: list[str], ks: list[int], position: str) -> dict[str, Any]:
    """The design of the primary's slope (targets, shots, topics, its shortfall), and per kind and k the rows'
    count, mean TuCo (at each position measured), harmful-answer rate, prompt length and per-layer norms."""
    rows = with_harmful(rows)
    per_kind: dict[str, Any] = {}
    for kind in kinds:
        mine = kind_rows(rows, kind)
        per_k: dict[str, Any] = {}
        for k in sorted({int(r["k"]) for r in mine}):
            at = rows_of(mine, k=k)
            entry: dict[str, Any] = {"n": len(at), "mean_tuco": mean_of(values(at)), "harmful_rate": mean_of(values(at, "harmful"))}
            entry["mean_prompt_tokens"] = mean_of(values(at, "n_tokens"))
            for key in POSITION_KEYS:
                if values(at, key):
                    entry[f"mean_{key}"] = statistics.fmean(values(at, key))
            if at and at[0].get("layer_ftc_l1"):
                n_layers = len(at[0]["layer_ftc_l1"])
                entry["layer_ftc_l1"] = [statistics.fmean(r["layer_ftc_l1"][i] for r in at) for i in range(n_layers)]
                entry["layer_ptc_l1"] = [statistics.fmean(r["layer_ptc_l1"][i] for r in at) for i in range(n_layers)]
            per_k[str(k)] = entry
        per_kind[kind] = per_k
    measured = sorted({int(r["k"]) for r in rows})
    inputs = slope_inputs(rows, kinds[:2])
    design = {**design_counts(inputs), "min_units": MIN_UNITS, "shortfall": shortfall(inputs)} if isinstance(inputs, dict) else {}
    return {
        "design": design,
        "position": position,
        "shot_kinds": kinds,
        "per_kind": per_kind,
        "ks_measured": measured,
        "skipped_k_beyond_context": sorted(set(ks) - set(measured)),
    }


def _already_harmful(rows: list[dict[str, Any]]) -> bool:
    """Every target answers harmfully without shots: the harmful-answer rate cannot rise."""
    at0 = [r["harmful"] for r in rows if int(r["k"]) == 0]
    return bool(at0) and min(at0) == 1.0


def _primary(rows: list[dict[str, Any]], behaviour: str, control: str, position: str, seed: int) -> Claim:
    """The paper's claim with the control as the comparison, an intersection-union test of three parts, each
    a crossed slope: TuCo falls as the behaviour's shots accumulate (slope over log2(1 + k) < 0), faster than
    with the control's (slope difference < 0), and the shots work (the harmful-answer rate is higher with the
    behaviour's shots than with the control's, averaged over k >= 1: ``dose(scale="any")``; a slope over
    log2(1 + k) misfits the step that greedy answers take, and the misfit is shared by every target, so the
    design cannot tell it from the shots' effects: an every-target flip at k = 1 gave p = 0.36 with 16 targets and 16 shots)
    The interval is the TuCo slope difference's; p is the largest of the three parts' (a part on the wrong
    side counts as 1), a valid level-5% test of all three with no correction. Any two kinds of shots differ
    in content, and even a pair fine-tuned on plain prose (no refusals to break) shows a significant TuCo
    slope difference in one direction or the other; the paper's claim is about TuCo falling as a jailbreak
    works, so a jailbreak that does not work refutes it."""
    from tuco.stats.recompute import intersection

    claim = (
        f"TuCo falls as {behaviour} shots accumulate, faster than with {control} shots, while they raise the harmful-answer "
        f"rate more ({position}; all three required)"
    )
    what = f"TuCo slope per doubling of 1 + k, {behaviour} - {control}"
    paper = "TuCo falls as k grows while the harmful-answer rate rises (the paper has no control shots)"
    parts = {
        "tuco_difference": crossed_slope(rows, (behaviour, control), "tuco", seed),
        "tuco_falls": crossed_slope(rows, (behaviour,), "tuco", seed),
        "harmful_difference": crossed_slope(rows, (behaviour, control), "harmful", seed, scale="any"),
    }
    measured = {name: (s.interval, s.inputs) for name, s in parts.items() if s.interval is not None and s.inputs is not None}
    if len(measured) < len(parts):
        why = "; ".join(f"{name}: {s.reason}" for name, s in parts.items() if name not in measured)
        raw = slope_inputs(rows, (behaviour, control))
        short = shortfall(raw) if isinstance(raw, dict) else ""  # too few units: not testable, whatever else failed
        return Claim(
            claim,
            None,
            "below",
            what,
            paper,
            primary=True,
            reason="; ".join(filter(None, (short, why))),
            min_n=MIN_UNITS,
            testable=not short,
        )
    iv, inputs = intersection(list(measured.values()), ("below", "below", "above"))
    extra: dict[str, Any] = {f"p_{name}": part.p for name, (part, _) in measured.items()}
    h = measured["harmful_difference"][0]
    extra["behaviour"] = f"harmful-rate difference over k >= 1 {h.estimate:+.3f} [{h.low:+.3f}, {h.high:+.3f}]"
    extra["design"] = design_counts(measured["tuco_difference"][1])
    reason = shortfall(measured["tuco_difference"][1])
    if not reason and _already_harmful(rows):
        reason = "every target is answered harmfully without shots: the shots cannot raise the harmful-answer rate"
    return Claim(
        claim, iv, "below", what, paper, primary=True, extra=extra, inputs=inputs, min_n=MIN_UNITS, testable=not reason, reason=reason
    )


def shot_claims(rows: list[dict[str, Any]], kinds: list[str], position: str, seed: int) -> list[Claim]:
    """The primary claim (``_primary``; without a control kind, "not measured") first, then the exploratory
    crossed slopes: TuCo's (the primary's TuCo part, each kind's) and the harmful-answer rate's (the primary's
    behaviour part over k >= 1, the slope difference, the behaviour's slope)."""
    rows = with_harmful(rows)
    behaviour, control = kinds[0], (kinds[1] if len(kinds) > 1 else None)
    what = "TuCo slope per doubling of 1 + k"
    out: list[Claim] = []
    if control is not None:
        out.append(_primary(rows, behaviour, control, position, seed))
    else:
        out.append(
            Claim(
                f"TuCo falls as {behaviour} shots accumulate, faster than with control shots",
                None,
                "below",
                what,
                PAPER,
                primary=True,
                reason="no control shots (--shots with one kind)",
            )
        )
    slope = lambda kinds, key="tuco": crossed_slope(rows, kinds, key, seed)  # noqa: E731
    if control is not None:
        out.append(
            slope_claim(
                f"TuCo falls faster with {behaviour} shots than with {control} shots (the primary's TuCo part)",
                slope((behaviour, control)),
                expect="below",
                what=f"{what}, {behaviour} - {control}",
                paper=None,
            )
        )
    out.append(
        slope_claim(
            f"TuCo falls as {behaviour} shots accumulate (the paper's claim, without the control)",
            slope((behaviour,)),
            expect="below",
            what=what,
            paper=PAPER,
        )
    )
    if control is not None:
        out.append(slope_claim(f"TuCo falls as {control} shots accumulate", slope((control,)), expect="below", what=what, paper=None))
        out.append(
            slope_claim(
                f"{behaviour.capitalize()} shots raise the harmful-answer rate more than {control} shots, over k >= 1 "
                "(the primary's behaviour part)",
                crossed_slope(rows, (behaviour, control), "harmful", seed, scale="any"),
                expect="above",
                what=f"harmful-rate difference over k >= 1, {behaviour} - {control}",
                paper=None,
            )
        )
        out.append(
            slope_claim(
                f"The harmful-answer rate rises faster with {behaviour} shots than with {control} shots",
                slope((behaviour, control), "harmful"),
                expect="above",
                what=f"harmful-rate slope, {behaviour} - {control}",
                paper=PAPER,
            )
        )
    out.append(
        slope_claim(
            f"The harmful-answer rate rises as {behaviour} shots accumulate",
            slope((behaviour,), "harmful"),
            expect="above",
            what="harmful-rate slope",
            paper=PAPER,
        )
    )
    return out


def plots(rows: list[dict[str, Any]], m: dict[str, Any], path: Path) -> None:
    """TuCo and the harmful-answer rate vs k per kind (many_shot.png), the per-layer profiles by k (many_shot_layers.png)."""
    from tuco.experiments.plotting import layer_profiles, series_with_ci
    from tuco.stats.intervals import mean_ci

    rows = with_harmful(rows)
    series, right = {}, {}
    ks = m["ks_measured"]
    if not ks:
        return

    def band(mine: list[dict[str, Any]], key: str) -> tuple[list[float], list[float], list[float]]:
        got = []
        for k in ks:
            v = values(rows_of(mine, k=k), key)
            iv = mean_ci(v) if len(v) > 1 and len(set(v)) > 1 else None
            got.append((iv.estimate, iv.low, iv.high) if iv else ((v[0],) * 3 if v else (float("nan"),) * 3))
        return [g[0] for g in got], [g[1] for g in got], [g[2] for g in got]

    for kind in m["shot_kinds"]:
        mine = kind_rows(rows, kind)
        series[f"TuCo, {kind} shots"] = band(mine, "tuco")
        right[f"harmful rate, {kind} shots"] = band(mine, "harmful")
    series_with_ci(
        ks,
        series,
        "many-shot: TuCo and behaviour vs k, per shot kind (95% intervals)",
        path / "many_shot.png",
        xlabel="in-context examples k",
        ylabel="TuCo",
        log_x=True,
        right=right,
        right_label="harmful-answer rate",
    )
    first = m["shot_kinds"][0]
    per_k = m["per_kind"].get(first, {})
    profiles = {f"k={k}": (per_k[k]["layer_ptc_l1"], per_k[k]["layer_ftc_l1"]) for k in per_k if "layer_ftc_l1" in per_k[k]}
    layer_profiles(
        profiles, f"mean per-layer ||PTC_l||, ||FTC_l|| at the last prompt token, by k ({first} shots)", path / "many_shot_layers.png"
    )
