"""Export the EMA generator as a self-contained SavedModel.

The SavedModel needs TensorFlow only (not tf_convgan) to load:

    model = tf.saved_model.load(export_dir)
    out = model.signatures["serving_default"](z=z)          # + labels=... if conditional
    out["images"]        # uint8 [N, H, W, 3]
    out["images_float"]  # float32 [N, H, W, 3] in [-1, 1]
    out = model.sample(n=16, seed=0)   # z ~ N(0, I) drawn statelessly from seed (+ labels)
    model.z_dim, model.num_classes     # int32 scalars

Signatures: `serving_default(z [N, z_dim] float32[, labels [N] int32])` and
`sample(n int32, seed int64)`, which also returns the `z` and `labels` it used. Labels of
`sample` cycle through the classes (0, 1, ..., C-1, 0, ...). The directory also holds
`operative_config.gin`, the gin bindings of the training run, when it is known.

An export replaces only a previous export (a directory that holds a SavedModel and nothing else)
or an empty directory; anything else is refused (ConfigError) and left untouched. An export into
the run directory takes its writer lock (run_dir.lock). The command: tf_convgan.cli.export.
"""
import contextlib
import os

import tensorflow as tf

from tf_convgan.run_dir import images as images_lib
from tf_convgan import run_dir
from tf_convgan.errors import blame
from tf_convgan.run_dir import disk_full, generators, temporaries


def sample_inputs(n, seed, *, z_dim, num_classes):
    """The z and labels of `sample(n, seed)`; the same in Python and in the SavedModel."""
    seed = tf.cast(seed, tf.int64)
    z = tf.random.stateless_normal([n, z_dim], seed=tf.stack([seed, tf.constant(0, tf.int64)]))
    labels = tf.math.floormod(tf.range(n, dtype=tf.int32), num_classes)
    return z, labels


class _ExportedGenerator(tf.Module):
    """The EMA generator with its serving functions (traced, so no Python code is saved)."""

    def __init__(self, generator):
        super().__init__(name="generator")
        self.generator = generator
        self.z_dim = tf.Variable(generator.z_dim, dtype=tf.int32, trainable=False, name="z_dim")
        self.num_classes = tf.Variable(generator.num_classes, dtype=tf.int32, trainable=False,
                                       name="num_classes")
        z_spec = tf.TensorSpec([None, generator.z_dim], tf.float32, name="z")
        conditional = generator.num_classes > 1
        if conditional:
            self.serve = tf.function(
                self._serve, input_signature=[z_spec, tf.TensorSpec([None], tf.int32, "labels")])
        else:
            self.serve = tf.function(lambda z: self._serve(z, None), input_signature=[z_spec])
        self.sample = tf.function(self._sample, input_signature=[
            tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.int64, name="seed")])

    def _serve(self, z, labels):
        if labels is None:
            labels = tf.zeros(tf.shape(z)[:1], tf.int32)
        images_float = tf.cast(self.generator(z, labels, training=False), tf.float32)
        return {"images": images_lib.to_uint8(images_float), "images_float": images_float}

    def _sample(self, n, seed):
        z, labels = sample_inputs(n, seed, z_dim=self.generator.z_dim,
                                  num_classes=self.generator.num_classes)
        outputs = self._serve(z, labels)
        outputs.update(z=z, labels=labels)
        return outputs


def export_generator(generator, export_dir, *, operative_config=None):
    """Writes `generator` (the EMA generator) as a SavedModel into `export_dir`.

    `export_dir` must not exist, be empty, or hold a previous export (see
    run_dir.check_export_dir; ConfigError otherwise, before anything is written). The SavedModel
    is written into a new directory beside it and moved there complete. The temporary
    directories that exports killed before left beside it are removed first, and only those
    (run_dir.temporaries)."""
    export_dir = run_dir.files.abspath(export_dir)
    run_dir.check_export_dir(export_dir)
    module = _ExportedGenerator(generator)
    tmp_dir = run_dir.temporary_directory(export_dir)
    try:
        with temporaries.held(tmp_dir):
            # what exports killed before (kill -9) left beside it, and only that
            temporaries.remove_stale(export_dir, run_dir.layout.is_partial_export)
            tf.saved_model.save(module, tmp_dir, signatures={
                "serving_default": module.serve, "sample": module.sample})
            if operative_config is not None:
                run_dir.write_text(os.path.join(tmp_dir, run_dir.OPERATIVE_CONFIG),
                                   operative_config)
            run_dir.check_export_dir(export_dir)  # again: it may have changed meanwhile
            run_dir.replace_directory(tmp_dir, export_dir)
    except BaseException as e:
        run_dir.files.rmtree(tmp_dir)
        if disk_full.is_disk_full(e) and not isinstance(e, disk_full.DiskFullError):
            raise disk_full.DiskFullError(export_dir, "exporting to") from e
        raise
    return export_dir


def export_model_dir(model_dir, *, checkpoint=None, export_dir=None):
    """Exports the EMA generator of a checkpoint of `model_dir` (default: the latest) to
    `export_dir` (default: <model_dir>/export); returns (export_dir, checkpoint path). Bad input
    raises a FlagError naming the argument (as the command's flag)."""
    export_dir = export_dir or run_dir.export_dir(model_dir)
    with blame("export_dir"):
        run_dir.check_export_dir(export_dir)  # before the minutes of loading
    with blame("checkpoint" if checkpoint else "model_dir"):
        generator, path = generators.load_generator_ema(model_dir, checkpoint=checkpoint)
        # what the restricted reader just accepted
        operative_config = run_dir.read_text(run_dir.operative_config_path(model_dir))
    inside = run_dir.is_inside(export_dir, model_dir)
    with (run_dir.writer_lock(model_dir, name="--model_dir") if inside
          else contextlib.nullcontext()):
        with blame("export_dir"):
            export_generator(generator, export_dir, operative_config=operative_config)
    return export_dir, path

