"""Watch rules: a probe group's mean TuCo (or mean response TuCo) checked at every measurement of a
training run, logged as a warning when it crosses its limit and, when asked, stopping training. Torch-free.

    Watch("harmful", "tuco_response", drop=0.05, stop=True)   # falls more than 0.05 below its best so far
    Watch.parse("harmful:tuco_response:drop=0.05:stop")       # the same, as text
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuco.errors import ConfigError

METRICS = ("tuco", "tuco_response")
RULES = ("drop", "rise", "below", "above")
_WHAT = {
    "drop": "falls more than {v:g} below its best so far",
    "rise": "rises more than {v:g} above its lowest so far",
    "below": "falls below {v:g}",
    "above": "rises above {v:g}",
}


@dataclass(frozen=True)
class Watch:
    """One rule on one probe group's mean ``metric`` (``tuco``: at the last prompt token; ``tuco_response``:
    over the given responses). Exactly one of: ``drop`` (fires when the value is more than ``drop`` below the
    highest value measured so far), ``rise`` (more than ``rise`` above the lowest), ``below`` / ``above``
    (an absolute limit). ``stop``: also stop training (``control.should_training_stop``) when it fires."""

    group: str
    metric: str = "tuco"
    drop: float | None = None
    rise: float | None = None
    below: float | None = None
    above: float | None = None
    stop: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"watch {self.group!r}: metric {self.metric!r} is not one of {', '.join(METRICS)}")
        given = [(r, v) for r in RULES if (v := getattr(self, r)) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"watch {self.group!r}: give exactly one of drop, rise, below, above (got {', '.join(r for r, _ in given) or 'none'}), "
                "e.g. Watch('harmful', 'tuco_response', drop=0.05)"
            )
        rule, value = given[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"watch {self.group!r}: {rule}={value!r} must be a finite number >= 0")
        if rule in ("below", "above") and value > 1:
            raise ConfigError(f"watch {self.group!r}: {rule}={value:g} is outside TuCo's range [0, 1]")

    @property
    def rule(self) -> tuple[str, float]:
        """(the rule's name, its value)."""
        return next((r, float(v)) for r in RULES if (v := getattr(self, r)) is not None)

    def describe(self) -> str:
        """The rule as a sentence (``harmful tuco_response falls more than 0.05 below its best so far``)."""
        rule, value = self.rule
        return f"{self.group} {self.metric} " + _WHAT[rule].format(v=value) + (" (stops training)" if self.stop else "")

    def text(self) -> str:
        """The rule as ``Watch.parse`` reads it."""
        rule, value = self.rule
        return f"{self.group}:{self.metric}:{rule}={value:g}" + (":stop" if self.stop else "")

    @classmethod
    def parse(cls, text: str) -> Watch:
        """``GROUP[:METRIC]:RULE=VALUE[:stop]``, e.g. ``harmful:tuco_response:drop=0.05:stop``."""
        parts = [p.strip() for p in str(text).split(":")]
        stop = bool(parts) and parts[-1] == "stop"
        parts = parts[:-1] if stop else parts
        if len(parts) not in (2, 3) or "=" not in parts[-1] or not parts[0]:
            raise ConfigError(f"watch {text!r}: write GROUP[:METRIC]:RULE=VALUE[:stop], e.g. harmful:tuco_response:drop=0.05:stop")
        rule, _, value = parts[-1].partition("=")
        if rule not in RULES:
            raise ConfigError(f"watch {text!r}: rule {rule!r} is not one of {', '.join(RULES)}")
        try:
            number = float(value)
        except ValueError as err:
            raise ConfigError(f"watch {text!r}: {value!r} is not a number") from err
        metric = parts[1] if len(parts) == 3 else "tuco"
        return cls(parts[0], metric, stop=stop, **{rule: number})

    def check(self, history: Sequence[tuple[int, float]]) -> str | None:
        """The warning when the rule fires at the last of ``history`` ((step, value) in step order), else None."""
        if not history:
            return None
        step, now = history[-1]
        rule, limit = self.rule
        if rule in ("drop", "rise"):
            pick = max if rule == "drop" else min
            ref_step, ref = pick(history, key=lambda sv: (sv[1], -sv[0]))  # the earliest best (lowest)
            gap = ref - now if rule == "drop" else now - ref
            if gap > limit:
                side = "below its best" if rule == "drop" else "above its lowest"
                return (
                    f"tuco watch: {self.group} {self.metric} is {now:.4f} at step {step}, {gap:.4f} {side} "
                    f"{ref:.4f} (step {ref_step}); limit {limit:g}" + ("; stopping training" if self.stop else "")
                )
            return None
        if (rule == "below" and now < limit) or (rule == "above" and now > limit):
            return f"tuco watch: {self.group} {self.metric} is {now:.4f} at step {step}, {rule} {limit:g}" + (
                "; stopping training" if self.stop else ""
            )
        return None


def as_watches(rules: Sequence[Watch | str] | Watch | str | None) -> list[Watch]:
    """Watch rules from ``Watch`` objects or their text."""
    if rules is None:
        return []
    if isinstance(rules, (Watch, str)):
        rules = [rules]
    out = []
    for r in rules:
        if isinstance(r, str):
            out.append(Watch.parse(r))
        elif isinstance(r, Watch):
            out.append(r)
        else:
            raise ConfigError(f"watch rule {r!r}: give a tuco.Watch or its text (harmful:tuco_response:drop=0.05:stop)")
    return out
