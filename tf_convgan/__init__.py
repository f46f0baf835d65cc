"""tf_convgan: GANs that converge, in TensorFlow 2 / Keras 3.

Importing the package registers every gin configurable: losses, penalties, networks, data
sources, optimizers, strategies, the GAN model, the trainer and the Dirac-GAN / 2D studies.

Importing it before TensorFlow sets TF_CPP_MIN_LOG_LEVEL=2 unless it is set: TensorFlow's C++
INFO and WARNING lines are hidden, its errors still shown (set it to 0 to see all). The few lines
TensorFlow 2.19+ logs while it loads, before absl::InitializeLog (oneDNN, "Could not find cuda
drivers"), ignore the variable (tensorflow/tensorflow#100442).
"""
import os as _os
import sys as _sys

if "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Every package whose modules register gin configurables (losses, penalties, networks, data
# sources, optimizers, strategies, GAN, train, fid_evaluator, the studies, run.main).
from tf_convgan import data, errors, networks  # noqa: F401,E402
from tf_convgan import evaluation, serving  # noqa: F401,E402
from tf_convgan.cli import config  # noqa: F401,E402
from tf_convgan.gan import optimizers  # noqa: F401,E402
from tf_convgan.gan.model import GAN  # noqa: F401,E402
from tf_convgan.gan_stability import config as gan_stability_config  # noqa: F401,E402
from tf_convgan.objectives import (augment, consensus, consistency,  # noqa: F401,E402
                                   instance_noise, losses, penalties)
from tf_convgan.studies import dirac, dirac_study, spectrum, toy2d  # noqa: F401,E402
from tf_convgan.studies import toy2d_convergence  # noqa: F401,E402
from tf_convgan.training import loop, strategy  # noqa: F401,E402

__version__ = "0.1.0"
