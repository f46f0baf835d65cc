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
    2020), as part of D's regular update (no extra optimizer step, unlike StyleGAN2), so
    optimizers.lazy_adam's StyleGAN2 values (lr * c, beta ** c, c = k / (k + 1)) compensate
    nothing here: they only lower D's learning rate and raise its betas. Under MirroredStrategy a
    penalty that all-reduces (dragan with std_over='batch') cannot run inside that tf.cond;
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

from tf_convgan import noise
from tf_convgan.errors import ConfigError
from tf_convgan.gan import checks
from tf_convgan.gan.critic import Critic
from tf_convgan.gan.keras_api import KerasTrainingAPI
from tf_convgan.gan.distribution import (all_reduce_sum, dense, global_norm, loss_scale,
                                         replica_share, scaled, use_pre_reduced_gradients,
                                         with_loss_scaling)
from tf_convgan.gan.optimizers import torch_rmsprop
from tf_convgan.objectives import consistency as consistency_lib
from tf_convgan.objectives import losses as losses_lib
from tf_convgan.objectives import penalties as penalties_lib
from tf_convgan.objectives.consensus import consensus_gradients

# Purposes folded into the per-step seed, so that no two draws share a stream.
_Z_D, _PENALTY, _Z_G, _CONSISTENCY, _ZCR, _INSTANCE_NOISE = 0, 1, 2, 3, 4, 5


