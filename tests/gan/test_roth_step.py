"""Roth et al.'s regularizer inside GAN.train_step: the step passes its step counter to the
penalty (annealed gamma), in the eager, lazy and ConOpt paths; 2 replicas == 1 device, XLA ==
uncompiled, mixed_float16 == float32."""
import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from helpers import (assert_close_per_tensor, assert_two_replicas_equal_one_device, make_gan,
                     random_batch, run_eager_steps, run_steps, weights)

GAMMA, DECAY, DECAY_STEPS = 2.0, 0.01, 2
ANNEALED = functools.partial(
    penalties.roth, gamma=GAMMA,
    annealing=functools.partial(penalties.exponential_annealing, decay=DECAY,
                                decay_steps=DECAY_STEPS))
SGD = lambda: optimizers.sgd(learning_rate=0.1)  # noqa: E731


def _constant(step):
    """roth with the constant gamma the annealed one has at `step`."""
    return functools.partial(penalties.roth,
                             gamma=GAMMA * DECAY ** (min(step, DECAY_STEPS) / DECAY_STEPS))


def _d_weights(gan):
    return [w.numpy() for w in gan.discriminator.trainable_weights]


@pytest.mark.parametrize("path,step", [("eager", 0), ("eager", 1), ("eager", 5), ("lazy", 1),
                                       ("conopt", 1)])
def test_the_step_counter_reaches_the_annealed_gamma(path, step):
    """At step counter t, a train_step with the annealed penalty logs and applies to D what a
    constant gamma_t = gamma * decay^(min(t, T) / T) does, in each of the step's three penalty
    paths."""
    kwargs = {"eager": {}, "lazy": dict(lazy_interval=1),
              "conopt": dict(consensus_gamma=0.5)}[path]
    batch = tuple(tf.constant(x) for x in random_batch(4))
    results = []
    for penalty in (ANNEALED, _constant(step)):
        gan = make_gan(penalty=penalty, optimizer=SGD, **kwargs)
        assert gan.penalty_takes_step
        gan.step_counter.assign(step)
        logs = gan.train_step(batch)  # D's update, then G's at that D (ConOpt: both at once)
        results.append((float(logs["penalty"]), _d_weights(gan)))
    (annealed, annealed_weights), (constant, constant_weights) = results
    assert constant > 0
    assert annealed == pytest.approx(constant, rel=1e-6)
    for a, b in zip(annealed_weights, constant_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# The whole GAN under XLA, on 2 replicas and in mixed_float16 (minutes on CPU: -m slow; the
# penalty itself is checked for each of these in tests/objectives/test_roth.py).
@pytest.mark.slow
def test_annealed_steps_compile_with_xla_and_match():
    """Three steps (gamma 2, 0.2, 0.02) under jit_compile=True equal the uncompiled steps."""
    batches = [random_batch(4, num_classes=3, seed=s) for s in (0, 1, 2)]
    results = []
    for jit in (False, True):
        gan = make_gan(num_classes=3, penalty=ANNEALED,
                       optimizer=lambda: optimizers.sgd(learning_rate=0.05), ema_beta=0.5)
        if jit:
            run_steps(gan, batches, jit_compile=True)
        else:
            run_eager_steps(gan, batches)
        assert int(gan.step) == 3
        results.append(weights(gan))
    assert_close_per_tensor(results[1], results[0], rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_two_replicas_equal_one_device():
    batches = [random_batch(8, d_steps=2, seed=s) for s in (0, 1)]
    assert_two_replicas_equal_one_device(lambda strategy: make_gan(
        strategy=strategy, penalty=ANNEALED, d_steps=2, ema_beta=0.9), batches)


@pytest.mark.slow
def test_mixed_float16_matches_float32():
    """The tolerances of tests/gan/test_mixed_precision.py (R1's) for float16."""
    def gan_with(policy):
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            return make_gan(optimizer=lambda: optimizers.sgd(learning_rate=0.01), ema_beta=0.5,
                            penalty=ANNEALED)
        finally:
            keras.mixed_precision.set_global_policy(previous)

    reference, mixed = gan_with("float32"), gan_with("mixed_float16")
    assert mixed.loss_scaling
    mixed.discriminator.set_weights(reference.discriminator.get_weights())
    mixed.generator.set_weights(reference.generator.get_weights())
    batch = random_batch(8)
    want, got = run_steps(reference, [batch]), run_steps(mixed, [batch])
    assert want["penalty"] > 0
    assert got["penalty"] == pytest.approx(want["penalty"], rel=2e-2)
    assert got["d_grad_norm"] == pytest.approx(want["d_grad_norm"], rel=2e-2)
