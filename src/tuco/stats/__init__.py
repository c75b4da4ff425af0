"""Pure numbers (torch-free): intervals, claims and their verdicts, syntheses, summaries."""
