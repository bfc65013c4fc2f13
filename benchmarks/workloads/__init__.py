"""One module per benchmark workload; each runs one variant per process (see common.py)."""
