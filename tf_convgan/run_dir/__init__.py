"""The run directory (`model_dir`): everything that reads or writes it."""
