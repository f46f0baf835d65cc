"""The EMA generator of a run directory or of a SavedModel: the one loader of sampling, export
and evaluate; and the trained players (G, D and the step) of a run's checkpoint, which the
spectrum reads.

A run directory's networks are rebuilt from its operative_config.gin by the restricted reader
(run_config: no code runs, gin's global configuration is untouched) and restored from a
checkpoint: the latest one that can be read (an unreadable newer one is reported and skipped,
never changed), the best one by FID, or a named one.
"""
import os
import sys
from typing import NamedTuple

import keras
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tf_convgan.run_dir import checkpoints, files
from tf_convgan.errors import ConfigError
from tf_convgan.networks import build
from tf_convgan.networks.common import planned_params
from tf_convgan.run_dir import layout
from tf_convgan.run_dir.run_config import RunConfigError, read_run_config


def _note(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _named_checkpoint(model_dir, checkpoint):
    """The prefix of a checkpoint given by name (ckpt-100, in checkpoints/) or prefix."""
    if not tf.io.gfile.exists(checkpoint + ".index"):
        checkpoint = os.path.join(layout.checkpoint_dir(model_dir), checkpoint)
    return checkpoints.resolve_checkpoint(checkpoint)


def _subtree_variable_count(path, root_child):
    """Number of variables stored under the root's child `root_child` in the checkpoint's object
    graph (key names cannot be used: each variable is stored once, under its shortest path, which
    may run through an optimizer)."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(
        checkpoints.load_reader(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root_child]
    seen, stack = set(), list(start)
    while stack:
        node_id = stack.pop()
        if node_id not in seen:
            seen.add(node_id)
            stack.extend(c.node_id for c in graph.nodes[node_id].children)
    return sum(1 for i in seen if any(a.name == "VARIABLE_VALUE"
                                      for a in graph.nodes[i].attributes))


MAX_NETWORK_PARAMS = 2 ** 30  # weights a run directory's network may have (4 GiB in float32)


def check_network_size(config, key, *, limit=MAX_NETWORK_PARAMS):
    """RunConfigError when the network that `key` binds would have more than `limit` weights,
    counted before anything is allocated (networks.planned_params): a run directory is data,
    and `nf = nf_max = 4000000` in it must not allocate until the machine runs out of memory."""
    count = planned_params(lambda: config.build(key))
    if count > limit:
        raise RunConfigError(
            f"{config.path}: {key} asks for a network of {count:.3g} weights, more than the "
            f"{limit:.3g} a run directory may ask for (its channel numbers, e.g. nf / nf_max, "
            f"are implausible)")
    return count


def build_network(config, key, *, dtype_policy=None, strategy=None):
    """The network that `key` of a RunConfig binds ('train.generator_fn',
    'train.discriminator_fn'), built (weights created) under `strategy`'s scope and, when
    `dtype_policy` is given ('float32', 'float64', ...), under that Keras dtype policy (the
    global policy is restored afterwards). Its size is checked first (check_network_size)."""
    check_network_size(config, key)
    previous = keras.config.dtype_policy()
    if dtype_policy is not None:
        keras.config.set_dtype_policy(dtype_policy)
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            return build(config.build(key))
    finally:
        keras.config.set_dtype_policy(previous)


def restore_checkpoint(model_dir, restore, *, checkpoint=None, note=_note):
    """Calls `restore(prefix)` on a checkpoint of `model_dir` and returns its prefix.
    `checkpoint`: None or 'latest' (the newest that can be read: `note` is told about newer
    unreadable ones), 'best' (the best by FID, in best/), a name such as ckpt-100, or a prefix.
    FileNotFoundError when there is none."""
    if checkpoint in (None, "latest", "best"):
        directory = (layout.best_dir(model_dir) if checkpoint == "best"
                     else layout.checkpoint_dir(model_dir))
        resumed = checkpoints.restore_newest(directory, restore)
        for message in resumed.notes:
            note(message)
        if resumed.path is None:
            raise FileNotFoundError(f"no checkpoint found in {directory!r}")
        return resumed.path
    path = _named_checkpoint(model_dir, checkpoint)
    restore(path)
    return path


def load_generator_ema(model_dir, *, checkpoint=None, strategy=None, note=_note):
    """The EMA generator of a checkpoint of `model_dir`, built under `strategy`'s scope, and the
    checkpoint's path. `checkpoint`: see `restore_checkpoint`.

    The networks are built from the directory's operative_config.gin read as data (see
    run_config); a checkpoint that does not fit them raises CheckpointMismatchError."""
    config = read_run_config(model_dir)
    generator = build_network(config, "train.generator_fn", strategy=strategy)

    def restore(path):
        checkpoints.restore(
            tf.train.Checkpoint(generator_ema=checkpoints.ModelWeights(generator)), path,
            partial=True)

    path = restore_checkpoint(model_dir, restore, checkpoint=checkpoint, note=note)
    stored = _subtree_variable_count(path, "generator_ema")
    if stored != len(generator.weights):
        raise checkpoints.CheckpointMismatchError(
            f"checkpoint {path} has {stored} generator_ema variables but the configured "
            f"generator has {len(generator.weights)}: the architecture changed")
    return generator, path


class Players(NamedTuple):
    """The trained networks of a checkpoint (see `load_players`)."""
    generator: object
    discriminator: object
    path: str   # the checkpoint's prefix
    step: int   # the GAN's step counter in it (completed training steps)


def load_players(model_dir, *, checkpoint=None, config=None, dtype_policy=None, strategy=None,
                 note=_note):
    """The trained generator and discriminator (not the EMA copy) of a checkpoint of
    `model_dir`, with the checkpoint's path and step: `Players`. `checkpoint`: see
    `restore_checkpoint`; `config`: the directory's RunConfig when already read;
    `dtype_policy`, `strategy`: see `build_network` (the policy's variable dtype must be the
    checkpoint's: float32 for what the trainer writes)."""
    config = config or read_run_config(model_dir)
    generator, discriminator = (
        build_network(config, key, dtype_policy=dtype_policy, strategy=strategy)
        for key in ("train.generator_fn", "train.discriminator_fn"))
    step = tf.Variable(0, dtype=tf.int64)

    def restore(path):
        checkpoints.restore(tf.train.Checkpoint(
            generator=checkpoints.ModelWeights(generator),
            discriminator=checkpoints.ModelWeights(discriminator), step=step), path, partial=True)

    path = restore_checkpoint(model_dir, restore, checkpoint=checkpoint, note=note)
    return Players(generator, discriminator, path, int(step.numpy()))


class SavedModelGenerator:
    """A generator exported as a SavedModel, called like the library's generators:
    `generator(z [N, z_dim], labels [N] or None, training=False)` -> float32 images in [-1, 1].

    The SavedModel's `serving_default` takes `z` float32 [N, z_dim] (and `labels` int32 [N] when
    conditional) and returns `images_float` in [-1, 1] and/or `images` uint8. tf_convgan's
    exports also hold `z_dim` and `num_classes`; for other SavedModels a conditional one needs
    `num_classes`."""

    def __init__(self, path, num_classes=None):
        if not files.isdir(path):
            raise FileNotFoundError(f"SavedModel directory {path!r} does not exist")
        self.path = path
        try:
            self.module = tf.saved_model.load(path)
        except Exception as e:  # noqa: BLE001  (any damaged SavedModel: one clear line)
            # e.g. IndexError "Read less bytes than requested" of a truncated variables.data,
            # DataLossError of a damaged index, DecodeError of a damaged saved_model.pb
            detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            raise ConfigError(f"SavedModel {path!r} cannot be loaded: its files are damaged or "
                              f"incomplete ({type(e).__name__}: {detail})") from None
        if "serving_default" not in self.module.signatures:
            raise ValueError(f"SavedModel {path!r} has no 'serving_default' signature")
        self.signature = self.module.signatures["serving_default"]
        inputs = self.signature.structured_input_signature[1]
        if "z" not in inputs:
            raise ValueError(f"SavedModel {path!r}: serving_default takes {sorted(inputs)}, "
                             f"not 'z'")
        outputs = self.signature.structured_outputs
        if "images_float" not in outputs and "images" not in outputs:
            raise ValueError(f"SavedModel {path!r}: serving_default returns {sorted(outputs)}, "
                             f"neither 'images_float' nor 'images'")
        self.z_dim = int(inputs["z"].shape[-1])
        self.conditional = "labels" in inputs
        stored = getattr(self.module, "num_classes", None)
        if stored is not None:
            stored = int(stored.numpy() if hasattr(stored, "numpy") else stored)
        self.num_classes = num_classes or stored or 1
        if self.conditional and self.num_classes < 2 and num_classes is None and stored is None:
            raise ValueError(f"SavedModel {path!r} is conditional: give the number of classes")
        self._resolution = None

    def __call__(self, z, labels=None, training=False):
        del training
        kwargs = {"z": tf.convert_to_tensor(z, tf.float32)}
        if self.conditional:
            if labels is None:
                labels = tf.zeros(tf.shape(kwargs["z"])[:1], tf.int32)
            kwargs["labels"] = tf.convert_to_tensor(labels, tf.int32)
        out = self.signature(**kwargs)
        if "images_float" in out:
            return tf.cast(out["images_float"], tf.float32)
        return tf.cast(out["images"], tf.float32) / 127.5 - 1.0

    @property
    def resolution(self):
        if self._resolution is None:
            self._resolution = int(self(tf.zeros([1, self.z_dim]), tf.zeros([1], tf.int32))
                                   .shape[1])
        return self._resolution


def load_generator(path, *, checkpoint=None, num_classes=None, strategy=None, note=_note):
    """A SavedModel directory (SavedModelGenerator) or a run directory (its EMA generator, see
    load_generator_ema), and what was loaded (the SavedModel or the checkpoint's path)."""
    if tf.saved_model.contains_saved_model(path):
        if checkpoint is not None:
            raise ConfigError(f"{path} is a SavedModel: a checkpoint can only be chosen in a "
                              f"training directory")
        return SavedModelGenerator(path, num_classes=num_classes), path
    return load_generator_ema(path, checkpoint=checkpoint, strategy=strategy, note=note)
