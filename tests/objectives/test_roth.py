"""Roth et al. 2017's regularizer: closed forms on linear discriminators at logits where the
sigmoid is known, its gradient with respect to D's weights, the annealed gamma, loss scaling,
replicas and XLA."""
import math

import gin
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.errors import ConfigError
from tf_convgan.objectives import penalties
from helpers import two_cpu_strategy

RNG = np.random.default_rng(0)
W = RNG.normal(size=(3, 2, 2))
B = 0.7
LOG3 = math.log(3.0)  # sigmoid(log 3) = 3/4, sigmoid(-log 3) = 1/4, sigmoid(0) = 1/2
REAL_LOGITS = np.array([0.0, LOG3, -LOG3, 2.0])
FAKE_LOGITS = np.array([LOG3, 0.0, -LOG3, -1.0])


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-t))


def linear_d(w=W, b=B):
    """psi(x) = <w, x> + b: grad_x psi = w at every x."""
    w = tf.constant(w, tf.float32)
    return lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]) + b


def points_with_logits(logits, w=W, b=B, seed=1):
    """x_i with <w, x_i> + b = logits[i]: a random point moved along w onto the level set."""
    x = np.random.default_rng(seed).normal(size=(len(logits),) + w.shape)
    current = np.sum(x * w, axis=(1, 2, 3)) + b
    x += ((logits - current) / np.sum(w * w))[:, None, None, None] * w
    return tf.constant(x, tf.float32)


REAL = points_with_logits(REAL_LOGITS)
FAKE = points_with_logits(FAKE_LOGITS, seed=2)


def closed_form(gamma, real_logits=REAL_LOGITS, fake_logits=FAKE_LOGITS, w=W):
    """gamma/2 [(1 - s(psi_r))^2 ||w||^2 + s(psi_f)^2 ||w||^2], per example."""
    n2 = np.sum(np.square(w))
    return gamma / 2 * ((1 - _sigmoid(real_logits)) ** 2 * n2 + _sigmoid(fake_logits) ** 2 * n2)


def test_the_points_have_the_logits():
    np.testing.assert_allclose(linear_d()(REAL).numpy(), REAL_LOGITS, atol=1e-5)
    np.testing.assert_allclose(linear_d()(FAKE).numpy(), FAKE_LOGITS, atol=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 20.0])
def test_linear_discriminator_closed_form(gamma):
    n2 = float(np.sum(np.square(W)))
    # the sigmoids written out where they are exact: example 0: (1/2)^2 + (3/4)^2, example 1:
    # (1/4)^2 + (1/2)^2, example 2: (3/4)^2 + (1/4)^2
    exact = gamma / 2 * n2 * np.array([0.25 + 0.5625, 0.0625 + 0.25, 0.5625 + 0.0625])
    np.testing.assert_allclose(closed_form(gamma)[:3], exact, rtol=1e-12)
    out = penalties.roth(linear_d(), REAL, FAKE, gamma=gamma).numpy()
    assert out.shape == (4,)
    np.testing.assert_allclose(out, closed_form(gamma), rtol=1e-5, atol=1e-6)


def test_per_example_real_i_with_fake_i():
    """Example i pairs real i with fake i: permuting the fakes permutes only their terms."""
    perm = [2, 0, 3, 1]
    out = penalties.roth(linear_d(), REAL, tf.gather(FAKE, perm), gamma=3.0).numpy()
    np.testing.assert_allclose(out, closed_form(3.0, fake_logits=FAKE_LOGITS[perm]), rtol=1e-5)


def test_real_gradients_from_the_callers_pass_give_the_same_value():
    d = linear_d()
    with tf.GradientTape() as tape:
        tape.watch(REAL)
        total = tf.reduce_sum(d(REAL))
    grads = tape.gradient(total, REAL)
    calls = []

    def real_gradients():
        calls.append(1)
        return grads

    out = penalties.roth(d, REAL, FAKE, gamma=2.0, real_gradients=real_gradients).numpy()
    assert calls == [1]
    np.testing.assert_allclose(out, closed_form(2.0), rtol=1e-5)


