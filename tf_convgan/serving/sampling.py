"""Samples, class grids and latent interpolations of a generator: a training directory's EMA
generator (its latest checkpoint, or a chosen one) or a SavedModel written by
tf_convgan.serving.export (`Sampler.load`). Everything is a function of the seed: the same call
writes the same files. Outputs in a directory (`write_samples`, `write_class_grid`,
`write_interpolation`):
  samples/sample_00000.png ..., samples.png    each sample alone, written as they are generated
                                               (memory bounded by a batch), and a grid of the
                                               first min(num, 1024); a request that cannot fit
                                               the free disk space is refused up front
                                               (`check_free_space`)
  classes.png                                  conditional models: one row per class
  interpolation_<method>.png / .gif            `chains` interpolation paths through `nzs`
                                               latent key points with `nsubsteps` frames each
The command: tf_convgan.cli.sampling (`python -m tf_convgan.sampling`).
"""
import os

import numpy as np
import tensorflow as tf

from tf_convgan.run_dir import images as images_lib
from tf_convgan import run_dir
from tf_convgan.errors import ConfigError, FlagError, check_int
from tf_convgan.serving.export import sample_inputs
from tf_convgan.run_dir import generators

INTERPOLATIONS = ("linear", "spherical")
# What the command writes into --out_dir: only these are replaced there (run_dir.outputs)
OUTPUT_NAMES = ("samples.png", "samples/sample_*.png", "classes.png", "interpolation_*.png",
                "interpolation_*.gif")
MAX_NUM = 2 ** 31 - 1  # the labels of sample(n, seed) are int32 indices


class Sampler:
    """A generator as a function (z [N, z_dim], labels [N]) -> float images in [-1, 1]."""

    def __init__(self, fn, *, z_dim, num_classes, batch_size=64):
        self._fn = fn
        self.z_dim = int(z_dim)
        self.num_classes = int(num_classes)
        self.batch_size = batch_size

    @classmethod
    def from_generator(cls, generator):
        fn = tf.function(lambda z, labels: generator(z, labels, training=False))
        return cls(fn, z_dim=generator.z_dim, num_classes=generator.num_classes)

    @classmethod
    def load(cls, path, *, checkpoint=None):
        """A SavedModel directory, or a training directory (its EMA generator): see
        run_dir.generators.load_generator."""
        generator, _ = generators.load_generator(path, checkpoint=checkpoint)
        return cls.from_generator(generator)

    def __call__(self, z, labels=None):
        """Float images [N, H, W, 3] (numpy), generated in batches."""
        z = tf.convert_to_tensor(z, tf.float32)
        if labels is None:
            labels = tf.zeros([z.shape[0]], tf.int32)
        labels = tf.convert_to_tensor(labels, tf.int32)
        return np.concatenate([
            np.asarray(self._fn(z[i:i + self.batch_size], labels[i:i + self.batch_size]))
            for i in range(0, z.shape[0], self.batch_size)])

    def sample(self, n, seed):
        """`n` samples for `seed`, exactly as the SavedModel's `sample(n, seed)`."""
        z, labels = sample_inputs(n, seed, z_dim=self.z_dim, num_classes=self.num_classes)
        return self(z, labels)

    def class_grid_inputs(self, per_class, seed):
        """z and labels of a grid with one row of `per_class` samples per class."""
        n = self.num_classes * per_class
        z = tf.random.stateless_normal([n, self.z_dim], seed=[seed, 1])
        labels = np.repeat(np.arange(self.num_classes, dtype=np.int32), per_class)
        return z, labels


# -- latent interpolation ---------------------------------------------------------------------

def lerp(z0, z1, t):
    return (1.0 - t) * z0 + t * z1


