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
