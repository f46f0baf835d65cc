"""tf_convgan.gan.critic: logits_with_input_gradients returns D(x) and grad_x sum D(x) of the same
forward pass, computed once, equal to a separate GradientTape's; under a loss scale the gradient
comes back unscaled."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_NETWORKS
from tf_convgan.gan.critic import Critic
from tf_convgan.networks import build


@pytest.fixture(scope="module")
def discriminator():
    keras.utils.set_random_seed(3)
    return build(TINY_NETWORKS["resnet"][1](3))


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32))
    return x, tf.constant([2, 0, 1], tf.int32)


def _reference(discriminator, x, labels):
    """D(x) and grad_x sum D(x) from a forward pass and tape of their own."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = discriminator(x, labels, training=False)
        total = tf.reduce_sum(logits)
    return logits.numpy(), tape.gradient(total, x).numpy()


def test_logits_and_input_gradients_equal_a_separate_tape(discriminator, inputs):
    x, labels = inputs
    critic = Critic(discriminator, labels, training=False)
    logits, input_gradients = critic.logits_with_input_gradients(x)
    want_logits, want_gradients = _reference(discriminator, x, labels)
    assert logits.dtype == tf.float32 and logits.shape == (3,)
    np.testing.assert_allclose(logits.numpy(), want_logits, rtol=1e-6, atol=1e-6)
    gradients = input_gradients()
    assert gradients.shape == x.shape and np.abs(want_gradients).max() > 0
    np.testing.assert_allclose(gradients.numpy(), want_gradients, rtol=1e-6,
                               atol=1e-6 * np.abs(want_gradients).max())
    # Per example: example i's gradient is the gradient of D(x_i) alone.
    _, alone = _reference(discriminator, x[:1], labels[:1])
    np.testing.assert_allclose(gradients.numpy()[:1], alone, rtol=1e-5,
                               atol=1e-6 * np.abs(alone).max())


def test_input_gradients_are_computed_once(discriminator, inputs, monkeypatch):
    x, labels = inputs
    _, input_gradients = Critic(discriminator, labels, training=False) \
        .logits_with_input_gradients(x)
    calls = []
    gradient = tf.GradientTape.gradient
    monkeypatch.setattr(tf.GradientTape, "gradient",
                        lambda self, *a, **kw: (calls.append(1), gradient(self, *a, **kw))[1])
    first = input_gradients()
    assert input_gradients() is first and len(calls) == 1


def test_a_loss_scale_gives_the_unscaled_gradient(discriminator, inputs):
    """loss_scale = 2**10 on a float32 D: the tape differentiates 2**10 sum D(x), the critic divides
    by the scale again; the logits are D's own."""
    x, labels = inputs
    assert discriminator.compute_dtype == "float32"
    plain_logits, plain = Critic(discriminator, labels, training=False) \
        .logits_with_input_gradients(x)
    scaled_logits, scaled = Critic(discriminator, labels, training=False,
                                   loss_scale=tf.constant(2.0 ** 10)) \
        .logits_with_input_gradients(x)
    _, want = _reference(discriminator, x, labels)
    np.testing.assert_array_equal(scaled_logits.numpy(), plain_logits.numpy())
    assert scaled().dtype == tf.float32
    np.testing.assert_allclose(scaled().numpy(), plain().numpy(), rtol=1e-6)
    np.testing.assert_allclose(scaled().numpy(), want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
