"""Prompt transforms used by the jailbreak experiments: encodings, many-shot prefixes, GCG suffixes."""
