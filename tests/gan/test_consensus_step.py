"""The GAN's ConOpt step (GAN.consensus_gamma) against independent computations of the consensus
term and of the update it applies; its argument checks."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.gan import optimizers
from tf_convgan.objectives import losses, penalties
from tf_convgan.errors import ConfigError
from helpers import PrescribedNoise, assert_close_per_tensor, make_gan, random_batch


def test_gan_consensus_step_logs_the_independent_consensus_term():
    """The logged consensus equals gamma/2 (||grad_G L_G||^2 + ||grad_D L_D||^2) computed
    separately from the same z before the update; both players move; one update each."""
    gamma = 0.5
    source = PrescribedNoise(seed=3)
    gan = make_gan(consensus_gamma=gamma, optimizer=lambda: optimizers.sgd(learning_rate=0.01),
                   noise_source=source)
    batch = random_batch(4, seed=2)
    real, labels = (tf.constant(x[:, 0]) for x in batch)
    z = source.value("normal", [4, gan.generator.z_dim], 0)  # the step's one z
    with tf.GradientTape(persistent=True) as tape:
        fake = gan.generator(z, labels, training=True)
        d_real = gan.discriminator(real, labels, training=True)
        d_fake = gan.discriminator(fake, labels, training=True)
        d_loss = tf.reduce_mean(gan.loss.d_loss(d_real, d_fake))
        g_loss = tf.reduce_mean(gan.loss.g_loss(d_fake))
    vg = [tf.convert_to_tensor(g)
          for g in tape.gradient(g_loss, gan.generator.trainable_variables)]
    vd = [tf.convert_to_tensor(g)
          for g in tape.gradient(d_loss, gan.discriminator.trainable_variables)]
    expected = gamma / 2 * (sum(float(tf.reduce_sum(g ** 2)) for g in vg)
                            + sum(float(tf.reduce_sum(g ** 2)) for g in vd))
    g0 = [w.numpy() for w in gan.generator.trainable_variables]
    logs = gan.train_step(tuple(tf.constant(x) for x in batch))
    assert source.calls[("normal", (4, gan.generator.z_dim))] == 1
    np.testing.assert_allclose(float(logs["consensus"]), expected, rtol=1e-4)
    np.testing.assert_allclose(float(logs["d_loss"]), float(d_loss), rtol=1e-5)
    assert int(gan.d_optimizer.iterations.numpy()) == int(gan.g_optimizer.iterations.numpy()) == 1
    assert any(not np.allclose(a, w.numpy()) for a, w in zip(g0, gan.generator.trainable_variables))


def _dense_or_zero(gradients, variables):
    return [np.zeros(v.shape, np.float32) if g is None else tf.convert_to_tensor(g).numpy()
            for g, v in zip(gradients, variables)]


def test_gan_consensus_step_applies_v_plus_gamma_jt_v():
    """One ConOpt step of the composed train_step with SGD: each player's weights change by
    exactly -lr * grad_own (L_own + gamma/2 ||v||^2) = -lr (v + gamma J^T v)_own, computed here
    by a double GradientTape on the step's z (prescribed noise) before the update. The consensus
    correction is a sizeable part of both players' updates, so an update without it, with the
    wrong sign or with another weight fails."""
    gamma, lr = 1.0, 0.1
    source = PrescribedNoise(seed=4)
    gan = make_gan(consensus_gamma=gamma, optimizer=lambda: optimizers.sgd(learning_rate=lr),
                   noise_source=source)
    real, labels = random_batch(4, seed=2)
    x, y = tf.constant(real[:, 0]), tf.constant(labels[:, 0])
    z = source.value("normal", [4, gan.generator.z_dim], 0)
    g_vars = gan.generator.trainable_variables
    d_vars = gan.discriminator.trainable_variables
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape(persistent=True) as inner:
            d_real = gan.discriminator(x, y, training=True)
            d_fake = gan.discriminator(gan.generator(z, y, training=True), y, training=True)
            d_loss = tf.reduce_mean(gan.loss.d_loss(d_real, d_fake))
            g_loss = tf.reduce_mean(gan.loss.g_loss(d_fake))
        v = [g for g in inner.gradient(g_loss, g_vars) + inner.gradient(d_loss, d_vars)
             if g is not None]
        consensus = gamma / 2 * tf.add_n([tf.reduce_sum(tf.square(g)) for g in v])
        g_objective, d_objective = g_loss + consensus, d_loss + consensus
    v_g = _dense_or_zero(inner.gradient(g_loss, g_vars), g_vars)
    v_d = _dense_or_zero(inner.gradient(d_loss, d_vars), d_vars)
    want_g = _dense_or_zero(outer.gradient(g_objective, g_vars), g_vars)
    want_d = _dense_or_zero(outer.gradient(d_objective, d_vars), d_vars)
    for want, field in ((want_g, v_g), (want_d, v_d)):  # gamma J^T v is not negligible
        correction = np.sqrt(sum(np.sum((w - f) ** 2) for w, f in zip(want, field)))
        assert correction > 0.05 * np.sqrt(sum(np.sum(f ** 2) for f in field))
    g0 = [w.numpy() for w in g_vars]
    d0 = [w.numpy() for w in d_vars]

    logs = gan.train_step((tf.constant(real), tf.constant(labels)))

    assert source.calls[("normal", (4, gan.generator.z_dim))] == 1
    np.testing.assert_allclose(float(logs["consensus"]), float(consensus), rtol=1e-4)
    for name, before, variables, want in (("G", g0, g_vars, want_g), ("D", d0, d_vars, want_d)):
        assert_close_per_tensor([w.numpy() - b for w, b in zip(variables, before)],
                                [-lr * g for g in want], rtol=1e-3, atol=1e-7,
                                names=[f"{name} {w.path}" for w in variables])


def test_consensus_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="GAN.consensus_gamma must be a finite number >= 0"):
        make_gan(consensus_gamma=-1.0)
    with pytest.raises(ConfigError, match="needs GAN.d_steps = 1, got 2"):
        make_gan(consensus_gamma=1.0, d_steps=2)
    with pytest.raises(ConfigError, match="does not combine with GAN.lazy_interval"):
        make_gan(consensus_gamma=1.0, penalty=penalties.r1, lazy_interval=2)


def test_consensus_step_clips_the_critic_like_the_normal_d_update():
    """ConOpt with WGAN's weight clipping: after a ConOpt step with a large learning rate every
    trainable weight of D lies in [-c, c] (projected ConOpt: the step, then the clip), and some
    sit at the bound; without clipping some lie outside."""
    c = 0.01
    results = []
    for clip in (c, None):
        gan = make_gan(consensus_gamma=0.5, d_weight_clip=clip, loss=losses.wasserstein(),
                       optimizer=lambda: optimizers.sgd(learning_rate=1.0))
        real, labels = random_batch(4, seed=2)
        gan.train_step((tf.constant(real), tf.constant(labels)))
        results.append(np.concatenate([v.numpy().ravel()
                                       for v in gan.discriminator.trainable_variables]))
    clipped, free = results
    assert np.abs(free).max() > c
    assert np.abs(clipped).max() <= c + 1e-7
    assert np.sum(np.isclose(np.abs(clipped), c)) > 10
