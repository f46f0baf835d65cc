"""DCGAN / SNDCGAN: the "standard CNN" of Miyato et al. 2018 (Table 3), as used by
compare_gan (Kurach et al. 2019) and the consistency-regularisation papers.

Generator (shared by DCGAN and SNDCGAN), s = resolution / 8:
  z -> dense s*s*ch -> BN -> ReLU -> [deconv 4x4 s2 -> BN -> ReLU] x 3 with ch/2, ch/4,
  ch/8 channels -> conv 3x3 s1 -> 3 -> tanh.
Discriminator: conv3x3 s1 64, conv4x4 s2 64, conv3x3 s1 128, conv4x4 s2 128,
  conv3x3 s1 256, conv4x4 s2 256, conv3x3 s1 512 (leaky ReLU 0.1 after each),
  flatten (NHWC order), dense -> 1. D's normalization (normalization.py) is one choice:
  'spectral_norm' (SNDCGAN, the default) or 'weight_norm' on every conv/dense, 'none' (plain
  layers: DCGAN), or a feature norm, 'batch_norm' (cross-replica) or 'layer_norm', after every
  conv but the first, before its leaky ReLU (our placement: DCGAN leaves D's first layer
  unnormalised; not checked against compare_gan's code). Only with 'batch_norm' do the logits
  in training mode depend on the other examples of the batch. (compare_gan's sndcgan uses 128
  channels in the first 4x4 conv; we follow the paper's table.)

Conditioning (num_classes > 1):
  * G: the one-hot label is concatenated to z before the first dense layer
    (no extra parameters beyond the dense rows).
  * D: projection discriminator (Miyato & Koyama 2018): logit = dense(h) + <E[y], h>
    with h the flattened final features and E a [num_classes, dim(h)] embedding,
    implemented as a bias-free (SN-)dense on one_hot(y), so with spectral_norm the
    embedding matrix is spectrally normalised too.
Batch norm: synchronized (cross-replica) BN, momentum 0.9, epsilon 1e-5.
Weight init: Keras defaults (glorot-uniform kernels, zero biases). G's dense and deconvs have
no bias: each feeds a batch norm, which subtracts it, so it would not change G's function and
its exact gradient is 0 (kept, it would only be moved by Adam/RMSprop on rounding noise).
"""
import gin
import keras
from keras import ops

from .common import (CheckpointListsMixin, check_int, check_multiple, default_labels,
                     loss_logits)
from . import normalization as norms
from .normalization import conv2d, dense


def sync_batch_norm(name=None):
    return keras.layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5,
                                           name=name)


