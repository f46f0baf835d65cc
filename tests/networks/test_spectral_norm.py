"""Spectral normalisation (SNConv2D, SNDense): sigma against the SVD, the gradient through
sigma, u updated only when training, unit spectral norm in an SNDCGAN discriminator."""
import numpy as np
import pytest
import tensorflow as tf

from network_helpers import random_images as _images, rng as _rng

from tf_convgan import networks as N


def _sn_layers():
    return {
        "conv": (lambda p: N.SNConv2D(5, 3, padding="same", power_iterations=p),
                 _rng(2).standard_normal((2, 6, 6, 4)).astype(np.float32)),
        "dense": (lambda p: N.SNDense(7, power_iterations=p),
                  _rng(3).standard_normal((3, 10)).astype(np.float32)),
    }


def _plain_forward(layer, x, kernel):
    if isinstance(layer, N.SNConv2D):
        return tf.nn.conv2d(x, kernel, 1, "SAME") + layer.bias
    return tf.matmul(x, kernel) + layer.bias


def _plant_spectrum(layer, seed=7):
    """Set the layer's kernel to a random matrix with singular values 2.0, 1.2, ...
    (a clear gap, so power iteration converges fast and the SVD gradient is stable)."""
    shape = layer.kernel.shape
    fan_in, out = int(np.prod(shape[:-1])), shape[-1]
    rng = _rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((fan_in, out)))
    v, _ = np.linalg.qr(rng.standard_normal((out, out)))
    s = np.concatenate([[2.0], np.linspace(1.2, 0.3, out - 1)])
    layer.kernel.assign(((u * s) @ v.T).reshape(shape).astype(np.float32))


