"""Image sources: deterministic, resumable, infinite streams of ``(image, label)``.

Every source is an :class:`ImageSource`. ``source.dataset(seed=s, start=i)`` returns an
INFINITE ``tf.data.Dataset`` of unbatched examples ``(image, label)``:

* ``image``: float32 ``[resolution, resolution, channels]`` in ``[-1, 1]``
  (uint8 ``x`` maps to ``x / 127.5 - 1``, so 0 -> -1 and 255 -> 1 exactly);
* ``label``: int32 scalar (0 when the source has no labels).

The stream is a pure function of ``(seed, start)``: ``start`` is the index (in the stream)
of the first example produced, so the stream from ``start=s`` equals the stream from
``start=0`` with its first ``s`` examples removed. The trainer resumes at step ``k`` by
passing ``start = k * global_batch_size * d_steps`` (see
:func:`tf_convgan.data.pipeline.make_input_pipeline`).

Index-addressable sources (:func:`array_source`, :func:`npy_source`, :func:`idx_source`,
:func:`image_folder_source`, and :func:`fashion_mnist_source`) use per-epoch stateless
permutations: epoch ``e`` visits the ``n`` examples in the order
``tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=[seed, e])``
and the stream is the concatenation of the epochs. ``start`` is mapped to
``(epoch, offset) = divmod(start, n)`` so resuming costs O(n) for one permutation, not
O(start). Indices (or file paths) are shuffled; images are gathered/decoded afterwards, so
nothing big is buffered. Stateless random ops are deterministic for a given TensorFlow
version; resume with the same version that started a run.

:func:`tfds_source` (tensorflow-datasets) has two modes, chosen by how the split was prepared:

* random access (prepared with ``file_format='array_record'``, e.g. ``tfds build NAME
  --file_format=array_record``): the split is read through ``builder.as_data_source`` and the
  stream is the per-epoch permutation stream above over record indices, so resuming at any
  ``start`` reads no skipped record (O(1) in ``start``, O(n) for one permutation);
* sequential (``tfrecord``, tfds' default; no random access): the split is read with seeded
  file shuffling, repeated, the *encoded* examples are shuffled with a seeded buffer that spans
  epochs, so the stream cannot be entered at an epoch boundary: ``start`` encoded examples are
  skipped (O(start) record reads, no decoding; logged once at resume).

The two modes give different streams for the same seed: a run must not switch modes. It never
downloads unless ``download=True``.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Sequence

import gin
import numpy as np
import tensorflow as tf

from tf_convgan.data.preprocessing import (_preprocess, _preprocess_image, check_image_args,
                                           check_static_fit)
from tf_convgan.data import readers
from tf_convgan.data.readers import (TFDSNotPreparedError, _find_image_files, _load_idx_split,
                                     _load_numpy, _not_prepared_message, _tfds_builder,
                                     check_idx_split)
from tf_convgan.errors import ConfigError, check_int, check_seed

_log = logging.getLogger(__name__)

_DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


# --------------------------------------------------------------------------- sources


def _epoch_permutation(n: int, seed: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))


def _index_stream(n: int, seed: int, start: int) -> tf.data.Dataset:
    """Infinite stream of example indices: concatenated per-epoch stateless permutations,
    starting at stream position ``start`` without iterating over the skipped ones."""
    first_epoch, offset = divmod(start, n)
    seed_t = tf.constant(seed, tf.int64)

    def epoch_indices(epoch):
        perm = _epoch_permutation(n, seed_t, epoch)
        begin = tf.where(epoch == first_epoch, tf.constant(offset, tf.int64),
                         tf.constant(0, tf.int64))
        return tf.data.Dataset.from_tensor_slices(perm[begin:])

    return tf.data.Dataset.counter(start=first_epoch, dtype=tf.int64).flat_map(epoch_indices)


def _deterministic_options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


class ImageSource:
    """Base class of all sources.

    Attributes:
      num_examples: examples per epoch (int) or None if unknown.
      num_classes: number of label values (labels are in ``[0, num_classes)``) or None
        when the source has no labels (all labels are then 0).
      resolution, channels: shape of the produced images.
      description: human readable origin, e.g. ``"idx:/data/fashion_mnist/train"``.
    """

    num_examples: Optional[int] = None
    num_classes: Optional[int] = None
    resolution: int
    channels: int
    description: str = ""

    def dataset(self, *, seed: int, start: int = 0) -> tf.data.Dataset:
        """Infinite deterministic stream of ``(image, label)`` starting at index ``start``."""
        raise NotImplementedError

    @property
    def element_spec(self):
        return (tf.TensorSpec([self.resolution, self.resolution, self.channels], tf.float32),
                tf.TensorSpec([], tf.int32))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.description!r}, num_examples={self.num_examples},"
                f" num_classes={self.num_classes}, resolution={self.resolution},"
                f" channels={self.channels})")


class IndexedImageSource(ImageSource):
    """Random-access source of ``num_examples`` examples.

    ``load_fn(indices int64 [k]) -> (images float32 [k, R, R, C], labels int32 [k])`` when
    ``batched=True`` (vectorised in chunks of 256; used for in-memory arrays, several times
    faster), else
    ``load_fn(index int64 scalar) -> (image [R, R, C], label int32 scalar)``. Either way the
    produced stream is the same unbatched, per-epoch-permuted sequence.
    """

    _LOAD_CHUNK = 256  # indices per vectorised load (the index stream is infinite)

    def __init__(self, *, num_examples: int, load_fn: Callable, resolution: int,
                 channels: int, num_classes: Optional[int], description: str,
                 batched: bool = False):
        if num_examples <= 0:
            raise ConfigError(f"{description}: the source has no examples.")
        self.num_examples = int(num_examples)
        self.num_classes = num_classes
        self.resolution = resolution
        self.channels = channels
        self.description = description
        self._load_fn = load_fn
        self._batched = batched

    def dataset(self, *, seed: int, start: int = 0) -> tf.data.Dataset:
        seed = check_seed("`seed`", seed)
        start = check_int("`start`", start, minimum=0)
        ds = _index_stream(self.num_examples, seed, start)
        if self._batched:
            ds = ds.batch(self._LOAD_CHUNK, drop_remainder=True)
        ds = ds.map(self._load_fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if self._batched:
            ds = ds.unbatch()
        return ds.with_options(_deterministic_options())


def _validate_images_array(images) -> np.ndarray:
    accepted = ("accepted shapes: [N, H, W] or [N, H, W, C] with C in 1..4; dtype uint8 "
                "(or another integer type) in [0, max], or float already in [-1, 1]")
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ConfigError(f"`images` has shape {images.shape}; {accepted}.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.shape[-1] not in (1, 2, 3, 4):
        raise ConfigError(f"`images` has {images.shape[-1]} channels (shape {images.shape}); "
                          f"{accepted}.")
    if images.shape[0] == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise ConfigError(f"`images` is empty (shape {images.shape}).")
    if images.dtype == np.bool_ or not (np.issubdtype(images.dtype, np.integer)
                                        or np.issubdtype(images.dtype, np.floating)):
        raise ConfigError(f"`images` has dtype {images.dtype}; {accepted}.")
    if np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32, copy=False)
        lo, hi = float(images.min()), float(images.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise ConfigError(
                f"float `images` must already be scaled to [-1, 1], got range [{lo}, {hi}] "
                "(pass uint8 images in [0, 255] to have them scaled).")
    elif np.issubdtype(images.dtype, np.signedinteger) and images.min() < 0:
        raise ConfigError("integer `images` must be non-negative ([0, dtype max]).")
    return images


def _validate_labels_array(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ConfigError(f"`labels` must have shape [N], got {labels.shape}.")
    if labels.shape[0] != n:
        raise ConfigError(
            f"`labels` has length {labels.shape[0]} but `images` has {n} examples.")
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"`labels` must be integers, got dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() > np.iinfo(np.int32).max:
        raise ConfigError(
            f"`labels` must be in [0, 2**31), got range [{labels.min()}, {labels.max()}].")
    return labels.astype(np.int32)


def _array_source(images, labels, *, resolution, channels, fit, description) -> IndexedImageSource:
    """The source of in-memory arrays; resolution, channels and fit are checked by the caller."""
    images = _validate_images_array(images)
    n, h, w = images.shape[:3]
    check_static_fit(h, w, resolution, fit, "`images`")
    images_t = tf.constant(images)  # held in memory once; examples are gathered by index
    if labels is not None:
        labels_np = _validate_labels_array(labels, n)
        num_classes = int(labels_np.max()) + 1
        labels_t = tf.constant(labels_np)
    else:
        num_classes, labels_t = None, None

    def load(indices):
        images = _preprocess(tf.gather(images_t, indices), resolution, channels, fit)
        if labels_t is not None:
            labels = tf.gather(labels_t, indices)
        else:
            labels = tf.zeros(tf.shape(indices), tf.int32)
        return images, labels

    return IndexedImageSource(num_examples=n, load_fn=load, resolution=resolution,
                              channels=channels, num_classes=num_classes,
                              description=description, batched=True)


@gin.configurable
def array_source(*, images, labels=None, resolution: int, channels: int = 3,
                 fit: str = "resize") -> ImageSource:
    """In-memory images.

    Args:
      images: ``[N, H, W]`` or ``[N, H, W, C]`` (C in 1..4: gray, gray+alpha, RGB, RGBA),
        either uint8 (or another unsigned/non-negative integer type) in ``[0, dtype max]``,
        scaled to ``[-1, 1]``, or float already in ``[-1, 1]`` (used as is; checked).
      labels: optional ``[N]`` non-negative integer class ids (``num_classes = max + 1``);
        without labels every label is 0 and ``num_classes`` is None.
      resolution, channels, fit: see :func:`preprocess_image`.
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    return _array_source(images, labels, resolution=resolution, channels=channels, fit=fit,
                         description="array")


