"""The training loop and the distribution strategies."""
