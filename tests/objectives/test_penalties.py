"""Every penalty equals its closed form on discriminators whose input gradient is known."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.objectives import penalties
from tf_convgan.errors import ConfigError

RNG = np.random.default_rng(0)
REAL = tf.constant(RNG.normal(size=(4, 3, 2, 2)), tf.float32)
FAKE = tf.constant(RNG.normal(size=(4, 3, 2, 2)), tf.float32)
SEED = tf.constant([3, 11], tf.int64)


def linear_d(w, b=0.7):
    """D(x) = w . x + b: grad_x D = w at every x."""
    w = tf.constant(w, tf.float32)
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]) + b


def quadratic_d(x):
    """D(x) = ||x||^2 / 2: grad_x D = x, so the penalty reveals where it was evaluated."""
    return 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])


W_BIG = RNG.normal(size=(3, 2, 2)) * 2.0      # ||w|| > 1
W_SMALL = W_BIG / np.linalg.norm(W_BIG) * 0.4  # ||w|| = 0.4


@pytest.mark.parametrize("w", [W_BIG, W_SMALL], ids=["big", "small"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 20.0])
def test_linear_discriminator_closed_forms(w, gamma):
    d = linear_d(w)
    n = np.linalg.norm(w)
    expected = {
        penalties.r1: gamma / 2 * n ** 2,
        penalties.r2: gamma / 2 * n ** 2,
        penalties.r1_r2: gamma * n ** 2,
        penalties.wgan_gp: gamma / 2 * (n - 1) ** 2,
        penalties.wgan_gp_one_sided: gamma / 2 * max(n - 1, 0) ** 2,
        penalties.wgan_gp0: gamma / 2 * n ** 2,
        penalties.dragan: gamma / 2 * (n - 1) ** 2,
    }
    for penalty, value in expected.items():
        out = penalty(d, REAL, FAKE, SEED, gamma=gamma).numpy()
        assert out.shape == (4,), penalty.__name__
        np.testing.assert_allclose(out, np.full(4, value), rtol=1e-5, atol=1e-6,
                                   err_msg=penalty.__name__)


def test_wgan_gp_with_gamma_2_is_gulrajani_with_lambda_1():
    """The issue's example: linear D gives WGAN-GP = (||w|| - 1)^2 at every x (gamma=2)."""
    out = penalties.wgan_gp(linear_d(W_BIG), REAL, FAKE, SEED, gamma=2.0).numpy()
    np.testing.assert_allclose(out, (np.linalg.norm(W_BIG) - 1) ** 2, rtol=1e-5)


def test_gan_stability_reg_param_convention():
    """GAN_stability: reg = reg_param * mean ||grad||^2 (no 1/2), so reg_param=10 is gamma=20."""
    grads = REAL.numpy().reshape(4, -1)
    gan_stability_reg = 10.0 * np.mean(np.sum(grads ** 2, axis=1))
    ours = penalties.r1(quadratic_d, REAL, FAKE, gamma=20.0).numpy().mean()
    np.testing.assert_allclose(ours, gan_stability_reg, rtol=1e-5)


def test_r1_r2_are_per_example_on_their_own_data():
    sq = lambda x: np.sum(x.numpy().reshape(4, -1) ** 2, axis=1)  # noqa: E731
    np.testing.assert_allclose(penalties.r1(quadratic_d, REAL, FAKE, gamma=3.0).numpy(),
                               1.5 * sq(REAL), rtol=1e-5)
    np.testing.assert_allclose(penalties.r2(quadratic_d, REAL, FAKE, gamma=3.0).numpy(),
                               1.5 * sq(FAKE), rtol=1e-5)
    np.testing.assert_allclose(penalties.r1_r2(quadratic_d, REAL, FAKE, gamma=3.0).numpy(),
                               1.5 * (sq(REAL) + sq(FAKE)), rtol=1e-5)


def test_interpolates_are_on_the_segment_with_the_seeded_weights():
    eps = noise.uniform([4, 1, 1, 1], SEED).numpy()
    expected_points = eps * REAL.numpy() + (1 - eps) * FAKE.numpy()
    np.testing.assert_allclose(penalties.interpolate(REAL, FAKE, SEED).numpy(),
                               expected_points, rtol=1e-6)
    norms = np.linalg.norm(expected_points.reshape(4, -1), axis=1)
    np.testing.assert_allclose(penalties.wgan_gp0(quadratic_d, REAL, FAKE, SEED, gamma=4.0),
                               2.0 * norms ** 2, rtol=1e-5)
    np.testing.assert_allclose(penalties.wgan_gp(quadratic_d, REAL, FAKE, SEED, gamma=4.0),
                               2.0 * (norms - 1) ** 2, rtol=1e-5)
    np.testing.assert_allclose(
        penalties.wgan_gp_one_sided(quadratic_d, REAL, FAKE, SEED, gamma=4.0),
        2.0 * np.maximum(norms - 1, 0) ** 2, rtol=1e-5)


def test_dragan_perturbs_real_data_by_its_own_std():
    u = noise.uniform(REAL.shape, SEED).numpy()
    std = REAL.numpy().reshape(4, -1).std(axis=1).reshape(4, 1, 1, 1)
    points = REAL.numpy() + 0.5 * std * u
    norms = np.linalg.norm(points.reshape(4, -1), axis=1)
    out = penalties.dragan(quadratic_d, REAL, FAKE, SEED, gamma=4.0, c=0.5).numpy()
    np.testing.assert_allclose(out, 2.0 * (norms - 1) ** 2, rtol=1e-5)


def test_penalty_is_differentiable_wrt_discriminator_weights():
    """d/dw of R1 for linear D is gamma * w (double backprop through the input gradient)."""
    w = tf.Variable(W_BIG, dtype=tf.float32)
    d = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(penalties.r1(d, REAL, FAKE, gamma=5.0))
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 5.0 * W_BIG, rtol=1e-5)


@pytest.mark.parametrize("penalty", [penalties.r1, penalties.r2, penalties.r1_r2,
                                     penalties.wgan_gp, penalties.wgan_gp_one_sided,
                                     penalties.wgan_gp0, penalties.dragan])
def test_negative_gamma_is_rejected_by_name(penalty):
    with pytest.raises(ConfigError, match=rf"{penalty.__name__}\.gamma must be .*>= 0, got -1"):
        penalty(quadratic_d, REAL, FAKE, SEED, gamma=-1.0)
