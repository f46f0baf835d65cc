"""The GAN model and its composed train_step; the optimizers it uses."""
from tf_convgan.gan.model import GAN  # noqa: F401
