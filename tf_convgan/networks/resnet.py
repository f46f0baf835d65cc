"""ResNet generator / discriminator of GAN_stability (Mescheder et al. 2018,
"Which Training Methods for GANs do actually Converge?", `resnet` architecture).

Any power-of-two resolution from 32 to 1024; the feature map starts (G) / ends (D)
at s0 = 4 with nlayers = log2(resolution / 4) resolution changes.

Layout notes (for porting PyTorch weights): the generator's dense output is
reshaped as [N, nf0, 4, 4] (PyTorch NCHW order) and transposed to NHWC, and the
discriminator transposes its final NHWC features to NCHW before flattening, so
dense weights line up row-for-row with the PyTorch model. Conv kernels are HWIO.

Weight init: the factories' `init` (see initializers.py): 'pytorch' (PyTorch's
defaults, GAN_stability's; the GAN_stability gin configs use it) or 'keras' (Keras'
defaults: glorot-uniform kernels, zero biases; the factories' default). The class
embedding is N(0, 1) like torch.nn.Embedding under both (it is L2-normalised, so only its
direction matters). No normalisation layers: both networks are per-example.
"""
import math

import gin
import keras
from keras import ops

from .common import (CheckpointListsMixin, check_int,
                     check_power_of_two, default_labels, loss_logits, lrelu,
                     upsample_nearest_2x)
from .initializers import conv2d, dense, embedding, resolve_init

_S0 = 4


class ResnetBlock(keras.layers.Layer):
    """out = shortcut(x) + 0.1 * conv_1(lrelu(conv_0(lrelu(x)))); hidden = min(fin, fout);
    shortcut is identity if fin == fout, else a bias-free 1x1 conv of x."""

    def __init__(self, fin, fout, *, init, **kwargs):
        super().__init__(**kwargs)
        self.fin, self.fout = fin, fout
        hidden = min(fin, fout)
        self.conv_0 = conv2d(fin, hidden, 3, init=init, name="conv_0")
        self.conv_1 = conv2d(hidden, fout, 3, init=init, name="conv_1")
        self.conv_s = (None if fin == fout else
                       conv2d(fin, fout, 1, init=init, use_bias=False, name="conv_s"))

    def torch_layers(self):
        """(GAN_stability state-dict name, layer) of the block's convolutions."""
        return [("conv_0", self.conv_0), ("conv_1", self.conv_1)] + (
            [] if self.conv_s is None else [("conv_s", self.conv_s)])

    def call(self, x):
        x_s = x if self.conv_s is None else self.conv_s(x)
        dx = self.conv_1(lrelu(self.conv_0(lrelu(x))))
        return x_s + 0.1 * dx


def avg_pool_3x3_s2(x):
    """3x3 / stride 2 / padding 1 average pool whose average counts the zero padding
    (PyTorch AvgPool2d(3, 2, 1) with count_include_pad=True): H -> H / 2 for even H."""
    x = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return ops.average_pool(x, pool_size=3, strides=2, padding="valid")


def _channels(nf, nf_max, k):
    return min(nf * 2 ** k, nf_max)


