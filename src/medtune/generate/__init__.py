"""One batched generation engine used by evaluation (and later by candidates and serving)."""
