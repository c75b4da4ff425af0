"""Self-contained HTML reports built only from run files (rows + manifest + plots). Never imports torch."""