@gin.configurable
def npy_source(*, path: str, labels_path: Optional[str] = None, images_key: str = "images",
               labels_key: str = "labels", resolution: int, channels: int = 3,
               fit: str = "resize") -> ImageSource:
    """Images from a ``.npy`` file or a ``.npz`` archive (see :func:`array_source`).

    ``.npz``: images are ``archive[images_key]``; labels are ``archive[labels_key]`` when the
    archive has that key (otherwise no labels). ``labels_path`` (a ``.npy``) overrides both.
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    path = os.fspath(path)
    if not readers.isfile(path):
        raise FileNotFoundError(f"`path` {path!r} does not exist or is not a file.")
    labels = None
    loaded = _load_numpy(path, "path")
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if images_key not in loaded.files:
                raise ConfigError(f"`images_key` {images_key!r} not found in {path!r}; "
                                  f"the archive has keys {sorted(loaded.files)}.")
            images = loaded[images_key]
            if labels_path is None and labels_key in loaded.files:
                labels = loaded[labels_key]
    else:
        images = loaded
    if labels_path is not None:
        labels_path = os.fspath(labels_path)
        if not readers.isfile(labels_path):
            raise FileNotFoundError(
                f"`labels_path` {labels_path!r} does not exist or is not a file.")
        labels = _load_numpy(labels_path, "labels_path")
        if isinstance(labels, np.lib.npyio.NpzFile):
            with labels:
                if labels_key not in labels.files:
                    raise ConfigError(f"`labels_key` {labels_key!r} not found in "
                                      f"{labels_path!r}; keys: {sorted(labels.files)}.")
                labels = labels[labels_key]
    return _array_source(images, labels, resolution=resolution, channels=channels, fit=fit,
                         description=f"npy:{path}")


# --------------------------------------------------------------------------- IDX


@gin.configurable
def idx_source(*, directory: Optional[str] = None, split: str = "train", resolution: int,
               channels: int = 3, fit: str = "resize") -> ImageSource:
    """IDX image/label files, e.g. (Fashion-)MNIST.

    Reads ``{prefix}-images-idx3-ubyte[.gz]`` and, when present,
    ``{prefix}-labels-idx1-ubyte[.gz]`` where prefix is ``'train'`` for split ``'train'`` and
    ``'t10k'`` for ``'t10k'`` / ``'test'``. With ``directory=None`` the first of
    ``$TF_CONVGAN_FASHION_MNIST_DIR``, ``../shared/data/fashion_mnist`` (relative to the
    working directory) and ``/usr/share/datasets/fashion-mnist`` that has the images file is
    used; ``FileNotFoundError`` (listing the places and how to get the data) otherwise.
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    split = check_idx_split(split)
    found, prefix, images, labels = _load_idx_split(directory, split)
    return _array_source(images, labels, resolution=resolution, channels=channels, fit=fit,
                         description=f"idx:{os.path.join(readers.absolute(found), prefix)}")


