"""The GAN model: one `train_step` that composes a loss, an optional penalty and an EMA generator.

One training step (Mescheder et al. 2018; GAN_stability's train loop):
  1. `d_steps` discriminator steps, step k on its own slice real[:, k] of the real batch and on
     fresh fakes G(z_k); D minimises mean(d_loss) + mean(penalty).
  2. one generator step on fresh z; G minimises mean(g_loss).
  3. the EMA update of the generator copy: w_ema <- beta * w_ema + (1 - beta) * w (trainable
     weights; non-trainable state such as batch-norm statistics is copied).

Optional terms, each a gin-configurable callable composed here (None: not used, and the step is
exactly the one above):
  instance_noise (a sigma schedule, e.g. @sigma_schedule): D's real and fake inputs, in D's step
    and in G's, are x + sigma(step) * eps (Sonderby et al. 2016);
  consistency (e.g. @cr, @bcr): a per-example D term on the (possibly noisy) real and fake images,
    added to D's loss, logged as `cr`;
  latent_consistency (@zcr()): zCR's D term on G(z), G(z + dz) (logged `zcr_d`) and its G term
    (logged `zcr_g`);
  lazy_interval k: the penalty is evaluated only on D steps whose global index
    (d_optimizer.iterations) is a multiple of k, weighted by k, inside a tf.cond (Karras et al.
    2020); see optimizers.lazy_adam for the paper's optimizer adjustment;
  consensus_gamma: ConOpt (Mescheder et al. 2017): one simultaneous update of both players, each
    minimising its loss + gamma/2 ||v||^2 (consensus.consensus_gradients); replaces steps 1-2 and
    needs d_steps = 1.

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

from tf_convgan import consistency as consistency_lib
from tf_convgan import losses as losses_lib
from tf_convgan import noise
from tf_convgan.consensus import consensus_gradients
from tf_convgan.errors import ConfigError, check_nonnegative
from tf_convgan.optimizers import torch_rmsprop

# Purposes folded into the per-step seed, so that no two draws share a stream.
_Z_D, _PENALTY, _Z_G, _CONSISTENCY, _ZCR, _INSTANCE_NOISE = 0, 1, 2, 3, 4, 5


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


class _Critic:
    """D as the penalties and consistency terms see it: images -> float32 logits [B].

    `loss_scale` (mixed_float16) tells `penalties.input_gradients` to unscale grad_x D before
    squaring it. `known_input_gradients(x)` gives grad_x sum D(x) for the real batch from the
    forward pass the loss already made (R1 then costs no second forward and backward pass of D,
    as in GAN_stability's code); None for any other tensor."""

    def __init__(self, discriminator, labels, *, training, loss_scale=None):
        self.discriminator = discriminator
        self.labels = labels
        self.training = training
        self.loss_scale = loss_scale
        self._known = {}

    def __call__(self, images):
        return tf.cast(self.discriminator(images, self.labels, training=self.training),
                       tf.float32)

    def logits_with_input_gradients(self, x):
        """D(x), remembering how to get grad_x sum D(x) (in `known_input_gradients`) from the
        same forward pass."""
        inner = tf.GradientTape()
        with inner:
            inner.watch(x)
            logits = self(x)
            total = tf.reduce_sum(logits)
            if self.loss_scale is not None:
                total *= tf.cast(self.loss_scale, tf.float32)
        self._known[id(x)] = (x, inner, total, [])
        return logits

    def known_input_gradients(self, x):
        entry = self._known.get(id(x))
        if entry is None or entry[0] is not x:
            return None
        x, inner, total, cache = entry
        if not cache:  # a non-persistent tape answers once; the result is reused
            gradients = inner.gradient(total, x)
            if self.loss_scale is not None:
                gradients = tf.cast(gradients, tf.float32) / tf.cast(self.loss_scale, tf.float32)
            cache.append(gradients)
        return cache[0]


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
      g_optimizer, d_optimizer: Keras optimizers (default PyTorch's RMSprop lr 1e-4, the
        paper's: optimizers.torch_rmsprop()).
      seed: seeds every random draw of training together with the step counter; train()
        passes train.seed here (see tf_convgan.train.build_gan).
      instance_noise: a schedule step -> sigma (e.g. `@sigma_schedule`), or None.
      consistency: a D-side consistency term from `tf_convgan.consistency` (`@cr`, `@bcr`), or None.
      latent_consistency: `@zcr()` (a `consistency.LatentConsistency`), or None.
      lazy_interval: k >= 1, evaluate the penalty every k-th D step with weight k; None: every step.
      consensus_gamma: gamma >= 0 of ConOpt's consensus term (simultaneous updates), or None.
      noise_source: where every random draw of the step comes from (see tf_convgan.noise);
        default: noise.PhiloxNoise(), stateless and the same under XLA.
    """

    def __init__(self, generator, discriminator, generator_ema, *,
                 loss: Optional[losses_lib.GANLoss] = None,
                 penalty: Optional[Callable] = None,
                 d_steps: int = 1,
                 ema_beta: float = 0.999,
                 g_optimizer=None,
                 d_optimizer=None,
                 seed: int = 0,
                 instance_noise: Optional[Callable] = None,
                 consistency: Optional[Callable] = None,
                 latent_consistency: Optional[consistency_lib.LatentConsistency] = None,
                 lazy_interval: Optional[int] = None,
                 consensus_gamma: Optional[float] = None,
                 noise_source=None,
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
        self.g_optimizer = g_optimizer if g_optimizer is not None else torch_rmsprop()
        self.d_optimizer = d_optimizer if d_optimizer is not None else torch_rmsprop()
        self.instance_noise = instance_noise
        self.consistency = consistency
        self.latent_consistency = latent_consistency
        self.lazy_interval = lazy_interval
        self.consensus_gamma = consensus_gamma
        self.noise_source = noise.PhiloxNoise() if noise_source is None else noise_source
        self.conditional = generator.num_classes > 1
        if discriminator.num_classes != generator.num_classes:
            raise ConfigError(
                f"generator and discriminator must have the same num_classes, got "
                f"{generator.num_classes} and {discriminator.num_classes}")
        self.step_counter = keras.Variable(0, dtype="int64", trainable=False,
                                           aggregation="only_first_replica", name="step")
        self._check_ema_structure()
        self._check_penalty()
        self._check_terms()
        # mixed_float16: dynamic loss scaling, so that small float16 gradients do not flush to 0.
        self.loss_scaling = discriminator.dtype_policy.name == "mixed_float16"
        if self.loss_scaling:
            if self.consensus_gamma is not None:
                raise ConfigError("GAN.consensus_gamma (ConOpt) does not support "
                                  "mixed_float16 loss scaling; use float32 or mixed_bfloat16")
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

    def _example_shape(self):
        shape = getattr(self.discriminator, "data_shape", None)
        if shape is None:
            resolution = getattr(self.discriminator, "resolution", 8)
            shape = (resolution, resolution, 3)
        return [1] + list(shape)

    def _check_terms(self):
        """Eager checks of the optional terms' hyperparameters and of how they combine."""
        if self.instance_noise is not None:
            if not callable(self.instance_noise):
                raise ConfigError(f"GAN.instance_noise must be a sigma schedule such as "
                                  f"@sigma_schedule, got {self.instance_noise!r}")
            check_nonnegative("GAN.instance_noise(0)", float(self.instance_noise(0)))
        if self.consistency is not None:
            if not callable(self.consistency):
                raise ConfigError(f"GAN.consistency must be a consistency term such as @bcr, "
                                  f"got {self.consistency!r}")
            x = tf.zeros(self._example_shape())
            self.consistency(lambda images: tf.reduce_sum(images, axis=list(range(1, x.shape.rank))),
                             x, x, seed=tf.constant([0, 0], tf.int64))
        if self.latent_consistency is not None and not isinstance(
                self.latent_consistency, consistency_lib.LatentConsistency):
            raise ConfigError(f"GAN.latent_consistency must be @zcr() (note the parentheses), got "
                              f"{self.latent_consistency!r}")
        if self.lazy_interval is not None:
            k = self.lazy_interval
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"GAN.lazy_interval must be an integer >= 1 or None, got {k!r}")
            if self.penalty is None:
                raise ConfigError("GAN.lazy_interval needs a GAN.penalty to apply lazily")
        d_interval = getattr(self.d_optimizer, "lazy_interval", None)
        if d_interval is not None and d_interval != self.lazy_interval:
            raise ConfigError(f"GAN.d_optimizer is lazy_adam with interval {d_interval} but "
                              f"GAN.lazy_interval is {self.lazy_interval!r}: set both to the same k")
        if self.consensus_gamma is not None:
            check_nonnegative("GAN.consensus_gamma", self.consensus_gamma)
            self.consensus_gamma = float(self.consensus_gamma)
            if self.d_steps != 1:
                raise ConfigError(f"GAN.consensus_gamma (ConOpt) updates both players "
                                  f"simultaneously and needs GAN.d_steps = 1, got {self.d_steps}")
            others = [name for name, value in (("consistency", self.consistency),
                                               ("latent_consistency", self.latent_consistency),
                                               ("lazy_interval", self.lazy_interval))
                      if value is not None]
            if others:
                raise ConfigError(f"GAN.consensus_gamma (ConOpt) does not combine with "
                                  f"GAN.{others[0]}; set one of them to None")

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
        [B, d_steps, H, W, C] or any other examples (2D points: [B, d_steps, 2]). Every random
        draw of the step comes from `self.noise_source`."""
        with noise.source_scope(self.noise_source):
            return self._composed_step(data)

    def _composed_step(self, data):
        real, labels = data
        if real.shape.rank < 3 or real.shape[1] != self.d_steps:
            raise ConfigError(
                f"train_step expects real data of shape [batch, d_steps={self.d_steps}, ...] "
                f"(images: [batch, d_steps, H, W, C]), got {real.shape}")
        labels = self._labels(tf.cast(labels, tf.int32))
        step_seed = tf.stack([tf.constant(self.seed, tf.int64),
                              tf.cast(self.step, tf.int64)])
        if self.consensus_gamma is not None:
            logs = self._consensus_step(real[:, 0], labels[:, 0], noise.fold_in(step_seed, 0))
            self._update_ema()
            self.step_counter.assign_add(1)
            return logs
        d_logs = []
        for k in range(self.d_steps):
            d_logs.append(self._discriminator_step(
                real[:, k], labels[:, k], noise.fold_in(step_seed, k)))
        logs = {name: tf.add_n([l[name] for l in d_logs]) / self.d_steps for name in d_logs[0]}
        logs.update(self._generator_step(labels[:, -1], noise.fold_in(step_seed, self.d_steps)))
        self._update_ema()
        self.step_counter.assign_add(1)
        return logs

    def _noisy(self, images, seed):
        """images + sigma(step) * eps when instance noise is on (fresh eps per seed)."""
        if self.instance_noise is None:
            return images
        sigma = tf.cast(self.instance_noise(self.step), images.dtype)  # a tensor: traced step
        eps = noise.normal(images.shape.as_list(), noise.fold_in(seed, _INSTANCE_NOISE),
                           images.dtype)
        return images + sigma * eps

    def _lazy_penalty(self, real, fake, seed, labels, variables):
        """Lazy regularization: on D steps whose global index (d_optimizer.iterations) is a
        multiple of k, (k * mean(penalty), its gradient w.r.t. D's variables); on the others
        (0, zeros) without evaluating the penalty (tf.cond).

        The gradient is taken inside the branch and added to the loss's gradient, so that no
        gradient flows through the tf.cond itself: XLA cannot differentiate through a cond whose
        branches need compile-time constants (a transpose's permutation). The branch runs D with
        training=False: a state write inside a cond branch (the spectral-norm u, aggregated over
        replicas) is not supported under MirroredStrategy; D's output is the same (SN refines u in
        every forward pass and uses it; only the write-back is skipped; D has no other
        training-dependent layers)."""
        k = self.lazy_interval

        def apply():
            critic = _Critic(self.discriminator, labels, training=False,
                             loss_scale=self._loss_scale_variable(self.d_optimizer))
            with tf.GradientTape() as tape:
                penalty = float(k) * tf.nn.compute_average_loss(self.penalty(
                    critic, real, fake, seed=seed))
                penalty_scaled = _scaled(self.d_optimizer, penalty)
            grads = _dense(tape.gradient(penalty_scaled, variables))
            return [penalty] + [tf.zeros_like(v.value) if g is None else g
                                for g, v in zip(grads, variables)]

        def skip():
            return [tf.constant(0.0)] + [tf.zeros_like(v.value) for v in variables]

        due = tf.equal(tf.math.floormod(self.d_optimizer.iterations, k), 0)
        out = tf.cond(due, apply, skip)
        return out[0], out[1:]

    def _discriminator_step(self, real, labels, seed):
        z = self._replica_normal(noise.fold_in(seed, _Z_D), [real.shape[0], self.generator.z_dim])
        fake = tf.stop_gradient(tf.cast(self.generator(z, labels, training=True), real.dtype))
        if self.latent_consistency is not None:
            z_perturbed = self.latent_consistency.perturb(z, noise.fold_in(seed, _ZCR))
            fake_perturbed = tf.stop_gradient(tf.cast(
                self.generator(z_perturbed, labels, training=True), real.dtype))
        clean_fake = fake
        if self.instance_noise is not None:
            real = self._noisy(real, noise.fold_in(seed, 0))
            fake = self._noisy(fake, noise.fold_in(seed, 1))

        d_fn = _Critic(self.discriminator, labels, training=True,
                       loss_scale=self._loss_scale_variable(self.d_optimizer))
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_real_logits = d_fn.logits_with_input_gradients(real)
            d_fake_logits = d_fn(fake)
            d_loss = tf.nn.compute_average_loss(self.loss.d_loss(d_real_logits, d_fake_logits))
            d_total = d_loss
            logs = {"d_loss": d_loss,
                    "d_real_logits": tf.nn.compute_average_loss(d_real_logits),
                    "d_fake_logits": tf.nn.compute_average_loss(d_fake_logits)}
            if self.penalty is not None and self.lazy_interval is None:
                penalty = tf.nn.compute_average_loss(self.penalty(
                    d_fn, real, fake, seed=noise.fold_in(seed, _PENALTY)))
                d_total += penalty
                logs["penalty"] = penalty
            if self.consistency is not None:
                cr = tf.nn.compute_average_loss(self.consistency(
                    d_fn, real, fake, seed=noise.fold_in(seed, _CONSISTENCY)))
                d_total += cr
                logs["cr"] = cr
            if self.latent_consistency is not None:
                # zCR compares D on the generator's outputs themselves (no instance noise).
                zcr_d = tf.nn.compute_average_loss(
                    self.latent_consistency.d_term(d_fn, clean_fake, fake_perturbed))
                d_total += zcr_d
                logs["zcr_d"] = zcr_d
            d_total_scaled = _scaled(self.d_optimizer, d_total)
        grads = _dense(tape.gradient(d_total_scaled, variables))
        if self.lazy_interval is not None:
            penalty, penalty_grads = self._lazy_penalty(
                real, fake, noise.fold_in(seed, _PENALTY), labels, variables)
            grads = [g + p for g, p in zip(grads, penalty_grads)]
            d_total += penalty
            logs["penalty"] = penalty
        grads = _all_reduce_sum(grads)
        self.d_optimizer.apply_gradients(zip(grads, variables))
        logs["d_total"] = d_total
        if self.instance_noise is not None:
            logs["instance_noise_sigma"] = self._replica_share(self.instance_noise(self.step))
        logs = _all_reduce_sum(logs)
        logs["d_grad_norm"] = _global_norm(grads) / self._loss_scale(self.d_optimizer)
        return logs

    def _loss_scale_variable(self, optimizer):
        return optimizer.dynamic_scale if self.loss_scaling else None

    def _loss_scale(self, optimizer):
        if not self.loss_scaling:
            return tf.constant(1.0)
        return tf.cast(optimizer.dynamic_scale, tf.float32)

    @staticmethod
    def _replica_share(value):
        """value / replicas, so that the replica sum of the logs gives value back."""
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        return tf.cast(value, tf.float32) / float(replicas)

    def _generator_step(self, labels, seed):
        z = self._replica_normal(noise.fold_in(seed, _Z_G), [labels.shape[0], self.generator.z_dim])
        variables = self.generator.trainable_variables
        logs = {}
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            d_fake_logits = tf.cast(self.discriminator(self._noisy(fake, seed), labels,
                                                       training=True), tf.float32)
            g_loss = tf.nn.compute_average_loss(self.loss.g_loss(d_fake_logits))
            g_total = g_loss
            if self.latent_consistency is not None:
                z_perturbed = self.latent_consistency.perturb(z, noise.fold_in(seed, _ZCR))
                fake_perturbed = self.generator(z_perturbed, labels, training=True)
                zcr_g = tf.nn.compute_average_loss(
                    self.latent_consistency.g_term(fake, fake_perturbed))
                g_total += zcr_g
                logs["zcr_g"] = zcr_g
            g_total_scaled = _scaled(self.g_optimizer, g_total)
        grads = _all_reduce_sum(_dense(tape.gradient(g_total_scaled, variables)))
        self.g_optimizer.apply_gradients(zip(grads, variables))
        logs["g_loss"] = g_loss
        logs = _all_reduce_sum(logs)
        logs["g_grad_norm"] = _global_norm(grads) / self._loss_scale(self.g_optimizer)
        return logs

    def _consensus_step(self, real, labels, seed):
        """ConOpt: one simultaneous update of D and G, each on its loss + gamma/2 ||v||^2 with
        v = (grad_G L_G, grad_D L_D) (L_D including the penalty, when there is one)."""
        z = self._replica_normal(noise.fold_in(seed, _Z_D), [real.shape[0], self.generator.z_dim])
        real = self._noisy(real, noise.fold_in(seed, 0))

        def d_fn(images):
            return self.discriminator(images, labels, training=True)

        def compute_losses():
            fake = self._noisy(self.generator(z, labels, training=True), noise.fold_in(seed, 1))
            d_real_logits = d_fn(real)
            d_fake_logits = d_fn(fake)
            d_loss = tf.nn.compute_average_loss(self.loss.d_loss(d_real_logits, d_fake_logits))
            g_loss = tf.nn.compute_average_loss(self.loss.g_loss(d_fake_logits))
            aux = {"d_loss": d_loss, "g_loss": g_loss,
                   "d_real_logits": tf.nn.compute_average_loss(d_real_logits),
                   "d_fake_logits": tf.nn.compute_average_loss(d_fake_logits)}
            d_total = d_loss
            if self.penalty is not None:
                penalty = tf.nn.compute_average_loss(self.penalty(
                    d_fn, real, tf.stop_gradient(fake), seed=noise.fold_in(seed, _PENALTY)))
                d_total += penalty
                aux["penalty"] = penalty
            aux["d_total"] = d_total
            return [g_loss, d_total], aux

        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        (g_grads, d_grads), consensus, logs = consensus_gradients(
            compute_losses, [g_vars, d_vars], gamma=self.consensus_gamma,
            all_reduce=_all_reduce_sum)
        if self.instance_noise is not None:
            logs["instance_noise_sigma"] = self._replica_share(self.instance_noise(self.step))
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        logs = _all_reduce_sum(logs)
        logs["consensus"] = consensus
        logs["d_grad_norm"] = _global_norm(d_grads)
        logs["g_grad_norm"] = _global_norm(g_grads)
        return logs

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