def _top_sv(kernel):
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sn_sigma_matches_svd(kind):
    make, x = _sn_layers()[kind]
    layer = make(1)
    layer(x)
    u0 = layer.u.numpy()
    assert u0.shape == (1, layer.kernel.shape[-1])
    np.testing.assert_allclose(np.linalg.norm(u0), 1.0, rtol=1e-5)
    _plant_spectrum(layer)
    for _ in range(50):
        layer(x, training=True)
    s = _top_sv(layer.kernel.numpy())
    np.testing.assert_allclose(s, 2.0, rtol=1e-5)
    np.testing.assert_allclose(float(layer.sigma()), s, rtol=1e-3)
    # One call with power_iterations=50 converges too.
    layer50 = make(50)
    layer50(x)
    layer50.kernel.assign(layer.kernel)
    layer50(x, training=True)
    np.testing.assert_allclose(float(layer50.sigma()), s, rtol=1e-3)
    # The output is the plain layer with kernel / sigma.
    np.testing.assert_allclose(layer(x).numpy(),
                               _plain_forward(layer, x, layer.kernel.numpy() / s).numpy(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sn_gradient_matches_exact_sigma(kind):
    make, x = _sn_layers()[kind]
    layer = make(1)
    layer(x)
    _plant_spectrum(layer)
    for _ in range(50):
        layer(x, training=True)
    out_shape = layer(x).shape
    r = tf.constant(_rng(4).standard_normal(out_shape).astype(np.float32))

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * r)
    grad = tape.gradient(loss, layer.kernel).numpy()

    kernel = tf.Variable(layer.kernel.numpy())
    with tf.GradientTape(persistent=True) as tape:
        s, _, _ = tf.linalg.svd(tf.reshape(kernel, [-1, kernel.shape[-1]]))
        ref_loss = tf.reduce_sum(_plain_forward(layer, x, kernel / s[0]) * r)
        const_loss = tf.reduce_sum(_plain_forward(layer, x, kernel / tf.stop_gradient(s[0])) * r)
    ref = tape.gradient(ref_loss, kernel).numpy()
    const = tape.gradient(const_loss, kernel).numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(grad, ref, atol=1e-4 * scale, rtol=1e-3)
    # Gradient does flow through sigma (differs from treating sigma as a constant).
    assert np.abs(const - ref).max() > 1e-2 * scale


def test_sn_u_updated_only_when_training():
    make, x = _sn_layers()["conv"]
    layer = make(1)
    layer(x)
    u0 = layer.u.numpy()
    y0 = layer(x, training=False).numpy()
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    layer(x)  # training=None -> no update
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    k0 = layer.kernel.numpy()
    layer(x, training=True)
    assert np.abs(layer.u.numpy() - u0).max() > 1e-4
    # The stored kernel is never overwritten with W / sigma (unlike keras' wrapper).
    np.testing.assert_array_equal(layer.kernel.numpy(), k0)
    assert not layer.u.trainable and all(w is not layer.u for w in layer.trainable_weights)
    assert y0.shape == (2, 6, 6, 5)
    # Inside a Model, training=True propagates to the SN layers.
    d = N.build(N.sndcgan_discriminator(resolution=8))
    us = [c.u.numpy() for c in d.convs]
    d(_images(2, 8), training=False)
    assert all(np.array_equal(a, c.u.numpy()) for a, c in zip(us, d.convs))
    d(_images(2, 8), training=True)
    assert all(not np.array_equal(a, c.u.numpy()) for a, c in zip(us, d.convs))


def test_sn_power_iterations_validated():
    with pytest.raises(ValueError, match="power_iterations"):
        N.SNDense(3, power_iterations=0)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sn_power_iterate_on_the_initial_kernel_matches_svd(kind):
    """On the layer's own (Glorot) kernel, no planted gap: after enough power iterations the
    estimate, and the sigma the forward pass divides by, equal numpy's top singular value to 1e-3."""
    make, x = _sn_layers()[kind]
    layer = make(1)
    layer(x)
    s = _top_sv(layer.kernel.numpy())
    np.testing.assert_allclose(float(layer.power_iterate(500)), s, rtol=1e-3)
    np.testing.assert_allclose(float(layer.sigma()), s, rtol=1e-3)
    np.testing.assert_allclose(layer(x).numpy(),
                               _plain_forward(layer, x, layer.kernel.numpy() / s).numpy(),
                               rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="num_iterations"):
        layer.power_iterate(0)


def test_sn_discriminator_layers_have_unit_spectral_norm():
    """Every SN layer of an SNDCGAN discriminator, after power iteration, uses W / sigma with top
    singular value 1 (1e-3) and the projection embedding included."""
    d = N.build(N.sndcgan_discriminator(resolution=8, num_classes=3))
    layers = list(d.convs) + [d.fc, d.embed]
    for layer in layers:
        layer.power_iterate(300)
        normalized = layer._normalized_kernel(False).numpy()
        np.testing.assert_allclose(_top_sv(normalized), 1.0, rtol=1e-3, err_msg=layer.name)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sn_gradient_with_converged_u_equals_the_exact_sigma_gradient(kind):
    """The layer's gradient w.r.t. W (through its power-iteration sigma, u and v held constant)
    equals autodiff of f(W / sigma_exact(W)) once u has converged, on the layer's own kernel."""
    make, x = _sn_layers()[kind]
    layer = make(1)
    layer(x)
    layer.power_iterate(500)
    r = tf.constant(_rng(5).standard_normal(layer(x).shape).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=False) * r)
    grad = tape.gradient(loss, layer.kernel).numpy()
    kernel = tf.Variable(layer.kernel.numpy())
    with tf.GradientTape() as tape:
        sigma = tf.linalg.svd(tf.reshape(kernel, [-1, kernel.shape[-1]]), compute_uv=False)[0]
        ref_loss = tf.reduce_sum(_plain_forward(layer, x, kernel / sigma) * r)
    ref = tape.gradient(ref_loss, kernel).numpy()
    np.testing.assert_allclose(grad, ref, atol=2e-3 * np.abs(ref).max())
