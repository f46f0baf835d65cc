"""The library's error type for bad user input (configuration, data, hyperparameters)."""
import contextlib
import sys


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


@contextlib.contextmanager
def exit_on_bad_input():
    """For command lines: bad input (ValueError, incl. ConfigError; a missing file) prints one
    line `error: ...` and exits with status 2, without a traceback."""
    try:
        yield
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
