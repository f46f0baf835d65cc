"""GAN_stability's fixed-depth ResNets `resnet2`, `resnet3` and `resnet4` (Mescheder et al. 2018).

The published models use them: `resnet2` the class-conditional ImageNet 128 model (and the
ImageNet experiment), `resnet3` the LSUN bedroom / bridge / church / tower 256 models, `resnet4`
the CelebA 256 model. Unlike `resnet` (resnet.py), their depth is fixed: six (resnet4: seven)
stages of ResnetBlocks with widths in multiples of `nf`, and the resolution only sets the size s0
of the first (G) / last (D) feature map. Output widths of the blocks, stage by stage, in units of
nf (`LAYOUTS` below has the exact (in, out) pairs):

- resnet2 (s0 = R/32, 3x3 conv_img, embedding L2-normalised): two blocks per stage;
  G 16,16 / 16,16 / 8,8 / 4,4 / 2,2 / 1,1; D 1,2 / 2,4 / 4,8 / 8,16 / 16,16 / 16,16.
- resnet3 (s0 = R/64, 7x7 conv_img, embedding as is): G 16 (from 32) / 16 / 8 / 4 / 2 / 1 and
  one more 2x upsampling after the last stage; D 2 / 4 / 8 / 16 / 16 / 32 with a pooling before
  every stage.
- resnet4 (s0 = R/64, 7x7 conv_img, embedding as is): G 16 / 16 / 8 / 4 / 2 / 1 / 1;
  D 1 / 2 / 4 / 8 / 16 / 16 / 16.

G upsamples (nearest, 2x) between stages, D average-pools (3x3, stride 2, padding 1, padding
counted) between stages; D's conv_img has G's conv_img kernel size. Blocks are named
`resnet_<stage>_<index>` as in the reference, so GAN_stability state dicts map one-to-one (see
torch_port.py). Call contract, layouts and `init` as for `resnet` (resnet.py): NHWC; dense
layers see / produce features in PyTorch's (C, H, W) order.
"""
import gin
import keras
from keras import ops

from .common import (CheckpointListsMixin, check_int, check_multiple, default_labels,
                     loss_logits, lrelu, upsample_nearest_2x)
from .initializers import conv2d, dense, embedding, resolve_init
from .resnet import ResnetBlock, avg_pool_3x3_s2

_RESAMPLE = None  # marks an upsampling (G) / pooling (D) step in a layout


class _Layout:
    """One architecture: `s0_divisor` = R / s0; stages of (fin, fout) width multipliers of nf;
    whether G upsamples after its last stage and D pools before its first; conv_img kernel size;
    whether G L2-normalises the label embedding."""

    def __init__(self, *, s0_divisor, g_stages, d_stages, kernel_size, normalize_embedding,
                 g_upsample_last=False, d_pool_first=False):
        self.s0_divisor, self.kernel_size = s0_divisor, kernel_size
        self.g_stages, self.d_stages = g_stages, d_stages
        self.normalize_embedding = normalize_embedding
        self.g_upsample_last, self.d_pool_first = g_upsample_last, d_pool_first

    @staticmethod
    def sequence(stages, *, resample_first=False, resample_last=False):
        """[(name, fin, fout) or _RESAMPLE] with a resampling step between stages."""
        seq = []
        for i, stage in enumerate(stages):
            if i > 0 or resample_first:
                seq.append(_RESAMPLE)
            seq += [(f"resnet_{i}_{j}", fin, fout) for j, (fin, fout) in enumerate(stage)]
        return seq + ([_RESAMPLE] if resample_last else [])

    def generator_sequence(self):
        return self.sequence(self.g_stages, resample_last=self.g_upsample_last)

    def discriminator_sequence(self):
        return self.sequence(self.d_stages, resample_first=self.d_pool_first)


