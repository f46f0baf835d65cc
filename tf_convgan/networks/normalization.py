"""Discriminator normalization, one choice for the SNDCGAN and ResNet-CIFAR discriminators
(the axis "normalization" of Kurach et al. 2019, "A Large-Scale Study on Regularization and
Normalization in GANs"):

  'none'           plain Conv2D / Dense layers (DCGAN's discriminator)
  'spectral_norm'  every conv / dense uses W / sigma(W) (spectral_norm.py; Miyato et al. 2018)
  'weight_norm'    every conv / dense uses w = g * v / ||v|| per output unit (Salimans & Kingma
                   2016): v the stored kernel, ||v|| over all of its axes but the last, g a
                   trainable [out] vector initialised to the initial ||v||, so that the initial
                   function equals the plain layer's
  'batch_norm'     a cross-replica batch norm (BatchNormalization(synchronized=True), as the
                   generators' `sync_batch_norm`: momentum 0.9, epsilon 1e-5) on the feature
                   maps; in training mode the statistics are those of the *global* batch, so the
                   replica count does not change the function, but D's logit of one example
                   depends on every example of the batch (docs/conventions.md, "The input gradient")
  'layer_norm'     per example over (H, W, C), with a per-channel scale and offset (epsilon 1e-5):
                   logits stay per-example

Where the feature norms (batch_norm, layer_norm) go is each network's choice (its docstring).
`resolve` reconciles the older boolean `spectral_norm` argument with `normalization`.
"""
import keras
from keras import ops

from tf_convgan.errors import ConfigError

from .common import check_bool
from .spectral_norm import SNConv2D, SNDense

NORMALIZATIONS = ("none", "batch_norm", "layer_norm", "spectral_norm", "weight_norm")
FEATURE_NORMS = ("batch_norm", "layer_norm")


def resolve(normalization, spectral_norm, *, default):
    """The normalization name from the two arguments of a discriminator factory.

    normalization: None (not given) or one of NORMALIZATIONS; spectral_norm: None (not given) or
    a bool, True meaning 'spectral_norm' and False 'none'. Neither given: `default`. Both given
    and disagreeing: ConfigError naming both."""
    if spectral_norm is not None:
        spectral_norm = check_bool("spectral_norm", spectral_norm)
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, "
                         f"got {normalization!r}")
    if normalization is None:
        if spectral_norm is None:
            return default
        return "spectral_norm" if spectral_norm else "none"
    if spectral_norm is not None and spectral_norm != (normalization == "spectral_norm"):
        raise ConfigError(
            f"spectral_norm = {spectral_norm} contradicts normalization = {normalization!r}: "
            f"set only normalization (spectral_norm = True means normalization = "
            f"'spectral_norm', False means 'none')")
    return normalization


# ----------------------------------------------------------------------------- weight norm

def _column_norms(kernel):
    """||v|| per output unit: the L2 norm over every axis of the kernel but the last."""
    matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))
    return ops.sqrt(ops.maximum(ops.sum(ops.square(matrix), axis=0), 1e-12))


class _NormsOf(keras.initializers.Initializer):
    """Initialises g to the per-unit norms of a layer's initial kernel."""

    def __init__(self, kernel):
        self._kernel = kernel

    def __call__(self, shape, dtype=None):
        return ops.cast(_column_norms(ops.convert_to_tensor(self._kernel)), dtype or "float32")


class _WeightNormMixin:
    def _build_g(self):
        self.g = self.add_weight(name="wn_g", shape=(self.kernel.shape[-1],),
                                 initializer=_NormsOf(self.kernel), trainable=True)

    def normalized_kernel(self):
        """g * v / ||v||, per output unit."""
        kernel = ops.convert_to_tensor(self.kernel)
        return kernel * (ops.convert_to_tensor(self.g) / _column_norms(kernel))


class WNConv2D(_WeightNormMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` (channels_last, groups=1) with weight normalization."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("WNConv2D supports only data_format='channels_last' and groups=1")

    def build(self, input_shape):
        super().build(input_shape)
        self._build_g()

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.normalized_kernel())
        if self.use_bias:
            outputs = outputs + ops.reshape(self.bias, (1, 1, 1, self.filters))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


class WNDense(_WeightNormMixin, keras.layers.Dense):
    """`keras.layers.Dense` with weight normalization (no LoRA / quantisation)."""

    def build(self, input_shape):
        super().build(input_shape)
        self._build_g()

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, self.normalized_kernel())
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


# ----------------------------------------------------------------------------- layer norm

class LayerNorm(keras.layers.Layer):
    """Per-example normalization over (H, W, C) of an NHWC tensor, then a per-channel scale and
    offset: y = gamma * (x - mean) / sqrt(var + epsilon) + beta."""

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x, training=None):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        variance = ops.mean(ops.square(x - mean), axis=(1, 2, 3), keepdims=True)
        return (x - mean) * ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta


# ----------------------------------------------------------------------------- factories

def conv2d(filters, kernel_size, *, normalization, strides=1, use_bias=True, name=None):
    """'same'-padded Conv2D; spectrally or weight-normalised when `normalization` says so."""
    cls = {"spectral_norm": SNConv2D, "weight_norm": WNConv2D}.get(normalization,
                                                                    keras.layers.Conv2D)
    return cls(filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
               name=name)


def dense(units, *, normalization, use_bias=True, name=None):
    cls = {"spectral_norm": SNDense, "weight_norm": WNDense}.get(normalization,
                                                                  keras.layers.Dense)
    return cls(units, use_bias=use_bias, name=name)


def feature_norm(normalization, name):
    """The feature-map normalization layer of `normalization` (batch_norm, layer_norm), or None:
    the identity."""
    if normalization == "batch_norm":
        return keras.layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5,
                                               name=name)
    if normalization == "layer_norm":
        return LayerNorm(name=name)
    return None


def apply(norm, x, training):
    """`norm(x)` in the given mode, or x when there is no feature norm."""
    return x if norm is None else norm(x, training=training)
