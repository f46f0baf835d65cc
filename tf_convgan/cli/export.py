"""Export the EMA generator of a training run's checkpoint as a self-contained SavedModel
(tf_convgan.serving.export).

    python -m tf_convgan.export --model_dir runs/quickstart [--checkpoint ckpt-2000]
                                [--export_dir runs/quickstart/export]

An export replaces only a previous export (a directory that holds a SavedModel and nothing else)
or an empty directory; anything else is refused with one line (status 2) and left untouched. An
export into the run directory takes its writer lock (run_dir.lock).
"""
from absl import flags

from tf_convgan.errors import FlagError, command_status, parse_flags
from tf_convgan.serving.export import export_model_dir

FLAGS = flags.FlagValues()  # own flag set: importable beside run.py's flags
flags.DEFINE_string("model_dir", None, "Training directory (with operative_config.gin).",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix or name (default: the latest).",
                    flag_values=FLAGS)
flags.DEFINE_string("export_dir", None, "Output directory (default: <model_dir>/export).",
                    flag_values=FLAGS)


def main(argv):
    """`python -m tf_convgan.export` (argv[0] is the program name); returns the exit status."""
    def run():
        parse_flags(FLAGS, argv, usage=__doc__)
        if not FLAGS.model_dir:
            raise FlagError("model_dir", "is required: a training directory")
        export_dir, path = export_model_dir(FLAGS.model_dir, checkpoint=FLAGS.checkpoint,
                                            export_dir=FLAGS.export_dir)
        print(f"exported the EMA generator of {path} to {export_dir}")

    return command_status(run)
