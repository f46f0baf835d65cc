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


@pytest.mark.parametrize("policy,rtol", [("mixed_float16", 5e-2), ("mixed_bfloat16", 2.5e-1)])
def test_zcr_generator_term_is_added_in_float32_under_mixed_precision(policy, rtol):
    """One step of latent_consistency = zcr() under mixed precision: the generator's zCR term
    (float16 / bfloat16, from G's images) is cast to the float32 loss as D's terms are; its log
    and G's total match float32's. Tolerances: zcr_g is a mean of squared differences of images
    a perturbation sigma = 0.03 apart, each image rounded to the compute dtype (float16 2^-11,
    bfloat16 2^-8 relative), so the difference carries relative errors ~|G| eps / |dG|."""
    from tf_convgan.objectives.consistency import zcr
    reference = _make_gan_with_policy("float32", latent_consistency=zcr())
    mixed = _make_gan_with_policy(policy, latent_consistency=zcr())
    mixed.discriminator.set_weights(reference.discriminator.get_weights())
    mixed.generator.set_weights(reference.generator.get_weights())
    batch = random_batch(4)
    want = run_steps(reference, [batch])
    got = run_steps(mixed, [batch])
    assert want["zcr_g"] < 0
    assert got["zcr_g"] == pytest.approx(want["zcr_g"], rel=rtol)
    assert got["g_loss"] == pytest.approx(want["g_loss"], rel=rtol)


def _r1_weight_gradients(gan, real, gamma):
    """The weight gradients of mean(R1) as D's step takes them (its Critic, the penalty's input
    gradient from the loss's forward pass, the loss scale), unscaled in float64."""
    from tf_convgan.gan.distribution import loss_scale, scaled
    critic = gan._critic(tf.zeros([real.shape[0]], tf.int32))
    variables = gan.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        _, real_gradients = critic.logits_with_input_gradients(real)
        penalty = tf.nn.compute_average_loss(penalties.r1(
            critic, real, real, real_gradients=real_gradients, loss_scale=critic.loss_scale,
            gamma=gamma))
        penalty_scaled = scaled(gan.d_optimizer, penalty)
    scale = float(loss_scale(gan.d_optimizer))
    gradients = tape.gradient(penalty_scaled, variables)  # None: the last bias (no R1 term)
    return np.concatenate([tf.cast(g, tf.float64).numpy().ravel() / scale
                           for g in gradients if g is not None])


# float16: eps = 2^-10 = 9.8e-4; the R1 weight gradient is a sum of products over D's forward,
# backward and double-backward passes, whose roundings add up to a few eps in the global norm
# (1.6e-3 measured at ||grad_x D|| = 1e-3): 5e-3. At ||grad_x D|| = 1e-6 the input gradient's
# elements (1e-6 / sqrt(8 * 8 * 3) = 7e-8, times the scale sqrt(2^15) = 181: 1.3e-5) lie in
# float16's subnormal range (spacing 6e-8, relative ~5e-3 and more for the smaller ones): 5e-2.
@pytest.mark.parametrize("grad_norm,rtol", [(1e-3, 5e-3), (1e-6, 5e-2)])
def test_r1_weight_gradients_under_float16_loss_scaling_match_float32(grad_norm, rtol):
    """R1's second-order path (the gradient of ||grad_x D||^2 w.r.t. D's weights) under
    mixed_float16 against float32, for a D whose input gradients have norm `grad_norm` (its last
    layer scaled down): relative L2 error of all weight gradients together. Loss scaling must
    protect both float16 passes, grad_x D and the double backward pass (gamma = 1, batch 8)."""
    from tf_convgan.networks import resnet_cifar_discriminator, resnet_cifar_generator
    pair = (lambda c: resnet_cifar_generator(resolution=8, z_dim=8, ch=8, num_classes=c),
            lambda c: resnet_cifar_discriminator(resolution=8, ch=8, num_classes=c,
                                                 normalization="none"))
    reference = _make_gan_with_policy("float32", network=pair)
    mixed = _make_gan_with_policy("mixed_float16", network=pair)
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3)).astype(np.float32))
    critic = reference._critic(tf.zeros([8], tf.int32))
    norm = np.sqrt(penalties.squared_norm(penalties.input_gradients(critic, real)).numpy()).mean()
    last = reference.discriminator.trainable_variables[-2]  # the last dense layer's kernel
    assert last.shape[-1] == 1
    last.assign(last * (grad_norm / norm))
    mixed.discriminator.set_weights(reference.discriminator.get_weights())
    norm = np.sqrt(penalties.squared_norm(penalties.input_gradients(critic, real)).numpy())
    np.testing.assert_allclose(norm.mean(), grad_norm, rtol=1e-3)
    want = _r1_weight_gradients(reference, real, gamma=1.0)
    got = _r1_weight_gradients(mixed, real, gamma=1.0)
    assert np.linalg.norm(got - want) <= rtol * np.linalg.norm(want)
