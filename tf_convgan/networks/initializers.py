"""Weight initialisation of the GAN_stability networks: a gin choice, the factories' `init=`.

- `'pytorch'`: PyTorch's defaults, what GAN_stability trained with. Conv / linear weights
  `kaiming_uniform_(a=sqrt(5))`, i.e. U(-b, b) with b = gain * sqrt(3 / fan_in) and
  gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), so b = 1 / sqrt(fan_in); biases U(-1/sqrt(fan_in),
  1/sqrt(fan_in)) with the weight's fan_in (in_channels * kh * kw for a conv, in_features for a
  linear layer). Each layer's output then has about a third of its input's variance, so
  G(z) starts near 0 (std ~0.04 for the 32x32 ResNet).
- `'keras'`: Keras' layer defaults: glorot-uniform kernels (U(+-sqrt(6 / (fan_in + fan_out))))
  and zero biases; the signal keeps its scale (std of G(z) ~0.3 at 32x32).

Both draw class embeddings from N(0, 1), like torch.nn.Embedding. A `WeightInit` instance can be
passed instead of a name for other schemes.
"""
import math

import keras


class WeightInit:
    """An initialisation scheme: `kernel(fan_in)`, `bias(fan_in)`, `embedding()` return Keras
    initializers (fresh instances: unseeded, they draw from Keras' global seed)."""

    def __init__(self, name, kernel, bias, embedding):
        self.name = name
        self._kernel, self._bias, self._embedding = kernel, bias, embedding

    def kernel(self, fan_in):
        return self._kernel(fan_in)

    def bias(self, fan_in):
        return self._bias(fan_in)

    def embedding(self):
        return self._embedding()

    def __repr__(self):
        return f"WeightInit({self.name!r})"


def _torch_uniform(fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _unit_normal():
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)


PYTORCH = WeightInit("pytorch", kernel=_torch_uniform, bias=_torch_uniform, embedding=_unit_normal)
KERAS = WeightInit("keras", kernel=lambda fan_in: keras.initializers.GlorotUniform(),
                   bias=lambda fan_in: keras.initializers.Zeros(), embedding=_unit_normal)
INITS = {"pytorch": PYTORCH, "keras": KERAS}


def resolve_init(init):
    """A WeightInit from a name in INITS or a WeightInit; ValueError otherwise."""
    if isinstance(init, WeightInit):
        return init
    if isinstance(init, str) and init in INITS:
        return INITS[init]
    raise ValueError(f"init must be one of {sorted(INITS)} or a WeightInit, got {init!r}")


# ----------------------------------------------------------------------------- layers

def conv2d(fin, fout, kernel_size, *, init, use_bias=True, name):
    """'same'-padded stride-1 Conv2D (PyTorch padding = kernel_size // 2) initialised by `init`."""
    fan_in = fin * kernel_size * kernel_size
    return keras.layers.Conv2D(
        fout, kernel_size, padding="same", use_bias=use_bias, name=name,
        kernel_initializer=init.kernel(fan_in),
        bias_initializer=init.bias(fan_in) if use_bias else "zeros")


def dense(fin, fout, *, init, name):
    return keras.layers.Dense(fout, name=name, kernel_initializer=init.kernel(fin),
                              bias_initializer=init.bias(fin))


def embedding(num_classes, embed_size, *, init, name="embedding"):
    return keras.layers.Embedding(num_classes, embed_size, name=name,
                                  embeddings_initializer=init.embedding())
