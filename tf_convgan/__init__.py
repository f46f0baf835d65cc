"""tf_convgan: GANs that converge, in TensorFlow 2 / Keras 3.

Importing the package registers every gin configurable: losses, penalties, networks, data
sources, optimizers, strategies, the GAN model, the trainer and the Dirac-GAN / 2D studies.
"""
from tf_convgan import data, errors, losses, networks, optimizers, penalties, strategy  # noqa: F401
from tf_convgan.gan import GAN  # noqa: F401
from tf_convgan import train  # noqa: F401
from tf_convgan import augment, consensus, consistency  # noqa: F401
from tf_convgan import dirac, dirac_study, instance_noise, toy2d  # noqa: F401
from tf_convgan import evaluation  # noqa: F401  (registers fid_evaluator)
from tf_convgan import gan_stability_config  # noqa: F401  (GAN_stability YAML configs)
from tf_convgan import config  # noqa: F401  (registers run)
from tf_convgan import spectrum  # noqa: F401  (registers spectrum_evaluator)

__version__ = "0.1.0"
