"""Measurements: prompts in, results out (score, generate, decode, choose, OutputCo), batching and positions."""
