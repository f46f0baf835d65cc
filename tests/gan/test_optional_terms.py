"""The optional terms inside GAN.train_step (consistency regularization: CR/bCR with
augmentations and zCR; instance noise; lazy regularization: lazy R1; ConOpt): each logged term
equals an independent computation; 2 replicas == 1 device and jit_compile=True for every term."""
import functools

import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.objectives import augment
from tf_convgan.objectives import consistency
from tf_convgan.objectives import instance_noise
from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from tf_convgan.errors import ConfigError
from helpers import (assert_close_per_tensor, assert_two_replicas_equal_one_device, make_gan,
                     random_batch, run_eager_steps, run_steps, weights)

SCHEDULE = functools.partial(instance_noise.sigma_schedule, sigma=0.2, final_sigma=0.0,
                             decay_steps=4)
BCR = functools.partial(consistency.bcr, lambda_real=10.0, lambda_fake=10.0,
                        augment=functools.partial(augment.shift_flip_cutout, max_shift=2, size=8))
# Every D/G-side term at once (lazy R1 with k = 2 over 2 D steps takes both branches);
# ConOpt is its own step and is checked separately.
ALL_TERMS = dict(penalty=penalties.r1, lazy_interval=2, consistency=BCR,
                 latent_consistency=consistency.zcr(), instance_noise=SCHEDULE)
CONOPT = dict(consensus_gamma=1.0, penalty=penalties.r1, instance_noise=SCHEDULE)
# Under XLA, ConOpt with a gradient penalty needs third derivatives, and TF has no gradient for
# XlaDynamicUpdateSlice (XLA's gradient of tf.slice, in this ResNet's pooling): without a penalty.
CONOPT_XLA = dict(consensus_gamma=1.0, instance_noise=SCHEDULE)


def _real_labels(seed=0):
    real, labels = random_batch(4, seed=seed)
    return tf.constant(real[:, 0]), tf.constant(labels[:, 0])


def test_logged_terms_equal_independent_computations():
    """One eager D step and G step: `cr`, `zcr_d`, `zcr_g` and the noisy logits recomputed from
    the step's seeds with the weights before the update."""
    gan = make_gan(consistency=BCR, latent_consistency=consistency.zcr(sigma_noise=0.5),
                   instance_noise=SCHEDULE)
    gan.step_counter.assign(2)  # sigma(2) = 0.1
    real, labels = _real_labels()
    seed = tf.constant([5, 8], tf.int64)
    d = lambda x: gan.discriminator(x, labels, training=True)  # noqa: E731
    z = noise.normal([4, gan.generator.z_dim], noise.fold_in(seed, 0))
    fake = gan.generator(z, labels, training=True)
    fake_p = gan.generator(z + 0.5 * noise.normal(z.shape, noise.fold_in(seed, 4)), labels,
                           training=True)

    def noisy(x, s):
        return x + 0.1 * noise.normal(x.shape, noise.fold_in(s, 5))

    noisy_real, noisy_fake = noisy(real, noise.fold_in(seed, 0)), noisy(fake, noise.fold_in(seed, 1))
    expected = {"d_real_logits": tf.reduce_mean(d(noisy_real)),
                "cr": tf.reduce_mean(BCR(d, noisy_real, noisy_fake, noise.fold_in(seed, 3))),
                "zcr_d": tf.reduce_mean(5.0 * tf.square(d(fake) - d(fake_p)))}
    logs = gan.discriminator_step(real, labels, seed)
    for name, value in expected.items():
        np.testing.assert_allclose(float(logs[name]), float(value), rtol=1e-4, err_msg=name)
    assert float(logs["cr"]) > 0 and float(logs["zcr_d"]) > 0
    np.testing.assert_allclose(float(logs["instance_noise_sigma"]), 0.1, rtol=1e-6)

    z = noise.normal([4, gan.generator.z_dim], noise.fold_in(seed, 2))
    dz = 0.5 * noise.normal(z.shape, noise.fold_in(seed, 4))
    diff = gan.generator(z, labels, training=True) - gan.generator(z + dz, labels, training=True)
    expected_g = -0.5 * tf.reduce_mean(tf.reduce_mean(tf.square(diff), axis=[1, 2, 3]))
    logs = gan.generator_step(labels, seed)
    np.testing.assert_allclose(float(logs["zcr_g"]), float(expected_g), rtol=1e-4)
    assert float(logs["zcr_g"]) < 0


@pytest.mark.parametrize("kwargs", [ALL_TERMS, CONOPT], ids=["cr_zcr_noise_lazy", "conopt"])
def test_two_replicas_equal_one_device(kwargs):
    """One step (two D steps: the lazy penalty is due on the first, skipped on the second)."""
    network = "resnet"
    d_steps = 1 if "consensus_gamma" in kwargs else 2
    batches = [random_batch(8, d_steps=d_steps, seed=s) for s in (0,)]
    single_logs = assert_two_replicas_equal_one_device(lambda strategy: make_gan(
        network, strategy=strategy, d_steps=d_steps, ema_beta=0.9, **kwargs), batches)
    terms = {"consensus"} if d_steps == 1 else {"cr", "zcr_d", "zcr_g", "penalty"}
    assert terms <= set(single_logs) and "instance_noise_sigma" in single_logs


