"""The tuco error hierarchy: every user-facing failure is a TucoError with a message that says what to do."""

from __future__ import annotations


class TucoError(Exception):
    """Base class of all errors tuco raises on purpose (bad input, incompatible models, ...)."""


class IncompatiblePairError(TucoError):
    """The base and tuned models cannot be decomposed against each other (layers, width, family)."""


class UnsupportedModelError(TucoError):
    """tuco cannot find the decoder layers of this model."""


class PromptError(TucoError):
    """A prompt (or a line of a prompt file) is empty, malformed or too long."""


class ConfigError(TucoError):
    """An option value is invalid (alpha < 0, wrong number of per-layer alphas, unknown dtype, ...)."""


class InputError(TucoError):
    """A file or data source the user named is missing, unreadable or not in the expected format."""


class RunError(TucoError):
    """A run's output cannot be used: it exists (without resume/overwrite), is locked by another
    process, was made with a different configuration, or cannot be written."""


class JudgeError(TucoError):
    """A judge cannot be loaded or used (gated model without a token, unknown name, bad prompt format)."""


class TrainingError(TucoError):
    """TucoCallback cannot measure this training as set up (sharded weights, a resumed run without its
    starting weights, a frozen parameter that became trainable, ...)."""