LAYOUTS = {
    "resnet2": _Layout(
        s0_divisor=32, kernel_size=3, normalize_embedding=True,
        g_stages=[[(16, 16), (16, 16)], [(16, 16), (16, 16)], [(16, 8), (8, 8)],
                  [(8, 4), (4, 4)], [(4, 2), (2, 2)], [(2, 1), (1, 1)]],
        d_stages=[[(1, 1), (1, 2)], [(2, 2), (2, 4)], [(4, 4), (4, 8)], [(8, 8), (8, 16)],
                  [(16, 16), (16, 16)], [(16, 16), (16, 16)]]),
    "resnet3": _Layout(
        s0_divisor=64, kernel_size=7, normalize_embedding=False,
        g_stages=[[(32, 16)], [(16, 16)], [(16, 8)], [(8, 4)], [(4, 2)], [(2, 1)]],
        g_upsample_last=True,
        d_stages=[[(1, 2)], [(2, 4)], [(4, 8)], [(8, 16)], [(16, 16)], [(16, 32)]],
        d_pool_first=True),
    "resnet4": _Layout(
        s0_divisor=64, kernel_size=7, normalize_embedding=False,
        g_stages=[[(16, 16)], [(16, 16)], [(16, 8)], [(8, 4)], [(4, 2)], [(2, 1)], [(1, 1)]],
        d_stages=[[(1, 1)], [(1, 2)], [(2, 4)], [(4, 8)], [(8, 16)], [(16, 16)], [(16, 16)]]),
}


class ResNetVariantGenerator(CheckpointListsMixin, keras.Model):
    """GAN_stability `resnet2/3/4` generator:
    call(z, labels=None, training=None) -> [N, R, R, 3]."""

    def __init__(self, *, arch, resolution, z_dim, num_classes, nf, embed_size, init, **kwargs):
        super().__init__(**kwargs)
        layout = LAYOUTS[arch]
        self.arch, self.resolution = arch, resolution
        self.z_dim, self.num_classes = z_dim, num_classes
        self.nf, self.embed_size, self.init = nf, embed_size, init
        self.normalize_embedding = layout.normalize_embedding
        self.s0 = resolution // layout.s0_divisor
        sequence = layout.generator_sequence()
        self.nf0 = sequence[0][1] * nf

        self.embedding = embedding(num_classes, embed_size, init=init)
        self.fc = dense(z_dim + embed_size, self.nf0 * self.s0 * self.s0, init=init, name="fc")
        blocks = [s for s in sequence if s is not _RESAMPLE]
        self.block_names = [name for name, _, _ in blocks]
        self.blocks = [ResnetBlock(fin * nf, fout * nf, init=init, name=name)
                       for name, fin, fout in blocks]
        self._upsample_after = _resample_positions(sequence)
        self.conv_img = conv2d(nf, 3, layout.kernel_size, init=init, name="conv_img")

    def torch_layers(self):
        """(GAN_stability state-dict name, layer) pairs."""
        return ([("embedding", self.embedding), ("fc", self.fc)]
                + list(zip(self.block_names, self.blocks)) + [("conv_img", self.conv_img)])

    def call(self, z, labels=None, training=None):
        labels = default_labels(labels, z)
        yembed = self.embedding(labels)
        if self.normalize_embedding:
            yembed = yembed / ops.maximum(ops.norm(yembed, axis=1, keepdims=True), 1e-12)
        out = self.fc(ops.concatenate([ops.cast(z, yembed.dtype), yembed], axis=1))
        # PyTorch view(N, nf0, s0, s0) -> NHWC.
        out = ops.transpose(ops.reshape(out, (-1, self.nf0, self.s0, self.s0)), (0, 2, 3, 1))
        for i, block in enumerate(self.blocks):
            out = block(out)
            for _ in range(self._upsample_after[i]):
                out = upsample_nearest_2x(out)
        return ops.tanh(self.conv_img(lrelu(out)))


