"""Inception features of images, in batches under a strategy.

Image convention (fixed; TTUR's): images become uint8 first ([-1, 1] floats are mapped by
`images.to_uint8`, i.e. round((x + 1) * 127.5), as writing a PNG would), grey images are replicated
to 3 channels, then the uint8 values (as float32) are resized to 299x299 with TF1's bilinear resize
(`ResizeBilinear`, align_corners=False, half_pixel_centers=False: the op inside the 2015 graph that
TTUR feeds), then mapped to (x - 128) / 128. Images already 299x299 are not resized. This is
`RESIZE_CONVENTION`, part of every cache key (evaluation.reference).

The images come from data sources and image folders (`features_of_source`), arrays
(`features_of_images`) or generators (`features_of_generator` with `generator_fn`; generators
of run directories and SavedModels come from run_dir.generators).
"""
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from tf_convgan import data as data_lib
from tf_convgan.run_dir import images as images_lib
from tf_convgan.evaluation import inception, streaming

RESIZE_CONVENTION = "tf1bilinear"  # ResizeBilinear(align_corners=False, half_pixel_centers=False)


# --------------------------------------------------------------------------- preprocessing

def to_uint8(images):
    """uint8 images unchanged; float images in [-1, 1] -> uint8 by round((x + 1) * 127.5)."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return images
    return images_lib.to_uint8(tf.cast(images, tf.float32))


def resize_bilinear_tf1(images, size=inception.INPUT_SIZE):
    """TF1's bilinear resize (align_corners=False, legacy pixel centers), float32 in and out."""
    return tf.raw_ops.ResizeBilinear(images=images, size=[size, size], align_corners=False,
                                     half_pixel_centers=False)


def inception_inputs(images):
    """uint8 (or [-1, 1] float) NHWC images of any size, 1 or 3 channels -> the network's input:
    float32 [N, 299, 299, 3], (resize(uint8) - 128) / 128."""
    x = tf.cast(to_uint8(images), tf.float32)
    if x.shape[-1] == 1:
        x = tf.tile(x, [1, 1, 1, 3])
    elif x.shape[-1] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    if tuple(x.shape[1:3]) != (inception.INPUT_SIZE, inception.INPUT_SIZE):
        x = resize_bilinear_tf1(x)
    return (x - 128.0) / 128.0


# --------------------------------------------------------------------------- feature extraction

class _Progress:
    def __init__(self, total, description, verbose):
        self.verbose = verbose
        self.interactive = sys.stdout.isatty()
        self.total, self.description = total, description
        self.start = time.time()
        self.done = 0
        if verbose and self.interactive:
            print(description, flush=True)
            self.bar = keras.utils.Progbar(total, unit_name="image")

    def update(self, done):
        self.done = done
        if not self.verbose:
            return
        if self.interactive:
            self.bar.update(done)
        elif done == self.total:
            rate = done / max(time.time() - self.start, 1e-9)
            print(f"{self.description}: {done} images, {rate:.1f} images/s", flush=True)


