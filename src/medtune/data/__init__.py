"""Data: reading files, validating rows, splitting, and the bundled demo corpora."""