class SNDCGANGenerator(CheckpointListsMixin, keras.Model):
    """call(z, labels=None, training=None) -> [N, resolution, resolution, 3] in [-1, 1]."""

    def __init__(self, *, resolution, z_dim, num_classes, ch, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.z_dim, self.num_classes, self.ch = resolution, z_dim, num_classes, ch
        self.s0 = resolution // 8
        # No biases before batch norm (BN subtracts them; see the module docstring).
        self.fc = keras.layers.Dense(self.s0 * self.s0 * ch, use_bias=False, name="fc")
        self.bn_fc = sync_batch_norm("bn_fc")
        self.deconvs = [keras.layers.Conv2DTranspose(ch // 2 ** (i + 1), 4, strides=2,
                                                     padding="same", use_bias=False,
                                                     name=f"deconv_{i}")
                        for i in range(3)]
        self.bns = [sync_batch_norm(f"bn_{i}") for i in range(3)]
        self.conv_out = keras.layers.Conv2D(3, 3, padding="same", name="conv_out")

    def call(self, z, labels=None, training=None):
        if self.num_classes > 1:
            onehot = ops.one_hot(default_labels(labels, z), self.num_classes, dtype=z.dtype)
            z = ops.concatenate([z, onehot], axis=1)
        x = self.fc(z)
        x = ops.relu(self.bn_fc(x, training=training))
        x = ops.reshape(x, (-1, self.s0, self.s0, self.ch))
        for deconv, bn in zip(self.deconvs, self.bns):
            x = ops.relu(bn(deconv(x), training=training))
        return ops.tanh(self.conv_out(x))


_D_LAYERS = ((64, 3, 1), (64, 4, 2), (128, 3, 1), (128, 4, 2), (256, 3, 1), (256, 4, 2),
             (512, 3, 1))


class SNDCGANDiscriminator(CheckpointListsMixin, keras.Model):
    """call(images, labels=None, training=None) -> [N] logits, float32 (float64 from a float64
    network: common.loss_logits)."""

    def __init__(self, *, resolution, num_classes, normalization, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.num_classes = resolution, num_classes
        self.normalization = normalization
        self.spectral_norm = normalization == "spectral_norm"
        # A conv that feeds a batch norm has no bias (BN subtracts it: its exact gradient is 0,
        # and Adam would move it on rounding noise, as for G's).
        self.convs = [conv2d(f, k, strides=s, normalization=normalization, name=f"conv_{i}",
                             use_bias=i == 0 or normalization != "batch_norm")
                      for i, (f, k, s) in enumerate(_D_LAYERS)]
        # A feature norm after every conv but the first (None: identity).
        self.norms = [None] + [norms.feature_norm(normalization, f"norm_{i}")
                               for i in range(1, len(_D_LAYERS))]
        self.fc = dense(1, normalization=normalization, name="fc")
        self.embed = (dense(_D_LAYERS[-1][0] * (resolution // 8) ** 2, use_bias=False,
                            normalization=normalization, name="embed")
                      if num_classes > 1 else None)

    def call(self, images, labels=None, training=None):
        x = images
        for conv, norm in zip(self.convs, self.norms):
            x = norms.apply(norm, conv(x, training=training), training)
            x = ops.leaky_relu(x, negative_slope=0.1)
        h = ops.reshape(x, (-1, x.shape[1] * x.shape[2] * x.shape[3]))
        logits = self.fc(h, training=training)[:, 0]
        if self.embed is not None:
            onehot = ops.one_hot(default_labels(labels, images), self.num_classes, dtype=h.dtype)
            logits = logits + ops.sum(self.embed(onehot, training=training) * h, axis=1)
        return loss_logits(logits)


def _check_resolution(resolution):
    return check_multiple("resolution", resolution, of=8, minimum=8)


@gin.configurable
def sndcgan_generator(*, resolution=32, z_dim=128, num_classes=1, ch=512):
    """SNDCGAN / DCGAN generator; resolution any multiple of 8, ch a multiple of 8."""
    _check_resolution(resolution)
    check_int("z_dim", z_dim)
    check_int("num_classes", num_classes)
    check_multiple("ch", ch, of=8, minimum=8)
    return SNDCGANGenerator(resolution=resolution, z_dim=z_dim, num_classes=num_classes, ch=ch)


@gin.configurable
def sndcgan_discriminator(*, resolution=32, num_classes=1, normalization=None,
                          spectral_norm=None):
    """SNDCGAN discriminator (normalization 'spectral_norm', the default) or DCGAN
    discriminator ('none'), or one of 'batch_norm', 'layer_norm', 'weight_norm'
    (normalization.py). spectral_norm: the older switch, True == 'spectral_norm', False ==
    'none'; given with a normalization it contradicts, a ConfigError."""
    _check_resolution(resolution)
    check_int("num_classes", num_classes)
    normalization = norms.resolve(normalization, spectral_norm, default="spectral_norm")
    return SNDCGANDiscriminator(resolution=resolution, num_classes=num_classes,
                                normalization=normalization)


@gin.configurable
def dcgan_generator(*, resolution=32, z_dim=128, num_classes=1, ch=512):
    """DCGAN generator: identical to `sndcgan_generator`."""
    return sndcgan_generator(resolution=resolution, z_dim=z_dim, num_classes=num_classes, ch=ch)


@gin.configurable
def dcgan_discriminator(*, resolution=32, num_classes=1):
    """DCGAN discriminator: `sndcgan_discriminator` with spectral_norm=False."""
    return sndcgan_discriminator(resolution=resolution, num_classes=num_classes,
                                 normalization="none")