class FeatureExtractor:
    """The FID Inception network under a strategy: pool_3 features of images, in batches.

    `batch_size` is the global batch (split over the replicas); the last batch is padded and the
    padding dropped. The per-replica work (making images, preprocessing, the network) runs in one
    tf.function (XLA with `jit_compile=True`), so on GPUs/TPUs it stays on the device.

    With `logits=True` the network also computes the 2015 graph's logits (1008 classes, no bias,
    as the original Inception Score code; needs weights converted from the GraphDef), returned by
    the features_of_* methods with `return_logits=True` as (features, logits)."""

    def __init__(self, *, weights_path=None, strategy=None, batch_size=50, jit_compile=False,
                 verbose=True, logits=False):
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if batch_size < 1 or batch_size % replicas:
            raise ValueError(f"batch_size must be a positive multiple of the {replicas} replicas, "
                             f"got {batch_size}")
        self.batch_size = batch_size
        self.jit_compile = jit_compile
        self.verbose = verbose
        self.logits = logits
        self.output_dim = inception.FEATURE_DIM + (inception.NUM_LOGITS if logits else 0)
        with self.strategy.scope():
            self.model = inception.fid_inception(weights_path, logits=logits)
        self._steps = {}

    def _step_fn(self, produce, key):
        if key in self._steps:
            return self._steps[key]
        model = self.model

        def replica_fn(inputs):
            outputs = model(inception_inputs(produce(inputs)), training=False)
            if isinstance(outputs, (list, tuple)):  # [pool_3, logits]
                outputs = tf.concat(outputs, axis=1)
            return outputs

        replica_fn = tf.function(replica_fn, jit_compile=self.jit_compile)
        strategy = self.strategy

        @tf.function
        def step(dist_inputs):
            return strategy.gather(strategy.run(replica_fn, args=(dist_inputs,)), axis=0)

        self._steps[key] = step
        return step

    def _run(self, dataset, num, produce, key, description, sink=None):
        """dataset: unbatched elements (at least `num`); produce: replica batch -> images.
        Returns the [num, output_dim] float32 rows, or with a `sink` (streaming.FeatureSummary)
        hands it each batch's rows in order and returns it: memory does not grow with `num`."""
        bs = self.batch_size

        def pad(*batch):
            n = tf.shape(tf.nest.flatten(batch)[0])[0]
            return tuple(tf.ensure_shape(
                tf.pad(t, [[0, bs - n]] + [[0, 0]] * (t.shape.rank - 1)),
                [bs] + t.shape[1:].as_list())
                for t in batch)

        ds = dataset.take(num).batch(bs).map(pad).prefetch(2)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        ds = self.strategy.experimental_distribute_dataset(ds.with_options(options))
        step = self._step_fn(lambda inputs: produce(*inputs), key)
        out = np.empty((num, self.output_dim), np.float32) if sink is None else None
        done = 0
        progress = _Progress(num, description, self.verbose)
        for batch in ds:
            features = step(batch).numpy()
            take = min(bs, num - done)
            if sink is None:
                out[done:done + take] = features[:take]
            else:
                sink.add(features[:take])
            done += take
            progress.update(done)
        if done != num:
            raise ValueError(f"{description}: the data gave {done} images, {num} were asked")
        return out if sink is None else sink

    def summary(self, num, *, max_rows, is_splits=None):
        """An empty streaming.FeatureSummary of `num` images for the features_of_* methods'
        `sink` (with `is_splits`: the Inception Score too; needs logits=True)."""
        if is_splits and not self.logits:
            raise ValueError("this FeatureExtractor has no logits: build it with logits=True")
        return streaming.FeatureSummary(num, feature_dim=inception.FEATURE_DIM,
                                        max_rows=max_rows, is_splits=is_splits)

    def _split(self, out, return_logits):
        """The features, or (features, logits) with `return_logits`; a sink as it is."""
        if isinstance(out, streaming.FeatureSummary):
            return out
        features = out[:, :inception.FEATURE_DIM]
        if not return_logits:
            return features
        if not self.logits:
            raise ValueError("this FeatureExtractor has no logits: build it with logits=True")
        return features, out[:, inception.FEATURE_DIM:]

    def features_of_images(self, images, *, description="images", return_logits=False):
        """Features of an array / tensor of images [N, H, W, C] (uint8, or float in [-1, 1])."""
        images = np.asarray(images)
        ds = tf.data.Dataset.from_tensor_slices((images,))
        return self._split(self._run(ds, len(images), lambda x: x, (
            "array", images.dtype.name, images.shape[1:]), description), return_logits)

    def features_of_source(self, source, num, *, seed=0, description=None, return_logits=False,
                           sink=None):
        """Features of the first `num` examples of a tf_convgan.data source's stream(seed): for
        index-addressable sources, `num` distinct examples (a random subset, without replacement,
        when num < the dataset size). With a `sink` (`summary`), streamed into it."""
        if source.num_examples is not None and num > source.num_examples:
            raise ValueError(f"{source.description}: {num} samples asked but the source has "
                             f"{source.num_examples} examples")
        ds = source.dataset(seed=seed).map(lambda image, label: (to_uint8(image),))
        return self._split(self._run(ds, num, lambda x: x, (
            "uint8", source.resolution, source.channels), description or source.description,
            sink), return_logits)

    def features_of_generator(self, generate, *, num, z_dim, num_classes=1, seed=0,
                              description="generator", return_logits=False, sink=None):
        """Features of `num` generated images (with a `sink`, streamed into it). Example i has
        z_i = stateless_normal(seed=[seed, i]) and label i % num_classes, so the set does not
        depend on batch size or replicas.
        generate(z [B, z_dim] float32, labels [B] int32) -> images (uint8 or [-1, 1] floats)."""
        def example(i):
            z = tf.random.stateless_normal([z_dim], seed=tf.stack([tf.cast(seed, tf.int64), i]))
            return z, tf.cast(i % num_classes, tf.int32)

        ds = tf.data.Dataset.range(num).map(example)
        return self._split(self._run(ds, num, generate, ("generator", id(generate)), description,
                                     sink), return_logits)


def generator_fn(generator):
    """A tf_convgan generator (keras) -> generate(z, labels) for `features_of_generator`."""
    return lambda z, labels: to_uint8(generator(z, labels, training=False))


# --------------------------------------------------------------------------- sources

def image_folder_resolution(directory):
    """The size of the first image file under `directory` (sorted), for image_folder_source,
    and the number of image files."""
    probe = data_lib.image_folder_source(directory=directory, resolution=8)
    image = tf.io.decode_image(tf.io.read_file(os.path.join(directory, probe.files[0])),
                               expand_animations=False)
    return int(min(image.shape[0], image.shape[1])), probe.num_examples
