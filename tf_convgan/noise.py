"""Random draws of training: stateless, the same with and without XLA, independent of how the
global batch is split over replicas, and all from one replaceable noise source.

Numbers. A draw is a function of a stateless seed (int [2]): uint32 bits from TensorFlow's
stateless Philox op (`tf.random.stateless_uniform` with dtype uint32 and no bounds), converted to
floats here:
  uniform U[0, 1): the top p bits of a word times 2^-p, p = the float type's significand bits
      (24 for float32), so every value is exact and < 1;
  normal N(0, 1): Box-Muller, z = sqrt(-2 log u1) (cos theta, sin theta) in float32 (float64 for
      float64), u1 = (bits + 1/2) 2^-32 in (0, 1) (tails to 6.76 sigma), theta uniform in
      [-pi, pi) (see `normal_from_bits`).
The Philox bits are identical in a graph step and in an XLA-compiled (jit_compile=True) one; the
conversion is elementwise arithmetic, so compiled and graph steps draw the same numbers up to the
float rounding of log/cos/sin (about 1e-7 relative). TensorFlow's own stateless_normal/uniform
are not used: under XLA they return other numbers for the same seed.

Replicas. Each replica draws the noise of the whole global batch and keeps its own rows
(`replica_rows`): replicas get distinct noise, and R replicas see exactly what one device sees for
the same global batch. Outside `strategy.run` (or with one replica) it is a plain draw.

Sources. `normal` and `uniform` draw from the active noise source: `PhiloxNoise` unless code runs
inside `with source_scope(other):`. GAN.train_step runs inside its `noise_source`'s scope, so every
draw of a step (z, penalties' interpolation weights and perturbations, augmentations, instance
noise, zCR's perturbations) comes from that source; a source that returns prescribed numbers
replays another implementation's draws (scripts/gan_stability_steps.py). A source has the methods
`normal(per_replica_shape, seed, dtype)` and `uniform(per_replica_shape, seed, dtype)`.
"""
import contextlib
import math
import threading

import tensorflow as tf

ALGORITHM = "philox"


def replica_rows(sample, per_replica_shape, seed):
    """This replica's rows of `sample(global_shape, seed)`; per_replica_shape must be static."""
    per_replica_shape = list(per_replica_shape)
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if replicas == 1:
        return sample(per_replica_shape, seed)
    rows = per_replica_shape[0]
    draw = sample([rows * replicas] + per_replica_shape[1:], seed)
    begin = [ctx.replica_id_in_sync_group * rows] + [0] * (len(per_replica_shape) - 1)
    return tf.slice(draw, begin, per_replica_shape)


def random_bits(shape, seed):
    """uint32 [shape] from the stateless Philox generator (the same under XLA)."""
    return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.uint32,
                                       alg=ALGORITHM)


_SIGNIFICAND_BITS = {tf.float16: 11, tf.bfloat16: 8, tf.float32: 24, tf.float64: 32}


def _float_type(dtype):
    dtype = tf.as_dtype(dtype)
    if dtype not in _SIGNIFICAND_BITS:
        raise ValueError(f"noise draws floating-point numbers, got dtype {dtype.name}")
    return dtype


def uniform_from_bits(bits, dtype=tf.float32):
    """U[0, 1) from uint32 bits: the top p bits times 2^-p (p = dtype's significand, at most
    32), exact in dtype and < 1."""
    dtype = _float_type(dtype)
    p = _SIGNIFICAND_BITS[dtype]
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    top = tf.bitwise.right_shift(bits, tf.constant(32 - p, tf.uint32))
    return tf.cast(tf.cast(top, compute) * (2.0 ** -p), dtype)


def normal_from_bits(bits, dtype=tf.float32):
    """N(0, 1) [n] by Box-Muller from uint32 bits [2, m] (n <= 2 m): z = r cos(theta) for the
    first m values, r sin(theta) for the next, with r = sqrt(-2 log u1), theta = pi (2 u2 - 1),
    u1 = (k + 1/2) 2^-32 in (0, 1) for the word k of bits[0] and u2 uniform from bits[1].

    -log u1 is computed as -log1p(-(1 - u1)) for u1 >= 1/2, with 1 - u1 = (~k + 1/2) 2^-32 from
    the complement word: both forms are then accurate to a few ulps in float32 (log u1 near u1 = 1
    would lose digits). The largest |z| is sqrt(66 log 2) = 6.76."""
    dtype = _float_type(dtype)
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    k = bits[0]
    u1 = (tf.cast(k, compute) + 0.5) * (2.0 ** -32)
    v1 = (tf.cast(tf.bitwise.invert(k), compute) + 0.5) * (2.0 ** -32)  # 1 - u1
    minus_log_u1 = tf.where(u1 < 0.5, -tf.math.log(u1), -tf.math.log1p(-v1))
    r = tf.sqrt(2.0 * minus_log_u1)
    theta = math.pi * (2.0 * uniform_from_bits(bits[1], compute) - 1.0)  # [-pi, pi)
    return tf.cast(tf.concat([r * tf.cos(theta), r * tf.sin(theta)], axis=0), dtype)


class PhiloxNoise:
    """The default noise source: stateless Philox bits converted as described in the module
    docstring; draws for the global batch, each replica keeping its rows."""

    def uniform(self, per_replica_shape, seed, dtype=tf.float32):
        def sample(shape, seed):
            return uniform_from_bits(random_bits(shape, seed), dtype)
        return replica_rows(sample, per_replica_shape, seed)

    def normal(self, per_replica_shape, seed, dtype=tf.float32):
        def sample(shape, seed):
            n = math.prod(shape)
            bits = random_bits([2, (n + 1) // 2], seed)
            return tf.reshape(normal_from_bits(bits, dtype)[:n], shape)
        return replica_rows(sample, per_replica_shape, seed)


_DEFAULT = PhiloxNoise()
_ACTIVE = threading.local()  # MirroredStrategy traces each replica's step in its own thread


def active_source():
    """The innermost `source_scope`'s source of this thread, else the PhiloxNoise default."""
    stack = getattr(_ACTIVE, "stack", None)
    return stack[-1] if stack else _DEFAULT


@contextlib.contextmanager
def source_scope(source):
    """Draws of `normal` and `uniform` inside the block come from `source`."""
    stack = getattr(_ACTIVE, "stack", None)
    if stack is None:
        stack = _ACTIVE.stack = []
    stack.append(source)
    try:
        yield source
    finally:
        stack.pop()


def normal(per_replica_shape, seed, dtype=tf.float32):
    """N(0, 1) of this replica's shape, a stateless function of `seed`, from the active source."""
    return active_source().normal(list(per_replica_shape), seed, dtype)


def uniform(per_replica_shape, seed, dtype=tf.float32):
    """U[0, 1) of this replica's shape, a stateless function of `seed`, from the active source."""
    return active_source().uniform(list(per_replica_shape), seed, dtype)


def fold_in(seed, *data):
    """A new stateless seed from `seed` and integers `data` (step, sub-step, purpose)."""
    for d in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(d, tf.int64), alg=ALGORITHM)
    return seed
