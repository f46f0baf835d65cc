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
    "least_squares_sigmoid": (lambda r, f: 0.5 * (sigmoid(r) - 1) ** 2 + 0.5 * sigmoid(f) ** 2,
                              lambda f: 0.5 * (sigmoid(f) - 1) ** 2),
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


def test_least_squares_squares_the_raw_logits_as_mao_et_al():
    """Mao et al.'s LSGAN (a = 0, b = c = 1) on D's linear output: at r = 3, f = -2 the D loss is
    (3 - 1)^2 / 2 + (-2)^2 / 2 = 4 and the G loss (-2 - 1)^2 / 2 = 4.5 (no sigmoid)."""
    loss = losses.least_squares()
    assert loss.d_loss(tf.constant([3.0]), tf.constant([-2.0])).numpy() == pytest.approx([4.0])
    assert loss.g_loss(tf.constant([-2.0])).numpy() == pytest.approx([4.5])


def test_least_squares_sigmoid_squares_the_sigmoid_as_compare_gan():
    """compare_gan's least_squares on d = sigmoid(logits): d_loss = 0.5 (mean (d_real - 1)^2 +
    mean d_fake^2), g_loss = 0.5 mean (d_fake - 1)^2, written out here on the batch R, F: the
    batch means of the per-example losses equal them. At r = 3, f = -2 (hand values) the D loss
    is (sigma(3) - 1)^2 / 2 + sigma(-2)^2 / 2 = 0.0082293, bounded by 1, unlike Mao et al.'s 4."""
    loss = losses.least_squares_sigmoid()
    d_real, d_fake = sigmoid(R), sigmoid(F)
    compare_gan_d = 0.5 * (np.mean((d_real - 1.0) ** 2) + np.mean(d_fake ** 2))
    compare_gan_g = 0.5 * np.mean((d_fake - 1.0) ** 2)
    np.testing.assert_allclose(np.mean(loss.d_loss(tf.constant(R), tf.constant(F)).numpy()),
                               compare_gan_d, rtol=1e-6)
    np.testing.assert_allclose(np.mean(loss.g_loss(tf.constant(F)).numpy()), compare_gan_g,
                               rtol=1e-6)
    assert loss.d_loss(tf.constant([3.0]), tf.constant([-2.0])).numpy() == pytest.approx(
        [0.0082293], rel=1e-4)


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
