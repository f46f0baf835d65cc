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
from tf_convgan.objectives import losses, penalties
from tf_convgan.gan import optimizers
from helpers import (assert_close_per_tensor, dtype_policy_scope, make_gan, random_batch,
                     run_eager_steps, run_steps, two_cpu_strategy, weights)

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


@pytest.mark.parametrize("name,penalty,loss,rtol,atol", [
    ("sndcgan", None, losses.non_saturating, 1e-5, 1e-7),
    pytest.param("resnet_cifar", penalties.wgan_gp, losses.wasserstein, 1e-10, 1e-12,
                 marks=pytest.mark.slow),  # the penalty's double backward through the statistics
])
def test_batch_norm_uses_the_global_batch_two_replicas_equal_one_device(name, penalty, loss, rtol,
                                                                        atol):
    """With batch_norm in D (and G's synchronized batch norm), 2 replicas of 4 examples give the
    weights of 1 device on the batch of 8 after a step: cross-replica statistics, in D's step, in
    WGAN-GP's double backward pass and in G's step. SGD, so that the weights show the gradients.

    In float64 (the float64 dtype policy), where the two runs agree to rounding: measured max
    per-tensor error / scale 4.2e-7 (weights) and 1.3e-6 (updates) for the SNDCGANs with the
    non-saturating loss, 2.2e-13 for ResNet-CIFAR with WGAN-GP and the Wasserstein loss. What is
    not float64 there is the loss of the float32 logits: the non-saturating loss' derivative
    sigmoid(-logit) rounds differently on 4 and on 8 logits (TensorFlow's float32 sigmoid and
    softplus differ by up to 5 ulps between the two lengths, on about half of random values;
    float64's do not), hence 1e-5; the Wasserstein loss' derivative is +-1/B exactly, hence 1e-10.

    Not float32: there every op rounds differently on 4 and on 8 examples (~1e-6 relative per
    activation), and a leaky-ReLU input within that of 0 takes the other slope in one run. For the
    SNDCGANs with the non-saturating loss and this seed that happens once in D's step, in the fake
    pass after norm_2 (exact value -1.54e-6; 1 device -1.79e-6, 2 replicas +1.31e-6). D's gradient
    then differs by 1e-3 to 1.5e-2 relative in conv_0..conv_2, norm_1 and norm_2's beta (the
    flipped element's channel), G's step sees 119 leaky-ReLU flips in D, G's gradient differs by
    2-6% per tensor (g_grad_norm 26.71 vs 26.89) and fc/kernel by 8.7e-4 of 0.157 after the step.
    Started from the same float32 weights, the float64 runs on 1 device and on 2 replicas agree to
    1e-13, the float32 run on 1 device is within 4e-7 of them (norm of the update's error / norm
    of the update), the one on 2 replicas 1.2e-3 away. With other seeds float32 agrees to ~5e-5,
    or a flip happens again."""
    dtype = "float64"
    real, labels = random_batch(8)
    batches = [(real.astype(dtype), labels)]
    kwargs = dict(penalty=penalty, loss=loss(), ema_beta=0.9, dtype_policy=dtype,
                  optimizer=lambda: optimizers.sgd(learning_rate=0.01))
    single = make_gan(_networks(name, "batch_norm"), **kwargs)
    assert single.discriminator.weights[0].dtype == dtype
    initial = weights(single)
    single_logs = run_steps(single, batches)
    strategy = two_cpu_strategy()
    mirrored = make_gan(_networks(name, "batch_norm"), strategy=strategy, **kwargs)
    mirrored_logs = run_steps(mirrored, batches, strategy=strategy)
    gan_weights = single.generator.weights + single.discriminator.weights
    gan_weights += single.generator_ema.weights
    names = [w.path for w in gan_weights]
    assert_close_per_tensor(weights(mirrored), weights(single), rtol=rtol, atol=atol, names=names)
    deltas = lambda gan: [w - w0 for w, w0 in zip(weights(gan), initial)]  # noqa: E731
    assert_close_per_tensor(deltas(mirrored), deltas(single), rtol=10 * rtol, atol=atol,
                            names=names)
    assert any("moving_mean" in w.path for w in single.discriminator.weights)
    assert single_logs["g_grad_norm"] > 1.0  # G's step is not degenerate (saturated D)
    for key in single_logs:  # float32 losses, summed in another order
        np.testing.assert_allclose(single_logs[key], mirrored_logs[key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_synchronized_batch_norm_two_replicas_equal_one_device(dtype, rtol):
    """The networks' batch norm (Keras' BatchNormalization(synchronized=True)) on 2 replicas of
    4 examples equals 1 device on the 8: in training mode its output, its gradients w.r.t. the
    input (through the cross-replica mean and variance: each replica's gradient includes the
    other replica's loss), gamma and beta, and the moving statistics. Channel means of up to 3
    standard deviations, as Keras computes the variance as E[x^2] - E[x]^2 from all-reduced sums
    (on one device too): measured max error / scale 4.4e-6 in float32 (4e-7 with centred
    channels), 5.6e-15 in float64."""
    rng = np.random.default_rng(0)
    shift = np.linspace(-3, 3, 6)
    x = (rng.standard_normal((8, 5, 5, 6)) + shift).astype(dtype)
    upstream = rng.standard_normal((8, 5, 5, 6)).astype(dtype)

    def make():
        with dtype_policy_scope(dtype):
            layer = normalization.feature_norm("batch_norm", "bn")
            layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 6).astype(dtype))
        layer.beta.assign(np.linspace(-1, 1, 6).astype(dtype))
        return layer

    def forward_backward(layer, x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        return (y,) + tuple(tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))

    single = make()
    want = [t.numpy() for t in forward_backward(single, tf.constant(x), tf.constant(upstream))]
    strategy = two_cpu_strategy()
    with strategy.scope():
        mirrored = make()

    @tf.function
    def run(x, upstream):
        return strategy.run(lambda a, b: forward_backward(mirrored, a, b), args=(x, upstream))

    dataset = tf.data.Dataset.from_tensors((x, upstream))
    out = run(*next(iter(strategy.experimental_distribute_dataset(dataset))))
    local = [[t.numpy() for t in strategy.experimental_local_results(o)] for o in out]
    got = [np.concatenate(local[0]), np.concatenate(local[1]), sum(local[2]), sum(local[3])]
    for g, w, what in zip(got, want, ["output", "input gradient", "gamma gradient",
                                      "beta gradient"]):
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * np.abs(w).max(), err_msg=what)
    for m, s in zip(mirrored.non_trainable_variables, single.non_trainable_variables):
        per_replica = [v.numpy() for v in m.value.values]
        np.testing.assert_array_equal(per_replica[0], per_replica[1])
        np.testing.assert_allclose(per_replica[0], s.numpy(), rtol=rtol, err_msg=s.path)
    assert not np.allclose(single.moving_mean.numpy(), 0)


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
