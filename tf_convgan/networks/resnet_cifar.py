"""SNGAN ResNet for CIFAR (Miyato et al. 2018, appendix; "ResNet" of Kurach et al. 2019).

Generator, s0 = resolution / 8:
  z -> dense s0*s0*ch -> 3 x GBlock(ch -> ch, upsample) -> BN -> ReLU -> conv3x3 -> 3 -> tanh.
  GBlock: BN, ReLU, nearest 2x upsample, conv3x3, BN, ReLU, conv3x3;
          shortcut: nearest 2x upsample then conv1x1.
Discriminator:
  OptimizedBlock(3 -> ch): conv3x3, ReLU, conv3x3, avgpool2; shortcut avgpool2 then conv1x1.
  DBlock(ch -> ch, down): ReLU, conv3x3, ReLU, conv3x3, avgpool2; shortcut conv1x1 then avgpool2.
  2 x DBlock(ch -> ch): ReLU, conv3x3, ReLU, conv3x3; identity shortcut.
  ReLU, global SUM pooling over H, W, dense -> 1.
D's normalization (normalization.py) is one choice: 'spectral_norm' (the default) or
'weight_norm' on every conv / dense, 'none', or a feature norm, 'batch_norm' (cross-replica) or
'layer_norm', before every ReLU inside the blocks' residual paths (pre-activation, as G's blocks
place their batch norms; our placement, not checked against compare_gan's code; the ReLU before
the pooling has none). Only with 'batch_norm' do the logits in training mode depend on the other
examples of the batch.

Conditioning (num_classes > 1): G concatenates one_hot(label) to z; D adds the
projection term <E[y], h> with h the pooled features (E a bias-free (SN-)dense on
one_hot(y), i.e. a spectrally normalised embedding when spectral_norm=True).
Batch norm: synchronized, momentum 0.9, epsilon 1e-5. Weight init: Keras defaults.
The convs of G's blocks have no bias: each feeds a batch norm (directly, or through the 1x1
shortcut convs and the residual sums), which subtracts any per-channel constant, so such a bias
does not change G's function and its exact gradient is 0. Kept, it is trained on the rounding
noise of that 0, which Adam/RMSprop scale up to steps of about the learning rate, so it would
move randomly (and differently for different replica counts) while doing nothing.
"""
import gin
import keras
from keras import ops

from .common import (CheckpointListsMixin, check_int,
                     check_multiple, default_labels, loss_logits, upsample_nearest_2x)
from .dcgan import sync_batch_norm
from . import normalization as norms
from .normalization import conv2d, dense


def _avg_pool_2x2(x):
    return ops.average_pool(x, pool_size=2, strides=2, padding="valid")


class GBlock(keras.layers.Layer):
    def __init__(self, ch, **kwargs):
        super().__init__(**kwargs)
        self.bn_0 = sync_batch_norm("bn_0")
        # No biases: every conv of the block feeds a batch norm (conv_0 -> bn_1; conv_1 and
        # conv_s -> the next block's bn_0 or bn_out, through 1x1 shortcut convs only).
        self.conv_0 = keras.layers.Conv2D(ch, 3, padding="same", use_bias=False, name="conv_0")
        self.bn_1 = sync_batch_norm("bn_1")
        self.conv_1 = keras.layers.Conv2D(ch, 3, padding="same", use_bias=False, name="conv_1")
        self.conv_s = keras.layers.Conv2D(ch, 1, use_bias=False, name="conv_s")

    def call(self, x, training=None):
        h = upsample_nearest_2x(ops.relu(self.bn_0(x, training=training)))
        h = self.conv_0(h)
        h = self.conv_1(ops.relu(self.bn_1(h, training=training)))
        return h + self.conv_s(upsample_nearest_2x(x))


class DBlock(keras.layers.Layer):
    """optimized: first block of D (no leading ReLU, pool-then-1x1 shortcut)."""

    def __init__(self, ch, *, downsample, optimized, normalization, **kwargs):
        super().__init__(**kwargs)
        self.downsample, self.optimized = downsample, optimized
        # conv_0 feeds norm_1: no bias under batch norm (BN subtracts it; its exact gradient
        # is 0, and Adam would move it on rounding noise, as for G's).
        self.conv_0 = conv2d(ch, 3, normalization=normalization, name="conv_0",
                             use_bias=normalization != "batch_norm")
        self.conv_1 = conv2d(ch, 3, normalization=normalization, name="conv_1")
        self.conv_s = (conv2d(ch, 1, normalization=normalization, name="conv_s")
                       if downsample else None)
        # Feature norms before the ReLUs of the residual path (None: identity).
        self.norm_0 = None if optimized else norms.feature_norm(normalization, "norm_0")
        self.norm_1 = norms.feature_norm(normalization, "norm_1")

    def call(self, x, training=None):
        h = x if self.optimized else ops.relu(norms.apply(self.norm_0, x, training))
        h = self.conv_0(h, training=training)
        h = self.conv_1(ops.relu(norms.apply(self.norm_1, h, training)), training=training)
        if self.downsample:
            h = _avg_pool_2x2(h)
        if self.conv_s is None:
            s = x
        elif self.optimized:
            s = self.conv_s(_avg_pool_2x2(x), training=training)
        else:
            s = _avg_pool_2x2(self.conv_s(x, training=training))
        return h + s


