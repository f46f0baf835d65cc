"""The training input: a source's stream batched into ``[global_batch_size, d_steps, ...]``."""
from __future__ import annotations

import gin
import tensorflow as tf

from tf_convgan.data.sources import ImageSource
from tf_convgan.errors import check_int, check_seed


@gin.configurable
def make_input_pipeline(source: ImageSource, *, global_batch_size: int, d_steps: int = 1,
                        seed: int = 0, start_step: int = 0) -> tf.data.Dataset:
    """Batched training input: elements ``(real, labels)`` with static shapes
    ``real`` float32 ``[global_batch_size, d_steps, R, R, C]`` and ``labels`` int32
    ``[global_batch_size, d_steps]``.

    Element ``(j, k)`` of batch ``b`` is stream example ``b*B*d + j*d + k`` of
    ``source.dataset(seed=seed, start=start_step * B * d)`` (B = global_batch_size,
    d = d_steps); discriminator step k uses ``real[:, k]``. train.distribute_pipeline gives
    each replica contiguous rows of axis 0. Resuming at ``start_step`` gives exactly the batches
    the uninterrupted run would have produced from that step on.
    """
    if not isinstance(source, ImageSource):
        raise TypeError(f"`source` must be an ImageSource, got {type(source).__name__}.")
    global_batch_size = check_int("`global_batch_size`", global_batch_size, minimum=1)
    d_steps = check_int("`d_steps`", d_steps, minimum=1)
    seed = check_seed("`seed`", seed)
    start_step = check_int("`start_step`", start_step, minimum=0)
    ds = source.dataset(seed=seed, start=start_step * global_batch_size * d_steps)
    ds = ds.batch(d_steps, drop_remainder=True).batch(global_batch_size, drop_remainder=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True  # == experimental_deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
