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

    python -m tf_convgan.export --model_dir runs/quickstart [--checkpoint ckpt-2000]
                                [--export_dir runs/quickstart/export]
"""
import os
import shutil

import tensorflow as tf

from tf_convgan import images as images_lib
from tf_convgan.errors import exit_on_bad_input

OPERATIVE_CONFIG = "operative_config.gin"


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

    The directory is written next to its final place and then moved there, so an existing
    export is replaced only by a complete one."""
    module = _ExportedGenerator(generator)
    export_dir = os.path.abspath(export_dir)
    tmp_dir = export_dir + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tf.saved_model.save(module, tmp_dir, signatures={
        "serving_default": module.serve, "sample": module.sample})
    if operative_config is not None:
        with open(os.path.join(tmp_dir, OPERATIVE_CONFIG), "w") as f:
            f.write(operative_config)
    old_dir = export_dir + ".old"
    shutil.rmtree(old_dir, ignore_errors=True)
    if os.path.exists(export_dir):
        os.replace(export_dir, old_dir)
    os.replace(tmp_dir, export_dir)
    shutil.rmtree(old_dir, ignore_errors=True)
    return export_dir


def export_model_dir(model_dir, *, checkpoint=None, export_dir=None):
    """Exports the EMA generator of a checkpoint of `model_dir` (default: the latest)."""
    from tf_convgan.run_dir import generators  # avoids a cycle with train.py
    generator, path = generators.load_generator_ema(model_dir, checkpoint=checkpoint)
    with open(os.path.join(model_dir, OPERATIVE_CONFIG)) as f:
        operative_config = f.read()
    export_dir = export_dir or os.path.join(model_dir, "export")
    export_generator(generator, export_dir, operative_config=operative_config)
    return export_dir, path


def main(argv):
    from absl import flags
    del argv
    flags_ = flags.FLAGS
    with exit_on_bad_input():
        export_dir, path = export_model_dir(flags_.model_dir, checkpoint=flags_.checkpoint,
                                            export_dir=flags_.export_dir)
    print(f"exported the EMA generator of {path} to {export_dir}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import app, flags
    flags.DEFINE_string("model_dir", None, "Training directory (with operative_config.gin).")
    flags.DEFINE_string("checkpoint", None, "Checkpoint prefix or name (default: the latest).")
    flags.DEFINE_string("export_dir", None, "Output directory (default: <model_dir>/export).")
    flags.mark_flag_as_required("model_dir")
    app.run(main)
