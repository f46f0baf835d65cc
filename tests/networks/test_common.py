"""What every network shares: shapes, output range and per-example independence of every
generator and discriminator, labels (embedding normalisation, projection), MirroredStrategy
(synchronised BN, SN) and XLA, argument checks, gin configurables."""
import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from network_helpers import random_images as _images, random_z as _z

from tf_convgan import networks as N


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


@pytest.mark.parametrize("policy", ["float64", "mixed_float16"])
@pytest.mark.parametrize("name", list(_small_discriminators()))
def test_discriminator_logits_dtype_follows_the_policy(name, policy):
    """The logits are float32 from a mixed-precision discriminator (its loss is computed in
    float32) and float64, not rounded to float32, from a float64 one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        d = N.build(_small_discriminators()[name](1))
        logits = d(tf.constant(_images(3, d.resolution), d.compute_dtype), training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    assert logits.dtype == (tf.float64 if policy == "float64" else tf.float32)
    if policy == "float64":
        values = logits.numpy()
        assert np.any(values != values.astype(np.float32).astype(np.float64)), values


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
