"""The library's error type for bad user input (configuration, data, hyperparameters), and the
generic checks that raise it."""
import contextlib
import numbers
import sys

from absl import flags


class ConfigError(ValueError):
    """Bad input: the message names the parameter and the allowed values.

    `run.py` prints the message of a ConfigError (no traceback) and exits with status 2.
    """


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def is_int(value) -> bool:
    """True for an integer (a Python int or a numpy integer), False for a bool and anything
    else (floats with integral values included)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value, minimum=None) -> int:
    """`value` as a Python int. Raises ConfigError unless it is an integer (see `is_int`) and,
    when `minimum` is given, >= minimum: `{name} must be an integer >= {minimum}, got ...`."""
    if not is_int(value) or (minimum is not None and int(value) < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def check_seed(name: str, value) -> int:
    """`value` as a Python int. Raises ConfigError unless it is an integer in the int64 range
    (what stateless random ops and tf.data seeds take)."""
    if not is_int(value) or not INT64_MIN <= int(value) <= INT64_MAX:
        raise ConfigError(f"{name} must be an integer in the int64 range, got {value!r}")
    return int(value)


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


class FlagError(ConfigError):
    """Bad input to a command line: the message starts with the flag, `--name: ...`."""

    def __init__(self, flag, message):
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


def _first_line(error):
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@contextlib.contextmanager
def blame(flag):
    """Bad input raised in the block (ValueError incl. ConfigError, a missing or unusable file)
    becomes a FlagError naming `--flag`."""
    try:
        yield
    except FlagError:
        raise
    except (ValueError, OSError) as e:
        raise FlagError(flag, _first_line(e)) from e


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def wants_help(argv):
    """Whether argv (argv[0] is the program name) asks for help (before a `--`)."""
    args = list(argv[1:])
    if "--" in args:
        args = args[:args.index("--")]
    return any(arg in HELP_FLAGS for arg in args)


def print_help(usage, flags_help):
    """A command's --help: its usage text and its flags, on stdout."""
    if usage:
        print(usage.strip() + "\n")
    print("flags:\n" + flags_help)


def parse_flags(flag_values, argv, *, usage=None):
    """Parses argv (argv[0] is the program name) into an absl FlagValues of a command's own;
    an unknown or bad flag, or a positional argument, raises ConfigError (naming the flag).
    -h / --help prints `usage` and the flags' help and exits with status 0."""
    if wants_help(argv):
        print_help(usage, flag_values.get_help(include_special_flags=False))
        raise SystemExit(0)
    flag_values.unparse_flags()
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        raise ConfigError(_first_line(e)) from None
    if len(rest) > 1:
        raise ConfigError(f"unexpected argument {rest[1]!r}")


def command_status(run):
    """Runs a command's body `run()`; bad input prints one line `error: ...` and gives status 2
    (no traceback), otherwise 0."""
    try:
        run()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {_first_line(e)}", file=sys.stderr)
        return 2
    return 0
