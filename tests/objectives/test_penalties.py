"""Every penalty equals its closed form on discriminators whose input gradient is known."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.objectives import penalties
from tf_convgan.errors import ConfigError
from helpers import PrescribedNoise, two_cpu_strategy

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
        penalties.dragan_compare_gan: gamma / 2 * (np.sqrt(n ** 2 + 1e-4) - 1) ** 2,
    }
    for penalty, value in expected.items():
        out = penalty(d, REAL, FAKE, SEED, gamma=gamma).numpy()
        assert out.shape == (4,), penalty.__name__
        np.testing.assert_allclose(out, np.full(4, value), rtol=1e-5, atol=1e-6,
                                   err_msg=penalty.__name__)


def test_wgan_gp_with_gamma_2_is_gulrajani_with_lambda_1():
    """A linear D gives WGAN-GP = (||w|| - 1)^2 at every x (gamma=2: Gulrajani et al.'s lambda=1)."""
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


# Examples of very different spread: per-example, per-replica-slice and global-batch std differ.
SPREAD = tf.constant(RNG.normal(size=(4, 3, 2, 2)) * np.array([0.5, 1.0, 3.0, 6.0])[:, None, None,
                                                                                  None], tf.float32)


def _dragan_closed_form(real, std, c, gamma):
    """quadratic_d's gradient is x itself: the penalty at Kodali et al.'s x^ = real + alpha (x_p -
    real), x_p = real + c std u, is gamma/2 (||x^|| - 1)^2 with u the seeded U[0, 1) draw and alpha
    the per-example draw of the seed folded with 1."""
    u = noise.uniform(real.shape, SEED).numpy().astype(np.float64)
    alpha = noise.uniform([real.shape[0], 1, 1, 1], noise.fold_in(SEED, 1)).numpy()
    x = real.numpy().astype(np.float64)
    points = x + alpha.astype(np.float64) * (x + c * std * u - x)
    norms = np.linalg.norm(points.reshape(len(points), -1), axis=1)
    return gamma / 2 * (norms - 1) ** 2


def _recording(d_fn):
    """d_fn, and the list of the batches it is called with (eager)."""
    seen = []

    def recorded(x):
        seen.append(x.numpy())
        return d_fn(x)
    return recorded, seen


def _evaluation_points(penalty, real, source, **kwargs):
    """(penalty values, the points quadratic_d's gradient was taken at): its gradient is x, so
    the gradient recovers each point exactly."""
    d_fn, seen = _recording(quadratic_d)
    with noise.source_scope(source):
        values = penalty(d_fn, real, FAKE, SEED, **kwargs).numpy()
    assert len(seen) == 1
    gradients = penalties.input_gradients(quadratic_d, tf.constant(seen[0])).numpy()
    return values, gradients


def test_dragan_is_kodali_et_als_penalty_at_interpolates_of_the_perturbed_batch():
    """Kodali et al.'s code (DRAGAN.ipynb): X_p = X + 0.5 * X.std() * np.random.random(X.shape),
    interpolates = X + alpha * (X_p - X), alpha ~ U[0, 1) of shape [batch, 1], penalty
    lambd * mean((||grad|| - 1)^2), lambd = 10. Written out in NumPy on prescribed draws u (the
    batch's shape) and alpha (one per example): the points D's gradient is taken at and the
    penalty (gamma = 20: 2 * lambd) equal it."""
    source = PrescribedNoise(seed=3)
    x = SPREAD.numpy().astype(np.float64)
    u = source.value("uniform", list(SPREAD.shape)).astype(np.float64)
    alpha = source.value("uniform", [4, 1, 1, 1]).astype(np.float64)
    x_p = x + 0.5 * x.std() * u
    interpolates = x + alpha * (x_p - x)
    slopes = np.sqrt(np.sum(interpolates.reshape(4, -1) ** 2, axis=1))
    values, points = _evaluation_points(penalties.dragan, SPREAD, source, gamma=20.0)
    np.testing.assert_allclose(points, interpolates, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values.mean(), 10.0 * np.mean((slopes - 1.0) ** 2), rtol=1e-5)
    np.testing.assert_allclose(values, 10.0 * (slopes - 1.0) ** 2, rtol=1e-5)
    assert source.calls == {("uniform", (4, 3, 2, 2)): 1, ("uniform", (4, 1, 1, 1)): 1}
    assert alpha.max() < 0.95  # every point lies well short of x_p (the form without alpha)


def _compare_gan_points(x, u, clip):
    """compare_gan's dragan_penalty: std = sqrt(tf.nn.moments(x, all axes) variance),
    x_noisy = clip(x + std * (u - 0.5), 0, 1) (its data range [0, 1]; here `clip`)."""
    std = np.sqrt(np.mean((x - x.mean()) ** 2))
    noisy = x + std * (u - 0.5)
    return noisy if clip is None else np.clip(noisy, *clip)


@pytest.mark.parametrize("low,high", [(0.0, 1.0), (-1.0, 1.0)], ids=["unit", "signed"])
def test_dragan_compare_gan_is_compare_gans_penalty_at_clipped_centred_perturbations(low, high):
    """compare_gan's dragan_penalty written out in NumPy on a prescribed draw u: the points (no
    interpolation, x + std (u - 1/2), clipped to the data range: compare_gan's own [0, 1] for data
    in [0, 1], and the library's [-1, 1]) and lambda * mean((sqrt(1e-4 + ||g||^2) - 1)^2),
    gamma = 2 lambda. Some points are clipped."""
    source = PrescribedNoise(seed=5)
    rng = np.random.default_rng(1)
    x = rng.uniform(low, high, size=(4, 3, 2, 2))
    real = tf.constant(x, tf.float32)
    x = real.numpy().astype(np.float64)
    u = source.value("uniform", [4, 3, 2, 2]).astype(np.float64)
    expected = _compare_gan_points(x, u, (low, high))
    assert np.sum(expected != x + np.sqrt(np.mean((x - x.mean()) ** 2)) * (u - 0.5)) >= 3
    slopes = np.sqrt(1e-4 + np.sum(expected.reshape(4, -1) ** 2, axis=1))
    values, points = _evaluation_points(penalties.dragan_compare_gan, real, source, gamma=20.0,
                                        clip=(low, high))
    np.testing.assert_allclose(points, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values, 10.0 * (slopes - 1.0) ** 2, rtol=1e-5)
    assert source.calls == {("uniform", (4, 3, 2, 2)): 1}  # no interpolation weights


def test_dragan_compare_gan_without_clipping_and_with_its_own_c():
    """clip = None leaves the points unclipped; c scales the centred perturbation."""
    source = PrescribedNoise(seed=6)
    x = SPREAD.numpy().astype(np.float64)
    u = source.value("uniform", [4, 3, 2, 2]).astype(np.float64)
    expected = x + 0.5 * x.std() * (u - 0.5)
    _, points = _evaluation_points(penalties.dragan_compare_gan, SPREAD, source, clip=None, c=0.5)
    np.testing.assert_allclose(points, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip", [(1.0, -1.0), (0.0, 0.0), "0, 1", (1.0,)])
def test_dragan_compare_gan_clip_must_be_an_increasing_pair(clip):
    with pytest.raises(ConfigError, match=r"dragan_compare_gan\.clip must be None or a pair"):
        penalties.dragan_compare_gan(quadratic_d, REAL, FAKE, SEED, clip=clip)


def test_batch_std_is_numpys_std_of_the_whole_batch():
    np.testing.assert_allclose(float(penalties.batch_std(SPREAD)),
                               np.std(SPREAD.numpy().astype(np.float64)), rtol=1e-6)


def test_dragan_perturbs_real_data_by_the_std_of_the_whole_batch():
    """The default (Kodali et al.'s X + c * X.std() * U[0, 1)): one std for the whole batch."""
    std = np.std(SPREAD.numpy().astype(np.float64))
    out = penalties.dragan(quadratic_d, SPREAD, FAKE, SEED, gamma=4.0, c=0.5).numpy()
    np.testing.assert_allclose(out, _dragan_closed_form(SPREAD, std, 0.5, 4.0), rtol=1e-5)
    explicit = penalties.dragan(quadratic_d, SPREAD, FAKE, SEED, gamma=4.0, c=0.5,
                                std_over="batch").numpy()
    np.testing.assert_array_equal(explicit, out)


def test_dragan_std_over_example_perturbs_real_data_by_its_own_std():
    std = SPREAD.numpy().astype(np.float64).reshape(4, -1).std(axis=1).reshape(4, 1, 1, 1)
    out = penalties.dragan(quadratic_d, SPREAD, FAKE, SEED, gamma=4.0, c=0.5,
                           std_over="example").numpy()
    np.testing.assert_allclose(out, _dragan_closed_form(SPREAD, std, 0.5, 4.0), rtol=1e-5)


def _per_replica_rows(strategy, x):
    rows = x.shape[0] // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: x[ctx.replica_id_in_sync_group * rows:(ctx.replica_id_in_sync_group + 1) * rows])


@pytest.mark.parametrize("penalty", [penalties.dragan, penalties.dragan_compare_gan])
@pytest.mark.parametrize("std_over", ["batch", "example"])
def test_dragan_on_two_replicas_equals_one_device(std_over, penalty):
    """2 replicas, each with half of the batch: the concatenated per-replica penalties equal the
    one-device penalties of the whole batch (the std is the global batch's, all-reduced; u is drawn
    for the global batch, each replica keeping its rows)."""
    single = penalty(quadratic_d, SPREAD, FAKE, SEED, gamma=4.0, std_over=std_over)
    strategy = two_cpu_strategy()
    real, fake = _per_replica_rows(strategy, SPREAD), _per_replica_rows(strategy, FAKE)

    @tf.function
    def run(real, fake):
        return strategy.run(lambda r, f: penalty(quadratic_d, r, f, SEED, gamma=4.0,
                                                 std_over=std_over), args=(real, fake))

    mirrored = np.concatenate([t.numpy() for t in
                               strategy.experimental_local_results(run(real, fake))])
    np.testing.assert_allclose(mirrored, single.numpy(), rtol=1e-5)
    std = penalties.batch_std(SPREAD).numpy()
    halves = [penalties.batch_std(SPREAD[:2]).numpy(), penalties.batch_std(SPREAD[2:]).numpy()]
    assert min(abs(h - std) for h in halves) > 0.1 * std  # a per-slice std would not pass


def test_dragan_batch_std_inside_a_cond_under_mirrored_strategy_says_what_to_change():
    """MirroredStrategy refuses an all-reduce inside a tf.cond branch (lazy regularization):
    a ConfigError naming dragan.std_over; the per-example form works there. (autograph=False:
    AutoGraph would re-raise the ConfigError as a StagingError with the same message.)"""
    strategy = two_cpu_strategy()
    real, fake = _per_replica_rows(strategy, SPREAD), _per_replica_rows(strategy, FAKE)

    def lazily(std_over):
        @tf.function(autograph=False)
        def run(real, fake):
            def step(r, f):
                return tf.cond(tf.constant(True),
                               lambda: penalties.dragan(quadratic_d, r, f, SEED, std_over=std_over),
                               lambda: tf.zeros([2]))
            return strategy.run(step, args=(real, fake))
        return run(real, fake)

    with pytest.raises(ConfigError, match="dragan.std_over = 'example'"):
        lazily("batch")
    out = np.concatenate([t.numpy() for t in strategy.experimental_local_results(
        lazily("example"))])
    np.testing.assert_allclose(
        out, penalties.dragan(quadratic_d, SPREAD, FAKE, SEED, std_over="example").numpy(),
        rtol=1e-5)


@pytest.mark.parametrize("penalty", [penalties.dragan, penalties.dragan_compare_gan])
def test_dragan_std_over_must_be_batch_or_example(penalty):
    with pytest.raises(ConfigError, match=rf"{penalty.__name__}\.std_over must be one of "
                                          r"\('batch', 'example'\), got 'replica'"):
        penalty(quadratic_d, REAL, FAKE, SEED, std_over="replica")


def test_penalty_is_differentiable_wrt_discriminator_weights():
    """d/dw of R1 for linear D is gamma * w (double backprop through the input gradient)."""
    w = tf.Variable(W_BIG, dtype=tf.float32)
    d = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(penalties.r1(d, REAL, FAKE, gamma=5.0))
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 5.0 * W_BIG, rtol=1e-5)


@pytest.mark.parametrize("penalty", [penalties.r1, penalties.r2, penalties.r1_r2,
                                     penalties.wgan_gp, penalties.wgan_gp_one_sided,
                                     penalties.wgan_gp0, penalties.dragan,
                                     penalties.dragan_compare_gan])
def test_negative_gamma_is_rejected_by_name(penalty):
    with pytest.raises(ConfigError, match=rf"{penalty.__name__}\.gamma must be .*>= 0, got -1"):
        penalty(quadratic_d, REAL, FAKE, SEED, gamma=-1.0)
