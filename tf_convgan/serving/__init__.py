"""The trained generator shipped: SavedModel export, sampling, interpolation."""
