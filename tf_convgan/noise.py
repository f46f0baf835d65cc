"""Random draws that do not depend on how the global batch is split over replicas.

Each replica draws the noise of the whole global batch from a stateless seed and keeps its own
rows: replicas get distinct noise, and R replicas see exactly what one device sees for the same
global batch. Outside `strategy.run` (or with one replica) this is a plain stateless draw.

The algorithm is fixed to Philox: the default ("auto_select") picks a different generator inside
XLA-compiled code, which would make a compiled step draw different noise than the graph step.
"""
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


def normal(per_replica_shape, seed, dtype=tf.float32):
    return replica_rows(lambda s, sd: tf.random.stateless_normal(s, sd, dtype=dtype, alg=ALGORITHM),
                        per_replica_shape, seed)


def uniform(per_replica_shape, seed, dtype=tf.float32):
    return replica_rows(lambda s, sd: tf.random.stateless_uniform(s, sd, dtype=dtype, alg=ALGORITHM),
                        per_replica_shape, seed)


def fold_in(seed, *data):
    """A new stateless seed from `seed` and integers `data` (step, sub-step, purpose)."""
    for d in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(d, tf.int64), alg=ALGORITHM)
    return seed
