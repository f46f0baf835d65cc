"""ResNet (GAN_stability's resnet): exact parameter counts against an independent derivation,
every resolution from 32 to 1024, the zero-padded average pooling, the L2-normalised label
embedding, the class logit of the conditional discriminator."""
import math
import numpy as np
import pytest
import tensorflow as tf

from network_helpers import random_images as _images, random_z as _z, rng as _rng

from tf_convgan import networks as N
from tf_convgan.networks.resnet import avg_pool_3x3_s2


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
