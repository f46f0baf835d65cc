"""The composed train_step: every loss x penalty logs and updates by independent computations;
distribution and XLA agree."""
import functools
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError
from tf_convgan.gan import optimizers
from tf_convgan.objectives import losses, penalties
from helpers import (PrescribedNoise, assert_close_per_tensor,
                     assert_two_replicas_equal_one_device, make_gan, random_batch,
                     run_eager_steps, run_steps, two_cpu_strategy, weights)

LOSSES = [losses.minimax, losses.non_saturating, losses.wasserstein, losses.hinge,
          losses.least_squares, losses.least_squares_sigmoid]
PENALTIES = [None, penalties.r1, penalties.r2, penalties.r1_r2, penalties.wgan_gp,
             penalties.wgan_gp_one_sided, penalties.wgan_gp0, penalties.dragan,
             penalties.dragan_compare_gan]


# The tiny D's input gradients at the interpolates have norms 0.037 to 0.040: the one-sided
# penalty with g0 = 1 would be 0. With g0 in between (some examples penalised, some not) and a
# gamma that makes the penalty's share of D's update clear:
ONE_SIDED_G0, ONE_SIDED_GAMMA = 0.0385, 1e4
ONE_SIDED = functools.partial(penalties.wgan_gp_one_sided, g0=ONE_SIDED_G0, gamma=ONE_SIDED_GAMMA)
ONE_SIDED.__name__ = "wgan_gp_one_sided"
LR = 0.1  # SGD: a step changes every weight by exactly -LR * its gradient
BATCH = 4


