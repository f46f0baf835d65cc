"""CR, bCR and zCR against closed forms on linear networks; bCR with a known shift on a non-linear
D against the shift made by hand."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.objectives import augment
from tf_convgan.objectives import consistency
from tf_convgan.errors import ConfigError
from tf_convgan.networks import build, sndcgan_discriminator

RNG = np.random.default_rng(1)
REAL = tf.constant(RNG.normal(size=(4, 8, 8, 3)), tf.float32)
FAKE = tf.constant(RNG.normal(size=(4, 8, 8, 3)), tf.float32)
W = RNG.normal(size=(8, 8, 3)).astype(np.float32)
SEED = tf.constant([7, 2], tf.int64)


def linear_d(w=W, b=0.3):
    w = tf.constant(w)
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]) + b


def _eps(seed, shape):
    """The Gaussian-noise augmentation's eps for `seed` (augment folds in its purpose 3)."""
    return noise.normal(shape, noise.fold_in(seed, 3)).numpy()


def _dot(w, x):
    return np.sum(x * w, axis=(1, 2, 3))


def test_cr_with_gaussian_noise_on_a_linear_d_is_lambda_w_eps_squared():
    """D(x) - D(x + sigma eps) = -sigma <w, eps>: CR = lambda sigma^2 <w, eps>^2 exactly."""
    aug = lambda x, s: augment.gaussian_noise(x, s, sigma=0.1)  # noqa: E731
    out = consistency.cr(linear_d(), REAL, FAKE, SEED, lambda_cr=10.0, augment=aug).numpy()
    expected = 10.0 * (0.1 * _dot(W, _eps(SEED, REAL.shape))) ** 2
    assert out.shape == (4,)
    np.testing.assert_allclose(out, expected, rtol=1e-4)


def test_bcr_is_the_weighted_sum_over_real_and_fake_with_their_own_draws():
    aug = lambda x, s: augment.gaussian_noise(x, s, sigma=0.2)  # noqa: E731
    out = consistency.bcr(linear_d(), REAL, FAKE, SEED, lambda_real=3.0, lambda_fake=5.0,
                          augment=aug).numpy()
    eps_real = _eps(noise.fold_in(SEED, 0), REAL.shape)
    eps_fake = _eps(noise.fold_in(SEED, 1), FAKE.shape)
    expected = 3.0 * (0.2 * _dot(W, eps_real)) ** 2 + 5.0 * (0.2 * _dot(W, eps_fake)) ** 2
    np.testing.assert_allclose(out, expected, rtol=1e-4)
    assert not np.allclose(eps_real, eps_fake)


def test_cr_with_a_known_shift_is_the_logit_gap_to_the_manual_roll():
    """With T = shift by (1, -2) (deterministic): CR = lambda (<w, x> - <w, roll(x)>)^2."""
    dy, dx = np.ones(4, np.int32), -2 * np.ones(4, np.int32)
    aug = lambda x, s: augment.shift(x, dy, dx, 2)  # noqa: E731
    out = consistency.cr(linear_d(), REAL, FAKE, SEED, lambda_cr=2.0, augment=aug).numpy()
    rolled = np.roll(REAL.numpy(), (1, -2), axis=(1, 2))
    rolled[:, :1] = 0
    rolled[:, :, -2:] = 0
    np.testing.assert_allclose(out, 2.0 * (_dot(W, REAL.numpy()) - _dot(W, rolled)) ** 2,
                               rtol=1e-4)


def _shifted_by_hand(x, dy, dx):
    """x translated by (dy, dx) pixels, dy >= 0 >= dx, the vacated pixels 0 (np.roll + zeroing)."""
    rolled = np.roll(x, (dy, dx), axis=(1, 2))
    rolled[:, :dy] = 0
    rolled[:, :, rolled.shape[2] + dx:] = 0
    return rolled


def test_bcr_with_a_known_shift_weights_the_real_and_fake_gaps_by_their_lambdas():
    """bCR with T = shift by (1, -2) for every example (deterministic) on a non-linear D (SNDCGAN):
    per example lambda_real (D(x) - D(T x))^2 + lambda_fake (D(f) - D(T f))^2 with T made by hand.
    The lambdas differ and so do the two gaps: the real and fake halves swapped (or either half
    on the other batch) gives other numbers."""
    keras.utils.set_random_seed(0)
    d = build(sndcgan_discriminator(resolution=8))
    d_fn = lambda x: d(x, training=False)  # noqa: E731
    dy, dx = np.ones(4, np.int32), -2 * np.ones(4, np.int32)
    aug = lambda x, s: augment.shift(x, dy, dx, 2)  # noqa: E731
    out = consistency.bcr(d_fn, REAL, FAKE, SEED, lambda_real=2.0, lambda_fake=7.0,
                          augment=aug).numpy()

    def gap(x):
        x = x.numpy()
        return (d_fn(x).numpy().astype(np.float64)
                - d_fn(_shifted_by_hand(x, 1, -2)).numpy()) ** 2

    gap_real, gap_fake = gap(REAL), gap(FAKE)
    assert out.shape == (4,)
    assert np.all(gap_real > 0) and np.all(gap_fake > 0)
    np.testing.assert_allclose(out, 2.0 * gap_real + 7.0 * gap_fake, rtol=1e-4)
    for wrong in (7.0 * gap_real + 2.0 * gap_fake, 9.0 * gap_real, 9.0 * gap_fake):
        assert not np.allclose(out, wrong, rtol=1e-2, atol=0)  # swapped halves, one batch twice


