"""GAN generators and discriminators (NHWC, images in [-1, 1]).

Generators: `call(z, labels=None, training=None) -> [N, R, R, 3]`, attributes
`z_dim`, `num_classes`, `resolution`. Discriminators: `call(images, labels=None,
training=None) -> [N]` logits, attributes `num_classes`, `resolution`; the logits are float32
(under mixed precision too: the loss is computed in float32), float64 from a network built under
the float64 dtype policy (`common.loss_logits`).
Networks for other data (the 2D MLPs) have a `data_shape` attribute: the shape of one
example, in place of [resolution, resolution, 3].
`labels` are int32 class ids; None means all zeros. Use `build(model)` to create
weights before counting parameters or restoring checkpoints.
The GAN_stability ResNets (`resnet`, `resnet2`, `resnet3`, `resnet4`) take `init='pytorch'`
(GAN_stability's initialisation) or `'keras'` (see initializers.py); `torch_port` copies
GAN_stability (PyTorch) state dicts into / out of them.
"""
from .common import build, count_params
from .mlp import mlp_discriminator, mlp_generator
from .dcgan import (dcgan_discriminator, dcgan_generator, sndcgan_discriminator,
                    sndcgan_generator)
from .initializers import WeightInit
from .resnet import resnet_discriminator, resnet_generator
from .resnet_variants import (resnet2_discriminator, resnet2_generator, resnet3_discriminator,
                              resnet3_generator, resnet4_discriminator, resnet4_generator)
from .resnet_cifar import resnet_cifar_discriminator, resnet_cifar_generator
from .spectral_norm import SNConv2D, SNDense
from . import torch_port

__all__ = [
    "build", "count_params", "SNConv2D", "SNDense", "torch_port",
    "resnet_generator", "resnet_discriminator", "resnet2_generator", "resnet2_discriminator",
    "resnet3_generator", "resnet3_discriminator", "resnet4_generator", "resnet4_discriminator",
    "WeightInit",
    "sndcgan_generator", "sndcgan_discriminator", "dcgan_generator", "dcgan_discriminator",
    "resnet_cifar_generator", "resnet_cifar_discriminator", "mlp_generator", "mlp_discriminator",
]
