"""Spectral normalisation (Miyato et al. 2018) for Conv2D and Dense layers.

The kernel is viewed as a matrix W of shape [fan_in, out] (a conv kernel
[kh, kw, in, out] becomes [kh*kw*in, out]). A persistent unit vector u of shape
[1, out] is refined by power iteration on every forward pass:

    v = normalize(u W^T)          # [1, fan_in]
    u = normalize(v W)            # [1, out]
    sigma = v W u^T               # estimate of the largest singular value

u and v are treated as constants (stop_gradient), and the layer uses W / sigma, so
gradients flow through sigma: d sigma / dW = v^T u, which is the exact gradient of
the top singular value once u, v have converged. The refined u is written back only
when training=True (a Python bool; None counts as False). Unlike `keras.layers.SpectralNormalization`, the stored kernel is
never overwritten.
"""
import keras
from keras import ops

from .common import check_int


def _l2_normalize(x, eps=1e-12):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x)), eps))


class _UnitNormal(keras.initializers.Initializer):
    """N(0, 1) sample normalised to unit L2 norm (initial value of u)."""

    def __init__(self, seed=None):
        self._normal = keras.initializers.RandomNormal(stddev=1.0, seed=seed)

    def __call__(self, shape, dtype=None):
        return _l2_normalize(self._normal(shape, dtype=dtype))


class _SpectralNormMixin:
    """Shared power-iteration machinery. Expects `self.kernel` with last axis = out."""

    def _init_sn(self, power_iterations):
        self.power_iterations = check_int("power_iterations", power_iterations, minimum=1)

    def _build_u(self):
        out = self.kernel.shape[-1]
        # Replica-context assignment to a MirroredVariable needs an aggregation that
        # says which value wins; u is identical on all replicas (same W, same u),
        # so taking the first replica's value is exact.
        self.u = self.add_weight(name="sn_u", shape=(1, out), initializer=_UnitNormal(),
                                 trainable=False, aggregation="only_first_replica")

    def _kernel_matrix(self):
        return ops.reshape(self.kernel, (-1, self.kernel.shape[-1]))

    def _normalized_kernel(self, training):
        w = self._kernel_matrix()
        u = ops.convert_to_tensor(self.u)
        v = None
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w)))
            u = _l2_normalize(ops.matmul(v, w))
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, w) * u)
        if training:
            self.u.assign(u)
        return self.kernel / sigma

    def power_iterate(self, num_iterations):
        """Runs `num_iterations` power iterations from the stored u, stores the refined u and
        returns sigma = v W u^T (the estimate the forward pass would use). For tests and for
        warming up u before training."""
        check_int("num_iterations", num_iterations, minimum=1)
        w = self._kernel_matrix()
        u = ops.convert_to_tensor(self.u)
        v = None
        for _ in range(num_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(w)))
            u = _l2_normalize(ops.matmul(v, w))
        self.u.assign(u)
        return ops.sum(ops.matmul(v, w) * u)

    def sigma(self):
        """Current estimate of the top singular value from the stored u, without
        iterating: ||W u^T|| (= v W u^T with v = normalize(u W^T))."""
        w = self._kernel_matrix()
        return ops.sqrt(ops.sum(ops.square(ops.matmul(w, ops.transpose(self.u)))))


class SNConv2D(_SpectralNormMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` (channels_last, groups=1) with spectral normalisation."""

    def __init__(self, *args, power_iterations=1, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_sn(power_iterations)
        if self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("SNConv2D supports only data_format='channels_last' and groups=1")

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u()

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self._normalized_kernel(training))
        if self.use_bias:
            outputs = outputs + ops.reshape(self.bias, (1, 1, 1, self.filters))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


class SNDense(_SpectralNormMixin, keras.layers.Dense):
    """`keras.layers.Dense` with spectral normalisation (no LoRA / quantisation)."""

    def __init__(self, *args, power_iterations=1, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_sn(power_iterations)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_u()

    def call(self, inputs, training=None):
        outputs = ops.matmul(inputs, self._normalized_kernel(training))
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


def conv2d(filters, kernel_size, *, strides=1, spectral_norm, use_bias=True, name=None):
    """'same'-padded Conv2D, spectrally normalised if requested."""
    cls = SNConv2D if spectral_norm else keras.layers.Conv2D
    return cls(filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
               name=name)


def dense(units, *, spectral_norm, use_bias=True, name=None):
    cls = SNDense if spectral_norm else keras.layers.Dense
    return cls(units, use_bias=use_bias, name=name)