class ResNetVariantDiscriminator(CheckpointListsMixin, keras.Model):
    """GAN_stability `resnet2/3/4` discriminator: call(images, labels=None, training=None) -> [N]
    logits of each example's class. `class_logits` gives all [N, num_classes]."""

    def __init__(self, *, arch, resolution, num_classes, nf, init, **kwargs):
        super().__init__(**kwargs)
        layout = LAYOUTS[arch]
        self.arch, self.resolution, self.num_classes = arch, resolution, num_classes
        self.nf, self.init = nf, init
        self.s0 = resolution // layout.s0_divisor
        sequence = layout.discriminator_sequence()
        self.nf_out = sequence[-1][2] * nf

        self.conv_img = conv2d(3, nf, layout.kernel_size, init=init, name="conv_img")
        self._pool_first = sequence[0] is _RESAMPLE
        blocks = [s for s in sequence if s is not _RESAMPLE]
        self.block_names = [name for name, _, _ in blocks]
        self.blocks = [ResnetBlock(fin * nf, fout * nf, init=init, name=name)
                       for name, fin, fout in blocks]
        self._pool_after = _resample_positions(sequence[1:] if self._pool_first else sequence)
        self.fc = dense(self.nf_out * self.s0 * self.s0, num_classes, init=init, name="fc")

    def torch_layers(self):
        """(GAN_stability state-dict name, layer) pairs."""
        return ([("conv_img", self.conv_img)] + list(zip(self.block_names, self.blocks))
                + [("fc", self.fc)])

    def class_logits(self, images, training=None):
        out = self.conv_img(images)
        if self._pool_first:
            out = avg_pool_3x3_s2(out)
        for i, block in enumerate(self.blocks):
            out = block(out)
            for _ in range(self._pool_after[i]):
                out = avg_pool_3x3_s2(out)
        # Flatten in PyTorch (C, H, W) order.
        out = ops.reshape(ops.transpose(out, (0, 3, 1, 2)), (-1, self.nf_out * self.s0 * self.s0))
        return loss_logits(self.fc(lrelu(out)))

    def call(self, images, labels=None, training=None):
        logits = self.class_logits(images, training=training)
        labels = default_labels(labels, images)
        return ops.take_along_axis(logits, labels[:, None], axis=1)[:, 0]


def _resample_positions(sequence):
    """For each block of `sequence` (which starts with a block), how many resampling steps follow
    it before the next block."""
    counts = []
    for step in sequence:
        if step is _RESAMPLE:
            counts[-1] += 1
        else:
            counts.append(0)
    return counts


def _check(arch, resolution, num_classes, nf):
    divisor = LAYOUTS[arch].s0_divisor
    check_multiple("resolution", resolution, of=divisor, minimum=divisor)
    check_int("num_classes", num_classes)
    check_int("nf", nf)


def _generator(arch, resolution, z_dim, num_classes, nf, embed_size, init):
    _check(arch, resolution, num_classes, nf)
    check_int("z_dim", z_dim)
    check_int("embed_size", embed_size)
    return ResNetVariantGenerator(arch=arch, resolution=resolution, z_dim=z_dim,
                                  num_classes=num_classes, nf=nf, embed_size=embed_size,
                                  init=resolve_init(init))


def _discriminator(arch, resolution, num_classes, nf, init):
    _check(arch, resolution, num_classes, nf)
    return ResNetVariantDiscriminator(arch=arch, resolution=resolution, num_classes=num_classes,
                                      nf=nf, init=resolve_init(init))


@gin.configurable
def resnet2_generator(*, resolution, z_dim=256, num_classes=1, nf=64, embed_size=256,
                      init="keras"):
    """GAN_stability `resnet2` generator (ImageNet 128); `resolution` a multiple of 32.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _generator("resnet2", resolution, z_dim, num_classes, nf, embed_size, init)


@gin.configurable
def resnet2_discriminator(*, resolution, num_classes=1, nf=64, init="keras"):
    """GAN_stability `resnet2` discriminator (ImageNet 128); `resolution` a multiple of 32.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _discriminator("resnet2", resolution, num_classes, nf, init)


@gin.configurable
def resnet3_generator(*, resolution, z_dim=256, num_classes=1, nf=64, embed_size=256,
                      init="keras"):
    """GAN_stability `resnet3` generator (LSUN 256); `resolution` a multiple of 64.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _generator("resnet3", resolution, z_dim, num_classes, nf, embed_size, init)


@gin.configurable
def resnet3_discriminator(*, resolution, num_classes=1, nf=64, init="keras"):
    """GAN_stability `resnet3` discriminator (LSUN 256); `resolution` a multiple of 64.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _discriminator("resnet3", resolution, num_classes, nf, init)


@gin.configurable
def resnet4_generator(*, resolution, z_dim=256, num_classes=1, nf=64, embed_size=256,
                      init="keras"):
    """GAN_stability `resnet4` generator (CelebA 256); `resolution` a multiple of 64.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _generator("resnet4", resolution, z_dim, num_classes, nf, embed_size, init)


@gin.configurable
def resnet4_discriminator(*, resolution, num_classes=1, nf=64, init="keras"):
    """GAN_stability `resnet4` discriminator (CelebA 256); `resolution` a multiple of 64.
    `init`: 'pytorch' (GAN_stability's), 'keras' or a WeightInit (see initializers.py)."""
    return _discriminator("resnet4", resolution, num_classes, nf, init)