def slerp(z0, z1, t):
    """Spherical interpolation along the great circle through z0 and z1 (with their norms
    interpolated linearly); falls back to lerp for (anti)parallel vectors."""
    n0 = np.linalg.norm(z0, axis=-1, keepdims=True)
    n1 = np.linalg.norm(z1, axis=-1, keepdims=True)
    cos = np.clip(np.sum(z0 * z1, axis=-1, keepdims=True) / (n0 * n1), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    safe = sin > 1e-6
    sin = np.where(safe, sin, 1.0)
    direction = (np.sin((1.0 - t) * omega) * z0 / n0 + np.sin(t * omega) * z1 / n1) / sin
    spherical = direction * lerp(n0, n1, t)
    return np.where(safe, spherical, lerp(z0, z1, t))


def interpolation_latents(*, z_dim, nzs, nsubsteps, seed, method="linear", chains=1):
    """Latents [nzs * nsubsteps, chains, z_dim] of closed paths through `nzs` key points.

    Frame i * nsubsteps + s lies at t = s / nsubsteps between key points i and i + 1 (the last
    one returns to the first, so the animation loops), as GAN_stability's `nzs`/`nsubsteps`."""
    if method not in INTERPOLATIONS:
        raise ConfigError(f"interpolation method must be one of {INTERPOLATIONS}, got {method!r}")
    for name, value, minimum in (("nzs", nzs, 2), ("nsubsteps", nsubsteps, 1),
                                 ("chains", chains, 1)):
        check_int(name, value, minimum=minimum)
    keys = tf.random.stateless_normal([nzs, chains, z_dim], seed=[seed, 2]).numpy()
    interpolate = lerp if method == "linear" else slerp
    frames = []
    for i in range(nzs):
        for s in range(nsubsteps):
            frames.append(interpolate(keys[i], keys[(i + 1) % nzs], s / nsubsteps))
    return np.stack(frames).astype(np.float32)


def interpolation_frames(sampler, *, nzs, nsubsteps, seed, method="linear", chains=1,
                         label=0):
    """uint8 images [nzs * nsubsteps, chains, H, W, 3] along the interpolation paths."""
    latents = interpolation_latents(z_dim=sampler.z_dim, nzs=nzs, nsubsteps=nsubsteps,
                                    seed=seed, method=method, chains=chains)
    frames, chains_ = latents.shape[:2]
    labels = np.full([frames * chains_], label, np.int32)
    images = sampler(latents.reshape(frames * chains_, -1), labels)
    images = images_lib.to_uint8(images).numpy()
    return images.reshape(frames, chains_, *images.shape[1:])


def write_gif(path, frames, *, duration_ms=80):
    """An animated, looping GIF of uint8 frames [F, H, W, 3]. (Like every GIF encoder, Pillow
    merges consecutive frames that are pixel-identical.)"""
    from PIL import Image
    pictures = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    with run_dir.atomic_file(path) as f:
        pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=duration_ms, loop=0)


# -- files ------------------------------------------------------------------------------------

GRID_MAX = 1024  # samples.png shows at most this many samples (a 32 x 32 grid)
_PHILOX = 1  # tf.raw_ops.StatelessRandomGetAlg() on CPUs and GPUs


def sample_inputs_at(start, count, seed, *, z_dim, num_classes):
    """The z and labels of samples start ... start + count - 1 of `sample(n, seed)` (any
    n >= start + count), without drawing the ones before: stateless_normal's Philox stream gives
    4 normals per counter value, so the batch's counter is advanced by start * z_dim / 4 (and
    the first start * z_dim % 4 normals dropped). Equal to sample_inputs(n, seed)[start:...]."""
    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed_pair)
    alg = tf.raw_ops.StatelessRandomGetAlg()
    labels = tf.math.floormod(tf.range(start, start + count, dtype=tf.int32), num_classes)
    if int(alg) != _PHILOX:  # another generator: draw the stream up to the batch
        z, _ = sample_inputs(start + count, seed, z_dim=z_dim, num_classes=num_classes)
        return z[start:], labels
    first, mask = start * z_dim, 2 ** 64 - 1
    low = int(counter[0]) + first // 4  # the 128-bit counter as two uint64 words, with carry
    counter = tf.constant([low & mask, (int(counter[1]) + (low >> 64)) & mask], tf.uint64)
    skip = first % 4
    flat = tf.raw_ops.StatelessRandomNormalV2(shape=[skip + count * z_dim], key=key,
                                              counter=counter, alg=alg)
    return tf.reshape(flat[skip:], [count, z_dim]), labels