# --------------------------------------------------------------------------- image folder


@gin.configurable
def image_folder_source(*, directory: str, resolution: int, channels: int = 3,
                        fit: str = "resize_crop",
                        extensions: Sequence[str] = _DEFAULT_EXTENSIONS,
                        labels_from_subdirs: bool = False) -> ImageSource:
    """All image files under ``directory`` (recursive, any size), decoded on the fly.

    Files are matched by extension (case-insensitive) and sorted by relative path, so the
    example index of a file is deterministic. GIFs use their first frame. With
    ``labels_from_subdirs=True`` the label of a file is the index of its top-level
    subdirectory among the sorted subdirectories that contain images (files directly in
    ``directory`` are then an error); otherwise every label is 0. The returned source has a
    ``files`` attribute: the relative paths in example-index order.
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    if isinstance(extensions, str):
        extensions = (extensions,)
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if not extensions:
        raise ConfigError("`extensions` must not be empty.")
    directory = os.fspath(directory)
    relative = _find_image_files(directory, extensions)
    num_classes, labels = None, [0] * len(relative)
    if labels_from_subdirs:
        top_level = [p.split(os.sep)[0] if os.sep in p else None for p in relative]
        loose = [p for p, t in zip(relative, top_level) if t is None]
        if loose:
            raise ConfigError(
                f"labels_from_subdirs=True but `directory` {directory!r} has image files "
                f"outside class subdirectories, e.g. {loose[0]!r}.")
        class_names = sorted(set(top_level))
        class_index = {name: i for i, name in enumerate(class_names)}
        labels = [class_index[t] for t in top_level]
        num_classes = len(class_names)
    paths_t = tf.constant([os.path.join(directory, p) for p in relative])
    labels_t = tf.constant(labels, tf.int32)

    def load(index):
        contents = tf.io.read_file(tf.gather(paths_t, index))
        image = tf.io.decode_image(contents, channels=0, dtype=tf.uint8,
                                   expand_animations=False)
        image = _preprocess_image(image, resolution, channels, fit)
        return image, tf.gather(labels_t, index)

    source = IndexedImageSource(num_examples=len(relative), load_fn=load,
                                resolution=resolution, channels=channels,
                                num_classes=num_classes,
                                description=f"image_folder:{directory}")
    source.files = tuple(relative)
    return source


# --------------------------------------------------------------------------- tfds


class TFDSImageSource(ImageSource):
    """tensorflow-datasets split; see :func:`tfds_source`."""

    def __init__(self, *, builder, split: str, resolution: int, channels: int, fit: str,
                 image_key: str, label_key: Optional[str], shuffle_buffer: int):
        self._builder = builder
        self._split = split
        self.resolution, self.channels, self._fit = resolution, channels, fit
        self._image_key, self._shuffle_buffer = image_key, shuffle_buffer
        features = builder.info.features
        self._label_key = label_key if label_key is not None and label_key in features else None
        self.description = f"tfds:{builder.name}/{split}@{os.fspath(builder.data_dir)}"
        try:
            self.num_examples = int(builder.info.splits[split].num_examples)
        except Exception:  # split strings tfds cannot size (should not happen)
            self.num_examples = None
        self.num_classes = None
        if self._label_key is not None:
            self.num_classes = getattr(features[self._label_key], "num_classes", None)
        # A random-access view (``__len__``, ``__getitem__`` -> dict of encoded features) of
        # the split when it was prepared as array_record, else None (sequential mode).
        self._data_source = self._open_data_source()

    @property
    def random_access(self) -> bool:
        return self._data_source is not None

    def _open_data_source(self):
        file_format = getattr(self._builder.info, "file_format", None)
        if getattr(file_format, "value", file_format) != "array_record":
            return None
        try:
            data_source = self._builder.as_data_source(
                split=self._split, decoders=self._skip_image_decoding())
        except Exception as e:  # e.g. array_record not installed: read sequentially
            _log.warning("tfds_source: %s is array_record but not randomly accessible (%s); "
                         "reading it sequentially (resuming then re-reads the skipped "
                         "records).", self.description, e)
            return None
        if self.num_examples is None:
            self.num_examples = len(data_source)
        if len(data_source) != self.num_examples or not len(data_source):
            _log.warning("tfds_source: %s has %d random-access records but %s examples; "
                         "reading it sequentially.", self.description, len(data_source),
                         self.num_examples)
            return None
        return data_source

    def _skip_image_decoding(self):
        import tensorflow_datasets as tfds

        if isinstance(self._builder.info.features[self._image_key], tfds.features.Image):
            return {self._image_key: tfds.decode.SkipDecoding()}
        return None

    def _decode_fn(self):
        import tensorflow_datasets as tfds

        image_feature = self._builder.info.features[self._image_key]
        resolution, channels, fit = self.resolution, self.channels, self._fit
        image_key, label_key = self._image_key, self._label_key

        def decode(ex):
            encoded = ex[image_key]
            if encoded.dtype == tf.string:
                if isinstance(image_feature, tfds.features.Image):
                    image = image_feature.decode_example(encoded)
                else:
                    image = tf.io.decode_image(encoded, channels=0, expand_animations=False)
            else:
                image = encoded
            image = _preprocess_image(image, resolution, channels, fit)
            label = (tf.cast(ex[label_key], tf.int32) if label_key
                     else tf.constant(0, tf.int32))
            return image, label

        return decode

    def _random_access_records(self, seed: int, start: int) -> tf.data.Dataset:
        """The per-epoch permutation stream of record indices, each read by index."""
        features = self._builder.info.features
        image_key, label_key = self._image_key, self._label_key
        image_is_encoded = self._skip_image_decoding() is not None
        if image_is_encoded:
            image_dtype = tf.string
        else:
            image_dtype = tf.as_dtype(features[image_key].np_dtype)
        data_source = self._data_source

        def read(index):
            example = data_source[int(index)]
            image = example[image_key]
            image = (np.array(image, dtype=object) if image_is_encoded
                     else np.asarray(image, image_dtype.as_numpy_dtype))
            label = np.int64(example[label_key] if label_key else 0)
            return image, label

        def load(index):
            image, label = tf.numpy_function(read, [index], [image_dtype, tf.int64],
                                             stateful=False)
            image.set_shape([] if image_is_encoded else [None, None, None])
            label.set_shape([])
            return {image_key: image, **({label_key: label} if label_key else {})}

        return _index_stream(self.num_examples, seed, start).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def dataset(self, *, seed: int, start: int = 0) -> tf.data.Dataset:
        """Random access: the per-epoch permutation stream of record indices (resuming reads
        nothing it skips). Sequential: seeded file shuffle, repeat, seeded shuffle buffer of
        encoded examples, ``skip(start)`` (O(start) record reads, no decoding). Either way the
        examples are then decoded + preprocessed."""
        seed = check_seed("`seed`", seed)
        start = check_int("`start`", start, minimum=0)
        if self.random_access:
            ds = self._random_access_records(seed, start)
        else:
            ds = self._sequential_records(seed, start)
        ds = ds.map(self._decode_fn(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.with_options(_deterministic_options())

    def _sequential_records(self, seed: int, start: int) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        read_config = tfds.ReadConfig(
            shuffle_seed=seed, shuffle_reshuffle_each_iteration=True,
            options=_deterministic_options())
        ds = self._builder.as_dataset(
            split=self._split, shuffle_files=True, read_config=read_config,
            decoders={self._image_key: tfds.decode.SkipDecoding()})
        keys = [self._image_key] + ([self._label_key] if self._label_key else [])
        ds = ds.map(lambda ex: {k: ex[k] for k in keys})  # drop unused (large) features
        ds = ds.repeat().shuffle(self._shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
        if start:
            _log.warning("tfds_source: %s is not randomly accessible (not prepared as "
                         "array_record): resuming at position %d reads %d records.",
                         self.description, start, start)
            ds = ds.skip(start)
        return ds


@gin.configurable
def tfds_source(*, name: str, split: str = "train", data_dir: Optional[str] = None,
                resolution: int, channels: int = 3, fit: str = "resize_crop",
                image_key: str = "image", label_key: Optional[str] = "label",
                shuffle_buffer: int = 10000, download: bool = False) -> ImageSource:
    """A tensorflow-datasets split (e.g. ``celeb_a``, ``lsun/bedroom``).

    Never downloads unless ``download=True``: a dataset not prepared in ``data_dir``
    (default: tfds' default data dir) raises :class:`TFDSNotPreparedError` (a
    ``FileNotFoundError``) naming the searched directory. Unknown ``name`` -> ``ConfigError``.
    When the dataset has no ``label_key`` feature (celeb_a has 'attributes', lsun has none)
    every label is 0. A split prepared as ``array_record`` is read by index (exact per-epoch
    permutations, resuming reads no skipped record; ``shuffle_buffer`` is unused); otherwise
    resuming at ``start`` re-reads ``start`` encoded records (see
    :meth:`TFDSImageSource.dataset`) and the shuffle is approximate (buffer of
    ``shuffle_buffer`` encoded examples after seeded file shuffling).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"`name` must be a non-empty string, got {name!r}.")
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    shuffle_buffer = check_int("`shuffle_buffer`", shuffle_buffer, minimum=1)
    builder = _tfds_builder(name, data_dir)
    if not builder.is_prepared():
        if not download:
            raise TFDSNotPreparedError(_not_prepared_message(name, builder, data_dir))
        builder.download_and_prepare()
    splits = builder.info.splits
    try:
        splits[split]
    except Exception:
        raise ConfigError(f"`split` {split!r} is not available for {name!r}; available splits: "
                          f"{sorted(splits.keys())}.") from None
    features = builder.info.features
    if image_key not in features:
        raise ConfigError(f"`image_key` {image_key!r} is not a feature of {name!r}; features: "
                          f"{sorted(features.keys())}.")
    if label_key is not None and label_key in features:
        spec = features[label_key]
        shape, dtype = getattr(spec, "shape", None), getattr(spec, "dtype", None)
        if shape != () or dtype is None or not tf.as_dtype(dtype).is_integer:
            raise ConfigError(f"`label_key` {label_key!r} of {name!r} is not a scalar integer "
                              f"feature ({spec}); pass label_key=None for unlabelled use.")
    elif label_key is not None:
        _log.info("tfds_source: %r has no feature %r; all labels are 0.", name, label_key)
    return TFDSImageSource(builder=builder, split=split, resolution=resolution,
                           channels=channels, fit=fit, image_key=image_key,
                           label_key=label_key, shuffle_buffer=shuffle_buffer)