class ResNetGenerator(CheckpointListsMixin, keras.Model):
    """GAN_stability ResNet generator: call(z, labels=None, training=None) -> [N, R, R, 3]."""

    def __init__(self, *, resolution, z_dim, num_classes, nf, nf_max, embed_size, init,
                 **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.z_dim, self.num_classes = resolution, z_dim, num_classes
        self.nf, self.nf_max, self.embed_size = nf, nf_max, embed_size
        self.init = init
        self.nlayers = int(math.log2(resolution // _S0))
        self.nf0 = _channels(nf, nf_max, self.nlayers)

        self.embedding = embedding(num_classes, embed_size, init=init)
        self.fc = dense(z_dim + embed_size, self.nf0 * _S0 * _S0, init=init, name="fc")
        self.blocks = [
            ResnetBlock(_channels(nf, nf_max, self.nlayers - i),
                        _channels(nf, nf_max, self.nlayers - i - 1), init=init,
                        name=f"resnet_{i}")
            for i in range(self.nlayers)]
        self.final_block = ResnetBlock(nf, nf, init=init, name=f"resnet_{self.nlayers}")
        self.conv_img = conv2d(nf, 3, 3, init=init, name="conv_img")

    def torch_layers(self):
        """(GAN_stability state-dict name, layer) pairs; the reference's nn.Sequential `resnet`
        interleaves blocks with Upsample layers, so blocks have the even indices."""
        blocks = self.blocks + [self.final_block]
        return ([("embedding", self.embedding), ("fc", self.fc)]
                + [(f"resnet.{2 * i}", block) for i, block in enumerate(blocks)]
                + [("conv_img", self.conv_img)])

    def call(self, z, labels=None, training=None):
        labels = default_labels(labels, z)
        yembed = self.embedding(labels)
        yembed = yembed / ops.maximum(ops.norm(yembed, axis=1, keepdims=True), 1e-12)
        out = self.fc(ops.concatenate([ops.cast(z, yembed.dtype), yembed], axis=1))
        # PyTorch view(N, nf0, 4, 4) -> NHWC.
        out = ops.transpose(ops.reshape(out, (-1, self.nf0, _S0, _S0)), (0, 2, 3, 1))
        for block in self.blocks:
            out = upsample_nearest_2x(block(out))
        out = self.final_block(out)
        return ops.tanh(self.conv_img(lrelu(out)))


class ResNetDiscriminator(CheckpointListsMixin, keras.Model):
    """GAN_stability ResNet discriminator: call(images, labels=None, training=None) -> [N]
    logits, the logit of each example's class. `class_logits` gives all [N, num_classes]."""

    def __init__(self, *, resolution, num_classes, nf, nf_max, init, **kwargs):
        super().__init__(**kwargs)
        self.resolution, self.num_classes = resolution, num_classes
        self.nf, self.nf_max = nf, nf_max
        self.init = init
        self.nlayers = int(math.log2(resolution // _S0))
        self.nf0 = _channels(nf, nf_max, self.nlayers)

        self.conv_img = conv2d(3, nf, 3, init=init, name="conv_img")
        self.first_block = ResnetBlock(nf, nf, init=init, name="resnet_0")
        self.blocks = [
            ResnetBlock(_channels(nf, nf_max, i), _channels(nf, nf_max, i + 1), init=init,
                        name=f"resnet_{i + 1}")
            for i in range(self.nlayers)]
        self.fc = dense(self.nf0 * _S0 * _S0, num_classes, init=init, name="fc")

    def torch_layers(self):
        """(GAN_stability state-dict name, layer) pairs; the reference's nn.Sequential `resnet`
        interleaves blocks with AvgPool layers, so blocks have the even indices."""
        blocks = [self.first_block] + self.blocks
        return ([("conv_img", self.conv_img)]
                + [(f"resnet.{2 * i}", block) for i, block in enumerate(blocks)]
                + [("fc", self.fc)])

    def class_logits(self, images, training=None):
        out = self.first_block(self.conv_img(images))
        for block in self.blocks:
            out = block(avg_pool_3x3_s2(out))
        # Flatten in PyTorch (C, H, W) order.
        out = ops.reshape(ops.transpose(out, (0, 3, 1, 2)), (-1, self.nf0 * _S0 * _S0))
        return loss_logits(self.fc(lrelu(out)))

    def call(self, images, labels=None, training=None):
        logits = self.class_logits(images, training=training)
        labels = default_labels(labels, images)
        return ops.take_along_axis(logits, labels[:, None], axis=1)[:, 0]


def _check_common(resolution, num_classes, nf, nf_max):
    check_power_of_two("resolution", resolution, minimum=32, maximum=1024)
    check_int("num_classes", num_classes)
    check_int("nf", nf)
    check_int("nf_max", nf_max)
    if nf_max < nf:
        raise ValueError(f"nf_max must be >= nf, got nf_max={nf_max}, nf={nf}")


@gin.configurable
def resnet_generator(*, resolution, z_dim=256, num_classes=1, nf=64, nf_max=512,
                     embed_size=256, init="keras"):
    """GAN_stability ResNet generator for a power-of-two `resolution` in [32, 1024].
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    _check_common(resolution, num_classes, nf, nf_max)
    check_int("z_dim", z_dim)
    check_int("embed_size", embed_size)
    return ResNetGenerator(resolution=resolution, z_dim=z_dim, num_classes=num_classes,
                           nf=nf, nf_max=nf_max, embed_size=embed_size, init=resolve_init(init))


@gin.configurable
def resnet_discriminator(*, resolution, num_classes=1, nf=64, nf_max=1024, init="keras"):
    """GAN_stability ResNet discriminator for a power-of-two `resolution` in [32, 1024].
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    _check_common(resolution, num_classes, nf, nf_max)
    return ResNetDiscriminator(resolution=resolution, num_classes=num_classes,
                               nf=nf, nf_max=nf_max, init=resolve_init(init))
