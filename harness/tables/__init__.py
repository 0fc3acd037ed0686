"""Paper-style result tables from run folders, with trial counts, Wilson intervals and the
published reference rows kept as data (`results/reference/`)."""
