"""Your own Keras generator and discriminator in a GAN: the contract they meet, checked once.

Contract (what GAN.train_step calls):
  generator: a Keras model taking z [N, z_dim] (float32), or [z, labels] with int labels [N] when
    conditional, and returning images [N, H, W, C] (any example shape) in [-1, 1] (end it with
    tanh).
  discriminator: a Keras model taking images [N, H, W, C] (or [images, labels] when
    conditional) and returning one logit per example, [N] or [N, 1] (no sigmoid).
`gan_from_keras(generator, discriminator, ...)` wraps both (and a clone of the generator for the
EMA copy) into the library's network interface (call(x, labels, training), z_dim,
num_classes, data_shape) after checking them on a probe batch; a network that does not meet the
contract is refused with a ConfigError naming what is missing.
"""
import keras
import tensorflow as tf

from tf_convgan.errors import ConfigError
from tf_convgan.gan.model import GAN

_PROBE = 2


def _input_shapes(model, name):
    inputs = getattr(model, "inputs", None)
    if not isinstance(model, keras.Model) or not inputs:
        raise ConfigError(f"{name} must be a built Keras model with declared inputs (Sequential "
                          f"with keras.Input, or functional), got {type(model).__name__}")
    return [tuple(i.shape) for i in inputs]


class _Wrapped(keras.Model):
    def __init__(self, model, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.num_classes = num_classes

    def _inputs(self, x, labels):
        if self.num_classes > 1:
            labels = tf.zeros([tf.shape(x)[0]], tf.int32) if labels is None else labels
            return [x, labels]
        return x


class KerasGenerator(_Wrapped):
    """A user's generator behind the library's interface (see the module docstring)."""

    def __init__(self, model, *, num_classes=1, **kwargs):
        shapes = _input_shapes(model, "the generator")
        expected = 2 if num_classes > 1 else 1
        if len(shapes) != expected or len(shapes[0]) != 2 or shapes[0][1] is None:
            raise ConfigError(
                f"the generator must take z [N, z_dim]{' and labels [N]' if expected == 2 else ''}"
                f" ({expected} input{'s' if expected == 2 else ''}), got inputs {shapes}")
        super().__init__(model, num_classes, **kwargs)
        self.z_dim = int(shapes[0][1])
        out = model(self._inputs(tf.zeros([_PROBE, self.z_dim]), None), training=False)
        self.data_shape = tuple(out.shape[1:])
        probe = model(self._inputs(tf.random.stateless_normal([16, self.z_dim], [0, 1]), None),
                      training=False)
        if float(tf.reduce_max(tf.abs(probe))) > 1.0:
            raise ConfigError("the generator's images must lie in [-1, 1] (the data's range): "
                              "end it with a tanh activation")

    def call(self, z, labels=None, training=None):
        return self.model(self._inputs(z, labels), training=training)


class KerasDiscriminator(_Wrapped):
    """A user's discriminator behind the library's interface: one float32 logit per example."""

    def __init__(self, model, *, data_shape, num_classes=1, **kwargs):
        shapes = _input_shapes(model, "the discriminator")
        expected = 2 if num_classes > 1 else 1
        if len(shapes) != expected or tuple(shapes[0][1:]) != tuple(data_shape):
            raise ConfigError(
                f"the discriminator must take the generator's images [N, "
                f"{', '.join(map(str, data_shape))}]{' and labels [N]' if expected == 2 else ''},"
                f" got inputs {shapes}")
        super().__init__(model, num_classes, **kwargs)
        self.data_shape = tuple(data_shape)
        out = model(self._inputs(tf.zeros((_PROBE,) + self.data_shape), None), training=False)
        if tuple(out.shape) not in ((_PROBE,), (_PROBE, 1)):
            raise ConfigError(f"the discriminator must return one logit per example, [N] or "
                              f"[N, 1], got {tuple(out.shape)} for N = {_PROBE}")

    def call(self, x, labels=None, training=None):
        logits = self.model(self._inputs(x, labels), training=training)
        return tf.cast(tf.reshape(logits, [-1]), tf.float32)


def gan_from_keras(generator, discriminator, *, num_classes=1, generator_ema=None, **gan_kwargs):
    """A GAN of your own Keras networks (the contract in the module docstring); `gan_kwargs` go
    to GAN (penalty=penalties.r1, loss=..., d_steps=..., seed=...). The EMA copy is
    keras.models.clone_model(generator) unless given."""
    if generator_ema is None:
        generator_ema = keras.models.clone_model(generator)
    g = KerasGenerator(generator, num_classes=num_classes)
    g_ema = KerasGenerator(generator_ema, num_classes=num_classes)
    d = KerasDiscriminator(discriminator, data_shape=g.data_shape, num_classes=num_classes)
    for model in (g, g_ema, d):  # Keras' built flag (the wrapped models are)
        model.built = True
    return GAN(g, d, g_ema, **gan_kwargs)