class _SeedBlindNoise(noise.PhiloxNoise):
    """Draws as PhiloxNoise, but from one fixed seed whatever seed the step asks for."""

    def normal(self, per_replica_shape, seed, dtype=tf.float32):
        return super().normal(per_replica_shape, tf.constant([1, 2], tf.int64), dtype)

    def uniform(self, per_replica_shape, seed, dtype=tf.float32):
        return super().uniform(per_replica_shape, tf.constant([3, 4], tf.int64), dtype)


@pytest.mark.parametrize("kwargs", [dict(ALL_TERMS, penalty=penalties.dragan),
                                    dict(CONOPT, penalty=penalties.wgan_gp)],
                         ids=["cr_zcr_noise_lazy_dragan", "conopt_wgan_gp"])
def test_every_draw_comes_from_the_noise_source(kwargs):
    """With a source that ignores the seed, GAN.seed 0 and 7 train identically: no draw of the
    step (z, the penalty's perturbations or interpolation weights, augmentations, dz, instance
    noise) bypasses GAN.noise_source; with the default source the seed matters."""
    d_steps = 1 if "consensus_gamma" in kwargs else 2
    batch = random_batch(4, d_steps=d_steps)
    results = []
    for seed, source in ((0, _SeedBlindNoise()), (7, _SeedBlindNoise()), (7, None)):
        gan = make_gan(d_steps=d_steps, noise_source=source, **kwargs)
        gan.seed = seed
        run_eager_steps(gan, [batch])
        results.append(weights(gan))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(results[1], results[2]))


@pytest.mark.parametrize("kwargs", [
    pytest.param(ALL_TERMS, id="cr_zcr_noise_lazy"),
    pytest.param(CONOPT_XLA, id="conopt", marks=pytest.mark.slow)])
def test_step_compiles_with_xla_and_matches(kwargs):
    """Every term inside the full step compiled with XLA (jit_compile=True) equals the uncompiled
    step (run eagerly) to 1e-5 of every weight tensor (+ 1e-8 for biases, which start at 0), with
    the same draws (augmentations, dz, instance noise; see tf_convgan.noise), and trains: weights
    that move, every term logged with its sign."""
    d_steps = 1 if "consensus_gamma" in kwargs else 2
    results, all_logs = [], []
    for jit in (False, True):
        gan = make_gan(optimizer=lambda: optimizers.sgd(learning_rate=0.05), ema_beta=0.5,
                       d_steps=d_steps, **kwargs)
        initial = weights(gan)
        batches = [random_batch(4, d_steps=d_steps)]
        all_logs.append(run_steps(gan, batches, jit_compile=True) if jit
                        else run_eager_steps(gan, batches))
        results.append(weights(gan))
    assert_close_per_tensor(results[1], results[0], rtol=1e-5, atol=1e-8)
    moved = [not np.allclose(w0, w1) for w0, w1 in zip(initial, results[1])]
    assert sum(moved) >= len(moved) // 2
    graph_logs, logs = all_logs
    assert set(logs) == set(graph_logs)
    for name in logs:
        np.testing.assert_allclose(logs[name], graph_logs[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    if d_steps == 1:
        assert logs["consensus"] > 0
    else:  # the lazy penalty is due on D step 0 of 2: logged mean = (2 p + 0) / 2 > 0
        assert logs["cr"] > 0 and logs["zcr_d"] > 0 and logs["zcr_g"] < 0 and logs["penalty"] > 0
    np.testing.assert_allclose(logs["instance_noise_sigma"], 0.2, rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(latent_consistency=consistency.zcr), "GAN.latent_consistency must be @zcr()"),
    (dict(consistency="bcr"), "GAN.consistency must be a consistency term"),
    (dict(consistency=functools.partial(consistency.bcr, lambda_real=-1.0)), "bcr.lambda_real"),
    (dict(instance_noise=0.1), "GAN.instance_noise must be a sigma schedule"),
    (dict(instance_noise=functools.partial(instance_noise.sigma_schedule, sigma=-1.0)),
     "sigma_schedule.sigma"),
    (dict(consensus_gamma=1.0, consistency=consistency.cr), "does not combine with GAN.consistency"),
])
def test_bad_terms_raise_at_construction(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_gan(**kwargs)


def test_r1_reuses_the_loss_forward_pass_with_the_same_value_and_update():
    """The step hands R1 the input gradient of the real forward pass it already made (no second
    forward and backward pass of D); a penalty that ignores it recomputes it: the logged R1 and
    D's update agree."""
    def r1_fresh(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None):
        del real_gradients
        return penalties.r1(d_fn, real, fake, seed, gamma=10.0, loss_scale=loss_scale)

    r1_shared = functools.partial(penalties.r1, gamma=10.0)
    real, labels = _real_labels()
    seed = tf.constant([5, 8], tf.int64)
    results = []
    for penalty in (r1_shared, r1_fresh):
        gan = make_gan(penalty=penalty, optimizer=lambda: optimizers.sgd(learning_rate=0.1))
        before = gan.discriminator(real, labels, training=True)
        expected = tf.reduce_mean(penalties.r1(
            lambda x: gan.discriminator(x, labels, training=True), real, real, gamma=10.0))
        logs = gan.discriminator_step(real, labels, seed)
        np.testing.assert_allclose(float(logs["penalty"]), float(expected), rtol=1e-5)
        assert float(tf.reduce_max(tf.abs(before))) > 0
        results.append([w.numpy() for w in gan.discriminator.trainable_weights])
    for shared, fresh in zip(*results):
        np.testing.assert_allclose(shared, fresh, atol=1e-6)