def _input_gradients(d, x):
    """grad_x sum_i D(x_i): each example's own input gradient (D has no batch statistics)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(d(x))
    return tape.gradient(total, x)


def _squared_norm(g):
    return tf.reduce_sum(tf.square(g), axis=[1, 2, 3])


def _expected_penalty(penalty, d, real, fake, source):
    """Each penalty written out (gamma/2 * ...; see penalties.py) with its default
    hyperparameters (ONE_SIDED: its own), on the interpolation weights / perturbations the
    prescribed noise source hands the step."""
    if penalty is penalties.r1:
        return 10.0 / 2 * _squared_norm(_input_gradients(d, real))
    if penalty is penalties.r2:
        return 10.0 / 2 * _squared_norm(_input_gradients(d, fake))
    if penalty is penalties.r1_r2:
        return 10.0 / 2 * (_squared_norm(_input_gradients(d, real))
                           + _squared_norm(_input_gradients(d, fake)))
    if penalty is penalties.dragan:  # x_p = real + 0.5 std(real) u, u ~ U[0, 1) elementwise,
        std = np.std(real.numpy())    # std over the whole batch (Kodali et al.), then
        u = source.value("uniform", real.shape.as_list())  # x^ = real + alpha (x_p - real)
        alpha = source.value("uniform", [BATCH, 1, 1, 1])
        x = tf.constant(real.numpy() + alpha * (0.5 * std * u))
        return 20.0 / 2 * tf.square(tf.norm(tf.reshape(_input_gradients(d, x), [BATCH, -1]),
                                            axis=1) - 1.0)
    if penalty is penalties.dragan_compare_gan:  # x~ = clip(real + std (u - 1/2), -1, 1)
        std = np.std(real.numpy())
        u = source.value("uniform", real.shape.as_list())
        x = tf.constant(np.clip(real.numpy() + std * (u - 0.5), -1.0, 1.0))
        squares = _squared_norm(_input_gradients(d, x))
        return 20.0 / 2 * tf.square(tf.sqrt(squares + 1e-4) - 1.0)
    eps = source.value("uniform", [BATCH, 1, 1, 1])  # interpolates eps real + (1 - eps) fake
    x = eps * real + (1.0 - eps) * fake
    norm = tf.norm(tf.reshape(_input_gradients(d, x), [BATCH, -1]), axis=1)
    if penalty is penalties.wgan_gp:
        return 20.0 / 2 * tf.square(norm - 1.0)
    if penalty is ONE_SIDED:  # g0 between the examples' norms: some are penalised, some not
        assert 0 < int(tf.reduce_sum(tf.cast(norm > ONE_SIDED_G0, tf.int32))) < BATCH
        return ONE_SIDED_GAMMA / 2 * tf.square(tf.maximum(norm - ONE_SIDED_G0, 0.0))
    assert penalty is penalties.wgan_gp0
    return 10.0 / 2 * tf.square(norm)


def _sgd_updates(gradients, variables):
    """-LR * gradient per variable; 0 for a variable the loss does not reach (None)."""
    return [np.zeros(v.shape, np.float32) if g is None else -LR * tf.convert_to_tensor(g).numpy()
            for g, v in zip(gradients, variables)]


@pytest.fixture(scope="module")
def sgd_gan():
    """One tiny GAN (SGD) for every loss x penalty case, and its initial weights."""
    gan = make_gan(optimizer=lambda: optimizers.sgd(learning_rate=LR), ema_beta=0.5)
    models = (gan.generator, gan.discriminator, gan.generator_ema)
    return gan, models, [m.get_weights() for m in models]


# Every loss and every penalty at least once in the default suite; the whole product with -m slow.
DEFAULT_PAIRS = {(losses.non_saturating, penalties.r1), (losses.minimax, penalties.r2),
                 (losses.least_squares, penalties.r1_r2), (losses.wasserstein, penalties.wgan_gp),
                 (losses.hinge, ONE_SIDED),
                 (losses.non_saturating, penalties.wgan_gp0), (losses.minimax, penalties.dragan),
                 (losses.least_squares_sigmoid, penalties.dragan_compare_gan),
                 (losses.hinge, None)}


@pytest.mark.parametrize("loss,penalty", [
    pytest.param(loss, penalty, marks=() if (loss, penalty) in DEFAULT_PAIRS else pytest.mark.slow,
                 id=f"{loss.__name__}-{getattr(penalty, '__name__', None)}")
    for loss, penalty in itertools.product(LOSSES, [
        ONE_SIDED if p is penalties.wgan_gp_one_sided else p for p in PENALTIES])])
def test_one_step_logs_and_d_update_equal_independent_computations(sgd_gan, loss, penalty):
    """One eager step with prescribed noise (z for D, z for G, the penalty's draws): the logged
    d_loss, penalty, d_total and g_loss, and D's SGD update, equal the loss functions and the
    penalty written out here with their own GradientTapes, on the discriminator's logits computed
    separately: d_loss and the penalty at D's weights before the step, D's update -lr * their
    gradient, g_loss at the updated D on G(z_G)."""
    gan, models, initial = sgd_gan
    for model, w in zip(models, initial):  # every case starts from the same weights
        model.set_weights(w)
    gan.loss, gan.penalty = loss(), penalty
    gan.noise_source = source = PrescribedNoise(seed=3)
    real, labels = random_batch(BATCH, seed=1)
    x, y = tf.constant(real[:, 0]), tf.constant(labels[:, 0])
    z_shape = [BATCH, gan.generator.z_dim]
    z_d, z_g = source.value("normal", z_shape, 0), source.value("normal", z_shape, 1)
    fake = gan.generator(z_d, y, training=True)
    fake_g = gan.generator(z_g, y, training=True)
    d = lambda images: gan.discriminator(images, y, training=True)  # noqa: E731
    d_vars = gan.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        d_loss = tf.reduce_mean(gan.loss.d_loss(d(x), d(fake)))
        d_penalty = (tf.reduce_mean(_expected_penalty(penalty, d, x, fake, source))
                     if penalty is not None else tf.constant(0.0))
        d_total = d_loss + d_penalty
    expected_update = _sgd_updates(tape.gradient(d_total, d_vars), d_vars)
    d_before = [v.numpy() for v in d_vars]

    logs = gan.train_step((tf.constant(real), tf.constant(labels)))

    assert source.calls[("normal", tuple(z_shape))] == 2  # z of the D step, z of the G step
    assert ("penalty" in logs) == (penalty is not None)
    np.testing.assert_allclose(float(logs["d_loss"]), float(d_loss), rtol=1e-5)
    if penalty is not None:
        np.testing.assert_allclose(float(logs["penalty"]), float(d_penalty), rtol=1e-4)
        assert float(d_penalty) > 1e-3 * abs(float(d_loss))  # large enough to tell
    np.testing.assert_allclose(float(logs["d_total"]), float(d_total), rtol=1e-5)
    assert_close_per_tensor([v.numpy() - b for v, b in zip(d_vars, d_before)], expected_update,
                            rtol=1e-3, atol=1e-7)
    g_loss = tf.reduce_mean(gan.loss.g_loss(d(fake_g)))  # D updated, G not (fake_g from before)
    np.testing.assert_allclose(float(logs["g_loss"]), float(g_loss), rtol=1e-5)


def test_generator_step_descends_g_loss_at_the_updated_discriminator(sgd_gan):
    """The G step of one eager step (SGD, prescribed noise) changes G by exactly
    -lr * grad_G mean(g_loss(D'(G(z_G)))), D' the discriminator after the D step, computed here
    from D's step alone (GAN.discriminator_step) and a GradientTape of our own; it leaves D as
    the D step left it; g_grad_norm is that gradient's norm. The gradient at the D before its
    update differs by far more than the tolerance, so a G step at the stale D fails."""
    gan, models, initial = sgd_gan
    for model, w in zip(models, initial):
        model.set_weights(w)
    gan.loss, gan.penalty = losses.non_saturating(), None
    real, labels = random_batch(BATCH, seed=2)
    x, y = tf.constant(real[:, 0]), tf.constant(labels[:, 0])
    z_g = PrescribedNoise(seed=5).value("normal", [BATCH, gan.generator.z_dim], 1)
    g_vars = gan.generator.trainable_variables

    def g_gradients():
        with tf.GradientTape() as tape:
            d_fake = gan.discriminator(gan.generator(z_g, y, training=True), y, training=True)
            g_loss = tf.reduce_mean(gan.loss.g_loss(d_fake))
        return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(g_loss, g_vars)]

    stale = g_gradients()  # at D before its update
    gan.noise_source = PrescribedNoise(seed=5)  # D's step alone, same z as the full step
    gan.discriminator_step(x, y, tf.constant([0, 0], tf.int64))
    d_after_d_step = [v.numpy() for v in gan.discriminator.trainable_variables]
    want = g_gradients()  # at the updated D
    for model, w in zip(models, initial):
        model.set_weights(w)
    g_before = [v.numpy() for v in g_vars]
    gan.noise_source = PrescribedNoise(seed=5)

    logs = gan.train_step((tf.constant(real), tf.constant(labels)))

    for got, expected in zip(gan.discriminator.trainable_variables, d_after_d_step):
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-7, err_msg=got.path)
    update = [v.numpy() - b for v, b in zip(g_vars, g_before)]
    assert_close_per_tensor(update, [-LR * g for g in want], rtol=1e-3, atol=1e-8,
                            names=[v.path for v in g_vars])
    np.testing.assert_allclose(logs["g_grad_norm"], np.sqrt(sum(np.sum(g ** 2) for g in want)),
                               rtol=1e-5)
    gap = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(stale, want))
    assert gap > 1e-2  # ten times the update's tolerance


def test_simultaneous_updates_take_both_gradients_at_the_same_state(sgd_gan):
    """update_rule='simultaneous' (simGD): D changes by -lr * grad_D L_D and G by
    -lr * grad_G L_G, both gradients at the weights before the step (written out here with our
    own GradientTapes on the prescribed z), not G's at the updated D as in alternating steps."""
    gan, models, initial = sgd_gan
    for model, w in zip(models, initial):
        model.set_weights(w)
    gan.loss, gan.penalty = losses.non_saturating(), None
    real, labels = random_batch(BATCH, seed=4)
    x, y = tf.constant(real[:, 0]), tf.constant(labels[:, 0])
    source = PrescribedNoise(seed=6)
    z_shape = [BATCH, gan.generator.z_dim]
    z_d, z_g = source.value("normal", z_shape, 0), source.value("normal", z_shape, 1)
    g_vars, d_vars = gan.generator.trainable_variables, gan.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        fake = tf.stop_gradient(gan.generator(z_d, y, training=True))
        d_loss = tf.reduce_mean(gan.loss.d_loss(gan.discriminator(x, y, training=True),
                                                gan.discriminator(fake, y, training=True)))
    want_d = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(d_loss, d_vars)]
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_mean(gan.loss.g_loss(gan.discriminator(
            gan.generator(z_g, y, training=True), y, training=True)))
    want_g = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(g_loss, g_vars)]
    before = [[v.numpy() for v in vs] for vs in (g_vars, d_vars)]
    gan.noise_source = PrescribedNoise(seed=6)
    gan.simultaneous = True
    try:
        gan.train_step((tf.constant(real), tf.constant(labels)))
    finally:
        gan.simultaneous = False
    for variables, old, want in ((g_vars, before[0], want_g), (d_vars, before[1], want_d)):
        update = [v.numpy() - b for v, b in zip(variables, old)]
        assert_close_per_tensor(update, [-LR * g for g in want], rtol=1e-3, atol=1e-8,
                                names=[v.path for v in variables])


def test_simultaneous_updates_need_one_d_step():
    with pytest.raises(ConfigError, match="update_rule = 'simultaneous'.*d_steps = 1"):
        make_gan(d_steps=2, update_rule="simultaneous")
    with pytest.raises(ConfigError, match="GAN.update_rule must be one of"):
        make_gan(update_rule="jacobi")


@pytest.mark.parametrize("strategy", [None, "two_cpus"])
def test_d_weight_clip_clips_every_d_weight_after_its_update(strategy):
    """WGAN's clipping: after a step with a large learning rate every trainable weight of D lies
    in [-c, c], and some sit at the bound (they were pushed past it); without clipping some lie
    outside. Under 2 replicas the clipped weights equal one device's."""
    c = 0.01
    results = []
    for clip in (c, None):
        strategy_obj = two_cpu_strategy() if strategy else None
        gan = make_gan(strategy=strategy_obj, d_weight_clip=clip,
                       optimizer=lambda: optimizers.sgd(learning_rate=1.0),
                       loss=losses.wasserstein())
        run_steps(gan, [random_batch(4)], strategy=strategy_obj)
        results.append(np.concatenate([v.numpy().ravel()
                                       for v in gan.discriminator.trainable_variables]))
    clipped, free = results
    assert np.abs(clipped).max() <= c + 1e-7
    assert np.sum(np.isclose(np.abs(clipped), c)) > 10
    assert np.abs(free).max() > c


def test_d_weight_clip_must_be_positive():
    for bad in (0.0, -1.0):
        with pytest.raises(ConfigError, match="GAN.d_weight_clip"):
            make_gan(d_weight_clip=bad)


def test_ema_is_the_exponential_average():
    """After one step from equal weights: w_ema = beta w_0 + (1 - beta) w_1."""
    gan = make_gan(ema_beta=0.75)
    w0 = [w.numpy() for w in gan.generator.trainable_weights]
    np.testing.assert_array_equal(w0[0], gan.generator_ema.trainable_weights[0].numpy())
    run_steps(gan, [random_batch(4)])
    for before, w, e in zip(w0, gan.generator.trainable_weights, gan.generator_ema.trainable_weights):
        np.testing.assert_allclose(e.numpy(), 0.75 * before + 0.25 * w.numpy(), atol=1e-7)


def test_d_steps_use_their_own_slice_of_real_data():
    """With d_steps=2, changing the real images of slice 1 changes the result; with d_steps=1 the
    second slice is not part of the batch at all, so the step count of D's optimizer tells."""
    batch = random_batch(4, d_steps=2)
    other = (batch[0].copy(), batch[1])
    other[0][:, 1] = -other[0][:, 1]
    results = []
    for b in (batch, other):
        gan = make_gan(d_steps=2)
        run_steps(gan, [b])
        assert int(gan.d_optimizer.iterations.numpy()) == 2
        assert int(gan.g_optimizer.iterations.numpy()) == 1
        results.append(weights(gan))
    assert any(not np.allclose(a, b) for a, b in zip(*results))


def test_replicas_draw_distinct_noise_that_tiles_the_global_draw():
    strategy = two_cpu_strategy()
    seed = tf.constant([5, 6], tf.int64)
    per_replica = strategy.run(tf.function(lambda: noise.normal([3, 8], seed)))
    z0, z1 = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    assert not np.allclose(z0, z1)
    np.testing.assert_array_equal(np.concatenate([z0, z1]), noise.normal([6, 8], seed).numpy())


@pytest.mark.parametrize("network,penalty,num_classes", [
    ("resnet", penalties.r1, 10),          # conditional, embedding gradients
    pytest.param("resnet_cifar", penalties.wgan_gp, 1,  # sync batch norm in G, SN in D
                 marks=pytest.mark.slow),
    pytest.param("resnet", penalties.dragan, 1,  # perturbations drawn for the global batch
                 marks=pytest.mark.slow),
])
def test_two_replicas_equal_one_device(network, penalty, num_classes):
    """MirroredStrategy over 2 logical CPUs == 1 device on the same global batch (two steps)."""
    batches = [random_batch(8, d_steps=2, num_classes=num_classes, seed=s) for s in (0, 1)]
    assert_two_replicas_equal_one_device(lambda strategy: make_gan(
        network, strategy=strategy, num_classes=num_classes, penalty=penalty, d_steps=2,
        ema_beta=0.9), batches)


# R1 in the default suite, every other penalty with -m slow.
@pytest.mark.parametrize("penalty", [
    p if p is penalties.r1 else pytest.param(p, marks=pytest.mark.slow) for p in PENALTIES[1:]],
    ids=lambda p: p.__name__)
def test_step_compiles_with_xla_and_matches(penalty):
    """The full step (D with penalty, G, EMA) under jit_compile=True equals the uncompiled step
    (run eagerly) to 1e-5 of every weight tensor (+ 1e-8 for biases, which start at 0): both draw
    the same noise (tf_convgan.noise). A compiled step without the penalty, or with other noise,
    fails (G's fc kernel alone then differs by 2.4e-5, ten times the bound)."""
    sgd = lambda: optimizers.sgd(learning_rate=0.05)  # noqa: E731  (no sign-like updates)
    batches = [random_batch(4, num_classes=3, seed=s) for s in (0, 1)]
    results = []
    for jit in (False, True):
        gan = make_gan(num_classes=3, penalty=penalty, optimizer=sgd, ema_beta=0.5)
        if jit:
            run_steps(gan, batches, jit_compile=True)
        else:
            run_eager_steps(gan, batches)
        results.append(weights(gan))
    assert_close_per_tensor(results[1], results[0], rtol=1e-5, atol=1e-8)
