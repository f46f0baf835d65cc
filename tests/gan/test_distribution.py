"""tf_convgan.gan.distribution: the optimizers apply gradients already summed over replicas
as they are (use_pre_reduced_gradients)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import two_cpu_strategy
from tf_convgan.gan import optimizers
from tf_convgan.gan.distribution import use_pre_reduced_gradients

# test_optimizers.py's weights and gradients (the same draws).
RNG = np.random.default_rng(0)
SHAPE = (5, 7)
W0 = RNG.normal(size=SHAPE)
GRADS = RNG.normal(size=(20,) + SHAPE) * 10.0 ** RNG.uniform(-8, 0, size=(20, 1, 1))


def _apply_in_replicas(optimizer_fn, grads, strategy):
    """Applies `grads` (the same, already summed gradient on every replica) as the GAN does."""
    with strategy.scope():
        variable = keras.Variable(W0.astype(np.float32))
        optimizer = optimizer_fn()
        optimizer.build([variable])
    use_pre_reduced_gradients(optimizer)

    @tf.function
    def step(g):
        strategy.run(lambda: optimizer.apply_gradients([(g, variable)]))

    for g in grads:
        step(tf.constant(g.astype(np.float32)))
    return variable.numpy()


@pytest.mark.parametrize("factory", [optimizers.torch_rmsprop, optimizers.torch_adam])
def test_two_replicas_apply_pre_summed_gradients_once(factory):
    """Under MirroredStrategy the GAN hands the optimizer gradients already summed over replicas:
    the update equals one device's (epsilon = 1e-3 makes the update depend on the gradient's scale,
    so a second summation would show)."""
    fn = lambda: factory(learning_rate=1e-2, epsilon=1e-3)  # noqa: E731
    grads = GRADS[:3] * 1e3
    single = _apply_in_replicas(fn, grads, tf.distribute.get_strategy())
    mirrored = _apply_in_replicas(fn, grads, two_cpu_strategy())
    np.testing.assert_allclose(mirrored, single, rtol=0, atol=1e-7)
    doubled = _apply_in_replicas(fn, grads * 2, tf.distribute.get_strategy())
    assert np.abs(doubled - single).max() > 1e-4
