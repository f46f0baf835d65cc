"""Fault injection for the end-to-end tests, loaded from gin with `import tests.faults`."""
import gin
import tensorflow as tf

from tf_convgan import losses


@gin.configurable
def nan_d_loss():
    """The non-saturating loss with a NaN discriminator loss (as a diverged run would have)."""
    base = losses.non_saturating()
    return losses.GANLoss(
        d_loss=lambda d_real_logits, d_fake_logits: base.d_loss(d_real_logits, d_fake_logits)
        * tf.constant(float("nan")),
        g_loss=base.g_loss)
