"""Pairs and chains of checkpoints as the engine sees them: loading, compatibility and adapter checks, placement,
steering, the shipped pairs."""
