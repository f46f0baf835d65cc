"""Every loss equals its closed form, computed independently with NumPy."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.objectives import losses

R = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], np.float32)
F = np.array([2.0, 0.0, -1.5, 0.3, -6.0], np.float32)


def sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t.astype(np.float64)))


CLOSED_FORMS = {
    "minimax": (lambda r, f: -np.log(sigmoid(r)) - np.log(1 - sigmoid(f)),
                lambda f: np.log(1 - sigmoid(f))),
    "non_saturating": (lambda r, f: -np.log(sigmoid(r)) - np.log(1 - sigmoid(f)),
                       lambda f: -np.log(sigmoid(f))),
    "wasserstein": (lambda r, f: f - r, lambda f: -f),
    "hinge": (lambda r, f: np.maximum(0, 1 - r) + np.maximum(0, 1 + f), lambda f: -f),
    "least_squares": (lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f ** 2,
                      lambda f: 0.5 * (f - 1) ** 2),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_loss_matches_closed_form(name):
    loss = getattr(losses, name)()
    d_expected, g_expected = CLOSED_FORMS[name]
    d = loss.d_loss(tf.constant(R), tf.constant(F)).numpy()
    g = loss.g_loss(tf.constant(F)).numpy()
    assert d.shape == R.shape and g.shape == F.shape  # per example
    np.testing.assert_allclose(d, d_expected(R, F), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g, g_expected(F), rtol=1e-5, atol=1e-6)


def test_standard_gan_at_indifferent_discriminator():
    """D(x) = 0 everywhere: the GAN losses are log 2 per term (the value at the equilibrium)."""
    zero = tf.zeros([3])
    ns = losses.non_saturating()
    np.testing.assert_allclose(ns.d_loss(zero, zero).numpy(), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(ns.g_loss(zero).numpy(), np.log(2), rtol=1e-6)
    np.testing.assert_allclose(losses.minimax().g_loss(zero).numpy(), -np.log(2), rtol=1e-6)


def test_generator_gradients_point_to_realism():
    """Every G loss decreases as D's logit on fakes grows (G wants to look real)."""
    f = tf.Variable([0.3, -2.0])
    for name in CLOSED_FORMS:
        with tf.GradientTape() as tape:
            g = tf.reduce_sum(getattr(losses, name)().g_loss(f))
        assert np.all(tape.gradient(g, f).numpy() < 0), name
