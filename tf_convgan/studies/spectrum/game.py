"""The two objectives of the game whose Jacobian the spectrum takes: the terms of a `GAN` at a
training step, the step's seeds, and (L_G, L_D) composed as `GAN.train_step` composes them, with
the same random draws (docs/spectrum.md, "What is computed")."""
from typing import Callable, NamedTuple, Optional

import tensorflow as tf

from tf_convgan import noise
# The step's purposes of the seed (tf_convgan.gan): the same draws as GAN.train_step.
from tf_convgan.gan.model import _CONSISTENCY, _INSTANCE_NOISE, _PENALTY, _Z_D, _Z_G, _ZCR


class GameTerms(NamedTuple):
    """What defines the two objectives besides the networks (see `game_terms`)."""
    loss: object                                  # losses.GANLoss
    penalty: Optional[Callable] = None            # penalty(d_fn, real, fake, seed=) -> [B]
    consistency: Optional[Callable] = None        # term(d_fn, real, fake, seed=) -> [B]
    latent_consistency: Optional[object] = None   # consistency.LatentConsistency
    sigma: float = 0.0                            # instance-noise std at this step
    noisy: bool = False                           # instance noise configured (sigma may be 0)
    noise_source: Optional[object] = None         # GAN.noise_source (None: Philox)
    conditional: bool = False
    notes: tuple = ()


def game_terms(gan, *, step=None):
    """The objectives' terms of a `GAN` at training step `step` (default: the GAN's step): its
    loss, penalty, consistency terms, the instance-noise sigma(step), its noise source; `notes`
    name what the field takes differently from the step (lazy penalty, ConOpt, d_steps)."""
    step = int(gan.step.numpy()) if step is None else int(step)
    notes = []
    if gan.lazy_interval is not None:
        notes.append(f"lazy_interval={gan.lazy_interval}: the penalty enters with weight 1 (the "
                     f"average of the lazy objective)")
    if gan.consensus_gamma is not None:
        notes.append("consensus_gamma (ConOpt): J of the plain game v, not of ConOpt's field")
    if gan.d_steps > 1:
        notes.append(f"d_steps={gan.d_steps}: D's objective on the first D step's batch")
    sigma = 0.0 if gan.instance_noise is None else float(gan.instance_noise(step))
    return GameTerms(loss=gan.loss, penalty=gan.penalty, consistency=gan.consistency,
                     latent_consistency=gan.latent_consistency, sigma=sigma,
                     noisy=gan.instance_noise is not None,
                     noise_source=gan.noise_source, conditional=gan.conditional,
                     notes=tuple(notes))


def step_seeds(*, seed, step, d_steps=1):
    """(seed of the first D step, seed of the G step) of training step `step`, as the step
    derives them: s = (seed, step), s_D = fold_in(s, 0), s_G = fold_in(s, d_steps)."""
    step_seed = tf.constant([int(seed), int(step)], tf.int64)
    return noise.fold_in(step_seed, 0), noise.fold_in(step_seed, int(d_steps))


def _noisy(images, seed, sigma, noisy):
    """images + sigma * eps with the step's eps (drawn in float32, as the step draws it for its
    float32 data, then cast) when instance noise is configured: GAN._noisy."""
    if not noisy:
        return images
    eps = noise.normal(images.shape.as_list(), noise.fold_in(seed, _INSTANCE_NOISE), tf.float32)
    return images + tf.cast(sigma * eps, images.dtype)


def _average(per_example, dtype):
    """The mean over the global batch (this replica's share), in the networks' dtype (a term
    computed in float32, e.g. of float32 data, is cast)."""
    return tf.cast(tf.nn.compute_average_loss(per_example), dtype)


def objectives(*, terms, generator, discriminator, real, labels, seed_d, seed_g, sigma=None):
    """(L_G, L_D) of this replica's rows (means over the global batch, so that summing over
    replicas gives the global objectives), composed as `GAN.discriminator_step` and
    `GAN.generator_step` compose them, except that G's output is not cut from the graph in
    D's objective (the step's stop_gradient only keeps theta out of D's update; the coupling
    block J_DG = -d grad_psi L_D / d theta flows through it). `sigma` (a float32 scalar, default
    terms.sigma): the instance-noise std. See docs/spectrum.md, "What is computed"."""
    sigma = terms.sigma if sigma is None else sigma
    dtype = discriminator.compute_dtype
    if not terms.conditional:
        labels = tf.zeros_like(labels)
    batch = real.shape[0]

    def d_fn(images):
        return discriminator(images, labels, training=True)

    def z_of(seed):
        return noise.normal([batch, generator.z_dim], seed)

    # D's objective (the step's first D step).
    z = z_of(noise.fold_in(seed_d, _Z_D))
    fake = tf.cast(generator(z, labels, training=True), dtype)
    real = tf.cast(real, dtype)
    real_n = _noisy(real, noise.fold_in(seed_d, 0), sigma, terms.noisy)
    fake_n = _noisy(fake, noise.fold_in(seed_d, 1), sigma, terms.noisy)
    l_d = _average(terms.loss.d_loss(d_fn(real_n), d_fn(fake_n)), dtype)
    if terms.penalty is not None:
        l_d += _average(terms.penalty(d_fn, real_n, fake_n, seed=noise.fold_in(seed_d, _PENALTY)),
                        dtype)
    if terms.consistency is not None:
        l_d += _average(terms.consistency(d_fn, real_n, fake_n,
                                          seed=noise.fold_in(seed_d, _CONSISTENCY)), dtype)
    if terms.latent_consistency is not None:
        z_p = terms.latent_consistency.perturb(z, noise.fold_in(seed_d, _ZCR))
        fake_p = tf.cast(generator(z_p, labels, training=True), dtype)
        l_d += _average(terms.latent_consistency.d_term(d_fn, fake, fake_p), dtype)

    # G's objective.
    z = z_of(noise.fold_in(seed_g, _Z_G))
    fake = generator(z, labels, training=True)
    l_g = _average(terms.loss.g_loss(d_fn(_noisy(tf.cast(fake, dtype), seed_g, sigma,
                                                 terms.noisy))), dtype)
    if terms.latent_consistency is not None:
        z_p = terms.latent_consistency.perturb(z, noise.fold_in(seed_g, _ZCR))
        fake_p = generator(z_p, labels, training=True)
        l_g += _average(terms.latent_consistency.g_term(fake, fake_p), dtype)
    return l_g, l_d
