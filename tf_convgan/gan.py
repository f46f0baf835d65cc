"""The GAN model: one `train_step` that composes a loss, an optional penalty and an EMA generator.

One training step (Mescheder et al. 2018; GAN_stability's train loop):
  1. `d_steps` discriminator steps, step k on its own slice real[:, k] of the real batch and on
     fresh fakes G(z_k); D minimises mean(d_loss) + mean(penalty).
  2. one generator step on fresh z; G minimises mean(g_loss).
  3. the EMA update of the generator copy: w_ema <- beta * w_ema + (1 - beta) * w (trainable
     weights; non-trainable state such as batch-norm statistics is copied).

Distribution: the step runs in replica context (`strategy.run`). Per-example losses are averaged
over the *global* batch once (`tf.nn.compute_average_loss`), gradients are summed over replicas
once, every random draw is a stateless function of (seed, step, sub-step): the noise for the
global batch is drawn and each replica takes its own rows, so every replica has distinct z and a
run on R replicas equals a run on one device with the same global batch. Shapes are static and the
step has no Python side effects, so it compiles with XLA (jit_compile=True) and runs on TPU.
"""
from typing import Callable, Optional

import gin
import keras
import tensorflow as tf

from tf_convgan import losses as losses_lib
from tf_convgan import noise
from tf_convgan.errors import ConfigError
from tf_convgan.optimizers import rmsprop

# Purposes folded into the per-step seed, so that no two draws share a stream.
_Z_D, _PENALTY, _Z_G = 0, 1, 2


def _all_reduce_sum(values):
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)


def _dense(gradients):
    """Embedding gradients come as IndexedSlices of dynamic size, which XLA cannot compile."""
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]


def _global_norm(tensors):
    return tf.linalg.global_norm([t for t in tensors if t is not None])


def _use_pre_reduced_gradients(optimizer):
    """The step sums gradients over replicas itself (so that it can log their norms); the
    optimizer must not sum them a second time. Keras sums in `_all_reduce_sum_gradients`."""
    if not hasattr(optimizer, "_all_reduce_sum_gradients"):
        raise RuntimeError(
            "this Keras version has no Optimizer._all_reduce_sum_gradients; tf_convgan needs it "
            "to apply gradients that are already summed over replicas")
    optimizer._all_reduce_sum_gradients = lambda grads_and_vars: list(grads_and_vars)