def test_gradient_with_respect_to_the_discriminator_weights():
    """d/dw and d/db of the mean for psi = <w, x> + b, the sigmoid weights differentiated too
    (as Roth et al.'s code): with s' = s (1 - s),
      d/dw (1 - s_r)^2 ||w||^2 = -2 (1 - s_r)^2 s_r ||w||^2 x_r + 2 (1 - s_r)^2 w,
      d/dw s_f^2 ||w||^2      =  2 s_f^2 (1 - s_f) ||w||^2 x_f + 2 s_f^2 w,
    and d/db the same without x and w."""
    w = tf.Variable(W, dtype=tf.float32)
    b = tf.Variable(B, dtype=tf.float32)
    d = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]) + b  # noqa: E731
    gamma = 3.0
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(penalties.roth(d, REAL, FAKE, gamma=gamma))
    grad_w, grad_b = tape.gradient(value, [w, b])
    s_r, s_f = _sigmoid(REAL_LOGITS), _sigmoid(FAKE_LOGITS)
    n2 = np.sum(W * W)
    x_r, x_f = REAL.numpy().astype(np.float64), FAKE.numpy().astype(np.float64)
    a_r = -2 * (1 - s_r) ** 2 * s_r * n2   # coefficient of x_r (and of 1 for b)
    a_f = 2 * s_f ** 2 * (1 - s_f) * n2
    want_w = gamma / 2 * np.mean(a_r[:, None, None, None] * x_r + a_f[:, None, None, None] * x_f
                                 + 2 * ((1 - s_r) ** 2 + s_f ** 2)[:, None, None, None] * W,
                                 axis=0)
    want_b = gamma / 2 * np.mean(a_r + a_f)
    np.testing.assert_allclose(grad_w.numpy(), want_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(grad_b), want_b, rtol=1e-4, atol=1e-6)


def test_float64_data_stay_float64():
    out = penalties.roth(lambda x: tf.reduce_sum(x, axis=1) * 0.5,
                         tf.constant([[0.0]], tf.float64), tf.constant([[0.0]], tf.float64),
                         gamma=2.0)
    assert out.dtype == tf.float64
    np.testing.assert_allclose(out.numpy(), [0.25 * (0.25 + 0.25)], rtol=1e-15)


def test_loss_scale_unscales_the_gradients_before_squaring():
    """Input gradients (~1e-9) below float16's smallest subnormal flush to zero without the loss
    scale; with it the penalty equals float32's (as R1, tests/gan/test_mixed_precision.py)."""
    x = tf.constant(RNG.normal(size=(4, 16)).astype(np.float32))
    w = RNG.normal(size=(16,)).astype(np.float32) * 1e-9

    def d_fn_float32(images):
        return tf.reduce_sum(images * w, axis=1)

    def d_fn_float16(images):
        return tf.cast(tf.reduce_sum(tf.cast(images, tf.float16) * tf.cast(w * 1e4, tf.float16),
                                     axis=1) * tf.constant(1e-4, tf.float16), tf.float32)

    # logits ~ 1e-9: the sigmoids are 1/2, the value (1/4 + 1/4) ||w||^2 (gamma = 2)
    want = penalties.roth(d_fn_float32, x, x, gamma=2.0).numpy()
    np.testing.assert_allclose(want, np.full(4, 0.5 * np.sum(w.astype(np.float64) ** 2)),
                               rtol=1e-5)
    assert np.all(penalties.roth(d_fn_float16, x, x, gamma=2.0).numpy() == 0.0)
    np.testing.assert_allclose(penalties.roth(d_fn_float16, x, x, gamma=2.0,
                                              loss_scale=tf.constant(2.0 ** 15)).numpy(), want,
                               rtol=2e-2)


def test_exponential_annealing_values():
    f = lambda t: float(penalties.exponential_annealing(t, decay=0.01, decay_steps=100))  # noqa
    assert f(0) == 1.0
    assert f(50) == pytest.approx(0.1, rel=1e-6)
    assert f(100) == pytest.approx(0.01, rel=1e-6)
    assert f(1000) == pytest.approx(0.01, rel=1e-6)  # constant after decay_steps
    assert float(penalties.exponential_annealing(tf.constant(25, tf.int64), decay=0.01,
                                                 decay_steps=100)) == pytest.approx(0.01 ** 0.25)


def test_roth_et_al_schedule():
    """Their code: gamma_t = gamma * decay^(t / (T - 1)), t = 0 .. T - 1: decay_steps = T - 1."""
    T, gamma = 11, 2.0
    for t in range(T):
        got = float(penalties.exponential_annealing(t, decay=0.01, decay_steps=T - 1))
        assert gamma * got == pytest.approx(gamma * 0.01 ** (t / (T - 1)), rel=1e-6)


