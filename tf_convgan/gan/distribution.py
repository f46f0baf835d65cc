"""Distribution and loss-scaling plumbing of the step: sums over replicas, gradients the
optimizers apply as they are, Keras' LossScaleOptimizer (mixed_float16)."""
import keras
import tensorflow as tf


def all_reduce_sum(values):
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)


def replica_share(value):
    """value / replicas, so that the replica sum of the logs gives value back."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    return tf.cast(value, tf.float32) / float(replicas)


def dense(gradients):
    """Embedding gradients come as IndexedSlices of dynamic size, which XLA cannot compile."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


def global_norm(tensors):
    """The gradients' global norm as a float32 log, whatever the variables' dtype (float64
    networks: the float64 dtype policy)."""
    return tf.cast(tf.linalg.global_norm([t for t in tensors if t is not None]), tf.float32)


def use_pre_reduced_gradients(optimizer):
    """The step sums gradients over replicas itself (so that it can log their norms); the
    optimizer must not sum them a second time. Keras sums in `_all_reduce_sum_gradients`."""
    for opt in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if opt is None:
            continue
        if not hasattr(opt, "_all_reduce_sum_gradients"):
            raise RuntimeError(
                "this Keras version has no Optimizer._all_reduce_sum_gradients; tf_convgan needs "
                "it to apply gradients that are already summed over replicas")
        opt._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


def with_loss_scaling(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def is_loss_scaled(optimizer):
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def scaled(optimizer, loss):
    """The loss times the optimizer's dynamic loss scale (mixed_float16), else the loss; the
    LossScaleOptimizer divides the gradients by the scale again (and skips non-finite steps)."""
    return optimizer.scale_loss(loss) if is_loss_scaled(optimizer) else loss


def loss_scale(optimizer):
    """The scale the optimizer's next update divides by (1 without loss scaling), read as a
    value: the optimizer changes its variable when it applies the gradients."""
    if not is_loss_scaled(optimizer):
        return tf.constant(1.0)
    return tf.identity(tf.cast(optimizer.dynamic_scale, tf.float32))
