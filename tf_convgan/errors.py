"""The library's error type for bad user input (configuration, data, hyperparameters), and the
generic checks that raise it."""
import contextlib
import difflib
import numbers
import re
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
USAGE_ERROR_STATUS = 2  # every command's exit status for bad input (flags, files, config)


def wants_help(argv):
    """Whether argv (argv[0] is the program name) asks for help (before a `--`)."""
    args = list(argv[1:])
    if "--" in args:
        args = args[:args.index("--")]
    return any(arg in HELP_FLAGS for arg in args)


def print_help(usage, flags_help):
    """A command's --help: its usage text (a paragraph or more: what it does, how it is called),
    a blank line, then `flags:` and its flags, on stdout."""
    if usage:
        print(usage.strip() + "\n")
    print("flags:\n" + flags_help)


_ILLEGAL_VALUE = re.compile(r"^flag --([^=\s]+)=(.*?): (.*)$", re.DOTALL)
_MISSING_VALUE = re.compile(r"^Missing value for flag --?(\S+)$")


def flag_error(error, flag_values=None):
    """The ConfigError of an absl flags.Error, its message starting with the flag it is about
    (`--name: ...`, a FlagError) where absl's message names one:

        --bogus: unknown flag (did you mean --model_dir?)
        --num: invalid value 'abc' (invalid literal for int() with base 10: 'abc')
        --interpolate: a boolean flag is given as --interpolate, --nointerpolate or
            --interpolate=true|false, not 'maybe'
        --model_dir: needs a value
    """
    if isinstance(error, flags.UnrecognizedFlagError):
        names = [n for n in flag_values if flag_values[n].name == n] if flag_values else []
        close = difflib.get_close_matches(error.flagname, names, n=3)
        hint = f" (did you mean {', '.join('--' + n for n in close)}?)" if close else ""
        return FlagError(error.flagname, f"unknown flag{hint}")
    message = _first_line(error)
    match = _ILLEGAL_VALUE.match(str(error))
    if match:
        name, value, reason = match.groups()
        flag = flag_values[name] if flag_values is not None and name in flag_values else None
        if flag is not None and flag.boolean:
            return FlagError(name, f"a boolean flag is given as --{name}, --no{name} or "
                                   f"--{name}=true|false, not {value!r}")
        return FlagError(name, f"invalid value {value!r} ({reason.splitlines()[0]})")
    match = _MISSING_VALUE.match(message)
    if match:
        return FlagError(match.group(1), "needs a value")
    return ConfigError(message)


def parse_flags(flag_values, argv, *, usage, module=None):
    """Parses argv (argv[0] is the program name) into a command's absl FlagValues: every
    command of the library parses its flags here, so that they all behave alike.

    -h / --help (also -help, --helpshort, --helpfull) prints `usage` (a paragraph or more), then
    the flags' help (those defined in `module` when given, e.g. the global FLAGS of run.py; else
    every flag of `flag_values`) and exits with status 0. Flags are `--name value` or
    `--name=value`; a boolean flag is `--name`, `--noname` or `--name=true|false`. An unknown
    flag, a bad value or a positional argument raises ConfigError naming the flag (`flag_error`),
    which `command_status` prints as one line `error: ...` with status 2."""
    if wants_help(argv):
        help_text = (flag_values.module_help(module) if module is not None
                     else flag_values.get_help(include_special_flags=False))
        print_help(usage, help_text)
        raise SystemExit(0)
    flag_values.unparse_flags()
    try:
        rest = flag_values(list(argv))
    except flags.Error as e:
        flag_values.unparse_flags()
        raise flag_error(e, flag_values) from None
    if len(rest) > 1:
        flag_values.unparse_flags()
        raise ConfigError(f"unexpected argument {rest[1]!r} (flags are --name value or "
                          f"--name=value)")


def command_status(run):
    """Runs a command's body `run()`; bad input (ValueError incl. ConfigError and flag errors, a
    missing file) prints one line `error: ...` on stderr and gives status 2 (no traceback),
    otherwise 0. -h / --help leaves by SystemExit(0) (parse_flags)."""
    try:
        run()
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {_first_line(e)}", file=sys.stderr)
        return USAGE_ERROR_STATUS
    return 0
