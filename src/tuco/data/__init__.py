"""Prompt and question sets for the experiments: built-in offline sets, local files, hub datasets."""
