"""Model loading: the embedded default, hub ids, local folders and trained outputs."""
