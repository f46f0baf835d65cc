"""Samples, class grids and latent interpolations from a model directory or a SavedModel.

    python -m tf_convgan.sampling --model DIR_OR_SAVEDMODEL --out_dir OUT [--num 64] [--seed 0]
        [--interpolate --nzs 8 --nsubsteps 16 --method spherical --chains 4]

`--model` is a training directory (the EMA generator of its latest checkpoint, or --checkpoint)
or a SavedModel written by tf_convgan.export. Everything is a function of the seed: the same
command writes the same files. Bad input prints one line naming the flag and exits with status 2
before anything is written; OUT may not be a training directory. Outputs in OUT:
  samples.png, samples/sample_00000.png ...   a grid of `num` samples and each sample alone
  classes.png                                  conditional models: one row per class
  interpolation_<method>.png / .gif            `chains` interpolation paths through `nzs`
                                               latent key points with `nsubsteps` frames each
"""
import os
import sys

import numpy as np
import tensorflow as tf
from absl import flags

from tf_convgan.run_dir import images as images_lib
from tf_convgan import run_dir
from tf_convgan.errors import (ConfigError, FlagError, blame, check_int, command_status,
                               parse_flags)
from tf_convgan.serving.export import sample_inputs
from tf_convgan.run_dir import generators

INTERPOLATIONS = ("linear", "spherical")
_INT64 = dict(lower_bound=-2 ** 63, upper_bound=2 ** 63 - 1)

FLAGS = flags.FlagValues()  # own flag set: importable beside run.py's flags
flags.DEFINE_string("model", None, "A training directory or a SavedModel directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", None, "Checkpoint of a training directory (default: latest).",
                    flag_values=FLAGS)
flags.DEFINE_string("out_dir", None, "Where the PNG and GIF files go.", flag_values=FLAGS)
flags.DEFINE_integer("num", 64, "Number of samples.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed of z (and of the interpolation key points).",
                     flag_values=FLAGS, **_INT64)
flags.DEFINE_integer("per_class", 8, "Conditional models: samples per class row.",
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_bool("interpolate", False, "Also write latent interpolations.", flag_values=FLAGS)
flags.DEFINE_integer("nzs", 8, "Interpolation key points.", lower_bound=2, flag_values=FLAGS)
flags.DEFINE_integer("nsubsteps", 16, "Frames between two key points.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_enum("method", "spherical", list(INTERPOLATIONS), "Interpolation.",
                  flag_values=FLAGS)
flags.DEFINE_integer("chains", 4, "Interpolation paths side by side.", lower_bound=1,
                     flag_values=FLAGS)


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

def write_samples(sampler, out_dir, *, num, seed):
    """samples.png (a grid) and samples/sample_<i>.png; returns the uint8 images."""
    images = images_lib.to_uint8(sampler.sample(num, seed)).numpy()
    images_lib.write_png(os.path.join(out_dir, "samples.png"), images_lib.make_grid(images))
    for i, image in enumerate(images):
        images_lib.write_png(os.path.join(out_dir, "samples", f"sample_{i:05d}.png"), image)
    return images


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


def main(argv):
    """`python -m tf_convgan.sampling` (argv[0] is the program name); returns the exit status."""
    def run():
        parse_flags(FLAGS, argv, usage=__doc__)
        f = FLAGS
        for name in ("model", "out_dir"):
            if not getattr(f, name):
                raise FlagError(name, "is required")
        if run_dir.is_run_directory(f.out_dir):
            raise FlagError("out_dir", f"{f.out_dir!r} is a training directory: its samples "
                                       f"would be overwritten; give another directory")
        if f.checkpoint is not None and tf.saved_model.contains_saved_model(f.model):
            raise FlagError("checkpoint", f"{f.model} is a SavedModel: a checkpoint can only be "
                                          f"chosen in a training directory")
        with blame("checkpoint" if f.checkpoint else "model"):
            sampler = Sampler.load(f.model, checkpoint=f.checkpoint)
        with blame("out_dir"):
            write_samples(sampler, f.out_dir, num=f.num, seed=f.seed)
            if sampler.num_classes > 1:
                write_class_grid(sampler, f.out_dir, per_class=f.per_class, seed=f.seed)
            if f.interpolate:
                write_interpolation(sampler, f.out_dir, nzs=f.nzs, nsubsteps=f.nsubsteps,
                                    seed=f.seed, method=f.method, chains=f.chains)
        print(f"wrote samples of {f.model} to {f.out_dir}")

    return command_status(run)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv))
