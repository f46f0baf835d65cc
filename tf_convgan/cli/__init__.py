"""Command lines and gin parsing."""
