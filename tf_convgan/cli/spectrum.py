"""`python -m tf_convgan.spectrum` / `tf-convgan-spectrum`: the spectrum of the game Jacobian of a
training run's checkpoint (tf_convgan.studies.spectrum), printed as a table and appended to the
run's spectrum history and PNG."""
import os

from tf_convgan.studies.spectrum import (WHICH, check_out_dir, format_table, game_operator,
                                         load_run, real_batch, record, spectrum)
from tf_convgan.studies.spectrum.saved_run import FILE_SOURCES

USAGE = """The leading eigenvalues of the game Jacobian of a training run's checkpoint.

    python -m tf_convgan.spectrum --model_dir runs/quickstart [--checkpoint latest|best|ckpt-1000]
        [--k 20] [--which LM,LR] [--batch_size 32] [--learning_rate 3e-4] [--noblocks]
        [--float64] [--out_dir runs/quickstart/spectrum] [--data_dir DIR]

Reads the run as data (its run config and checkpoint, never through gin), prints the table and
appends the evaluation to <out_dir>/spectrum_history.json and spectrum.png (default out_dir:
<model_dir>/spectrum; local or a URL such as gs://). Bad input prints one line naming the flag
and exits with status 2 (docs/spectrum.md).
"""


def _flags():
    from absl import flags
    f = flags.FlagValues()
    flags.DEFINE_string("model_dir", None, "A training run's directory.", flag_values=f)
    flags.DEFINE_string("checkpoint", None, "latest (default), best, a name (ckpt-100) or a "
                        "prefix.", flag_values=f)
    flags.DEFINE_integer("k", 20, "Eigenvalues per ordering.", flag_values=f)
    flags.DEFINE_list("which", list(WHICH), "Orderings of J: LM, LR.", flag_values=f)
    flags.DEFINE_integer("batch_size", None, "The fixed batch (default: the run's "
                         "train.batch_size).", flag_values=f)
    flags.DEFINE_float("learning_rate", None, "h of the simGD / altGD update maps (default: "
                       "none computed).", flag_values=f)
    flags.DEFINE_boolean("blocks", True, "D's Hessian and the coupling blocks' singular "
                         "values.", flag_values=f)
    flags.DEFINE_boolean("float64", False, "Float64 networks (products in float64).",
                         flag_values=f)
    flags.DEFINE_string("out_dir", None, "Where the history and the PNG go (default: "
                        "<model_dir>/spectrum).", flag_values=f)
    flags.DEFINE_string("data_dir", None, "The Fashion-MNIST IDX directory, in place of the "
                        "run's.", flag_values=f)
    flags.DEFINE_integer("seed", 0, "Data stream and ARPACK start vector.", flag_values=f)
    flags.DEFINE_float("tol", None, "ARPACK's tolerance (default 1e-6 float32, 1e-12 float64).",
                       flag_values=f)
    flags.DEFINE_integer("maxiter", None, "ARPACK's restarts.", flag_values=f)
    return f


FLAGS = _flags()


def evaluate_run(f):
    """What the command does, given its parsed flags; returns (result, PNG path)."""
    from tf_convgan.errors import FlagError, blame
    if not f.model_dir:
        raise FlagError("model_dir", "a training run's directory is required")
    if f.k < 1:
        raise FlagError("k", f"must be >= 1, got {f.k}")
    if f.batch_size is not None and f.batch_size < 1:
        raise FlagError("batch_size", f"must be >= 1, got {f.batch_size}")
    if f.learning_rate is not None and not f.learning_rate > 0:
        raise FlagError("learning_rate", f"must be > 0, got {f.learning_rate}")
    bad = [w for w in f.which if w not in WHICH]
    if bad or not f.which:
        raise FlagError("which", f"must be a comma-separated list of {', '.join(WHICH)}, "
                                 f"got {','.join(f.which)!r}")
    check_out_dir(f.out_dir or os.path.join(f.model_dir, "spectrum"), name="--out_dir")
    from tf_convgan.run_dir.run_config import RunConfigError
    flag = "checkpoint" if f.checkpoint not in (None, "latest") else "model_dir"
    with blame(flag):
        try:
            gan, path, source, notes = load_run(f.model_dir, checkpoint=f.checkpoint,
                                                float64=f.float64, data_dir=f.data_dir)
        except RunConfigError as e:  # the run config's, whatever the checkpoint
            raise FlagError("model_dir", str(e).splitlines()[0]) from e
    if source is None:
        raise FlagError("model_dir", "the run's train.data is not one of the file sources "
                                     f"{', '.join(FILE_SOURCES)}: its data cannot be read back")
    from tf_convgan.run_dir.run_config import read_run_config
    batch_size = f.batch_size or int(read_run_config(f.model_dir).literal("train.batch_size",
                                                                          64))
    with blame("batch_size" if f.batch_size else "model_dir"):
        real, labels = real_batch(source, batch_size=batch_size, seed=f.seed)
    operator = game_operator(gan=gan, real=real, labels=labels)
    result = spectrum(operator=operator, k=f.k, which=tuple(f.which),
                      learning_rate=f.learning_rate, d_steps=gan.d_steps, blocks=f.blocks,
                      tol=f.tol, maxiter=f.maxiter, seed=f.seed)
    result.notes = tuple(notes) + result.notes + (f"checkpoint {path}",)
    png = record(result, out_dir=f.out_dir or os.path.join(f.model_dir, "spectrum"))
    return result, png


def main(argv):
    """`python -m tf_convgan.spectrum` (argv[0] is the program name; see USAGE): prints the
    table, writes the PNG; returns the exit status (2: bad input, one line `error: ...` naming
    the flag)."""
    from tf_convgan.errors import command_status, parse_flags

    def run():
        parse_flags(FLAGS, argv, usage=USAGE)
        result, png = evaluate_run(FLAGS)
        print(format_table(result))
        print(f"wrote {png}")

    return command_status(run)
