"""Mixed precision: R1 and D's gradients under mixed_float16 (loss scaling) and mixed_bfloat16
match float32; the penalty unscales grad_x D before squaring it (TensorFlow's issue 48662)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_gan, random_batch, run_eager_steps, run_steps
from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties


def _make_gan_with_policy(policy, **kwargs):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return make_gan(optimizer=lambda: optimizers.sgd(learning_rate=0.01), ema_beta=0.5,
                        penalty=penalties.r1, **kwargs)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _d_update(gan, before):
    return [w.numpy().astype(np.float64) - b for w, b in zip(gan.discriminator.trainable_weights,
                                                           before)]


# Stated tolerances. float16 has 11 significant bits (~5e-4), bfloat16 8 (~4e-3); the errors add up
# over the layers and, for the weight updates (relative to the largest entry of each weight's
# update), over the double backprop of R1: float16 2e-2 for all; bfloat16 1e-1 for the loss
# terms and 2.5e-1 for the updates (measured: up to 1.2e-1 on a small bias).
# float16's 11-bit significand: the largest update error measured is 2.2% of the update's scale
# (a small bias; PyTorch initialisation), bfloat16's 8 bits: 12%.
@pytest.mark.parametrize("policy,rtol,update_rtol", [("mixed_float16", 2e-2, 3e-2),
                                                     ("mixed_bfloat16", 1e-1, 2.5e-1)])
def test_one_step_matches_float32(policy, rtol, update_rtol):
    reference = _make_gan_with_policy("float32")
    mixed = _make_gan_with_policy(policy)
    assert mixed.loss_scaling == (policy == "mixed_float16")
    mixed.discriminator.set_weights(reference.discriminator.get_weights())
    mixed.generator.set_weights(reference.generator.get_weights())
    batch = random_batch(8)
    before = [w.numpy().astype(np.float64) for w in reference.discriminator.trainable_weights]
    want = run_steps(reference, [batch])
    got = run_steps(mixed, [batch])
    assert got["penalty"] == pytest.approx(want["penalty"], rel=rtol)
    assert got["d_loss"] == pytest.approx(want["d_loss"], rel=rtol)
    assert got["d_grad_norm"] == pytest.approx(want["d_grad_norm"], rel=rtol)  # unscaled
    for want_update, got_update in zip(_d_update(reference, before), _d_update(mixed, before)):
        scale = np.abs(want_update).max()
        assert np.abs(got_update - want_update).max() <= update_rtol * scale + 1e-7


def test_r1_unscales_the_input_gradient_before_squaring():
    """A discriminator whose input gradients (~1e-9) are below float16's smallest subnormal
    (6e-8): without the loss scale they flush to zero; with it R1 equals float32's."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 16)).astype(np.float32))
    w = rng.normal(size=(16,)).astype(np.float32) * 1e-9

    def d_fn_float32(images):
        return tf.reduce_sum(images * w, axis=1)

    def d_fn_float16(images):  # what a mixed_float16 D computes: float16 inside
        return tf.cast(tf.reduce_sum(tf.cast(images, tf.float16) * tf.cast(w * 1e4, tf.float16),
                                     axis=1) * tf.constant(1e-4, tf.float16), tf.float32)

    want = penalties.r1(d_fn_float32, x, x, gamma=2.0).numpy()
    np.testing.assert_allclose(want, np.full(4, np.sum(w.astype(np.float64) ** 2)), rtol=1e-5)
    unscaled = penalties.r1(d_fn_float16, x, x, gamma=2.0).numpy()
    assert np.all(unscaled == 0.0)  # underflow: the failure loss scaling prevents
    np.testing.assert_allclose(penalties.r1(d_fn_float16, x, x, gamma=2.0,
                                            loss_scale=tf.constant(2.0 ** 15)).numpy(), want,
                               rtol=2e-2)


def test_loss_scaled_steps_skipped_for_non_finite_gradients_still_count():
    gan = _make_gan_with_policy("mixed_float16")
    gan.d_optimizer.dynamic_scale.assign(1e30)  # overflows float16: the D update is skipped
    before = [w.numpy() for w in gan.discriminator.trainable_weights]
    run_steps(gan, [random_batch(4)])
    assert int(gan.step.numpy()) == 1
    for b, w in zip(before, gan.discriminator.trainable_weights):
        np.testing.assert_array_equal(b, w.numpy())
    assert float(gan.d_optimizer.dynamic_scale.numpy()) == pytest.approx(5e29)


def test_logged_gradient_norms_use_the_loss_scale_of_their_step():
    """With dynamic_growth_steps = 1 the LossScaleOptimizer doubles its scale in every finite
    apply_gradients: the logged norms must be unscaled by the scale the step's loss was multiplied
    by (the one before the update), and then equal float32's norms; the scale after the update is
    twice that and gives half the norm."""
    reference = _make_gan_with_policy("float32")
    mixed = _make_gan_with_policy("mixed_float16")
    mixed.discriminator.set_weights(reference.discriminator.get_weights())
    mixed.generator.set_weights(reference.generator.get_weights())
    for optimizer in (mixed.d_optimizer, mixed.g_optimizer):
        optimizer.dynamic_growth_steps = 1
    scales = [float(o.dynamic_scale.numpy()) for o in (mixed.d_optimizer, mixed.g_optimizer)]
    batch = random_batch(4)
    want = run_eager_steps(reference, [batch])
    got = run_eager_steps(mixed, [batch])
    for optimizer, scale in zip((mixed.d_optimizer, mixed.g_optimizer), scales):
        assert float(optimizer.dynamic_scale.numpy()) == 2 * scale  # the scale changed in the step
    for name in ("d_grad_norm", "g_grad_norm"):
        assert want[name] > 0
        assert got[name] == pytest.approx(want[name], rel=2e-2), name
