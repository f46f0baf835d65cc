"""Consistency regularization: CR (Zhang et al. 2020), bCR and zCR (Zhao et al. 2021, "Improved
Consistency Regularization for GANs"; ICR = bCR + zCR). Pure functions, one value per example.

D-side image terms (`GAN.consistency`) share the penalties' signature

    term(d_fn, real, fake, seed=None, *, <hyperparameters>) -> [B]

  d_fn: images -> logits [B] (D's output before any activation, labels bound);
  seed: int [2], seeds the augmentation T, drawn for the global batch (see augment.py);
  the values are already weighted; the train step averages them over the global batch and adds
  the result to D's loss. Gradients flow through both D(x) and D(T(x)).

  CR  (Zhang et al. 2020, Algorithm 1):  lambda_cr * (D(x) - D(T(x)))^2           on real x
  bCR (Zhao et al. 2021, sec. 3.1):      lambda_real * (D(x) - D(T(x)))^2
                                       + lambda_fake * (D(G(z)) - D(T(G(z))))^2   (fakes fixed)

zCR (Zhao et al. 2021, sec. 3.2) perturbs the latent, z~ = z + dz with dz ~ N(0, sigma_noise^2 I):

  D term:  lambda_dis * (D(G(z)) - D(G(z~)))^2        (added to D's loss, G fixed)
  G term: -lambda_gen * mean_j (G(z)_j - G(z~)_j)^2   (added to G's loss: G is pushed to react to
                                                      dz, against mode collapse)

Reductions. The G term is the squared difference *averaged* over the example's elements j (all
non-batch axes, H * W * C of an image), not summed: the convention of StudioGAN (Kang et al.),
a public implementation of ICR, whose G term is -lambda_gen * MSELoss(G(z), G(z~)), the mean
over every element; Zhao et al. 2021's lambda_gen = 0.5 goes with it. A sum over pixels
would weigh the term 3072 times more at 32x32x3 and make lambda_gen resolution-dependent. The D term
is on D's logits, one scalar per example, so there is nothing to reduce (StudioGAN: MSELoss of the
[B] logits). Both return one value per example; the train step averages them over the global batch
(tf.nn.compute_average_loss), which is the batch part of StudioGAN's mean.

`zcr(...)` is gin-configurable and returns a `LatentConsistency` of the three pieces (note the
parentheses in gin: `GAN.latent_consistency = @zcr()`), which the train step composes.

Papers' settings on CIFAR-10: CR lambda = 10 (Zhang et al. 2020, Algorithm 1); ICR
lambda_real = lambda_fake = 10, lambda_dis = 5, lambda_gen = 0.5, sigma_noise = 0.03 (Zhao et al.
2021), with the reductions above.
"""
from typing import Callable, NamedTuple

import gin
import tensorflow as tf

from tf_convgan.objectives import augment as augment_lib
from tf_convgan import noise
from tf_convgan.errors import ConfigError, check_nonnegative

_REAL, _FAKE = 0, 1


def _mean_square(x):
    """Per-example mean over all non-batch axes of x^2: [B, ...] -> [B]."""
    return tf.reduce_mean(tf.square(x), axis=list(range(1, x.shape.rank)))


def _check_augment(name, augment):
    if not callable(augment):
        raise ConfigError(f"{name} must be an augmentation such as @shift_flip, got {augment!r}")


def consistency_gap(d_fn, x, seed, augment):
    """(D(x) - D(T(x)))^2 per example."""
    return tf.square(d_fn(x) - d_fn(augment(x, seed)))


@gin.configurable
def cr(d_fn, real, fake, seed=None, *, lambda_cr=10.0, augment=augment_lib.shift_flip):
    """CR: lambda_cr * (D(x) - D(T(x)))^2 on real data (Zhang et al. 2020)."""
    del fake
    check_nonnegative("cr.lambda_cr", lambda_cr)
    _check_augment("cr.augment", augment)
    return lambda_cr * consistency_gap(d_fn, real, _seed(seed), augment)


@gin.configurable
def bcr(d_fn, real, fake, seed=None, *, lambda_real=10.0, lambda_fake=10.0,
        augment=augment_lib.shift_flip):
    """bCR: lambda_real (D(x) - D(T(x)))^2 + lambda_fake (D(G(z)) - D(T(G(z))))^2."""
    check_nonnegative("bcr.lambda_real", lambda_real)
    check_nonnegative("bcr.lambda_fake", lambda_fake)
    _check_augment("bcr.augment", augment)
    seed = _seed(seed)
    return (lambda_real * consistency_gap(d_fn, real, noise.fold_in(seed, _REAL), augment)
            + lambda_fake * consistency_gap(d_fn, fake, noise.fold_in(seed, _FAKE), augment))


def _seed(seed):
    return tf.constant([0, 0], tf.int64) if seed is None else seed


def zcr_d(d_fn, fake, fake_perturbed, *, lambda_dis):
    """zCR's D term: lambda_dis * (D(G(z)) - D(G(z + dz)))^2 per example (D's logit is one scalar
    per example: no reduction)."""
    check_nonnegative("zcr.lambda_dis", lambda_dis)
    return lambda_dis * tf.square(d_fn(fake) - d_fn(fake_perturbed))


def zcr_g(fake, fake_perturbed, *, lambda_gen):
    """zCR's G term: -lambda_gen * mean_j (G(z)_j - G(z + dz)_j)^2 per example, the mean over the
    example's elements j (all non-batch axes): StudioGAN's MSELoss convention, with which Zhao et
    al. 2021's lambda_gen = 0.5 was used (see the module docstring)."""
    check_nonnegative("zcr.lambda_gen", lambda_gen)
    return -lambda_gen * _mean_square(fake - fake_perturbed)


def perturb_latent(z, seed, *, sigma_noise):
    """z + dz, dz ~ N(0, sigma_noise^2 I), drawn for the global batch (replica rows)."""
    check_nonnegative("zcr.sigma_noise", sigma_noise)
    return z + sigma_noise * noise.normal(z.shape.as_list(), seed, z.dtype)


class LatentConsistency(NamedTuple):
    """zCR's pieces with their hyperparameters bound (see `zcr`)."""
    perturb: Callable   # (z, seed) -> z + dz
    d_term: Callable    # (d_fn, fake, fake_perturbed) -> [B]
    g_term: Callable    # (fake, fake_perturbed) -> [B]


@gin.configurable
def zcr(*, lambda_dis=5.0, lambda_gen=0.5, sigma_noise=0.03) -> LatentConsistency:
    """zCR (Zhao et al. 2021) with the given weights; hyperparameters checked here, eagerly."""
    check_nonnegative("zcr.lambda_dis", lambda_dis)
    check_nonnegative("zcr.lambda_gen", lambda_gen)
    check_nonnegative("zcr.sigma_noise", sigma_noise)
    return LatentConsistency(
        perturb=lambda z, seed: perturb_latent(z, seed, sigma_noise=sigma_noise),
        d_term=lambda d_fn, fake, fake_p: zcr_d(d_fn, fake, fake_p, lambda_dis=lambda_dis),
        g_term=lambda fake, fake_p: zcr_g(fake, fake_p, lambda_gen=lambda_gen))
