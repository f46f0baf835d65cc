"""A run's objective read back from its operative config as data (run_dir.objective): every
term the step composes, with the config's literal hyperparameters; a term that cannot be
rebuilt is refused, naming it."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.objectives import augment, consistency, instance_noise, losses, penalties
from tf_convgan.run_dir.objective import read_objective
from tf_convgan.run_dir.run_config import RunConfigError, parse_run_config

EVERY_TERM = """
SIGMA = 0.5
GAN.loss = @hinge()
GAN.penalty = @wgan_gp
wgan_gp.gamma = 3.0
wgan_gp.g0 = 0.5
GAN.instance_noise = @sigma_schedule
sigma_schedule.sigma = %SIGMA
sigma_schedule.final_sigma = 0.1
sigma_schedule.decay_steps = 10
GAN.consistency = @bcr
bcr.lambda_real = 2.0
bcr.lambda_fake = 3.0
bcr.augment = @shift_flip
shift_flip.max_shift = 2
shift_flip.flip_prob = 0.25
GAN.latent_consistency = @zcr()
zcr.lambda_dis = 4.0
zcr.lambda_gen = 0.7
zcr.sigma_noise = 0.2
GAN.d_steps = 2
GAN.lazy_interval = 4
GAN.consensus_gamma = None
train.seed = 7
"""


def _objective(text):
    return read_objective(parse_run_config(text, "run/operative_config.gin"))


def _d_fn(images):
    return tf.reduce_sum(tf.sin(3.0 * images), axis=[1, 2, 3])


def test_every_term_is_rebuilt_with_the_configs_hyperparameters():
    objective = _objective(EVERY_TERM)
    assert objective.loss == losses.hinge()
    assert objective.penalty.func is penalties.wgan_gp.__wrapped__
    assert objective.penalty.keywords == {"gamma": 3.0, "g0": 0.5}
    assert (objective.seed, objective.d_steps, objective.lazy_interval,
            objective.consensus_gamma) == (7, 2, 4, None)
    # sigma(step) of the schedule: 0.5 at 0, linearly to 0.1 at step 10, then constant.
    for step, sigma in ((0, 0.5), (5, 0.3), (10, 0.1), (20, 0.1)):
        np.testing.assert_allclose(float(objective.instance_noise(step)), sigma, rtol=1e-6)
    # bCR with its weights and shift_flip's hyperparameters: the same values as the term
    # called directly with them (another max_shift or flip_prob draws other images).
    rng = np.random.default_rng(0)
    real, fake = (tf.constant(rng.uniform(-1, 1, (4, 8, 8, 3)), tf.float32) for _ in range(2))
    seed = tf.constant([3, 4], tf.int64)
    want = consistency.bcr(_d_fn, real, fake, seed, lambda_real=2.0, lambda_fake=3.0,
                           augment=lambda x, s: augment.shift_flip(x, s, max_shift=2,
                                                                   flip_prob=0.25))
    np.testing.assert_array_equal(objective.consistency(_d_fn, real, fake, seed=seed), want)
    default = consistency.bcr(_d_fn, real, fake, seed, lambda_real=2.0, lambda_fake=3.0)
    assert not np.allclose(want, default)
    # zCR's pieces with its weights.
    z = tf.constant(rng.normal(size=(4, 3)), tf.float32)
    want = consistency.zcr(lambda_dis=4.0, lambda_gen=0.7, sigma_noise=0.2)
    np.testing.assert_array_equal(objective.latent_consistency.perturb(z, seed),
                                  want.perturb(z, seed))
    np.testing.assert_array_equal(objective.latent_consistency.g_term(real, fake),
                                  want.g_term(real, fake))
    np.testing.assert_array_equal(objective.latent_consistency.d_term(_d_fn, real, fake),
                                  want.d_term(_d_fn, real, fake))


@pytest.mark.parametrize("loss,penalty,bindings", [
    ("least_squares", "dragan", {"gamma": 4.0, "c": 0.25, "std_over": "example"}),
    ("least_squares_sigmoid", "dragan_compare_gan",
     {"gamma": 4.0, "c": 0.5, "clip": (0.0, 1.0)}),
])
def test_both_lsgan_and_dragan_forms_are_rebuilt_by_name(loss, penalty, bindings):
    """Mao et al.'s and compare_gan's least squares, Kodali et al.'s and compare_gan's DRAGAN:
    each name rebuilds its own function with the config's literals (another form gives other
    values on the same seed)."""
    text = f"GAN.loss = @{loss}()\nGAN.penalty = @{penalty}\n" + "".join(
        f"{penalty}.{key} = {value!r}\n" for key, value in bindings.items())
    objective = _objective(text)
    assert objective.loss == getattr(losses, loss)()
    function = getattr(penalties, penalty)
    assert objective.penalty.func is function.__wrapped__
    assert objective.penalty.keywords == bindings
    real = tf.constant(np.random.default_rng(2).uniform(-1, 1, (4, 8, 8, 3)), tf.float32)
    seed = tf.constant([4, 5], tf.int64)
    got = objective.penalty(_d_fn, real, real, seed).numpy()
    np.testing.assert_array_equal(got, function(_d_fn, real, real, seed, **bindings).numpy())
    other = penalties.dragan if penalty == "dragan_compare_gan" else penalties.dragan_compare_gan
    assert not np.allclose(got, other(_d_fn, real, real, seed, gamma=4.0).numpy())


def test_unbound_terms_keep_the_gans_defaults():
    objective = _objective("GAN.consistency = @cr\nGAN.seed = 3\n")
    assert objective.loss == losses.non_saturating()
    assert (objective.penalty, objective.instance_noise, objective.latent_consistency) == (
        None, None, None)
    assert (objective.seed, objective.d_steps, objective.lazy_interval) == (3, 1, None)
    # cr's default augmentation (shift_flip) with shift_flip's defaults.
    real = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, 8, 8, 3)), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    np.testing.assert_array_equal(objective.consistency(_d_fn, real, real, seed=seed),
                                  consistency.cr(_d_fn, real, real, seed))
    # The schedule's defaults: constant sigma 1.
    objective = _objective("GAN.instance_noise = @sigma_schedule\n")
    assert float(objective.instance_noise(100)) == float(instance_noise.sigma_schedule(100))


def test_what_gin_ignores_is_not_read():
    """lazy_interval without a penalty is ignored (as GAN ignores it): not an objective."""
    assert _objective("GAN.lazy_interval = 4\n").lazy_interval is None


@pytest.mark.parametrize("text,term,detail", [
    ("GAN.consistency = @s/cr\n", "GAN.consistency", "@s/cr"),
    ("GAN.consistency = @cr\ncr.augment = @s/shift_flip\n", "GAN.consistency",
     "cr.augment = @s/shift_flip"),
    ("GAN.consistency = @bcr\nbcr.augment = @r1\n", "GAN.consistency", "bcr.augment = @r1"),
    ("GAN.consistency = @cr\ncr.lambda_cr = @r1\n", "GAN.consistency", "cr.lambda_cr = @r1"),
    ("GAN.instance_noise = @exponential_annealing\n", "GAN.instance_noise",
     "@exponential_annealing"),
    ("GAN.instance_noise = @sigma_schedule()\n", "GAN.instance_noise", "@sigma_schedule()"),
    ("GAN.instance_noise = @sigma_schedule\nsigma_schedule.sigma = @r1\n",
     "GAN.instance_noise", "sigma_schedule.sigma = @r1"),
    ("GAN.latent_consistency = @zcr\n", "GAN.latent_consistency", "@zcr"),
    ("GAN.penalty = @roth\n", "GAN.penalty", "@roth"),
    ("GAN.penalty = @d/r1\n", "GAN.penalty", "@d/r1"),
    ("GAN.loss = @non_saturating\n", "GAN.loss", "@non_saturating"),
])
def test_a_term_that_cannot_be_rebuilt_is_refused_by_name(text, term, detail):
    with pytest.raises(RunConfigError) as raised:
        _objective(text)
    message = str(raised.value)
    assert message.startswith(f"run/operative_config.gin: {term} cannot be rebuilt"), message
    assert detail in message, message
