"""The console scripts of the installed package (pyproject.toml [project.scripts]).

Importing tf_convgan sets TF_CPP_MIN_LOG_LEVEL=2 (unless set) before TensorFlow loads, so the
commands show TensorFlow's C++ errors but not its INFO / WARNING lines (except the few TensorFlow
logs while loading, before absl::InitializeLog, which ignore the variable)."""
import sys


def train():
    """tf-convgan-train: tf_convgan.cli.train (what `python run.py` runs)."""
    from tf_convgan.cli.train import run
    run()


def evaluate():
    """tf-convgan-evaluate: tf_convgan.cli.evaluate (`python -m tf_convgan.evaluate`)."""
    from tf_convgan.cli.evaluate import main
    return main(sys.argv)


def sample():
    """tf-convgan-sample: tf_convgan.cli.sampling (`python -m tf_convgan.sampling`)."""
    from tf_convgan.cli.sampling import main
    return main(sys.argv)


def export():
    """tf-convgan-export: tf_convgan.cli.export (`python -m tf_convgan.export`)."""
    from tf_convgan.cli.export import main
    return main(sys.argv)


def import_gan_stability():
    """tf-convgan-import-gan-stability: tf_convgan.cli.import_gan_stability
    (`python -m tf_convgan.import_gan_stability`)."""
    from tf_convgan.cli.import_gan_stability import main
    return main(sys.argv)


def sweep():
    """tf-convgan-sweep: tf_convgan.cli.sweep (`python -m tf_convgan.sweep`)."""
    from tf_convgan.cli.sweep import main
    return main(sys.argv)


def spectrum():
    """tf-convgan-spectrum: tf_convgan.cli.spectrum (`python -m tf_convgan.spectrum`)."""
    from tf_convgan.cli.spectrum import main
    return main(sys.argv)
