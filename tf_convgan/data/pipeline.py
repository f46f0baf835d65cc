"""The training input: a source's stream batched into ``[global_batch_size, d_steps, ...]``,
optionally augmented as GAN_stability's inputs (random horizontal flips, dequantization noise)."""
from __future__ import annotations

import gin
import tensorflow as tf

from tf_convgan.data.preprocessing import augment_image, check_augmentation
from tf_convgan.data.sources import ImageSource
from tf_convgan.errors import ConfigError, check_int, check_seed

# Second half of the stateless key of the augmentation stream, [seed, _AUGMENTATION_STREAM]: keeps
# its draws apart from the sources' permutations (keyed [seed, epoch]).
_AUGMENTATION_STREAM = 0x6175676D  # 'augm'


@gin.configurable
def make_input_pipeline(source: ImageSource, *, global_batch_size: int, d_steps: int = 1,
                        seed: int = 0, start_step: int = 0, random_flip: bool = False,
                        dequantization_noise: float = 0.0) -> tf.data.Dataset:
    """Batched training input: elements ``(real, labels)`` with static shapes
    ``real`` float32 ``[global_batch_size, d_steps, R, R, C]`` and ``labels`` int32
    ``[global_batch_size, d_steps]``.

    Element ``(j, k)`` of batch ``b`` is stream example ``b*B*d + j*d + k`` of
    ``source.dataset(seed=seed, start=start_step * B * d)`` (B = global_batch_size,
    d = d_steps); discriminator step k uses ``real[:, k]``. train.distribute_pipeline gives
    each replica contiguous rows of axis 0. Resuming at ``start_step`` gives exactly the batches
    the uninterrupted run would have produced from that step on.

    Augmentation (off by default; on in the configs that reproduce GAN_stability, whose
    gan_training/inputs.py applies both): ``random_flip`` mirrors each image left-right with
    probability 1/2, then ``dequantization_noise`` = w adds ``w * U[0, 1)`` to every value
    (GAN_stability: w = 1/128, so images lie in ``[-1, 1 + 1/128]``); see
    :func:`~tf_convgan.data.preprocessing.augment_image`. The draws of stream example ``i`` are a
    pure function of ``(seed, i)`` (the stateless key ``fold_in([seed, stream], i)``), so the
    augmented stream is deterministic per seed and resumes exactly like the plain one.
    """
    if not isinstance(source, ImageSource):
        raise TypeError(f"`source` must be an ImageSource, got {type(source).__name__}.")
    global_batch_size = check_int("`global_batch_size`", global_batch_size, minimum=1)
    d_steps = check_int("`d_steps`", d_steps, minimum=1)
    seed = check_seed("`seed`", seed)
    start_step = check_int("`start_step`", start_step, minimum=0)
    random_flip, dequantization_noise = check_augmentation(random_flip, dequantization_noise)
    start = start_step * global_batch_size * d_steps
    ds = source.dataset(seed=seed, start=start)
    if random_flip or dequantization_noise:
        ds = _augmented(ds, source, seed=seed, start=start, random_flip=random_flip,
                        dequantization_noise=dequantization_noise)
    ds = ds.batch(d_steps, drop_remainder=True).batch(global_batch_size, drop_remainder=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True  # == experimental_deterministic
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _augmented(ds, source, *, seed, start, random_flip, dequantization_noise):
    """The stream ``ds`` (starting at stream position ``start``) with example ``i`` augmented
    with the key ``fold_in([seed, _AUGMENTATION_STREAM], i)``."""
    image_spec = ds.element_spec[0]
    if image_spec.shape.rank != 3:
        raise ConfigError(
            f"`random_flip` and `dequantization_noise` need a source of images [H, W, C], but "
            f"{source.description or type(source).__name__} gives examples of shape "
            f"{image_spec.shape}; set random_flip = False and dequantization_noise = 0.")
    base = tf.constant([seed, _AUGMENTATION_STREAM], tf.int64)

    def augment(position, example):
        image, label = example
        key = tf.random.experimental.stateless_fold_in(base, position)
        image = augment_image(image, key, random_flip=random_flip,
                              dequantization_noise=dequantization_noise)
        return image, label

    positions = tf.data.Dataset.counter(start=start, dtype=tf.int64)
    return tf.data.Dataset.zip((positions, ds)).map(
        augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
