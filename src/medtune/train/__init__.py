"""Training: example encoding, batching, the loss and one generic resumable training loop."""
