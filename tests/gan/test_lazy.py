"""Lazy regularization: k = 1 is the eager penalty exactly; k = 2 applies the penalty with weight
2 on even D steps only and does not evaluate it on the others; what lazy_adam applies (StyleGAN2's
lr * c and beta ** c, nothing more)."""
import functools

import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from tf_convgan.errors import ConfigError
from helpers import make_gan, random_batch, run_steps, weights

SGD = lambda: optimizers.sgd(learning_rate=0.1)  # noqa: E731  (stateless: weights can be copied)


def test_lazy_interval_1_equals_the_eager_penalty():
    """Same weights after two steps of 2 D steps (to float rounding: the lazy step adds the
    penalty's gradient to the loss's instead of differentiating their sum)."""
    batches = [random_batch(4, d_steps=2, seed=s) for s in (0, 1)]
    results = []
    for lazy in (None, 1):
        gan = make_gan(penalty=penalties.r1, lazy_interval=lazy, d_steps=2)
        logs = run_steps(gan, batches)
        results.append((weights(gan), logs))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for name, value in results[0][1].items():  # logs: the graph may sum in another order
        np.testing.assert_allclose(results[1][1][name], value, rtol=1e-6, err_msg=name)


def _d_weights(gan):
    return [w.numpy() for w in gan.discriminator.trainable_weights]


def test_lazy_interval_2_applies_twice_the_penalty_on_even_d_steps():
    """D steps 0, 1, 2 of a lazy (k = 2, gamma) GAN against eager GANs from the same weights:
    steps 0 and 2 equal an eager step with penalty 2 * gamma, step 1 one without a penalty."""
    calls = []

    def counted_r1(*args, **kwargs):
        calls.append(1)
        return penalties.r1(*args, gamma=1.0, **kwargs)

    lazy = make_gan(penalty=counted_r1, lazy_interval=2, optimizer=SGD)
    calls.clear()  # the construction-time check ran it once
    double = make_gan(penalty=functools.partial(penalties.r1, gamma=2.0), optimizer=SGD)
    plain = make_gan(penalty=None, optimizer=SGD)
    real, labels = random_batch(4, seed=3)
    for j in range(3):
        reference = double if j % 2 == 0 else plain
        reference.discriminator.set_weights(lazy.discriminator.get_weights())
        seed = tf.constant([9, j], tf.int64)
        args = (tf.constant(real[:, 0]), tf.constant(labels[:, 0]), seed)
        before = _d_weights(lazy)
        lazy_logs = lazy.discriminator_step(*args)  # eager: tf.cond runs one branch only
        ref_logs = reference.discriminator_step(*args)
        assert int(lazy.d_optimizer.iterations.numpy()) == j + 1
        for a, b, w0 in zip(_d_weights(lazy), _d_weights(reference), before):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert any(not np.allclose(a, w0) for a, w0 in zip(_d_weights(lazy), before))
        if j % 2 == 0:
            np.testing.assert_allclose(float(lazy_logs["penalty"]), float(ref_logs["penalty"]),
                                       rtol=1e-5)
            assert float(lazy_logs["penalty"]) > 0
        else:
            assert float(lazy_logs["penalty"]) == 0.0
    assert len(calls) == 2  # evaluated on D steps 0 and 2, not on step 1


def test_lazy_adam_is_adam_with_lr_times_c_and_betas_to_the_power_c():
    """What lazy_adam applies, exactly: c = k / (k + 1), learning_rate * c (stored in float32),
    beta_1 ** c, beta_2 ** c, epsilon as given; nothing else."""
    opt = optimizers.lazy_adam(learning_rate=2e-3, beta_1=0.0, beta_2=0.99, epsilon=1e-7,
                               interval=16)
    c = 16 / (16 + 1.0)
    assert float(opt.learning_rate) == float(np.float32(2e-3 * c))
    assert opt.beta_1 == 0.0
    assert opt.beta_2 == 0.99 ** c
    assert opt.epsilon == 1e-7
    assert opt.lazy_interval == 16
    opt = optimizers.lazy_adam(learning_rate=1e-3, beta_1=0.5, beta_2=0.999, interval=4)
    assert opt.beta_1 == 0.5 ** 0.8 and opt.beta_2 == 0.999 ** 0.8
    assert float(opt.learning_rate) == float(np.float32(1e-3 * 0.8))
    assert opt.lazy_interval == 4


def _keras_adam(w, gradients, *, lr, beta_1, beta_2, eps):
    """Keras' Adam in float64: m, v as moving averages, lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
    w <- w - lr_t m / (sqrt(v) + eps)."""
    m = v = np.zeros_like(w)
    for t, g in enumerate(gradients, start=1):
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        w = w - lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (np.sqrt(v) + eps)
    return w


