"""Train a GAN from gin files (or run the study that gin's `run.main` names, e.g. @dirac_study).

    tf-convgan-train [--gin_file F ...] [--gin_param 'a.b = 1' ...] [--model_dir D]
    python run.py ...                  (the same, from a checkout)

Without --gin_file it runs the quickstart (quickstart.gin). A --gin_file is a path, or the name of
one of the package's configs (`cifar10_r1.gin`, `dirac/all.gin`; `gin_configs/...` also works).
Rerunning the same command continues from the last checkpoint in the model directory (default:
runs/<name of the gin file>). Bad input (a misspelled binding, missing data, a bad hyperparameter, a
checkpoint that does not fit the networks) prints one clear message and exits with status 2,
leaving what is already in the model directory untouched. A diverged run (NaN or inf) stops with
status 3 and keeps its last good checkpoint. SIGTERM writes a checkpoint of the current step and
exits with status 143, SIGINT (Ctrl-C) likewise with status 130 (a second Ctrl-C stops at once).
A second run on a model directory that a run is writing is refused (status 2). A full disk
(a checkpoint, sample grid, metrics or export write failing with "No space left on device")
stops the run with one line naming the file and status 4; the files written before (the last
checkpoint included) are intact, and rerunning once space is freed continues from it.

The gin files and bindings are code, like a Python script (gin imports and calls what they
name): run only configs you trust. Run directories and SavedModels are read as data.
"""
import os
import signal
import sys

from absl import flags

from tf_convgan.errors import FlagError, command_status, parse_flags

DEFAULT_GIN_FILE = "quickstart.gin"  # in the package's gin_configs/

flags.DEFINE_multi_string("gin_file", None, "Gin config files (default: the quickstart).")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings, e.g. 'train.num_steps = 100'.")
flags.DEFINE_string("model_dir", None, "Output directory (default: runs/<gin file name>).")
FLAGS = flags.FLAGS


def default_model_dir(gin_files):
    return os.path.join("runs", os.path.splitext(os.path.basename(gin_files[-1]))[0])


def _without_gin_context(error):
    """The message without the "In call to configurable ..." lines gin appends."""
    lines = str(error).splitlines()
    return "\n".join(l for l in lines if not l.lstrip().startswith("In call to configurable"))


def main(argv):
    """Trains with the parsed FLAGS (argv: what remains of the command line, the program name
    only); exits with the statuses of the module docstring."""
    if len(argv) > 1:
        print(f"error: unexpected argument {argv[1]!r}", file=sys.stderr)
        sys.exit(2)
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint INFO lines drown the progress
    from tf_convgan import run_dir  # (the package import registers every configurable)
    from tf_convgan.cli import config
    from tf_convgan.training import strategy
    from tf_convgan.training.loop import Preempted, TrainingDivergedError

    gin_files = FLAGS.gin_file or [DEFAULT_GIN_FILE]
    model_dir = FLAGS.model_dir if FLAGS.model_dir is not None else default_model_dir(gin_files)
    try:
        if not model_dir.strip():  # '' would have meant the default directory
            raise FlagError("model_dir", f"is empty ({model_dir!r}): give a directory, or leave "
                                         f"the flag out for runs/<gin file name>")
        run_dir.check_writable(model_dir, name="--model_dir")  # before anything runs
        config.parse(gin_files, FLAGS.gin_param)
        strategy.create_early_if_configured()  # before TensorFlow runs anything
        config.entry_point()(model_dir=model_dir)  # gin `run.main`: train() unless rebound
    except (ValueError, FileNotFoundError) as e:  # ConfigError and GinError are ValueErrors
        print(f"error: {_without_gin_context(e)}", file=sys.stderr)
        sys.exit(2)
    except TrainingDivergedError as e:
        print(f"error: {_without_gin_context(e)}", file=sys.stderr)
        sys.exit(3)
    except Preempted as e:
        print(_without_gin_context(e), file=sys.stderr)
        sys.exit(128 + e.signum)  # the shell's convention for "terminated by signal N"
    except KeyboardInterrupt:
        print("interrupted (a second Ctrl-C): the steps since the last checkpoint are lost",
              file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except Exception as e:  # noqa: BLE001  (TensorFlow's writers raise their own error types)
        if not run_dir.disk_full.is_disk_full(e):
            raise
        print(f"error: {_without_gin_context(_disk_full_message(e))}", file=sys.stderr)
        sys.exit(DISK_FULL_STATUS)


DISK_FULL_STATUS = 4  # the disk (or quota) is full: free space and rerun to continue


def _disk_full_message(error):
    """The one line of a full disk: DiskFullError's (it names the file), else one built from
    the first line of the error's own message."""
    from tf_convgan.run_dir.disk_full import DiskFullError
    found, depth = error, 0
    while found is not None and not isinstance(found, DiskFullError) and depth < 20:
        found, depth = found.__cause__ or found.__context__, depth + 1
    if isinstance(found, DiskFullError):
        return str(found)
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (f"the disk is full (no space left on device): {first}; nothing written before was "
            f"changed; free some space and rerun the same command to continue")


def run(argv=None):
    """The command (`tf-convgan-train`, `python run.py`; argv[0] is the program name): parses
    the flags as every command of the library does (errors.parse_flags: -h / --help prints the
    usage and this module's flags; a bad flag prints one line `error: ...` and exits with status
    2), then runs `main`. Exits with main's status."""
    argv = list(sys.argv if argv is None else argv)
    status = command_status(lambda: parse_flags(FLAGS, argv, usage=__doc__, module=__name__))
    if status:
        sys.exit(status)
    from absl import logging
    logging.use_absl_handler()  # absl's log format, as absl.app.run would set it
    main(argv[:1])
