"""Gin-configurable optimizer factories (gin.tf's registrations do not import on TF 2.16+).

Bind them per player with gin scopes, for example

    GAN.g_optimizer = @g/adam()
    GAN.d_optimizer = @d/adam()
    adam.learning_rate = 1e-4
    adam.beta_1 = 0.0
    adam.beta_2 = 0.99

Keras puts epsilon inside the square root (sqrt(v + eps)); PyTorch, and so GAN_stability, outside
(sqrt(v) + eps). With the tiny defaults used here the difference is immaterial.
"""
import gin
import keras

from tf_convgan.errors import ConfigError


def _check_learning_rate(name, learning_rate):
    if not float(learning_rate) > 0:
        raise ConfigError(f"{name}.learning_rate must be > 0, got {learning_rate!r}")


@gin.configurable
def rmsprop(*, learning_rate=1e-4, rho=0.99, epsilon=1e-8):
    """RMSprop, the paper's default (lr 1e-4; rho=0.99 is PyTorch's alpha, as GAN_stability)."""
    _check_learning_rate("rmsprop", learning_rate)
    return keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho, epsilon=epsilon)


@gin.configurable
def adam(*, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """Adam with betas (GAN_stability's Adam configs use beta_1=0, beta_2=0.99)."""
    _check_learning_rate("adam", learning_rate)
    for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not 0.0 <= float(beta) < 1.0:
            raise ConfigError(f"adam.{name} must be in [0, 1), got {beta!r}")
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


@gin.configurable
def lazy_adam(*, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8, interval=16):
    """Adam adjusted for lazy regularization with `interval` k (Karras et al. 2020, StyleGAN2,
    appendix B): c = k / (k + 1), learning_rate * c, beta_1 ** c, beta_2 ** c.

    StyleGAN2 applies the lazy penalty as a separate optimizer step every k minibatches, k + 1
    updates per k minibatches; the adjustment keeps Adam's per-minibatch step size and momentum
    horizons as without lazy regularization. tf_convgan adds k * penalty to D's loss in the same
    update (GAN.lazy_interval), so the number of updates does not change: use this helper to
    reproduce the paper's optimizer settings, plain `adam` for an unadjusted one. The optimizer
    records k (`lazy_interval`); GAN checks that it equals GAN.lazy_interval."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"lazy_adam.interval must be an integer >= 1, got {interval!r}")
    for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
        if not 0.0 <= float(beta) < 1.0:
            raise ConfigError(f"lazy_adam.{name} must be in [0, 1), got {beta!r}")
    _check_learning_rate("lazy_adam", learning_rate)
    c = interval / (interval + 1.0)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate * c, beta_1=float(beta_1) ** c,
                                      beta_2=float(beta_2) ** c, epsilon=epsilon)
    optimizer.lazy_interval = interval
    return optimizer


@gin.configurable
def sgd(*, learning_rate=1e-4, momentum=0.0):
    """Plain (or momentum) gradient descent, for the Dirac-GAN and 2D studies."""
    _check_learning_rate("sgd", learning_rate)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
