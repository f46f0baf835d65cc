"""Image grids and PNG files (TensorFlow's PNG encoder: no imaging library needed)."""
import math

import numpy as np
import tensorflow as tf

from tf_convgan.run_dir import files


def to_uint8(images):
    """[-1, 1] floats -> uint8 in [0, 255] (round to nearest, clipped)."""
    images = tf.clip_by_value((tf.convert_to_tensor(images) + 1.0) * 127.5, 0.0, 255.0)
    return tf.cast(tf.round(images), tf.uint8)


def make_grid(images, cols=None, padding=2, pad_value=255):
    """Tiles uint8 images [N, H, W, C] into one image [rows*(H+p)+p, cols*(W+p)+p, C]."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c),
                   pad_value, dtype=images.dtype)
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top:top + h, left:left + w] = images[i]
    return grid


def write_png(path, image):
    """Writes a uint8 [H, W, C] image as PNG, creating the directory (crash-safe: run_dir.files)."""
    files.write_bytes(path, tf.io.encode_png(np.asarray(image, dtype=np.uint8)).numpy())


def read_png(path):
    """Reads a PNG file as a uint8 numpy array [H, W, C]."""
    return tf.io.decode_png(tf.io.read_file(path)).numpy()
