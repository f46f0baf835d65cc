"""The composed train_step: every loss x penalty x network trains; distribution and XLA agree."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.objectives import losses
from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from helpers import (TINY_NETWORKS, assert_close_per_tensor, make_gan, random_batch,
                     run_eager_steps, run_steps, two_cpu_strategy, weights)

LOSSES = [losses.minimax, losses.non_saturating, losses.wasserstein, losses.hinge,
          losses.least_squares]
PENALTIES = [None, penalties.r1, penalties.r2, penalties.r1_r2, penalties.wgan_gp,
             penalties.wgan_gp_one_sided, penalties.wgan_gp0, penalties.dragan]


def _two_cpu_strategy():
    return two_cpu_strategy()


def _changed_and_finite(before, after):
    changed = [not np.array_equal(b, a) for b, a in zip(before, after)]
    finite = all(np.isfinite(a).all() for a in after)
    return changed, finite


# The default suite runs the GAN_stability ResNet; the other networks run with -m slow.
@pytest.mark.parametrize("network", [n if n == "resnet" else pytest.param(n, marks=pytest.mark.slow)
                                     for n in sorted(TINY_NETWORKS)])
def test_one_step_every_loss_and_penalty(network):
    """One eager step of every loss x penalty on this network changes G, D and EMA, finitely."""
    gan = make_gan(network, ema_beta=0.5)
    models = (gan.generator, gan.discriminator, gan.generator_ema)
    initial = [m.get_weights() for m in models]
    batch = random_batch(4)
    for loss, penalty in itertools.product(LOSSES, PENALTIES):
        for model, w in zip(models, initial):  # every combination starts from the same weights
            model.set_weights(w)
        gan.loss, gan.penalty = loss(), penalty
        g_before = [w.numpy() for w in gan.generator.trainable_weights]
        d_before = [w.numpy() for w in gan.discriminator.trainable_weights]
        e_before = [w.numpy() for w in gan.generator_ema.trainable_weights]
        logs = gan.train_step(tuple(tf.constant(x) for x in batch))
        name = f"{network}/{loss.__name__}/{getattr(penalty, '__name__', None)}"
        for before, model in ((g_before, gan.generator), (d_before, gan.discriminator),
                              (e_before, gan.generator_ema)):
            changed, finite = _changed_and_finite(before, [w.numpy() for w in model.trainable_weights])
            assert finite, name
            assert sum(changed) >= len(changed) // 2, f"{name}: {model.name} barely changed"
        assert all(np.isfinite(float(v)) for v in logs.values()), name
        assert ("penalty" in logs) == (penalty is not None)


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
    strategy = _two_cpu_strategy()
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
    kwargs = dict(num_classes=num_classes, penalty=penalty, d_steps=2, ema_beta=0.9)
    single = make_gan(network, **kwargs)
    single_logs = run_steps(single, batches)
    strategy = _two_cpu_strategy()
    mirrored = make_gan(network, strategy=strategy, **kwargs)
    mirrored_logs = run_steps(mirrored, batches, strategy=strategy)
    for a, b in zip(weights(single), weights(mirrored)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in single_logs:
        np.testing.assert_allclose(single_logs[name], mirrored_logs[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)


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


def test_keras_fit_and_compile_point_to_the_training_loop():
    from tf_convgan.errors import ConfigError
    gan = make_gan("dcgan")
    real, labels = random_batch(4)
    for call in (lambda: gan.fit(real, labels, epochs=1), lambda: gan.compile(optimizer="adam")):
        with pytest.raises(ConfigError, match=r"tf_convgan\.training\.loop\.train.*run\.py"):
            call()
    run_eager_steps(gan, [random_batch(4)])  # the step still works
    assert int(gan.step) == 1
