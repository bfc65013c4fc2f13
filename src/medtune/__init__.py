"""medtune: fine-tune a general language model into a medical specialist and prove it."""

__version__ = "0.1.0"
