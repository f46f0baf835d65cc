"""Rebuild the networks of a training directory from its operative config and checkpoints."""
import os

import gin
import tensorflow as tf

from tf_convgan import checkpoints
from tf_convgan.networks import build

OPERATIVE_CONFIG = "operative_config.gin"


def parse_operative_config(model_dir):
    """Replaces the global gin config with the one `model_dir` was trained with."""
    from tf_convgan import config
    import tf_convgan.train  # noqa: F401  (registers every configurable the config names)
    path = os.path.join(model_dir, OPERATIVE_CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: --model_dir must be a training "
                                f"directory written by run.py")
    gin.clear_config()
    config.parse([path], finalize=False)


BEST_SUBDIR = "best"  # the best checkpoint by FID (tf_convgan.evaluation)


def checkpoint_path(model_dir, checkpoint=None):
    """The prefix of `checkpoint`: None or 'latest' (the latest), 'best' (the best by FID), a
    name such as ckpt-100 or a prefix."""
    if checkpoint in (None, "latest"):
        return checkpoints.resolve_checkpoint(model_dir)
    if checkpoint == "best":
        return checkpoints.resolve_checkpoint(os.path.join(model_dir, BEST_SUBDIR))
    if not tf.io.gfile.exists(checkpoint + ".index"):
        checkpoint = os.path.join(model_dir, "checkpoints", checkpoint)
    return checkpoints.resolve_checkpoint(checkpoint)


def _subtree_variable_count(path, root_child):
    """Number of variables stored under the root's child `root_child` in the checkpoint's object
    graph (key names cannot be used: each variable is stored once, under its shortest path, which
    may run through an optimizer)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    start = [c.node_id for c in graph.nodes[0].children if c.local_name == root_child]
    seen, stack = set(), list(start)
    while stack:
        node_id = stack.pop()
        if node_id not in seen:
            seen.add(node_id)
            stack.extend(c.node_id for c in graph.nodes[node_id].children)
    return sum(1 for i in seen if any(a.name == "VARIABLE_VALUE"
                                      for a in graph.nodes[i].attributes))


def load_generator_ema(model_dir, *, checkpoint=None, strategy=None):
    """The EMA generator of `model_dir`'s latest (or the given, see `checkpoint_path`)
    checkpoint, built under `strategy`'s scope, and the checkpoint's path.

    The networks are built from the directory's operative_config.gin (this replaces the global
    gin config); a checkpoint that does not fit them raises CheckpointMismatchError."""
    parse_operative_config(model_dir)
    path = checkpoint_path(model_dir, checkpoint)
    generator_fn = gin.get_bindings("train")["generator_fn"]
    with (strategy or tf.distribute.get_strategy()).scope():
        generator = build(generator_fn())
    checkpoints.restore(tf.train.Checkpoint(generator_ema=checkpoints.ModelWeights(generator)),
                        path, partial=True)
    stored = _subtree_variable_count(path, "generator_ema")
    if stored != len(generator.weights):
        raise checkpoints.CheckpointMismatchError(
            f"checkpoint {path} has {stored} generator_ema variables but the configured "
            f"generator has {len(generator.weights)}: the architecture changed")
    return generator, path
