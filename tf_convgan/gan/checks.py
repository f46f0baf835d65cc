"""The GAN's arguments, checked eagerly at construction: a clear ConfigError naming the parameter
instead of an error inside the traced (and possibly compiled) step."""
import keras
import tensorflow as tf

from tf_convgan.errors import ConfigError, check_nonnegative
from tf_convgan.objectives import consistency as consistency_lib
from tf_convgan.objectives import losses as losses_lib
from tf_convgan.objectives import penalties as penalties_lib



def _seed():
    # Made when a GAN is built, not at import: a tensor made at import would start TensorFlow's
    # runtime before MultiWorkerMirroredStrategy can configure its collectives.
    return tf.constant([0, 0], tf.int64)


def check_basics(*, d_steps, ema_beta, loss, generator, discriminator, generator_ema):
    if isinstance(d_steps, bool) or not isinstance(d_steps, int) or d_steps < 1:
        raise ConfigError(f"GAN.d_steps must be an integer >= 1, got {d_steps!r}")
    if not 0.0 <= float(ema_beta) < 1.0:
        raise ConfigError(f"GAN.ema_beta must be in [0, 1), got {ema_beta!r}")
    if not isinstance(loss, losses_lib.GANLoss):
        raise ConfigError(
            f"GAN.loss must be a GANLoss such as @non_saturating() (note the parentheses), "
            f"got {loss!r}")
    if discriminator.num_classes != generator.num_classes:
        raise ConfigError(
            f"generator and discriminator must have the same num_classes, got "
            f"{generator.num_classes} and {discriminator.num_classes}")
    shapes = [tuple(w.shape) for w in generator.weights]
    if not shapes or shapes != [tuple(w.shape) for w in generator_ema.weights]:
        raise ConfigError("generator_ema must be a built copy of the generator's architecture")


def check_penalty(penalty):
    """Runs the penalty once, eagerly, on a 1-D linear D: its hyperparameter checks raise now."""
    if penalty is None:
        return
    if not callable(penalty):
        raise ConfigError(f"GAN.penalty must be a penalty function such as @r1, got {penalty!r}")
    x = tf.ones([1, 1])
    step = {"step": tf.constant(0, tf.int64)} if penalties_lib.takes_step(penalty) else {}
    penalty(lambda images: tf.reduce_sum(images, axis=1), x, x, seed=_seed(), **step)


def _example_shape(discriminator):
    shape = getattr(discriminator, "data_shape", None)
    if shape is None:
        resolution = getattr(discriminator, "resolution", 8)
        shape = (resolution, resolution, 3)
    return [1] + list(shape)


def uses_batch_norm(network):
    """Whether any layer of `network` (nested layers included) is a batch normalization."""
    return any(isinstance(layer, keras.layers.BatchNormalization)
               for layer in network._flatten_layers(include_self=True, recursive=True))


def check_terms(*, instance_noise, consistency, latent_consistency, lazy_interval, penalty,
                d_optimizer, discriminator):
    """The optional terms' hyperparameters (evaluated once, eagerly) and their types."""
    if instance_noise is not None:
        if not callable(instance_noise):
            raise ConfigError(f"GAN.instance_noise must be a sigma schedule such as "
                              f"@sigma_schedule, got {instance_noise!r}")
        check_nonnegative("GAN.instance_noise(0)", float(instance_noise(0)))
    if consistency is not None:
        if not callable(consistency):
            raise ConfigError(f"GAN.consistency must be a consistency term such as @bcr, "
                              f"got {consistency!r}")
        x = tf.zeros(_example_shape(discriminator))
        consistency(lambda images: tf.reduce_sum(images, axis=list(range(1, x.shape.rank))),
                    x, x, seed=_seed())
    if latent_consistency is not None and not isinstance(
            latent_consistency, consistency_lib.LatentConsistency):
        raise ConfigError(f"GAN.latent_consistency must be @zcr() (note the parentheses), got "
                          f"{latent_consistency!r}")
    if lazy_interval is not None:
        k = lazy_interval
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"GAN.lazy_interval must be an integer >= 1 or None, got {k!r}")
        if penalty is None:
            raise ConfigError("GAN.lazy_interval needs a GAN.penalty to apply lazily")
        if uses_batch_norm(discriminator):
            raise ConfigError(
                "GAN.lazy_interval cannot be used with a batch-norm discriminator (its lazy "
                "penalty would see the moving statistics, its loss the batch's: a different D); "
                "set GAN.lazy_interval = None or another discriminator normalization")
    d_interval = getattr(d_optimizer, "lazy_interval", None)
    if d_interval is not None and d_interval != lazy_interval:
        raise ConfigError(f"GAN.d_optimizer is lazy_adam with interval {d_interval} but "
                          f"GAN.lazy_interval is {lazy_interval!r}: set both to the same k")


def check_consensus(consensus_gamma, *, d_steps, consistency, latent_consistency, lazy_interval,
                    loss_scaling):
    """ConOpt's gamma and the terms it cannot combine with; returns gamma as a float or None."""
    if consensus_gamma is None:
        return None
    check_nonnegative("GAN.consensus_gamma", consensus_gamma)
    if d_steps != 1:
        raise ConfigError(f"GAN.consensus_gamma (ConOpt) updates both players "
                          f"simultaneously and needs GAN.d_steps = 1, got {d_steps}")
    others = [name for name, value in (("consistency", consistency),
                                       ("latent_consistency", latent_consistency),
                                       ("lazy_interval", lazy_interval)) if value is not None]
    if others:
        raise ConfigError(f"GAN.consensus_gamma (ConOpt) does not combine with "
                          f"GAN.{others[0]}; set one of them to None")
    if loss_scaling:
        raise ConfigError("GAN.consensus_gamma (ConOpt) does not support mixed_float16 loss "
                          "scaling; use float32 or mixed_bfloat16")
    return float(consensus_gamma)


UPDATE_RULES = ("alternating", "simultaneous")


def check_update_rule(update_rule, *, consensus_gamma, d_steps):
    """Whether the players update simultaneously; ConOpt's step is simultaneous by itself."""
    if update_rule not in UPDATE_RULES:
        raise ConfigError(f"GAN.update_rule must be one of {UPDATE_RULES}, got {update_rule!r}")
    if update_rule == "simultaneous" and d_steps != 1:
        raise ConfigError(f"GAN.update_rule = 'simultaneous' takes both players' gradients at "
                          f"the same state and needs GAN.d_steps = 1, got {d_steps}")
    if update_rule == "simultaneous" and consensus_gamma is not None:
        raise ConfigError("GAN.update_rule = 'simultaneous' and GAN.consensus_gamma: ConOpt's "
                          "step is simultaneous already; leave update_rule at 'alternating'")
    return update_rule == "simultaneous"


def check_weight_clip(d_weight_clip):
    """None, or the positive float c of WGAN's weight clipping."""
    if d_weight_clip is None:
        return None
    check_nonnegative("GAN.d_weight_clip", d_weight_clip)
    if float(d_weight_clip) == 0.0:
        raise ConfigError("GAN.d_weight_clip must be > 0 (or None: no clipping), got 0")
    return float(d_weight_clip)