@gin.configurable(denylist=["seed"])  # train.seed is the run's one seed (build_gan)
class GAN(KerasTrainingAPI, keras.Model):
    """Generator, discriminator and EMA generator trained by one composed `train_step`, by the
    library's loop (training.loop.train) or by Keras' `compile()` / `fit()` (gan.keras_api).

    Args:
      generator, discriminator, generator_ema: built Keras models (see tf_convgan.networks);
        generator_ema has the generator's architecture.
      loss: a `losses.GANLoss` (e.g. `@non_saturating()` in gin).
      penalty: a penalty function from `tf_convgan.objectives.penalties` (e.g. `@r1`), or None;
        one with a `step` parameter (`@roth`, for its annealed gamma) is passed the step counter.
      d_steps: discriminator steps per generator step, each on its own real data.
      ema_beta: EMA decay of the generator copy (0.999 as GAN_stability; 0 copies G).
      g_optimizer, d_optimizer: Keras optimizers (default PyTorch's RMSprop lr 1e-4, the
        paper's: optimizers.torch_rmsprop()).
      seed: seeds every random draw of training together with the step counter; train()
        passes train.seed here (training.loop.build_gan); not a gin parameter.
      instance_noise: a schedule step -> sigma (e.g. `@sigma_schedule`), or None.
      consistency: a D-side consistency term from `tf_convgan.objectives.consistency` (`@cr`,
        `@bcr`), or None.
      latent_consistency: `@zcr()` (a `consistency.LatentConsistency`), or None.
      lazy_interval: k >= 1, evaluate the penalty every k-th D step with weight k; None: every step.
      consensus_gamma: gamma >= 0 of ConOpt's consensus term (simultaneous updates), or None.
      noise_source: where every random draw of the step comes from (see tf_convgan.noise);
        default: noise.PhiloxNoise(), stateless and the same under XLA.
      update_rule: 'alternating' (GAN_stability's and the default: d_steps D updates, then G's
        at the updated D) or 'simultaneous' (simGD: both players' gradients at the same state,
        then both applied; needs d_steps = 1).
      d_weight_clip: c > 0 clips every trainable weight of D to [-c, c] after each D update
        (the original WGAN, Arjovsky et al. 2017: c = 0.01); None: no clipping.
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
                 update_rule: str = "alternating",
                 d_weight_clip: Optional[float] = None,
                 **kwargs):
        super().__init__(**kwargs)
        loss = losses_lib.non_saturating() if loss is None else loss
        checks.check_basics(d_steps=d_steps, ema_beta=ema_beta, loss=loss, generator=generator,
                            discriminator=discriminator, generator_ema=generator_ema)
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
        self.noise_source = noise.PhiloxNoise() if noise_source is None else noise_source
        self.d_weight_clip = checks.check_weight_clip(d_weight_clip)
        self.simultaneous = checks.check_update_rule(update_rule, consensus_gamma=consensus_gamma,
                                                     d_steps=d_steps)
        self.conditional = generator.num_classes > 1
        self.step_counter = keras.Variable(0, dtype="int64", trainable=False,
                                           aggregation="only_first_replica", name="step")
        checks.check_penalty(penalty)
        self.penalty_takes_step = penalties_lib.takes_step(penalty)
        checks.check_terms(instance_noise=instance_noise, consistency=consistency,
                           latent_consistency=latent_consistency, lazy_interval=lazy_interval,
                           penalty=penalty, d_optimizer=self.d_optimizer,
                           discriminator=discriminator)
        # mixed_float16: dynamic loss scaling, so that small float16 gradients do not flush to 0.
        self.loss_scaling = discriminator.dtype_policy.name == "mixed_float16"
        self.consensus_gamma = checks.check_consensus(
            consensus_gamma, d_steps=d_steps, consistency=consistency,
            latent_consistency=latent_consistency, lazy_interval=lazy_interval,
            loss_scaling=self.loss_scaling)
        if self.loss_scaling:
            self.g_optimizer = with_loss_scaling(self.g_optimizer)
            self.d_optimizer = with_loss_scaling(self.d_optimizer)
        for optimizer, model in ((self.g_optimizer, generator), (self.d_optimizer, discriminator)):
            use_pre_reduced_gradients(optimizer)
            optimizer.build(model.trainable_variables)
        generator_ema.set_weights(generator.get_weights())
        self.built = True  # for Keras' save_weights / load_weights (gan.keras_api)

    @property
    def step(self):
        """Completed training steps (checkpointed). Its own counter rather than the optimizer's
        update count: a loss-scaled optimizer does not count the steps it skips."""
        return self.step_counter

    def call(self, z, labels=None, training=False):
        """Samples of the EMA generator."""
        return self.generator_ema(z, labels, training=training)

    def _labels(self, labels):
        return labels if self.conditional else tf.zeros_like(labels)

    def _critic(self, labels, *, training=True):
        """D for the loss and the penalties. Under loss scaling (mixed_float16, scale S) the
        penalties. input gradients are taken of sqrt(S) * D (`_input_gradient_scale`)."""
        return Critic(self.discriminator, labels, training=training,
                      loss_scale=self._input_gradient_scale())

    def _input_gradient_scale(self):
        """sqrt(S) under loss scaling, else None. A gradient penalty's weight gradient passes
        float16 twice: grad_x D (the first backward pass, scaled by the seed s) and the double
        backward pass, whose upstream is gamma * grad_x D / B, scaled by S / s (the penalty is
        scaled by S, the gradient unscaled by s before it is squared); its product carries S, as
        the optimizer expects. s = S would leave the double backward pass unscaled (it flushes to
        zero in float16 for input gradients ~1e-6); s = sqrt(S) scales both passes by sqrt(S)."""
        if not self.loss_scaling:
            return None
        return tf.sqrt(tf.cast(self.d_optimizer.dynamic_scale, tf.float32))

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
        else:
            logs = self._players_step(real, labels, step_seed)
        self._update_ema()
        self.step_counter.assign_add(1)
        return logs

    def _players_step(self, real, labels, step_seed):
        """Alternating (default): d_steps `discriminator_step`s, then `generator_step` at the
        updated D. Simultaneous (d_steps = 1): D's and G's gradients both at the current state,
        then both applied."""
        d_seeds = [noise.fold_in(step_seed, k) for k in range(self.d_steps)]
        g_seed = noise.fold_in(step_seed, self.d_steps)
        if self.simultaneous:
            d_logs, apply_d = self._discriminator_update(real[:, 0], labels[:, 0], d_seeds[0])
            g_logs, apply_g = self._generator_update(labels[:, -1], g_seed)
            apply_d()
            apply_g()
            d_logs = [d_logs]
        else:
            d_logs = [self.discriminator_step(real[:, k], labels[:, k], d_seeds[k])
                      for k in range(self.d_steps)]
            g_logs = self.generator_step(labels[:, -1], g_seed)
        logs = {name: tf.add_n([l[name] for l in d_logs]) / self.d_steps for name in d_logs[0]}
        logs.update(g_logs)
        return logs

    def _noisy(self, images, seed):
        """images + sigma(step) * eps when instance noise is on (fresh eps per seed)."""
        if self.instance_noise is None:
            return images
        sigma = tf.cast(self.instance_noise(self.step), images.dtype)  # a tensor: traced step
        eps = noise.normal(images.shape.as_list(), noise.fold_in(seed, _INSTANCE_NOISE),
                           images.dtype)
        return images + sigma * eps

    def _fakes(self, z, labels, dtype):
        return tf.stop_gradient(tf.cast(self.generator(z, labels, training=True), dtype))

    def discriminator_step(self, real, labels, seed):
        """One D update of `train_step` (which makes d_steps of them per step) on real [B, ...],
        int32 labels [B] (zeros for an unconditional GAN) and the sub-step's seed ([2] int64;
        train_step's k-th is noise.fold_in([GAN.seed, step], k)); returns its logs, summed over
        replicas, from before the update. Draws from `self.noise_source`; does not advance the
        step counter, G or the EMA generator."""
        with noise.source_scope(self.noise_source):
            logs, apply = self._discriminator_update(real, labels, seed)
            apply()
        return logs

    def _discriminator_update(self, real, labels, seed):
        """(logs, a function that applies D's update), the gradients taken now."""
        z = noise.normal([real.shape[0], self.generator.z_dim], noise.fold_in(seed, _Z_D))
        clean_fake = self._fakes(z, labels, real.dtype)
        real = self._noisy(real, noise.fold_in(seed, 0))
        fake = self._noisy(clean_fake, noise.fold_in(seed, 1))
        d_fn = self._critic(labels)
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            d_real_logits, real_gradients = d_fn.logits_with_input_gradients(real)
            d_fake_logits = d_fn(fake)
            d_loss = tf.nn.compute_average_loss(self.loss.d_loss(d_real_logits, d_fake_logits))
            logs = {"d_loss": d_loss,
                    "d_real_logits": tf.nn.compute_average_loss(d_real_logits),
                    "d_fake_logits": tf.nn.compute_average_loss(d_fake_logits)}
            terms = self._discriminator_terms(d_fn, real, fake, clean_fake, z, labels, seed,
                                              real_gradients)
            for name, term in terms:
                # in the loss's dtype (with float64 networks a term can be float64 while the
                # loss of a network with float32 logits is float32)
                logs[name] = tf.nn.compute_average_loss(tf.cast(term(), d_loss.dtype))
            d_total = tf.add_n([d_loss] + [logs[name] for name, _ in terms])
            d_total_scaled = scaled(self.d_optimizer, d_total)  # mixed_float16: loss scaling
        grads = dense(tape.gradient(d_total_scaled, variables))
        if self.lazy_interval is not None:
            logs["penalty"], penalty_grads = self._lazy_penalty(
                real, fake, noise.fold_in(seed, _PENALTY), labels, variables)
            grads = [g + p for g, p in zip(grads, penalty_grads)]
            d_total += logs["penalty"]
        logs.update(d_total=d_total, **self._sigma_log())
        logs, apply = self._reduce(self.d_optimizer, grads, variables, logs,
                                   norm_name="d_grad_norm")
        if self.d_weight_clip is None:
            return logs, apply

        def apply_and_clip():
            apply()
            self._clip_discriminator()
        return logs, apply_and_clip

    def _discriminator_terms(self, d_fn, real, fake, clean_fake, z, labels, seed,
                             real_gradients):
        """D's optional terms as (log name, per-example term) pairs; each term is a function,
        evaluated inside D's gradient tape."""
        terms = []
        if self.penalty is not None and self.lazy_interval is None:
            terms.append(("penalty", lambda: self.penalty(
                d_fn, real, fake, seed=noise.fold_in(seed, _PENALTY),
                real_gradients=real_gradients, loss_scale=d_fn.loss_scale,
                **self._penalty_step())))
        if self.consistency is not None:
            terms.append(("cr", lambda: self.consistency(
                d_fn, real, fake, seed=noise.fold_in(seed, _CONSISTENCY))))
        if self.latent_consistency is not None:
            # zCR compares D on the generator's outputs themselves (no instance noise).
            z_perturbed = self.latent_consistency.perturb(z, noise.fold_in(seed, _ZCR))
            terms.append(("zcr_d", lambda: self.latent_consistency.d_term(
                d_fn, clean_fake, self._fakes(z_perturbed, labels, clean_fake.dtype))))
        return terms

    def _penalty_step(self):
        """{'step': the step counter} for a penalty that takes it (penalties.takes_step)."""
        return {"step": self.step} if self.penalty_takes_step else {}

    def _sigma_log(self):
        if self.instance_noise is None:
            return {}
        return {"instance_noise_sigma": replica_share(self.instance_noise(self.step))}

    def _reduce(self, optimizer, grads, variables, logs, *, norm_name):
        """Sums the gradients and the logs over replicas; returns (logs with the gradients' norm
        unscaled by the loss scale of this update, a function that applies the update)."""
        grads = all_reduce_sum(grads)
        logs = all_reduce_sum(logs)
        logs[norm_name] = global_norm(grads) / loss_scale(optimizer)  # before the update

        def apply():
            optimizer.apply_gradients(zip(grads, variables))
        return logs, apply

    def _lazy_penalty(self, real, fake, seed, labels, variables):
        """Lazy regularization: on D steps whose global index (d_optimizer.iterations) is a
        multiple of k, (k * mean(penalty), its gradient w.r.t. D's variables); on the others
        (0, zeros) without evaluating the penalty (tf.cond).

        The gradient is taken inside the branch and added to the loss's gradient, so that no
        gradient flows through the tf.cond itself: XLA cannot differentiate through a cond whose
        branches need compile-time constants (a transpose's permutation). The branch runs D with
        training=False: a state write inside a cond branch (the spectral-norm u, aggregated over
        replicas) is not supported under MirroredStrategy. For every D normalization but batch
        norm D's output is the same (SN refines u in every forward pass and uses it; only the
        write-back is skipped); a batch-norm D would be penalised with its moving statistics
        while its loss uses the batch's, so checks.check_lazy_discriminator refuses it."""
        k = self.lazy_interval

        def apply():
            critic = self._critic(labels, training=False)
            with tf.GradientTape() as tape:
                penalty = float(k) * tf.nn.compute_average_loss(self.penalty(
                    critic, real, fake, seed=seed, loss_scale=critic.loss_scale,
                    **self._penalty_step()))
                penalty_scaled = scaled(self.d_optimizer, penalty)
            grads = dense(tape.gradient(penalty_scaled, variables))
            return [penalty] + [tf.zeros_like(v.value) if g is None else g
                                for g, v in zip(grads, variables)]

        def skip():
            return [tf.constant(0.0)] + [tf.zeros_like(v.value) for v in variables]

        due = tf.equal(tf.math.floormod(self.d_optimizer.iterations, k), 0)
        out = tf.cond(due, apply, skip)
        return out[0], out[1:]

    def generator_step(self, labels, seed):
        """The G update of `train_step` on int32 labels [B] (zeros for an unconditional GAN) and
        the sub-step's seed ([2] int64; train_step's is noise.fold_in([GAN.seed, step],
        d_steps)); returns its logs, summed over replicas, from before the update. Draws from
        `self.noise_source`; does not advance the step counter, D or the EMA generator."""
        with noise.source_scope(self.noise_source):
            logs, apply = self._generator_update(labels, seed)
            apply()
        return logs

    def _generator_update(self, labels, seed):
        """(logs, a function that applies G's update), the gradients taken now."""
        z = noise.normal([labels.shape[0], self.generator.z_dim], noise.fold_in(seed, _Z_G))
        variables = self.generator.trainable_variables
        logs = {}
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            d_fake_logits = tf.cast(self.discriminator(self._noisy(fake, seed), labels,
                                                       training=True), tf.float32)
            logs["g_loss"] = tf.nn.compute_average_loss(self.loss.g_loss(d_fake_logits))
            g_total = logs["g_loss"]
            if self.latent_consistency is not None:
                z_perturbed = self.latent_consistency.perturb(z, noise.fold_in(seed, _ZCR))
                fake_perturbed = self.generator(z_perturbed, labels, training=True)
                # in the loss's dtype, as D's terms (float16 / bfloat16 images under mixed
                # precision; the loss of float32 logits is float32)
                logs["zcr_g"] = tf.nn.compute_average_loss(tf.cast(
                    self.latent_consistency.g_term(fake, fake_perturbed), g_total.dtype))
                g_total += logs["zcr_g"]
            g_total_scaled = scaled(self.g_optimizer, g_total)
        grads = dense(tape.gradient(g_total_scaled, variables))
        return self._reduce(self.g_optimizer, grads, variables, logs, norm_name="g_grad_norm")

    def _consensus_step(self, real, labels, seed):
        """ConOpt: one simultaneous update of D and G, each on its loss + gamma/2 ||v||^2 with
        v = (grad_G L_G, grad_D L_D) (L_D including the penalty, when there is one)."""
        z = noise.normal([real.shape[0], self.generator.z_dim], noise.fold_in(seed, _Z_D))
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
                    d_fn, real, tf.stop_gradient(fake), seed=noise.fold_in(seed, _PENALTY),
                    **self._penalty_step()))
                d_total += penalty
                aux["penalty"] = penalty
            aux["d_total"] = d_total
            return [g_loss, d_total], aux

        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        (g_grads, d_grads), consensus, logs = consensus_gradients(
            compute_losses, [g_vars, d_vars], gamma=self.consensus_gamma,
            all_reduce=all_reduce_sum)
        logs.update(self._sigma_log())
        self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        if self.d_weight_clip is not None:  # as after the normal D update (projected ConOpt)
            self._clip_discriminator()
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        logs = all_reduce_sum(logs)
        logs["consensus"] = consensus
        logs["d_grad_norm"] = global_norm(d_grads)
        logs["g_grad_norm"] = global_norm(g_grads)
        return logs

    def _clip_discriminator(self):
        """w <- clip(w, -c, c) for D's trainable weights, once per variable in cross-replica
        context (the weights are identical on every replica after the update)."""
        c = self.d_weight_clip

        def clip(distribution, variables):
            for var in variables:
                distribution.extended.update(
                    var, lambda v: v.assign(tf.clip_by_value(v, -c, c)), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            clip, tf.distribute.get_strategy(),
            [v.value for v in self.discriminator.trainable_variables])

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
