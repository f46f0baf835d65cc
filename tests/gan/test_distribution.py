"""tf_convgan.gan.distribution: the optimizers apply gradients already summed over replicas
as they are (use_pre_reduced_gradients); loss_scale is 1 without loss scaling and, with it, the
dynamic scale the next update divides by, read before that update changes it."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import two_cpu_strategy
from tf_convgan.gan import optimizers
from tf_convgan.gan.distribution import (is_loss_scaled, loss_scale, scaled,
                                         use_pre_reduced_gradients, with_loss_scaling)

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


def test_loss_scale_is_one_without_loss_scaling():
    for optimizer in (optimizers.adam(learning_rate=1e-3), optimizers.sgd(learning_rate=0.1)):
        assert not is_loss_scaled(optimizer)
        scale = loss_scale(optimizer)
        assert scale.dtype == tf.float32 and float(scale) == 1.0


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_loss_scale_is_the_value_before_an_update_that_changes_it(compiled):
    """The scale read before apply_gradients is the one that update divides by, also where the
    update changes it: a non-finite gradient halves the dynamic scale and skips the step, a finite
    one divides the gradient by the scale that was read."""
    variable = keras.Variable(W0.astype(np.float32))
    optimizer = with_loss_scaling(optimizers.sgd(learning_rate=1.0))
    assert with_loss_scaling(optimizer) is optimizer and is_loss_scaled(optimizer)
    optimizer.build([variable])

    def step(gradient):
        scale = loss_scale(optimizer)  # as the GAN's step reads it, before the update
        optimizer.apply_gradients([(gradient, variable)])
        return scale

    step = tf.function(step) if compiled else step
    initial = float(optimizer.dynamic_scale.numpy())
    assert initial == 2.0 ** 15
    scale = step(tf.fill(SHAPE, np.float32(np.inf)))
    assert float(scale) == initial and float(optimizer.dynamic_scale.numpy()) == initial / 2
    np.testing.assert_array_equal(variable.numpy(), W0.astype(np.float32))  # skipped
    g = GRADS[0].astype(np.float32)
    scale = step(tf.constant(g) * (initial / 2))  # scaled as scaled() scales the loss
    assert float(scale) == initial / 2 == float(optimizer.dynamic_scale.numpy())
    np.testing.assert_allclose(variable.numpy(), W0.astype(np.float32) - g, rtol=1e-6,
                               atol=1e-6 * np.abs(g).max())
    # scaled(): the loss times that same scale.
    np.testing.assert_allclose(float(scaled(optimizer, tf.constant(3.0))), 3.0 * initial / 2)
    assert float(scaled(optimizers.sgd(learning_rate=1.0), tf.constant(3.0))) == 3.0
