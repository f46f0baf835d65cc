"""The library's error type for bad user input (configuration, data, hyperparameters)."""


class ConfigError(ValueError):
    """Bad input: the message names the parameter and the allowed values.

    `run.py` prints the message of a ConfigError (no traceback) and exits with status 2.
    """


def check_nonnegative(name: str, value) -> None:
    """Raises ConfigError unless `value` is a finite number >= 0 (hyperparameters such as gamma)."""
    try:
        ok = float(value) >= 0.0 and float(value) != float("inf")
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