class ResNetCifarGenerator(CheckpointListsMixin, keras.Model):
    """call(z, labels=None, training=None) -> [N, resolution, resolution, 3] in [-1, 1]."""

    def __init__(self, *, resolution, z_dim, num_classes, ch, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.z_dim, self.num_classes, self.ch = resolution, z_dim, num_classes, ch
        self.s0 = resolution // 8
        self.fc = keras.layers.Dense(self.s0 * self.s0 * ch, name="fc")
        self.blocks = [GBlock(ch, name=f"block_{i}") for i in range(3)]
        self.bn_out = sync_batch_norm("bn_out")
        self.conv_out = keras.layers.Conv2D(3, 3, padding="same", name="conv_out")

    def call(self, z, labels=None, training=None):
        if self.num_classes > 1:
            onehot = ops.one_hot(default_labels(labels, z), self.num_classes, dtype=z.dtype)
            z = ops.concatenate([z, onehot], axis=1)
        x = ops.reshape(self.fc(z), (-1, self.s0, self.s0, self.ch))
        for block in self.blocks:
            x = block(x, training=training)
        x = ops.relu(self.bn_out(x, training=training))
        return ops.tanh(self.conv_out(x))


class ResNetCifarDiscriminator(CheckpointListsMixin, keras.Model):
    """call(images, labels=None, training=None) -> [N] logits, float32 (float64 from a float64
    network: common.loss_logits)."""

    def __init__(self, *, resolution, num_classes, ch, normalization, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.num_classes, self.ch = resolution, num_classes, ch
        self.normalization = normalization
        self.spectral_norm = normalization == "spectral_norm"
        sn = normalization
        self.blocks = [
            DBlock(ch, downsample=True, optimized=True, normalization=sn, name="block_0"),
            DBlock(ch, downsample=True, optimized=False, normalization=sn, name="block_1"),
            DBlock(ch, downsample=False, optimized=False, normalization=sn, name="block_2"),
            DBlock(ch, downsample=False, optimized=False, normalization=sn, name="block_3"),
        ]
        self.fc = dense(1, normalization=sn, name="fc")
        self.embed = (dense(ch, use_bias=False, normalization=sn, name="embed")
                      if num_classes > 1 else None)

    def call(self, images, labels=None, training=None):
        x = images
        for block in self.blocks:
            x = block(x, training=training)
        h = ops.sum(ops.relu(x), axis=(1, 2))  # global sum pooling
        logits = self.fc(h, training=training)[:, 0]
        if self.embed is not None:
            onehot = ops.one_hot(default_labels(labels, images), self.num_classes, dtype=h.dtype)
            logits = logits + ops.sum(self.embed(onehot, training=training) * h, axis=1)
        return loss_logits(logits)


@gin.configurable
def resnet_cifar_generator(*, resolution=32, z_dim=128, num_classes=1, ch=256):
    """SNGAN CIFAR ResNet generator; resolution any multiple of 8 (starts at resolution/8)."""
    check_multiple("resolution", resolution, of=8, minimum=8)
    check_int("z_dim", z_dim)
    check_int("num_classes", num_classes)
    check_int("ch", ch)
    return ResNetCifarGenerator(resolution=resolution, z_dim=z_dim, num_classes=num_classes,
                                ch=ch)


@gin.configurable
def resnet_cifar_discriminator(*, resolution=32, num_classes=1, ch=128, normalization=None,
                               spectral_norm=None):
    """SNGAN CIFAR ResNet discriminator; resolution any multiple of 8. normalization:
    'spectral_norm' (the default), 'none', 'batch_norm', 'layer_norm' or 'weight_norm'
    (normalization.py); spectral_norm: the older switch, True == 'spectral_norm', False ==
    'none'; given with a normalization it contradicts, a ConfigError."""
    check_multiple("resolution", resolution, of=8, minimum=8)
    check_int("num_classes", num_classes)
    check_int("ch", ch)
    normalization = norms.resolve(normalization, spectral_norm, default="spectral_norm")
    return ResNetCifarDiscriminator(resolution=resolution, num_classes=num_classes, ch=ch,
                                    normalization=normalization)