def _with_loss_scaling(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _scaled(optimizer, loss):
    """The loss times the optimizer's dynamic loss scale (mixed_float16), else the loss; the
    LossScaleOptimizer divides the gradients by the scale again (and skips non-finite steps)."""
    return optimizer.scale_loss(loss) if hasattr(optimizer, "inner_optimizer") else loss


@gin.configurable
class GAN(keras.Model):
    """Generator, discriminator and EMA generator trained by one composed `train_step`.

    Args:
      generator, discriminator, generator_ema: built Keras models (see tf_convgan.networks);
        generator_ema has the generator's architecture.
      loss: a `losses.GANLoss` (e.g. `@non_saturating()` in gin).
      penalty: a penalty function from `tf_convgan.penalties` (e.g. `@r1`), or None.
      d_steps: discriminator steps per generator step, each on its own real data.
      ema_beta: EMA decay of the generator copy (0.999 as GAN_stability; 0 copies G).
      g_optimizer, d_optimizer: Keras optimizers (default RMSprop lr 1e-4, the paper's).
      seed: seeds every random draw of training together with the step counter.
    """

    def __init__(self, generator, discriminator, generator_ema, *,
                 loss: Optional[losses_lib.GANLoss] = None,
                 penalty: Optional[Callable] = None,
                 d_steps: int = 1,
                 ema_beta: float = 0.999,
                 g_optimizer=None,
                 d_optimizer=None,
                 seed: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(d_steps, int) or d_steps < 1:
            raise ConfigError(f"GAN.d_steps must be an integer >= 1, got {d_steps!r}")
        if not 0.0 <= float(ema_beta) < 1.0:
            raise ConfigError(f"GAN.ema_beta must be in [0, 1), got {ema_beta!r}")
        loss = losses_lib.non_saturating() if loss is None else loss
        if not isinstance(loss, losses_lib.GANLoss):
            raise ConfigError(
                f"GAN.loss must be a GANLoss such as @non_saturating() (note the parentheses), "
                f"got {loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = generator_ema
        self.loss = loss
        self.penalty = penalty
        self.d_steps = d_steps
        self.ema_beta = float(ema_beta)
        self.seed = int(seed)
        self.g_optimizer = g_optimizer if g_optimizer is not None else rmsprop()
        self.d_optimizer = d_optimizer if d_optimizer is not None else rmsprop()
        self.conditional = generator.num_classes > 1
        if discriminator.num_classes != generator.num_classes:
            raise ConfigError(
                f"generator and discriminator must have the same num_classes, got "
                f"{generator.num_classes} and {discriminator.num_classes}")
        self.step_counter = keras.Variable(0, dtype="int64", trainable=False,
                                           aggregation="only_first_replica", name="step")
        self._check_ema_structure()
        self._check_penalty()
        # mixed_float16: dynamic loss scaling, so that small float16 gradients do not flush to 0.
        self.loss_scaling = discriminator.dtype_policy.name == "mixed_float16"
        if self.loss_scaling:
            self.g_optimizer = _with_loss_scaling(self.g_optimizer)
            self.d_optimizer = _with_loss_scaling(self.d_optimizer)
        for optimizer, model in ((self.g_optimizer, generator), (self.d_optimizer, discriminator)):
            _use_pre_reduced_gradients(optimizer)
            if hasattr(optimizer, "inner_optimizer"):
                _use_pre_reduced_gradients(optimizer.inner_optimizer)
            optimizer.build(model.trainable_variables)
        generator_ema.set_weights(generator.get_weights())

    def _check_ema_structure(self):
        shapes = [tuple(w.shape) for w in self.generator.weights]
        ema_shapes = [tuple(w.shape) for w in self.generator_ema.weights]
        if not shapes or shapes != ema_shapes:
            raise ConfigError("generator_ema must be a built copy of the generator's architecture")

    def _check_penalty(self):
        """Runs the penalty once, eagerly, on a 1-D linear D: its hyperparameter checks raise a
        clear error now instead of inside the traced (and possibly compiled) step."""
        if self.penalty is None:
            return
        if not callable(self.penalty):
            raise ConfigError(f"GAN.penalty must be a penalty function such as @r1, got "
                              f"{self.penalty!r}")
        x = tf.ones([1, 1])
        self.penalty(lambda images: tf.reduce_sum(images, axis=1), x, x,
                     seed=tf.constant([0, 0], tf.int64))

    @property
    def step(self):
        """Completed training steps (checkpointed). Its own counter rather than the optimizer's
        update count: a loss-scaled optimizer does not count the steps it skips."""
        return self.step_counter

    def call(self, z, labels=None, training=False):
        """Samples of the EMA generator."""
        return self.generator_ema(z, labels, training=training)

    # -- noise ---------------------------------------------------------------------------------

    def _replica_normal(self, seed, per_replica_shape):
        """This replica's rows of a standard-normal draw for the global batch."""
        return noise.normal(per_replica_shape, seed)

    def _labels(self, labels):
        return labels if self.conditional else tf.zeros_like(labels)

    # -- the step ------------------------------------------------------------------------------

    def train_step(self, data):
        """One GAN step on `data = (real [B, d_steps, ...], labels [B, d_steps])`: images
        [B, d_steps, H, W, C] or any other examples (2D points: [B, d_steps, 2])."""
        real, labels = data
        if real.shape.rank < 3 or real.shape[1] != self.d_steps:
            raise ConfigError(
                f"train_step expects real data of shape [batch, d_steps={self.d_steps}, ...] "
                f"(images: [batch, d_steps, H, W, C]), got {real.shape}")
        labels = self._labels(tf.cast(labels, tf.int32))
        step_seed = tf.stack([tf.constant(self.seed, tf.int64),
                              tf.cast(self.step, tf.int64)])
        d_logs = []
        for k in range(self.d_steps):
            d_logs.append(self._discriminator_step(
                real[:, k], labels[:, k], noise.fold_in(step_seed, k)))
        logs = {name: tf.add_n([l[name] for l in d_logs]) / self.d_steps for name in d_logs[0]}
        logs.update(self._generator_step(labels[:, -1], noise.fold_in(step_seed, self.d_steps)))
        self._update_ema()
        self.step_counter.assign_add(1)
        return logs

    def _discriminator_step(self, real, labels, seed):
        z = self._replica_normal(noise.fold_in(seed, _Z_D), [real.shape[0], self.generator.z_dim])
        fake = tf.stop_gradient(tf.cast(self.generator(z, labels, training=True), real.dtype))

        def d_fn(images):
            return tf.cast(self.discriminator(images, labels, training=True), tf.float32)

        if self.loss_scaling:  # penalties unscale grad_x D before squaring it (penalties.py)
            d_fn.loss_scale = self.d_optimizer.dynamic_scale

        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_real_logits = d_fn(real)
            d_fake_logits = d_fn(fake)
            d_loss = tf.nn.compute_average_loss(self.loss.d_loss(d_real_logits, d_fake_logits))
            d_total = d_loss
            logs = {"d_loss": d_loss,
                    "d_real_logits": tf.nn.compute_average_loss(d_real_logits),
                    "d_fake_logits": tf.nn.compute_average_loss(d_fake_logits)}
            if self.penalty is not None:
                penalty = tf.nn.compute_average_loss(self.penalty(
                    d_fn, real, fake, seed=noise.fold_in(seed, _PENALTY)))
                d_total += penalty
                logs["penalty"] = penalty
            d_total_scaled = _scaled(self.d_optimizer, d_total)
        grads = _all_reduce_sum(_dense(tape.gradient(d_total_scaled, variables)))
        self.d_optimizer.apply_gradients(zip(grads, variables))
        logs["d_total"] = d_total
        logs = _all_reduce_sum(logs)
        logs["d_grad_norm"] = _global_norm(grads) / self._loss_scale(self.d_optimizer)
        return logs

    def _generator_step(self, labels, seed):
        z = self._replica_normal(noise.fold_in(seed, _Z_G), [labels.shape[0], self.generator.z_dim])
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            d_fake_logits = tf.cast(self.discriminator(fake, labels, training=True), tf.float32)
            g_loss = tf.nn.compute_average_loss(self.loss.g_loss(d_fake_logits))
            g_loss_scaled = _scaled(self.g_optimizer, g_loss)
        grads = _all_reduce_sum(_dense(tape.gradient(g_loss_scaled, variables)))
        self.g_optimizer.apply_gradients(zip(grads, variables))
        logs = _all_reduce_sum({"g_loss": g_loss})
        logs["g_grad_norm"] = _global_norm(grads) / self._loss_scale(self.g_optimizer)
        return logs

    def _loss_scale(self, optimizer):
        if not self.loss_scaling:
            return tf.constant(1.0)
        return tf.cast(optimizer.dynamic_scale, tf.float32)

    def _update_ema(self):
        """w_ema <- beta w_ema + (1 - beta) w on trainable weights; copy of the other state.

        Weights are identical on every replica after the update, so the EMA is applied once per
        variable in cross-replica context (as Keras does for optimizer updates)."""
        beta = self.ema_beta
        pairs = [(e.value, w.value, True) for e, w in zip(
            self.generator_ema.trainable_variables, self.generator.trainable_variables)]
        pairs += [(e.value, w.value, False) for e, w in zip(
            self.generator_ema.non_trainable_variables, self.generator.non_trainable_variables)]

        def update(distribution, pairs):
            for ema_var, var, average in pairs:
                if average:
                    fn = lambda e, v: e.assign(beta * e + (1.0 - beta) * v)  # noqa: E731
                else:
                    fn = lambda e, v: e.assign(v)  # noqa: E731
                distribution.extended.update(ema_var, fn, args=(var,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            update, tf.distribute.get_strategy(), pairs)
