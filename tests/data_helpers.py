"""Shared helpers of the tests of tf_convgan.data: the documented uint8 -> [-1, 1] map, taking
elements of a stream, IDX files and Fashion-MNIST-like directories, sources whose labels are the
example indices."""
import gzip
import os
import struct

import numpy as np

from tf_convgan import data


def scale(x):
    """The documented uint8 -> [-1, 1] map, in float32 like the pipeline."""
    return np.asarray(x, np.float32) / np.float32(127.5) - np.float32(1.0)


def take(ds, n):
    """First n elements of a dataset of tuples, as stacked numpy arrays."""
    images, labels = [], []
    for image, label in ds.take(n):
        images.append(image.numpy())
        labels.append(label.numpy())
    return np.stack(images), np.stack(labels)


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(">" + "I" * array.ndim,
                                                                *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False, type_code=0x08):
    raw = idx_bytes(array, type_code)
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if compress else raw)


def fake_idx_dir(directory, n_train=7, n_test=3, compress=True):
    """A Fashion-MNIST-like IDX directory whose image i is filled with value i (train) or
    100 + i (test) and whose label is i % 10."""
    os.makedirs(directory, exist_ok=True)
    ext = ".gz" if compress else ""
    for prefix, n, base in (("train", n_train, 0), ("t10k", n_test, 100)):
        images = np.stack([np.full((28, 28), base + i, np.uint8) for i in range(n)])
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{ext}"),
                  np.arange(n, dtype=np.uint8) % 10, compress)
    return str(directory)


def indexed_source(n, size=2, channels=1):
    """Array source whose label is the example index (so streams are index sequences)."""
    images = (np.arange(n * size * size, dtype=np.int64) % 256).astype(np.uint8)
    return data.array_source(images=images.reshape(n, size, size), labels=np.arange(n),
                             resolution=size, channels=channels, fit="none")


def stream_indices(source, seed, start, n):
    return take(source.dataset(seed=seed, start=start), n)[1]
