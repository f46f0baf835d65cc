"""Keras' training API for the GAN: `compile()` and `fit()` run `GAN.train_step`, the step of the
library's own loop (tf_convgan.training.loop.train), under Keras' distribution, callbacks and
`steps_per_execution`.

Dataset contract of `fit(x)`: `x` is a `tf.data.Dataset` of batches of images [N, H, W, C]
(float, in [-1, 1]), or of (images, labels) pairs with integer class ids labels [N]
(unconditional GANs ignore labels). Every batch has the same static size N (batch with
`drop_remainder=True`), a multiple of GAN.d_steps * replicas. With d_steps = d, a batch feeds one
GAN step: it is read as rows of d consecutive images, real[j, k] = images[j * d + k], and D's
sub-step k takes real[:, k] (B = N / d images: the images k, k + d, k + 2d, ...), G's step the
labels of the last sub-step. This is exactly the layout of `data.make_input_pipeline` (element
(j, k) of a batch is stream example j * d + k), so `fit` on `source.dataset(seed=s)` batched by
B * d equals the loop's `train` with batch_size B and seed s. Under a strategy, each replica
takes contiguous rows of [B, d] (Keras' split of the batch), as `training.distributed` does.

Every random draw of a step is a function of (GAN.seed, GAN.step) as in the loop, and
GAN.step is a weight of the model: a `fit` resumed from weights (BackupAndRestore,
ModelCheckpoint(save_weights_only=True)) continues exactly.
"""
import keras
import tensorflow as tf

from tf_convgan.errors import ConfigError
from tf_convgan.gan import checks
from tf_convgan.gan.distribution import use_pre_reduced_gradients, with_loss_scaling
from tf_convgan.objectives import losses as losses_lib
from tf_convgan.objectives import penalties as penalties_lib


