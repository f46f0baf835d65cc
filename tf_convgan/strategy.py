"""Gin-configurable tf.distribute strategies: `train.strategy = @mirrored_strategy()` etc."""
import gin
import tensorflow as tf

from tf_convgan.errors import ConfigError


@gin.configurable
def default_strategy():
    """The default (no-op) strategy: one device."""
    return tf.distribute.get_strategy()


@gin.configurable
def mirrored_strategy(*, devices=None):
    """Synchronous data parallelism over the local GPUs (or `devices`, e.g. ["/cpu:0", "/cpu:1"])."""
    return tf.distribute.MirroredStrategy(devices=devices)


@gin.configurable
def multi_worker_mirrored_strategy():
    """Synchronous data parallelism over several machines; the cluster comes from TF_CONFIG."""
    return tf.distribute.MultiWorkerMirroredStrategy()


@gin.configurable
def tpu_strategy(*, tpu=""):
    """TPUStrategy; `tpu` is '' on Colab and Cloud TPU VMs ('local' for a TPU VM's own chips)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def per_replica_batch_size(global_batch_size: int, strategy) -> int:
    """The batch each replica sees; the global batch must split evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size <= 0 or global_batch_size % replicas:
        raise ConfigError(
            f"train.batch_size must be a positive multiple of the number of replicas "
            f"({replicas}), got {global_batch_size}")
    return global_batch_size // replicas