def test_lazy_adam_updates_are_adams_with_the_adjusted_values():
    """Three updates of lazy_adam (k = 3, c = 3/4) equal Keras' Adam formula with lr * c and
    betas ** c, and differ from the unadjusted Adam by far more than the tolerance."""
    lr, b1, b2, eps, c = 0.1, 0.5, 0.9, 1e-8, 0.75
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    gradients = [np.array(g, np.float32) for g in ([0.3, -1.0, 2.0], [-0.2, 0.5, 1.0],
                                                    [0.4, 0.1, -3.0])]
    opt = optimizers.lazy_adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps, interval=3)
    w = tf.Variable(w0)
    for g in gradients:
        opt.apply_gradients([(tf.constant(g), w)])
    g64 = [g.astype(np.float64) for g in gradients]
    expected = _keras_adam(w0.astype(np.float64), g64, lr=lr * c, beta_1=b1 ** c,
                           beta_2=b2 ** c, eps=eps)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, atol=1e-7)
    plain = _keras_adam(w0.astype(np.float64), g64, lr=lr, beta_1=b1, beta_2=b2, eps=eps)
    assert np.abs(plain - expected).max() > 1e-2


def test_lazy_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="GAN.lazy_interval must be an integer >= 1"):
        make_gan(penalty=penalties.r1, lazy_interval=0)
    with pytest.raises(ConfigError, match="GAN.lazy_interval needs a GAN.penalty"):
        make_gan(lazy_interval=4)
    with pytest.raises(ConfigError, match="lazy_adam with interval 4 but GAN.lazy_interval is 2"):
        make_gan(penalty=penalties.r1, lazy_interval=2,
                 optimizer=lambda: optimizers.lazy_adam(interval=4))
    with pytest.raises(ConfigError, match="lazy_adam.interval"):
        optimizers.lazy_adam(interval=0)


# A tiny ResNet-CIFAR pair at 8x8 whose discriminator takes every normalization the library
# offers (networks/normalization.py).
def _tiny_pair(normalization):
    from tf_convgan.networks import resnet_cifar_discriminator, resnet_cifar_generator
    return (lambda c: resnet_cifar_generator(resolution=8, z_dim=8, ch=8, num_classes=c),
            lambda c: resnet_cifar_discriminator(resolution=8, ch=8, num_classes=c,
                                                 normalization=normalization))


def _small_batches(n, d_steps):
    rng = np.random.default_rng(5)
    return [(rng.uniform(-1, 1, size=(4, d_steps, 8, 8, 3)).astype(np.float32),
             np.zeros((4, d_steps), np.int32)) for _ in range(n)]


# Two representative cases in the default suite (spectral norm's own branch, and the other
# penalty on another normalization); the other six under -m slow.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("normalization,penalty", [
    pytest.param("none", penalties.r1, id="none-r1", marks=_SLOW),
    pytest.param("none", penalties.wgan_gp, id="none-wgan_gp", marks=_SLOW),
    pytest.param("layer_norm", penalties.r1, id="layer_norm-r1", marks=_SLOW),
    pytest.param("layer_norm", penalties.wgan_gp, id="layer_norm-wgan_gp", marks=_SLOW),
    pytest.param("spectral_norm", penalties.r1, id="spectral_norm-r1"),
    pytest.param("spectral_norm", penalties.wgan_gp, id="spectral_norm-wgan_gp", marks=_SLOW),
    pytest.param("weight_norm", penalties.r1, id="weight_norm-r1", marks=_SLOW),
    pytest.param("weight_norm", penalties.wgan_gp, id="weight_norm-wgan_gp")])
def test_lazy_interval_1_equals_the_eager_penalty_for_every_d_normalization(normalization,
                                                                            penalty):
    """The lazy penalty evaluates the same D as the eager one, for every D normalization it
    accepts (batch norm is refused: the next test). Every trainable weight of G and D after one
    step of two D steps, with SGD: Adam's first steps map a gradient element of ~1e-9 and one of
    exactly 0 (the same up to summation order) to updates lr apart."""
    batches = _small_batches(1, d_steps=2)
    results = []
    for lazy in (None, 1):
        gan = make_gan(_tiny_pair(normalization), penalty=penalty, lazy_interval=lazy,
                       d_steps=2, optimizer=lambda: optimizers.sgd(learning_rate=0.01))
        run_steps(gan, batches)
        results.append([v.numpy() for v in gan.generator.trainable_variables
                        + gan.discriminator.trainable_variables])
    # A spectral-norm D's lazy branch refines u in its own pass without writing it back (a state
    # write in a tf.cond is not supported under MirroredStrategy): sigma differs by one power
    # iteration's change, so all weights together agree to 1e-3 in relative L2 norm.
    if normalization == "spectral_norm":
        a, b = (np.concatenate([w.ravel() for w in r]) for r in results)
        assert np.linalg.norm(b - a) <= 1e-3 * np.linalg.norm(a)
        return
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def test_lazy_interval_with_a_batch_norm_discriminator_is_refused_by_name():
    """A batch-norm D's lazy penalty would run with its moving statistics while its loss uses the
    batch's (a different function): refused when the GAN is built, naming GAN.lazy_interval."""
    with pytest.raises(ConfigError, match="GAN.lazy_interval cannot be used with a batch-norm"):
        make_gan(_tiny_pair("batch_norm"), penalty=penalties.r1, lazy_interval=1)
    make_gan(_tiny_pair("batch_norm"), penalty=penalties.r1, lazy_interval=None)