class KerasTrainingAPI:
    """Mixin of GAN: `compile` and `fit` as a Keras user calls them (see the module docstring)."""

    def compile(self, g_optimizer=None, d_optimizer=None, *, loss=None, penalty="unchanged",
                steps_per_execution=1, jit_compile=False, run_eagerly=False, **kwargs):
        """Configures `fit`: the optimizers, the loss and the penalty (the GAN's own when not
        given; penalty=None removes it), and Keras' `steps_per_execution`, `jit_compile` (XLA
        for each step) and `run_eagerly`."""
        if kwargs:
            raise ConfigError(
                f"GAN.compile does not take {', '.join(sorted(kwargs))}: a GAN has two optimizers "
                f"(g_optimizer=, d_optimizer=), a GANLoss (loss=) and a penalty (penalty=)")
        if loss is not None:
            if not isinstance(loss, losses_lib.GANLoss):
                raise ConfigError(f"GAN.compile(loss=...) must be a GANLoss such as "
                                  f"tf_convgan.objectives.losses.non_saturating(), got {loss!r}")
            self.loss = loss
        if penalty != "unchanged":
            checks.check_penalty(penalty)
            self.penalty = penalty
            self.penalty_takes_step = penalties_lib.takes_step(penalty)
        for name, optimizer, model in (("g_optimizer", g_optimizer, self.generator),
                                       ("d_optimizer", d_optimizer, self.discriminator)):
            if optimizer is None:
                continue
            if not isinstance(optimizer, keras.optimizers.Optimizer):
                raise ConfigError(f"GAN.compile({name}=...) must be a keras.optimizers.Optimizer, "
                                  f"got {optimizer!r}")
            if self.loss_scaling:
                optimizer = with_loss_scaling(optimizer)
            use_pre_reduced_gradients(optimizer)
            with self.distribute_strategy.scope():
                optimizer.build(model.trainable_variables)
            setattr(self, name, optimizer)
        checks.check_terms(instance_noise=self.instance_noise, consistency=self.consistency,
                           latent_consistency=self.latent_consistency,
                           lazy_interval=self.lazy_interval, penalty=self.penalty,
                           d_optimizer=self.d_optimizer, discriminator=self.discriminator)
        if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
            raise ConfigError(f"GAN.compile(steps_per_execution=...) must be a positive "
                              f"integer, got {steps_per_execution!r}")
        if not isinstance(jit_compile, bool):
            raise ConfigError(f"GAN.compile(jit_compile=...) must be True or False, got "
                              f"{jit_compile!r}")
        loss = self.loss
        # Keras' compile without its optimizer and loss (the GAN has two optimizers and its
        # own GANLoss; Keras' `loss` attribute is the GAN's).
        # XLA as the loop compiles it: train_step alone, inside Keras' distributed function
        # (Keras' own jit_compile would compile strategy.run too, and refuses under op
        # determinism).
        keras.Model.compile(self, optimizer=None, loss=None, run_eagerly=run_eagerly,
                            steps_per_execution=steps_per_execution, jit_compile=False)
        self.loss = loss
        self._xla_step = jit_compile and not run_eagerly

    def fit(self, x=None, *, epochs=1, steps_per_epoch=None, callbacks=None, verbose="auto",
            initial_epoch=0, **kwargs):
        """Trains with `train_step` on the batches of `x` (see the module docstring for the
        dataset contract); Keras' arguments and callbacks otherwise. Returns the History."""
        unsupported = sorted(k for k, v in kwargs.items() if v is not None)
        if unsupported:
            raise ConfigError(f"GAN.fit does not take {', '.join(unsupported)}: pass a dataset "
                              f"of images or (images, labels) batches as x")
        if not getattr(self, "compiled", False):
            raise ConfigError("GAN.fit needs GAN.compile() first (no argument is required)")
        dataset = self._library_batches(x)
        return keras.Model.fit(self, dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                               callbacks=callbacks, verbose=verbose, initial_epoch=initial_epoch,
                               shuffle=False)

    def make_train_function(self, force=False):
        """Keras' distributed function around `train_step`, whose logs gain `loss`: D's total
        plus G's total loss, the value Keras' callbacks watch (TerminateOnNaN, monitor='loss')."""
        if self.train_function is not None and not force:
            return self.train_function

        train_step = (tf.function(self.train_step, jit_compile=True) if self._xla_step
                      else self.train_step)

        def step(data):
            logs = dict(train_step(data))
            logs["loss"] = logs["d_total"] + logs["g_loss"] + logs.get("zcr_g", 0.0)
            return logs
        self.train_function = self._make_function(step)
        return self.train_function

    def _maybe_symbolic_build(self, *args, **kwargs):
        """The GAN's networks and optimizers are built at construction; Keras' symbolic build
        (a call of the model on a training batch) does not apply."""

    def _library_batches(self, x):
        """`x` as the loop's elements (real [B, d_steps, ...], int32 labels [B, d_steps])."""
        if not isinstance(x, tf.data.Dataset):
            raise ConfigError(f"GAN.fit(x) must be a tf.data.Dataset of image batches [N, H, W, C] "
                              f"or (images, labels) batches, got {type(x).__name__}")
        spec = x.element_spec
        if isinstance(spec, tuple) and len(spec) == 2:
            images_spec, labels_spec = spec
        elif isinstance(spec, tf.TensorSpec):
            images_spec, labels_spec = spec, None
        else:
            raise ConfigError(f"GAN.fit(x): the dataset's elements must be image batches or "
                              f"(images, labels) pairs, got elements {spec}")
        shape = images_spec.shape
        expected = self._example_shape()
        if shape.rank is None or shape.rank != len(expected) + 1 or tuple(shape[1:]) != expected:
            raise ConfigError(f"GAN.fit(x): batches must be [N, {', '.join(map(str, expected))}] "
                              f"(the generator's output), got {shape}")
        n = shape[0]
        replicas = self.distribute_strategy.num_replicas_in_sync
        if n is None:
            raise ConfigError("GAN.fit(x): the batch size must be static: batch the dataset "
                              "with drop_remainder=True")
        if n % (self.d_steps * replicas):
            raise ConfigError(f"GAN.fit(x): the batch size {n} must be a multiple of "
                              f"GAN.d_steps * replicas = {self.d_steps} * {replicas}")
        if labels_spec is not None and (labels_spec.shape.rank != 1 or
                                        not labels_spec.dtype.is_integer):
            raise ConfigError(f"GAN.fit(x): labels must be integer class ids [N], got "
                              f"{labels_spec}")
        rows, d = n // self.d_steps, self.d_steps

        def to_rows(images, labels=None):
            if labels is None:
                labels = tf.zeros([n], tf.int32)
            return (tf.reshape(tf.cast(images, tf.float32), [rows, d] + list(expected)),
                    tf.reshape(tf.cast(labels, tf.int32), [rows, d]))

        if labels_spec is None:
            return x.map(lambda images: to_rows(images))
        return x.map(to_rows)

    def _example_shape(self):
        shape = getattr(self.generator, "data_shape", None)
        if shape is None:
            shape = (self.generator.resolution, self.generator.resolution, 3)
        return tuple(shape)