def sample_batches(sampler, num, seed):
    """(start, uint8 images [<= batch_size, H, W, 3]) of `sampler.sample(num, seed)`, one batch
    at a time: memory is bounded by the batch, not by `num`."""
    for start in range(0, num, sampler.batch_size):
        count = min(sampler.batch_size, num - start)
        z, labels = sample_inputs_at(start, count, seed, z_dim=sampler.z_dim,
                                     num_classes=sampler.num_classes)
        yield start, images_lib.to_uint8(sampler(z, labels)).numpy()


def _free_space(directory):
    """os.statvfs of the nearest existing directory at or above `directory`."""
    path = os.path.abspath(directory)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return os.statvfs(path)


def check_free_space(sampler, out_dir, *, num, seed):
    """Raises FlagError naming --num when `num` sample files (and the grid) cannot fit the free
    space or the free inodes of --out_dir's filesystem, before anything is written. The bound
    is a low one: every file takes at least one filesystem block and at least the smallest PNG
    of the first batch (generated here), so a refused request cannot fit; one that passes may
    still fill the disk. Nothing is checked on object stores (URLs)."""
    if run_dir.files.is_url(out_dir):
        return
    _, images = next(sample_batches(sampler, min(num, sampler.batch_size), seed))
    smallest = min(len(tf.io.encode_png(image).numpy()) for image in images)
    stat = _free_space(out_dir)
    block = stat.f_frsize or 4096
    per_file = -(-smallest // block) * block
    need = num * per_file + min(num, GRID_MAX) * smallest
    free = stat.f_bavail * stat.f_frsize
    if need > free:
        raise FlagError("num", f"{num} samples need at least {need / 1e9:.3g} GB in --out_dir "
                               f"{out_dir!r} (at least {per_file} bytes per PNG file) but its "
                               f"filesystem has {free / 1e9:.3g} GB free; ask for fewer")
    if stat.f_files and num + 3 > stat.f_favail:
        raise FlagError("num", f"{num} samples are {num} files but the filesystem of --out_dir "
                               f"{out_dir!r} has {stat.f_favail} free inodes; ask for fewer")


def write_samples(sampler, out_dir, *, num, seed, grid_max=GRID_MAX):
    """samples/sample_<i>.png for each of `sampler.sample(num, seed)`, written batch by batch as
    they are generated (memory bounded by the batch), then samples.png: a grid of the first
    min(num, grid_max). Returns the grid (uint8)."""
    shown = []
    for start, images in sample_batches(sampler, num, seed):
        for i, image in enumerate(images):
            images_lib.write_png(os.path.join(out_dir, "samples", f"sample_{start + i:05d}.png"),
                                 image)
        if start < grid_max:
            shown.append(images[:grid_max - start])
    grid = images_lib.make_grid(np.concatenate(shown))
    images_lib.write_png(os.path.join(out_dir, "samples.png"), grid)
    return grid


def write_class_grid(sampler, out_dir, *, per_class, seed):
    z, labels = sampler.class_grid_inputs(per_class, seed)
    images = images_lib.to_uint8(sampler(z, labels)).numpy()
    grid = images_lib.make_grid(images, cols=per_class)
    images_lib.write_png(os.path.join(out_dir, "classes.png"), grid)
    return grid


def write_interpolation(sampler, out_dir, *, nzs, nsubsteps, seed, method, chains):
    """interpolation_<method>.png (one row per chain) and .gif (chains side by side)."""
    frames = interpolation_frames(sampler, nzs=nzs, nsubsteps=nsubsteps, seed=seed,
                                  method=method, chains=chains)
    strip = images_lib.make_grid(np.swapaxes(frames, 0, 1).reshape(-1, *frames.shape[2:]),
                                 cols=frames.shape[0])
    images_lib.write_png(os.path.join(out_dir, f"interpolation_{method}.png"), strip)
    write_gif(os.path.join(out_dir, f"interpolation_{method}.gif"),
              [images_lib.make_grid(f, cols=chains) for f in frames])
    return frames