def test_cr_gradient_flows_through_both_logits():
    """d/dw lambda <w, delta>^2 = 2 lambda <w, delta> delta with delta = x - T(x) = -sigma eps."""
    w = tf.Variable(W)
    d = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    aug = lambda x, s: augment.gaussian_noise(x, s, sigma=0.1)  # noqa: E731
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(consistency.cr(d, REAL, FAKE, SEED, lambda_cr=4.0, augment=aug))
    delta = -0.1 * _eps(SEED, REAL.shape).astype(np.float64)
    expected = np.sum(2 * 4.0 * _dot(W, delta)[:, None, None, None] * delta, axis=0)
    # atol: the step forms <w, delta> as D(x) - D(T(x)) in float32, |D| ~ 10 and |<w, delta>| ~ 1
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_zcr_terms_on_linear_networks():
    """Linear G(z) = z A: G(z) - G(z + dz) = -dz A, so the G term is -lambda_gen mean((dz A)^2)
    (mean over the example's elements) and the D term lambda_dis <w, dz A>^2, with
    dz = sigma_noise * N(0, I) of the seed."""
    a = RNG.normal(size=(5, 8 * 8 * 3)).astype(np.float32)
    z = tf.constant(RNG.normal(size=(4, 5)), tf.float32)
    zc = consistency.zcr(lambda_dis=5.0, lambda_gen=0.5, sigma_noise=0.03)
    z_p = zc.perturb(z, SEED)
    dz = 0.03 * noise.normal([4, 5], SEED).numpy()
    np.testing.assert_allclose(z_p.numpy() - z.numpy(), dz, rtol=1e-4, atol=1e-7)
    g = lambda z: tf.reshape(tf.matmul(z, a), [-1, 8, 8, 3])  # noqa: E731
    fake, fake_p = g(z), g(z_p)
    diff = (dz @ a).reshape(4, 8, 8, 3)
    np.testing.assert_allclose(zc.g_term(fake, fake_p).numpy(),
                               -0.5 * np.mean(diff ** 2, axis=(1, 2, 3)), rtol=1e-3)
    np.testing.assert_allclose(zc.d_term(linear_d(), fake, fake_p).numpy(),
                               5.0 * _dot(W, diff) ** 2, rtol=2e-2, atol=1e-6)


def test_zcr_g_term_is_the_mean_over_elements_at_32x32x3():
    """StudioGAN's convention, with which lambda_gen = 0.5 was tuned: -lambda_gen times the mean
    over the example's H * W * C elements of (G(z) - G(z + dz))^2 (a sum over pixels would be
    3072 times larger at 32x32x3). Linear G(z) = z A; the expected values are computed in float64
    NumPy from the same two outputs."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(6, 32 * 32 * 3)).astype(np.float32)
    z = rng.normal(size=(3, 6)).astype(np.float32)
    dz = (0.03 * rng.normal(size=(3, 6))).astype(np.float32)
    g = lambda z: tf.reshape(tf.matmul(tf.constant(z), a), [-1, 32, 32, 3])  # noqa: E731
    fake, fake_p = g(z), g(z + dz)
    out = consistency.zcr_g(fake, fake_p, lambda_gen=0.5).numpy()
    diff = fake.numpy().astype(np.float64) - fake_p.numpy().astype(np.float64)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, -0.5 * np.mean(diff ** 2, axis=(1, 2, 3)), rtol=1e-5)
    # and the closed form -lambda_gen mean((dz A)^2), to the float32 rounding of G's outputs
    closed = (dz.astype(np.float64) @ a.astype(np.float64)).reshape(3, 32, 32, 3)
    np.testing.assert_allclose(out, -0.5 * np.mean(closed ** 2, axis=(1, 2, 3)), rtol=1e-3)


def test_zcr_d_term_is_one_squared_logit_gap_per_example_at_32x32x3():
    """D's term is on D's logits, one scalar per example: lambda_dis (D(G(z)) - D(G(z + dz)))^2,
    no reduction over pixels (StudioGAN: MSE of the [B] logits, the batch mean taken by the
    step)."""
    rng = np.random.default_rng(6)
    w = rng.normal(size=(32, 32, 3)).astype(np.float32)
    fake = tf.constant(rng.normal(size=(3, 32, 32, 3)), tf.float32)
    fake_p = fake + tf.constant(0.01 * rng.normal(size=(3, 32, 32, 3)), tf.float32)
    d = linear_d(w, b=0.0)
    gap = d(fake).numpy().astype(np.float64) - d(fake_p).numpy()
    out = consistency.zcr_d(d, fake, fake_p, lambda_dis=5.0).numpy()
    assert out.shape == (3,)
    np.testing.assert_allclose(out, 5.0 * gap ** 2, rtol=1e-6)


@pytest.mark.parametrize("call,param", [
    (lambda: consistency.cr(linear_d(), REAL, FAKE, SEED, lambda_cr=-1.0), "cr.lambda_cr"),
    (lambda: consistency.bcr(linear_d(), REAL, FAKE, SEED, lambda_fake=-2.0), "bcr.lambda_fake"),
    (lambda: consistency.bcr(linear_d(), REAL, FAKE, SEED, augment="flip"), "bcr.augment"),
    (lambda: consistency.zcr(lambda_gen=-0.5), "zcr.lambda_gen"),
    (lambda: consistency.zcr(sigma_noise=float("inf")), "zcr.sigma_noise"),
])
def test_bad_hyperparameters_raise_by_name(call, param):
    with pytest.raises(ConfigError, match=param):
        call()
