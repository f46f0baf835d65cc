"""GAN losses: pure functions of the discriminator's logits, one value per example.

Each loss is a pair (d_loss, g_loss):
  d_loss(d_real_logits, d_fake_logits) -> [B]: what D minimises, real term + fake term per example;
  g_loss(d_fake_logits)                -> [B]: what G minimises.
Logits are D's raw outputs (pre-sigmoid) of shape [B]. The train step averages these per-example
values over the *global* batch (`tf.nn.compute_average_loss`).

Conventions (sigma = sigmoid, softplus(t) = log(1 + e^t)):
  minimax (saturating, Goodfellow et al. 2014):
      D: -log sigma(r) - log(1 - sigma(f)) = softplus(-r) + softplus(f)
      G:  log(1 - sigma(f))               = -softplus(f)
  non_saturating (the "standard" GAN of Mescheder et al. 2018 and GAN_stability):
      D: as minimax;  G: -log sigma(f) = softplus(-f)
  wasserstein (Arjovsky et al. 2017):  D: f - r;  G: -f
  hinge (Lim & Ye 2017; Miyato et al. 2018):  D: relu(1 - r) + relu(1 + f);  G: -f
  least_squares (Mao et al. 2017, a=0, b=c=1, on D's raw output):
      D: (r - 1)^2 / 2 + f^2 / 2;  G: (f - 1)^2 / 2
  least_squares_sigmoid (compare_gan's `least_squares`, the loss of Kurach et al. 2019's study):
      D: (sigma(r) - 1)^2 / 2 + sigma(f)^2 / 2;  G: (sigma(f) - 1)^2 / 2
"""
from typing import Callable, NamedTuple

import gin
import tensorflow as tf


class GANLoss(NamedTuple):
    """The two per-example objectives of a GAN loss."""
    d_loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    g_loss: Callable[[tf.Tensor], tf.Tensor]


def minimax_d_loss(d_real_logits, d_fake_logits):
    return tf.nn.softplus(-d_real_logits) + tf.nn.softplus(d_fake_logits)


def minimax_g_loss(d_fake_logits):
    return -tf.nn.softplus(d_fake_logits)


def non_saturating_g_loss(d_fake_logits):
    return tf.nn.softplus(-d_fake_logits)


def wasserstein_d_loss(d_real_logits, d_fake_logits):
    return d_fake_logits - d_real_logits


def wasserstein_g_loss(d_fake_logits):
    return -d_fake_logits


def hinge_d_loss(d_real_logits, d_fake_logits):
    return tf.nn.relu(1.0 - d_real_logits) + tf.nn.relu(1.0 + d_fake_logits)


def least_squares_d_loss(d_real_logits, d_fake_logits):
    return 0.5 * tf.square(d_real_logits - 1.0) + 0.5 * tf.square(d_fake_logits)


def least_squares_g_loss(d_fake_logits):
    return 0.5 * tf.square(d_fake_logits - 1.0)


def least_squares_sigmoid_d_loss(d_real_logits, d_fake_logits):
    return (0.5 * tf.square(tf.sigmoid(d_real_logits) - 1.0)
            + 0.5 * tf.square(tf.sigmoid(d_fake_logits)))


def least_squares_sigmoid_g_loss(d_fake_logits):
    return 0.5 * tf.square(tf.sigmoid(d_fake_logits) - 1.0)


@gin.configurable
def minimax() -> GANLoss:
    """The saturating minimax GAN loss."""
    return GANLoss(minimax_d_loss, minimax_g_loss)


@gin.configurable
def non_saturating() -> GANLoss:
    """The non-saturating GAN loss (the paper's and GAN_stability's "standard")."""
    return GANLoss(minimax_d_loss, non_saturating_g_loss)


@gin.configurable
def wasserstein() -> GANLoss:
    """The Wasserstein loss (pair it with a Lipschitz constraint: WGAN-GP, clipping or SN)."""
    return GANLoss(wasserstein_d_loss, wasserstein_g_loss)


@gin.configurable
def hinge() -> GANLoss:
    """The hinge loss, G as in Wasserstein."""
    return GANLoss(hinge_d_loss, wasserstein_g_loss)


@gin.configurable
def least_squares() -> GANLoss:
    """The least-squares loss of Mao et al. 2017 (LSGAN) on D's raw output r, f (its linear last
    layer, no sigmoid, as the paper's D), targets a = 0, b = c = 1 and the paper's 1/2:
    D: (r - 1)^2 / 2 + f^2 / 2, G: (f - 1)^2 / 2."""
    return GANLoss(least_squares_d_loss, least_squares_g_loss)


@gin.configurable
def least_squares_sigmoid() -> GANLoss:
    """The least-squares loss on D's sigmoid output, as compare_gan computes it (google/
    compare_gan, gans/loss_lib.py `least_squares`, fed `d_real = sigmoid(logits)`), the code of
    Kurach et al. 2019's study: D: (sigma(r) - 1)^2 / 2 + sigma(f)^2 / 2, G: (sigma(f) - 1)^2 / 2
    (compare_gan: `0.5 * (mean (d_real - 1)^2 + mean d_fake^2)` and `0.5 * mean (d_fake - 1)^2`;
    the same per-example values averaged over the batch). Unlike `least_squares` its gradient
    vanishes for saturated logits (sigma'(t) -> 0 as |t| -> inf)."""
    return GANLoss(least_squares_sigmoid_d_loss, least_squares_sigmoid_g_loss)
