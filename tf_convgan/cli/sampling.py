"""Samples, class grids and latent interpolations from a model directory or a SavedModel.

    python -m tf_convgan.sampling --model DIR_OR_SAVEDMODEL --out_dir OUT [--num 64] [--seed 0]
        [--interpolate --nzs 8 --nsubsteps 16 --method spherical --chains 4]

`--model` is a training directory (the EMA generator of its latest checkpoint, or --checkpoint)
or a SavedModel written by tf_convgan.export. Everything is a function of the seed: the same
command writes the same files. Bad input prints one line naming the flag and exits with status 2
before anything is written; OUT may not be a training directory, nor a non-empty directory
that holds no outputs of tf_convgan (run_dir.outputs: a file is replaced only in a directory
the library marked as its own). Outputs in OUT:
  samples/sample_00000.png ..., samples.png    each sample alone, written as they are generated
                                               (memory bounded by a batch), and a grid of the
                                               first min(num, 1024); a request that cannot fit
                                               the free disk space is refused up front
  classes.png                                  conditional models: one row per class
  interpolation_<method>.png / .gif            `chains` interpolation paths through `nzs`
                                               latent key points with `nsubsteps` frames each
The library: tf_convgan.serving.sampling.
"""
import tensorflow as tf
from absl import flags

from tf_convgan import run_dir
from tf_convgan.errors import FlagError, blame, command_status, parse_flags
from tf_convgan.serving.sampling import (INTERPOLATIONS, MAX_NUM, OUTPUT_NAMES, Sampler,
                                         check_free_space, write_class_grid,
                                         write_interpolation, write_samples)

_INT64 = dict(lower_bound=-2 ** 63, upper_bound=2 ** 63 - 1)

FLAGS = flags.FlagValues()  # own flag set: importable beside run.py's flags
flags.DEFINE_string("model", None, "A training directory or a SavedModel directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", None, "Checkpoint of a training directory (default: latest).",
                    flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "Where the PNG and GIF files go.", flag_values=FLAGS)
flags.DEFINE_integer("num", 64, "Number of samples.", lower_bound=1, upper_bound=MAX_NUM,
                     flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed of z (and of the interpolation key points).",
                     flag_values=FLAGS, **_INT64)
flags.DEFINE_integer("per_class", 8, "Conditional models: samples per class row.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_bool("interpolate", False, "Also write latent interpolations.", flag_values=FLAGS)
flags.DEFINE_integer("nzs", 8, "Interpolation key points.", lower_bound=2, flag_values=FLAGS)
flags.DEFINE_integer("nsubsteps", 16, "Frames between two key points.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_enum("method", "spherical", list(INTERPOLATIONS), "Interpolation.",
                  flag_values=FLAGS)
flags.DEFINE_integer("chains", 4, "Interpolation paths side by side.", lower_bound=1,
                     flag_values=FLAGS)


def main(argv):
    """`python -m tf_convgan.sampling` (argv[0] is the program name); returns the exit status."""
    def run():
        parse_flags(FLAGS, argv, usage=__doc__)
        f = FLAGS
        for name in ("model", "out_dir"):
            if not getattr(f, name):
                raise FlagError(name, "is required")
        if run_dir.is_run_directory(f.out_dir):
            raise FlagError("out_dir", f"{f.out_dir!r} is a training directory: its samples "
                                       f"would be overwritten; give another directory")
        run_dir.outputs.check_output_dir(f.out_dir, name="--out_dir", command="sampling",
                                         names=OUTPUT_NAMES)
        if f.checkpoint is not None and tf.saved_model.contains_saved_model(f.model):
            raise FlagError("checkpoint", f"{f.model} is a SavedModel: a checkpoint can only be "
                                          f"chosen in a training directory")
        with blame("checkpoint" if f.checkpoint else "model"):
            sampler = Sampler.load(f.model, checkpoint=f.checkpoint)
        check_free_space(sampler, f.out_dir, num=f.num, seed=f.seed)
        with blame("out_dir"):
            run_dir.outputs.claim_output_dir(f.out_dir, "sampling")
            write_samples(sampler, f.out_dir, num=f.num, seed=f.seed)
            if sampler.num_classes > 1:
                write_class_grid(sampler, f.out_dir, per_class=f.per_class, seed=f.seed)
            if f.interpolate:
                write_interpolation(sampler, f.out_dir, nzs=f.nzs, nsubsteps=f.nsubsteps,
                                    seed=f.seed, method=f.method, chains=f.chains)
        print(f"wrote samples of {f.model} to {f.out_dir}")

    return command_status(run)
