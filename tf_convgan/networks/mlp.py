"""MLP generator and discriminator for low-dimensional data (the 2D experiments).

Generator: z -> [dense(width) -> leaky ReLU 0.2] x depth -> dense(data_dim), no output activation.
Discriminator: x -> [dense(width) -> leaky ReLU 0.2] x depth -> dense(1) -> [N] logits.
No normalisation layers, so D's logits are per-example (the penalties need that). Unconditional
(num_classes = 1; labels are accepted and ignored). `data_shape` = (data_dim,) tells `build` and
`train()` the shape of one example.
"""
import gin
import keras
from keras import ops

from .common import check_int, lrelu


def _check_unconditional(num_classes):
    if num_classes != 1:
        raise ValueError(f"the MLP networks are unconditional: num_classes must be 1, got "
                         f"{num_classes!r}")


class MLPGenerator(keras.Model):
    def __init__(self, *, z_dim, data_dim, width, depth, num_classes=1, **kwargs):
        super().__init__(**kwargs)
        _check_unconditional(num_classes)
        self.z_dim, self.num_classes, self.data_shape = z_dim, 1, (data_dim,)
        self.hidden = [keras.layers.Dense(width, name=f"fc_{i}") for i in range(depth)]
        self.out = keras.layers.Dense(data_dim, name="fc_out")

    def call(self, z, labels=None, training=None):
        x = z
        for layer in self.hidden:
            x = lrelu(layer(x))
        return self.out(x)


class MLPDiscriminator(keras.Model):
    def __init__(self, *, data_dim, width, depth, num_classes=1, **kwargs):
        super().__init__(**kwargs)
        _check_unconditional(num_classes)
        self.num_classes, self.data_shape = 1, (data_dim,)
        self.hidden = [keras.layers.Dense(width, name=f"fc_{i}") for i in range(depth)]
        self.out = keras.layers.Dense(1, name="fc_out")

    def call(self, x, labels=None, training=None):
        for layer in self.hidden:
            x = lrelu(layer(x))
        return ops.squeeze(self.out(x), axis=-1)


@gin.configurable
def mlp_generator(*, z_dim=16, data_dim=2, width=128, depth=3, num_classes=1):
    return MLPGenerator(z_dim=check_int("mlp_generator.z_dim", z_dim),
                        data_dim=check_int("mlp_generator.data_dim", data_dim),
                        width=check_int("mlp_generator.width", width),
                        depth=check_int("mlp_generator.depth", depth), num_classes=num_classes)


@gin.configurable
def mlp_discriminator(*, data_dim=2, width=128, depth=3, num_classes=1):
    return MLPDiscriminator(data_dim=check_int("mlp_discriminator.data_dim", data_dim),
                            width=check_int("mlp_discriminator.width", width),
                            depth=check_int("mlp_discriminator.depth", depth),
                            num_classes=num_classes)
