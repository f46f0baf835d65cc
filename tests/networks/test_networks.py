"""Tests for tf_convgan.networks: exact parameter counts, shapes, per-example
independence, spectral-norm numerics, MirroredStrategy / XLA behaviour, validation."""
import math

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers

from tf_convgan import networks as N
from tf_convgan.networks.resnet import avg_pool_3x3_s2


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)  # reproducible weight init


def _rng(seed=0):
    return np.random.default_rng(seed)


def _images(n, res, seed=0):
    return _rng(seed).uniform(-1, 1, (n, res, res, 3)).astype(np.float32)


def _z(n, z_dim, seed=0):
    return _rng(seed).standard_normal((n, z_dim)).astype(np.float32)


# ----------------------------------------------------------------------------- ResNet counts

def _expected_resnet_counts(resolution, nf, nf_max, z_dim, embed_size, num_classes):
    """Independent re-derivation of the GAN_stability parameter counts from the spec."""
    def conv(k, cin, cout, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    def block(fin, fout):
        h = min(fin, fout)
        return conv(3, fin, h) + conv(3, h, fout) + (0 if fin == fout else conv(1, fin, fout, False))

    nl = int(math.log2(resolution // 4))
    ch = lambda k: min(nf * 2 ** k, nf_max)  # noqa: E731
    g = num_classes * embed_size + (z_dim + embed_size + 1) * ch(nl) * 16
    g += sum(block(ch(nl - i), ch(nl - i - 1)) for i in range(nl))
    g += block(nf, nf) + conv(3, nf, 3)
    d = conv(3, 3, nf) + block(nf, nf) + sum(block(ch(i), ch(i + 1)) for i in range(nl))
    d += (ch(nl) * 16 + 1) * num_classes
    return g, d


@pytest.mark.parametrize("resolution,g_count,d_count", [
    (32, 6_773_699, 2_579_649), (64, 11_493_315, 10_191_553)])
def test_resnet_exact_param_counts(resolution, g_count, d_count):
    g = N.build(N.resnet_generator(resolution=resolution))
    d = N.build(N.resnet_discriminator(resolution=resolution))
    assert sum(int(np.prod(w.shape)) for w in g.weights) == g_count
    assert sum(int(np.prod(w.shape)) for w in d.weights) == d_count
    assert N.count_params(g) == g_count and N.count_params(d) == d_count
    # The independent formula reproduces the reference numbers too.
    assert _expected_resnet_counts(resolution, 64, 512, 256, 256, 1)[0] == g_count
    assert _expected_resnet_counts(resolution, 64, 1024, 256, 256, 1)[1] == d_count


def test_resnet_128_small_nf_and_conditional_counts():
    kw = dict(nf=4, nf_max=16)
    g = N.build(N.resnet_generator(resolution=128, z_dim=16, num_classes=3, embed_size=8, **kw))
    d = N.build(N.resnet_discriminator(resolution=128, num_classes=3, **kw))
    assert N.count_params(g) == _expected_resnet_counts(128, 4, 16, 16, 8, 3)[0]
    assert N.count_params(d) == _expected_resnet_counts(128, 4, 16, 16, 8, 3)[1]
    x = g(_z(2, 16), np.array([0, 2], np.int32))
    assert x.shape == (2, 128, 128, 3) and x.dtype == tf.float32
    logits = d(x, np.array([0, 2], np.int32))
    assert logits.shape == (2,) and logits.dtype == tf.float32


def test_resnet_1024_tiny():
    g = N.resnet_generator(resolution=1024, nf=1, nf_max=2, z_dim=8, embed_size=8)
    x = g(_z(1, 8))
    assert x.shape == (1, 1024, 1024, 3)
    assert g.nlayers == 8 and g.nf0 == 2
    assert N.count_params(g) == _expected_resnet_counts(1024, 1, 2, 8, 8, 1)[0]
    d = N.resnet_discriminator(resolution=1024, nf=1, nf_max=2)
    assert d(x).shape == (1,)


def test_avg_pool_counts_zero_padding():
    out = avg_pool_3x3_s2(tf.ones([1, 4, 4, 1])).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out, [[4 / 9, 6 / 9], [6 / 9, 1.0]], rtol=1e-6)
    # Against a brute-force numpy reference (count_include_pad=True) on random data.
    x = _rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    ref = np.stack([np.stack([xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum(axis=(1, 2)) / 9
                              for j in range(4)], 1) for i in range(4)], 1)
    np.testing.assert_allclose(avg_pool_3x3_s2(x).numpy(), ref, rtol=1e-5, atol=1e-6)


def test_resnet_generator_embedding_is_l2_normalised_and_concatenated():
    g = N.build(N.resnet_generator(resolution=32, nf=2, nf_max=4, z_dim=3, embed_size=5,
                                   num_classes=2))
    # Replace fc by a probe: with an identity-like kernel the fc output reveals its input.
    emb = g.embedding.embeddings.numpy()
    fc_in = []
    orig_call = g.fc.call
    g.fc.call = lambda inp, **kw: (fc_in.append(inp), orig_call(inp))[1]
    z = _z(2, 3)
    g(z, np.array([1, 0], np.int32))
    g.fc.call = orig_call
    inp = fc_in[0].numpy()
    np.testing.assert_allclose(inp[:, :3], z, rtol=1e-6)
    want = emb[[1, 0]] / np.linalg.norm(emb[[1, 0]], axis=1, keepdims=True)
    np.testing.assert_allclose(inp[:, 3:], want, rtol=1e-5)


@pytest.mark.parametrize("arch,normalised", [("resnet", True), ("resnet2", True),
                                             ("resnet3", False), ("resnet4", False)])
def test_label_embedding_normalisation_per_architecture(arch, normalised):
    """resnet and resnet2 L2-normalise the label embedding (only its direction matters), resnet3
    and resnet4 feed it as it is, like the reference."""
    small = dict(resolution=32, nf=2, nf_max=4) if arch == "resnet" else dict(
        resolution=32 if arch == "resnet2" else 64, nf=1)
    g = N.build(getattr(N, f"{arch}_generator")(z_dim=4, embed_size=3, num_classes=2, **small))
    z, labels = _z(2, 4), np.array([0, 1], np.int32)
    before = g(z, labels).numpy()
    g.embedding.embeddings.assign(g.embedding.embeddings * 5.0)
    after = g(z, labels).numpy()
    assert np.allclose(before, after, atol=1e-6) == normalised


@pytest.mark.parametrize("arch", ["resnet2", "resnet3", "resnet4"])
def test_resnet_variant_checkpoints_hold_every_weight(tmp_path, arch):
    """The blocks sit in a list attribute; CheckpointListsMixin hands them to
    tf.train.Checkpoint."""
    resolution = 32 if arch == "resnet2" else 64
    for make in (lambda: getattr(N, f"{arch}_generator")(resolution=resolution, nf=1, z_dim=4),
                 lambda: getattr(N, f"{arch}_discriminator")(resolution=resolution, nf=1)):
        model = N.build(make())
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / arch))
        saved = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
                 if k.startswith("model/")]
        assert len(saved) == len(model.weights)
        fresh = N.build(make())
        tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
        for a, b in zip(model.weights, fresh.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("arch,resolution,s0", [("resnet2", 96, 3), ("resnet3", 192, 3),
                                                ("resnet4", 128, 2)])
def test_resnet_variants_take_any_multiple_of_their_s0_divisor(arch, resolution, s0):
    g = getattr(N, f"{arch}_generator")(resolution=resolution, nf=1, z_dim=4)
    d = getattr(N, f"{arch}_discriminator")(resolution=resolution, nf=1)
    x = g(_z(1, 4))
    assert x.shape == (1, resolution, resolution, 3) and g.s0 == d.s0 == s0
    assert d(x).shape == (1,)


# ----------------------------------------------------------------------------- all networks

def _small_generators():
    return {
        "resnet": lambda nc: N.resnet_generator(resolution=32, nf=4, nf_max=8, z_dim=8,
                                                embed_size=4, num_classes=nc),
        "resnet2": lambda nc: N.resnet2_generator(resolution=32, nf=1, z_dim=8, embed_size=4,
                                                  num_classes=nc, init="pytorch"),
        "resnet3": lambda nc: N.resnet3_generator(resolution=64, nf=1, z_dim=8, embed_size=4,
                                                  num_classes=nc),
        "resnet4": lambda nc: N.resnet4_generator(resolution=64, nf=1, z_dim=8, embed_size=4,
                                                  num_classes=nc, init="pytorch"),
        "sndcgan": lambda nc: N.sndcgan_generator(resolution=16, z_dim=8, ch=16, num_classes=nc),
        "sndcgan48": lambda nc: N.sndcgan_generator(resolution=48, z_dim=8, ch=8, num_classes=nc),
        "dcgan": lambda nc: N.dcgan_generator(resolution=64, z_dim=8, ch=8, num_classes=nc),
        "resnet_cifar": lambda nc: N.resnet_cifar_generator(resolution=32, z_dim=8, ch=8,
                                                            num_classes=nc),
    }


def _small_discriminators():
    return {
        "resnet": lambda nc: N.resnet_discriminator(resolution=32, nf=4, nf_max=8,
                                                    num_classes=nc),
        "resnet2": lambda nc: N.resnet2_discriminator(resolution=32, nf=1, num_classes=nc),
        "resnet3": lambda nc: N.resnet3_discriminator(resolution=64, nf=1, num_classes=nc,
                                                      init="pytorch"),
        "resnet4": lambda nc: N.resnet4_discriminator(resolution=64, nf=1, num_classes=nc),
        "sndcgan": lambda nc: N.sndcgan_discriminator(resolution=16, num_classes=nc),
        "dcgan": lambda nc: N.dcgan_discriminator(resolution=16, num_classes=nc),
        "resnet_cifar": lambda nc: N.resnet_cifar_discriminator(resolution=32, ch=8,
                                                                num_classes=nc),
        "resnet_cifar_nosn": lambda nc: N.resnet_cifar_discriminator(
            resolution=32, ch=8, num_classes=nc, spectral_norm=False),
    }


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("name", list(_small_generators()))
def test_generator_shapes_and_range(name, num_classes):
    g = N.build(_small_generators()[name](num_classes))
    assert g.num_classes == num_classes
    z = _z(3, g.z_dim) * 3.0
    labels = np.array([0, num_classes - 1, 0], np.int32)
    x = g(z, labels, training=True)
    assert x.shape == (3, g.resolution, g.resolution, 3) and x.dtype == tf.float32
    x = g(z, labels, training=False).numpy()
    assert np.all(np.abs(x) <= 1.0) and np.all(np.isfinite(x)) and x.std() > 0
    # labels=None means class 0.
    np.testing.assert_array_equal(g(z, None, training=False).numpy(),
                                  g(z, np.zeros(3, np.int32), training=False).numpy())
    if num_classes > 1:  # the label actually matters
        assert not np.allclose(x, g(z, np.full(3, num_classes - 1, np.int32)).numpy())


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("name", list(_small_discriminators()))
def test_discriminator_shapes_and_per_example_independence(name, num_classes):
    d = N.build(_small_discriminators()[name](num_classes))
    assert d.num_classes == num_classes
    x = _images(3, d.resolution)
    labels = np.array([num_classes - 1, 0, 1 % num_classes], np.int32)
    logits = d(x, labels, training=False)
    assert logits.shape == (3,) and logits.dtype == tf.float32
    # Changing example 1 leaves logit 0 (and 2) untouched.
    x2 = x.copy()
    x2[1] = _images(1, d.resolution, seed=5)[0]
    logits2 = d(x2, labels, training=False).numpy()
    np.testing.assert_allclose(logits2[[0, 2]], logits.numpy()[[0, 2]], rtol=1e-6, atol=1e-6)
    assert abs(logits2[1] - logits.numpy()[1]) > 1e-6
    # Under training=True too, d logit_0 / d images is zero for the other examples.
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        l0 = d(xt, labels, training=True)[0]
    grad = tape.gradient(l0, xt).numpy()
    assert np.abs(grad[0]).max() > 0
    assert np.abs(grad[1:]).max() == 0
    np.testing.assert_array_equal(d(x, None, training=False).numpy(),
                                  d(x, np.zeros(3, np.int32), training=False).numpy())
    if num_classes > 1:
        assert not np.allclose(d(x, np.full(3, 2, np.int32)).numpy(),
                               d(x, np.zeros(3, np.int32)).numpy())


@pytest.mark.parametrize("resolution", [32, 48, 64])
def test_sndcgan_resolutions(resolution):
    g = N.sndcgan_generator(resolution=resolution, z_dim=4, ch=8)
    assert g(_z(1, 4)).shape == (1, resolution, resolution, 3)
    d = N.build(N.sndcgan_discriminator(resolution=resolution), batch_size=1)
    assert d(_images(1, resolution)).shape == (1,)
    # flatten -> dense has (resolution / 8)^2 * 512 inputs
    assert d.fc.kernel.shape == ((resolution // 8) ** 2 * 512, 1)


def test_conditional_resnet_discriminator_gathers_class_logit():
    d = N.build(N.resnet_discriminator(resolution=32, nf=4, nf_max=8, num_classes=5))
    x = _images(4, 32)
    full = d.class_logits(x).numpy()
    assert full.shape == (4, 5)
    for labels in ([0, 1, 2, 3], [4, 4, 0, 2]):
        labels = np.array(labels, np.int32)
        np.testing.assert_allclose(d(x, labels).numpy(), full[np.arange(4), labels], rtol=1e-6)
    # and it really differs between classes
    assert np.abs(full[:, 0] - full[:, 4]).max() > 1e-4


@pytest.mark.parametrize("factory", [N.sndcgan_discriminator, N.resnet_cifar_discriminator])
def test_projection_term(factory):
    """logit(x, y) - logit(x, y') = <E[y] - E[y'], h(x)> : check against the embedding."""
    d = N.build(factory(resolution=16, num_classes=4))
    x = _images(2, 16)
    probe = []
    orig = d.fc.call
    d.fc.call = lambda h, training=None: (probe.append(h), orig(h, training=training))[1]
    a = d(x, np.array([1, 1], np.int32)).numpy()
    b = d(x, np.array([3, 3], np.int32)).numpy()
    d.fc.call = orig
    h = probe[0].numpy()
    emb = d.embed._normalized_kernel(False).numpy() if d.spectral_norm else d.embed.kernel.numpy()
    np.testing.assert_allclose(a - b, h @ (emb[1] - emb[3]), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- spectral norm

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


# ----------------------------------------------------------------------------- distribution / XLA

def test_mirrored_strategy_sync_bn_and_sn_match_single_device():
    # Fresh collective keys: another strategy in this process may have used the default ones.
    strategy = helpers.two_cpu_strategy()
    factories = [  # synchronized BN in G; SN (incl. SN projection embedding) in D
        lambda: N.resnet_cifar_generator(resolution=16, z_dim=8, ch=8),
        lambda: N.sndcgan_discriminator(resolution=16, num_classes=3),
    ]
    with strategy.scope():
        mirrored = [N.build(f()) for f in factories]
    single = [N.build(f()) for f in factories]
    for m, s in zip(mirrored, single):
        s.set_weights(m.get_weights())

    z = _z(4, 8)
    x = _images(4, 16)
    labels = np.array([0, 1, 2, 1], np.int32)

    def split(a):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(a[2 * ctx.replica_id_in_sync_group:
                                      2 * ctx.replica_id_in_sync_group + 2]))

    @tf.function
    def step(z, x, y):
        def fn(z, x, y):
            return [m(z if hasattr(m, "z_dim") else x, y, training=True) for m in mirrored]
        return strategy.run(fn, args=(z, x, y))

    outs = step(split(z), split(x), split(labels))
    for m, s, out in zip(mirrored, single, outs):
        got = np.concatenate([t.numpy() for t in strategy.experimental_local_results(out)])
        want = s(z if hasattr(s, "z_dim") else x, labels, training=True).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        # Non-trainable state (BN moving stats, SN u) is updated, identical on both
        # replicas and equal to the single-device update on the global batch.
        for mw, sw in zip(m.non_trainable_weights, s.non_trainable_weights):
            per_replica = [v.numpy() for v in mw.value.values]
            np.testing.assert_array_equal(per_replica[0], per_replica[1])
            np.testing.assert_allclose(per_replica[0], sw.numpy(), rtol=1e-4, atol=1e-6)
        assert any(not np.allclose(w, 0) and not np.allclose(w, 1)
                   for w in [v.numpy() for v in m.non_trainable_weights])
    for w in mirrored[1].non_trainable_weights:
        assert w.aggregation == "only_first_replica"


@pytest.mark.parametrize("name", ["g_resnet", "g_sndcgan", "g_resnet_cifar", "d_resnet",
                                  "d_sndcgan", "d_dcgan", "d_resnet_cifar"])
def test_forward_compiles_with_xla(name):
    """jit-compiled training-mode forward == eager forward from the same state, and the
    state updates (SN u, BN moving stats) made inside the compiled function match too."""
    is_d = name.startswith("d_")
    factory = (_small_discriminators() if is_d else _small_generators())[name[2:]]
    model = N.build(factory(3))
    inp = _images(4, model.resolution) if is_d else _z(4, model.z_dim)
    labels = np.array([2, 1, 0, 1], np.int32)
    fwd = tf.function(lambda a, y: model(a, y, training=True), jit_compile=True)

    state0 = [w.numpy() for w in model.non_trainable_weights]
    out_xla = fwd(inp, labels).numpy()
    state_xla = [w.numpy() for w in model.non_trainable_weights]
    for w, v in zip(model.non_trainable_weights, state0):
        w.assign(v)
    out_eager = model(inp, labels, training=True).numpy()
    state_eager = [w.numpy() for w in model.non_trainable_weights]

    # (XLA fuses / reorders float32 reductions differently, hence the tolerance)
    np.testing.assert_allclose(out_xla, out_eager, rtol=1e-3, atol=1e-4)
    for a, b in zip(state_xla, state_eager):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    if state0:  # training=True really updated the state inside the compiled function
        assert any(not np.array_equal(a, b) for a, b in zip(state0, state_xla))


# ----------------------------------------------------------------------------- validation / gin

@pytest.mark.parametrize("factory,kwargs,param", [
    (N.resnet_generator, dict(resolution=48), "resolution"),
    (N.resnet_generator, dict(resolution=16), "resolution"),
    (N.resnet_generator, dict(resolution=2048), "resolution"),
    (N.resnet_discriminator, dict(resolution=48), "resolution"),
    (N.resnet_generator, dict(resolution=32, nf=0), "nf"),
    (N.resnet_discriminator, dict(resolution=32, nf=64, nf_max=32), "nf_max"),
    (N.resnet_generator, dict(resolution=32, z_dim=0), "z_dim"),
    (N.resnet_generator, dict(resolution=32, embed_size=-1), "embed_size"),
    (N.resnet_discriminator, dict(resolution=32, num_classes=0), "num_classes"),
    (N.resnet_generator, dict(resolution=32, init="torch"), "init"),
    (N.resnet2_generator, dict(resolution=48), "resolution"),
    (N.resnet2_discriminator, dict(resolution=16), "resolution"),
    (N.resnet3_generator, dict(resolution=96), "resolution"),
    (N.resnet4_discriminator, dict(resolution=32), "resolution"),
    (N.resnet3_discriminator, dict(resolution=64, nf=0), "nf"),
    (N.resnet4_generator, dict(resolution=64, embed_size=0), "embed_size"),
    (N.resnet2_discriminator, dict(resolution=64, num_classes=0), "num_classes"),
    (N.resnet3_generator, dict(resolution=64, init=None), "init"),
    (N.sndcgan_generator, dict(resolution=30), "resolution"),
    (N.sndcgan_generator, dict(ch=12), "ch"),
    (N.sndcgan_discriminator, dict(resolution=36), "resolution"),
    (N.sndcgan_discriminator, dict(spectral_norm="yes"), "spectral_norm"),
    (N.dcgan_discriminator, dict(num_classes=1.5), "num_classes"),
    (N.resnet_cifar_generator, dict(ch=0), "ch"),
    (N.resnet_cifar_discriminator, dict(resolution=20), "resolution"),
    (N.resnet_cifar_discriminator, dict(spectral_norm=1), "spectral_norm"),
])
def test_bad_arguments_raise(factory, kwargs, param):
    with pytest.raises(ValueError, match=rf"^{param} must be"):
        factory(**kwargs)


def test_resnet_error_message_text():
    with pytest.raises(ValueError) as e:
        N.resnet_generator(resolution=48)
    # (gin appends a line naming the configurable to the message)
    assert str(e.value).splitlines()[0] == (
        "resolution must be a power of two between 32 and 1024, got 48")


def test_factories_are_gin_configurable_and_keyword_only():
    with pytest.raises(TypeError):
        N.resnet_generator(32)
    gin.bind_parameter("resnet_generator.nf", 8)
    gin.bind_parameter("resnet_generator.nf_max", 16)
    try:
        g = N.resnet_generator(resolution=32)
    finally:
        gin.clear_config()
    assert g.nf == 8 and g.nf_max == 16 and g.nf0 == 16
    assert isinstance(g, keras.Model)


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