# --------------------------------------------------------------------------- Fashion-MNIST


@gin.configurable
def fashion_mnist_source(*, split: str = "train", data_dir: Optional[str] = None,
                         directory: Optional[str] = None, resolution: int = 32,
                         channels: int = 3, fit: str = "pad",
                         download: bool = False) -> ImageSource:
    """Fashion-MNIST (28x28 gray, 10 classes; default: padded with -1 to 32x32, RGB).

    1. If tensorflow-datasets' ``fashion_mnist`` is already prepared in ``data_dir`` (None:
       tfds' default data dir), the whole split is loaded into memory through tfds (or, with
       ``download=True``, tfds may download and prepare it first; a failure falls back).
    2. Otherwise the IDX files are read with :func:`idx_source` (``directory``, else
       ``$TF_CONVGAN_FASHION_MNIST_DIR``, ``../shared/data/fashion_mnist``,
       ``/usr/share/datasets/fashion-mnist``).
    Nothing is downloaded by default, so this never hangs offline. Both back-ends are
    index-addressable with the exact per-epoch permutation stream, but their example orders
    differ (tfds stores the split in its own order), so a run must not switch back-ends.
    ``source.description`` says which back-end was used. ``split``: 'train', 'test' / 't10k'.
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    split = check_idx_split(split)
    tfds_split = "train" if split == "train" else "test"
    tfds_note = ""
    try:
        builder = _tfds_builder("fashion_mnist", data_dir)
        prepared = builder.is_prepared()
        if not prepared and download:
            try:
                builder.download_and_prepare()
                prepared = builder.is_prepared()
            except Exception as e:  # offline, etc.
                _log.warning("fashion_mnist_source: tfds download failed (%s); using IDX.", e)
        tfds_note = (f"tensorflow-datasets 'fashion_mnist' is not prepared in "
                     f"{os.fspath(builder.data_dir)!r} (data_dir={data_dir!r}) either.\n")
    except ImportError:
        prepared, builder = False, None
        tfds_note = "tensorflow-datasets is not installed.\n"
    except Exception as e:  # e.g. an unreadable data_dir: fall back to IDX, but say why
        _log.warning("fashion_mnist_source: tensorflow-datasets unusable (%s); using IDX.", e)
        prepared, builder = False, None
        tfds_note = f"tensorflow-datasets could not be used ({e}).\n"
    if prepared:
        import tensorflow_datasets as tfds

        data = tfds.as_numpy(builder.as_dataset(split=tfds_split, batch_size=-1,
                                                shuffle_files=False))
        return _array_source(
            data["image"], data["label"], resolution=resolution, channels=channels, fit=fit,
            description=f"tfds:fashion_mnist/{tfds_split}@{os.fspath(builder.data_dir)}")
    found, prefix, images, labels = _load_idx_split(directory, split, tfds_note)
    return _array_source(images, labels, resolution=resolution, channels=channels, fit=fit,
                         description=f"idx:{os.path.join(readers.absolute(found), prefix)}")
