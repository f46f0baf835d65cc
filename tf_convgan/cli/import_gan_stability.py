"""`python -m tf_convgan.import_gan_stability` / `tf-convgan-import-gan-stability`: a
GAN_stability checkpoint and its YAML config into a tf_convgan model directory
(tf_convgan.gan_stability.importer, whose docstring is the command's usage)."""
import os

from tf_convgan.gan_stability import importer


def _flag_values():
    """The command's own absl FlagValues (importable beside run.py's global flags)."""
    from absl import flags
    f = flags.FlagValues()
    flags.DEFINE_string("config", None, "GAN_stability YAML config of the checkpoint (required).",
                        flag_values=f)
    flags.DEFINE_string("checkpoint", None, "GAN_stability checkpoint (.pt) (required).",
                        flag_values=f)
    flags.DEFINE_string("model_dir", None, "tf_convgan model directory to write (required).",
                        flag_values=f)
    flags.DEFINE_bool("export", True, "Also export the EMA generator as a SavedModel.",
                      flag_values=f)
    flags.DEFINE_bool("optimizer_state", True, "Import the optimizers' state (else they start "
                      "afresh, e.g. when the config names another optimizer than the one the "
                      "checkpoint was trained with).", flag_values=f)
    return f


def main(argv):
    """`python -m tf_convgan.import_gan_stability` / `tf-convgan-import-gan-stability` (argv[0]
    is the program name); returns the exit status (2: bad input, one line `error: ...`)."""
    from absl import logging
    from tf_convgan.errors import FlagError, command_status, parse_flags
    f = _flag_values()

    def run():
        parse_flags(f, argv, usage=importer.__doc__)
        for name in ("config", "checkpoint", "model_dir"):
            if not getattr(f, name):
                raise FlagError(name, "is required")
        for name, what in (("config", "a GAN_stability YAML config"),
                           ("checkpoint", "a GAN_stability checkpoint (.pt)")):
            path = getattr(f, name)
            if not os.path.isfile(path):
                problem = "is a directory" if os.path.isdir(path) else "does not exist"
                raise FlagError(name, f"{path!r} {problem}: it should be {what}")
        logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint and SavedModel INFO
        model_dir, step = importer.import_checkpoint(
            f.config, f.checkpoint, f.model_dir, export=f.export,
            optimizer_state=f.optimizer_state)
        print(f"imported {f.checkpoint} ({f.config}) into {model_dir} at step {step}")

    return command_status(run)
