"""Checkpoints of a GAN: what is saved, strict restores, and retention (last k + every N steps).

A checkpoint holds G, D, the EMA generator, both optimizers and the step counter. Writes are
crash-safe: the files of `ckpt-<step>` are written first and the directory's `checkpoint` state
file (what `tf.train.latest_checkpoint` reads) is replaced atomically afterwards, so a process
killed at any moment leaves the previous checkpoint as the latest one. Restores are strict: a checkpoint that does not fit the configured networks (a
changed architecture) raises `CheckpointMismatchError` instead of restoring part of the weights.
"""
import glob
import os
import re


import numpy as np
import tensorflow as tf

from tf_convgan.errors import ConfigError

_CKPT_RE = re.compile(r"ckpt-(\d+)\.index$")


class CheckpointMismatchError(ConfigError):
    """A checkpoint whose variables do not fit the configured networks."""


class ModelWeights(tf.Module):
    """Every weight of a Keras model (trainable or not: batch-norm statistics, spectral-norm
    vectors) as one ordered list. Checkpointing the list rather than the model itself keeps
    layers that a network holds in Python lists (Keras 3 does not expose those to TensorFlow's
    checkpoint graph), and does not depend on layer names, which Keras numbers per process."""

    def __init__(self, model):
        super().__init__()
        self.values = list(model.weights)


def make_checkpoint(gan):
    return tf.train.Checkpoint(
        generator=ModelWeights(gan.generator), discriminator=ModelWeights(gan.discriminator),
        generator_ema=ModelWeights(gan.generator_ema), g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer, step=gan.step_counter)


def checkpoint_step(path):
    """The step of a checkpoint prefix `.../ckpt-<step>`."""
    match = _CKPT_RE.search(path + ".index")
    if match is None:
        raise ConfigError(f"{path!r} is not a tf_convgan checkpoint prefix (.../ckpt-<step>)")
    return int(match.group(1))


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix, a checkpoints/ directory or a model directory."""
    if tf.io.gfile.exists(path + ".index"):
        return path
    for directory in (path, os.path.join(path, "checkpoints")):
        if tf.io.gfile.isdir(directory):
            latest = tf.train.latest_checkpoint(directory)
            if latest is not None:
                return latest
    raise FileNotFoundError(f"no checkpoint found at {path!r} (give a model directory, its "
                            f"checkpoints/ directory or a prefix such as .../ckpt-1000)")


def restore(checkpoint, path, *, partial=False):
    """Restores `checkpoint` (a tf.train.Checkpoint) from `path`, strictly.

    Every variable of the configured objects must be in the checkpoint with its shape; unless
    `partial`, every value in the checkpoint must also be used (no leftover layers)."""
    try:
        status = checkpoint.read(path)  # the counterpart of write(): no save_counter
        if partial:
            status.expect_partial()
            status.assert_existing_objects_matched()
        else:
            status.assert_consumed()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        detail = " ".join(str(e).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit the configured networks (was the architecture "
            f"changed since it was written? use a new --model_dir, or the gin config the "
            f"checkpoint was trained with): {detail}") from None
    return path


def restore_latest(gan, directory):
    """Restores the latest checkpoint in `directory` into `gan`, if any; returns its path."""
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        return None
    return restore(make_checkpoint(gan), latest)


def all_finite(variables):
    return all(bool(np.isfinite(v.numpy()).all()) for v in variables)


class CheckpointKeeper:
    """Saves `ckpt-<step>` and keeps the last `keep_last` plus every step divisible by
    `keep_every` (None: none extra). The state file lists the kept checkpoints in step order."""

    def __init__(self, checkpoint, directory, *, keep_last, keep_every=None):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ConfigError(f"keep_last must be an integer >= 1, got {keep_last!r}")
        if keep_every is not None and (not isinstance(keep_every, int) or keep_every < 1):
            raise ConfigError(f"keep_every must be None or an integer >= 1, got {keep_every!r}")
        self.checkpoint = checkpoint
        self.directory = directory
        self.keep_last = keep_last
        self.keep_every = keep_every

    def steps(self):
        """Steps of the checkpoints on disk (complete or not), sorted."""
        paths = glob.glob(os.path.join(glob.escape(self.directory), "ckpt-*.index"))
        return sorted(int(_CKPT_RE.search(p).group(1)) for p in paths)

    def _prefix(self, step):
        return os.path.join(self.directory, f"ckpt-{step}")

    def save(self, step):
        """Writes ckpt-<step>, makes it the latest, then deletes what retention drops."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.checkpoint.write(self._prefix(step))
        steps = [s for s in self.steps() if s <= step]
        recent = set(steps[-self.keep_last:])
        kept = [s for s in steps if s in recent or (self.keep_every and s % self.keep_every == 0)]
        self._write_state(os.path.basename(path), [f"ckpt-{s}" for s in kept])
        for s in set(self.steps()) - set(kept) - {step}:
            if s < step:
                for f in glob.glob(glob.escape(self._prefix(s)) + ".*"):
                    os.remove(f)
        return path

    def _write_state(self, latest, kept):
        """The `checkpoint` file (a CheckpointState text proto) that tf.train.latest_checkpoint
        reads, with names relative to the directory (so that it can be moved), replaced
        atomically."""
        lines = [f'model_checkpoint_path: "{latest}"']
        lines += [f'all_model_checkpoint_paths: "{name}"' for name in kept]
        path = os.path.join(self.directory, "checkpoint")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(path + ".tmp", path)
