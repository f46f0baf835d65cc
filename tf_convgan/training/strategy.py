"""Gin-configurable tf.distribute strategies: `train.strategy = @mirrored_strategy()` etc."""
import sys

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
    if devices is not None:
        names = []
        for device in devices:
            try:
                names.append(tf.DeviceSpec.from_string(device).to_string())
            except (TypeError, ValueError, AttributeError):
                raise ConfigError(f"mirrored_strategy.devices must be device names such as "
                                  f"'/gpu:0', got {device!r}") from None
        duplicates = sorted({d for d, n in zip(devices, names) if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"mirrored_strategy.devices names a device twice: {devices!r} "
                              f"(duplicates: {', '.join(duplicates)})")
    try:
        return tf.distribute.MirroredStrategy(devices=devices)
    except (AssertionError, ValueError) as e:
        raise ConfigError(f"mirrored_strategy.devices = {devices!r}: "
                          f"{str(e).splitlines()[0]}") from None


_multi_worker_strategy = []  # one per process: it configures TensorFlow's collectives


@gin.configurable
def multi_worker_mirrored_strategy():
    """Synchronous data parallelism over several machines; the cluster comes from TF_CONFIG.

    TensorFlow requires it to be created before TensorFlow runs anything in the process;
    run.py does that through `create_early_if_configured()`."""
    if not _multi_worker_strategy:
        try:
            _multi_worker_strategy.append(tf.distribute.MultiWorkerMirroredStrategy())
        except RuntimeError as e:
            raise ConfigError(
                f"multi_worker_mirrored_strategy must be created before TensorFlow runs "
                f"anything in the process (call "
                f"tf_convgan.training.strategy.create_early_if_configured() right after parsing "
                f"gin, as run.py does): {e}") from None
    return _multi_worker_strategy[0]


def create_early_if_configured():
    """Creates the strategy now if gin binds `train.strategy` to the multi-worker strategy."""
    try:
        reference = gin.query_parameter("train.strategy")
    except ValueError:
        return
    configurable = getattr(reference, "configurable", None)
    if getattr(configurable, "name", None) == "multi_worker_mirrored_strategy":
        multi_worker_mirrored_strategy()


@gin.configurable
def tpu_strategy(*, tpu=""):
    """TPUStrategy; `tpu` is '' on Colab and Cloud TPU VMs ('local' for a TPU VM's own chips)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@gin.configurable
def tpu_strategy_or_default(*, tpu=""):
    """TPUStrategy when a TPU is reachable (Colab, Cloud TPU VM), else the default strategy: the
    same notebook or config runs on a TPU and, slowly, anywhere else."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        resolver.cluster_spec()  # raises when there is no TPU
    except (ValueError, RuntimeError, tf.errors.OpError, ImportError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"tpu_strategy_or_default: no TPU found ({reason}); falling back to the default "
              f"strategy (one device)", file=sys.stderr)
        return tf.distribute.get_strategy()
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
