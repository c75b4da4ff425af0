"""TuCo while you train: ``TucoCallback`` (a ``transformers.TrainerCallback``, also driven by hand from any
training loop) measures fixed probe sets against the model's starting point every N steps, logs per-group
means through the Trainer's ``log``, writes a run that ``tuco report`` draws over steps, and watches rules."""

from tuco.training.callback import Measurement, TucoCallback, group_means
from tuco.training.probes import ProbeGroup, ProbeSet, probe_set
from tuco.training.watch import Watch

__all__ = ["Measurement", "ProbeGroup", "ProbeSet", "TucoCallback", "Watch", "group_means", "probe_set"]