@pytest.mark.parametrize("step", [0, 7, 20])
def test_annealed_gamma_scales_the_penalty(step):
    schedule = lambda t: penalties.exponential_annealing(t, decay=0.01, decay_steps=10)  # noqa
    out = penalties.roth(linear_d(), REAL, FAKE, gamma=2.0, annealing=schedule,
                         step=tf.constant(step, tf.int64)).numpy()
    np.testing.assert_allclose(out, closed_form(2.0 * 0.01 ** min(step / 10, 1.0)), rtol=1e-5)


def test_annealing_without_a_step_is_refused():
    with pytest.raises(ConfigError, match="roth.annealing needs the training step"):
        penalties.roth(linear_d(), REAL, FAKE, annealing=penalties.exponential_annealing)


@pytest.mark.parametrize("kwargs,name", [
    (dict(decay=0.0, decay_steps=10), "exponential_annealing.decay"),
    (dict(decay=1.5, decay_steps=10), "exponential_annealing.decay"),
    (dict(decay_steps=0), "exponential_annealing.decay_steps"),
    (dict(decay_steps=10.0), "exponential_annealing.decay_steps")])
def test_bad_annealing_is_rejected_by_name(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        penalties.exponential_annealing(0, **kwargs)


def test_exponential_annealing_requires_decay_steps():
    """No default length: a forgotten decay_steps is an error naming it, called directly (Python's
    TypeError) and as roth.annealing through gin (a one-line ConfigError at the first step), never
    a silent decay to `decay` after one step."""
    with pytest.raises(TypeError, match="decay_steps"):
        penalties.exponential_annealing(5, decay=0.01)
    gin.clear_config()
    try:
        gin.parse_config("roth.annealing = @exponential_annealing\n"
                         "exponential_annealing.decay = 0.01\n")
        with pytest.raises(ConfigError, match=r"roth\.annealing: .*'decay_steps'.*"
                                              r"exponential_annealing\.decay_steps = ") as raised:
            penalties.roth(linear_d(), REAL, FAKE, step=tf.constant(3, tf.int64))
        own = [line for line in str(raised.value).splitlines()  # gin appends its call context
               if not line.lstrip().startswith("In call to configurable")]
        assert len(own) == 1, own
    finally:
        gin.clear_config()


def test_negative_gamma_is_rejected_by_name():
    with pytest.raises(ConfigError, match=r"roth\.gamma must be .*>= 0, got -1"):
        penalties.roth(linear_d(), REAL, FAKE, gamma=-1.0)


def test_only_roth_takes_the_step():
    assert penalties.takes_step(penalties.roth)
    assert not any(penalties.takes_step(p) for p in (
        penalties.r1, penalties.r2, penalties.r1_r2, penalties.wgan_gp, penalties.dragan))
    assert not penalties.takes_step(object())


def _per_replica_rows(strategy, x):
    rows = x.shape[0] // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: x[ctx.replica_id_in_sync_group * rows:(ctx.replica_id_in_sync_group + 1) * rows])


def test_two_replicas_equal_one_device_and_xla():
    """No batch statistics: each replica's half of the batch gives the one-device values of its
    rows; under jit_compile=True (annealed gamma of a step tensor) the values are the same."""
    schedule = lambda t: penalties.exponential_annealing(t, decay=0.01, decay_steps=10)  # noqa
    step = tf.constant(3, tf.int64)

    def roth(real, fake):
        return penalties.roth(linear_d(), real, fake, gamma=2.0, annealing=schedule, step=step)

    single = roth(REAL, FAKE).numpy()
    np.testing.assert_allclose(single, closed_form(2.0 * 0.01 ** 0.3), rtol=1e-5)
    compiled = tf.function(roth, jit_compile=True)(REAL, FAKE).numpy()
    np.testing.assert_allclose(compiled, single, rtol=1e-6)
    strategy = two_cpu_strategy()
    run = tf.function(lambda r, f: strategy.run(roth, args=(r, f)))
    mirrored = run(_per_replica_rows(strategy, REAL), _per_replica_rows(strategy, FAKE))
    np.testing.assert_allclose(
        np.concatenate([t.numpy() for t in strategy.experimental_local_results(mirrored)]),
        single, rtol=1e-6)
