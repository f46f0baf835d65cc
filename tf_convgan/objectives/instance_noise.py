"""Instance noise (Sonderby et al. 2016; Arjovsky & Bottou 2017): D sees real and generated data
perturbed by Gaussian noise, x~ = x + sigma * eps, eps ~ N(0, I), in its own step and in G's.

Mescheder et al. 2018 (sec. 3.2): for the Dirac-GAN the Jacobian at the equilibrium then has the
eigenvalues f''(0) sigma^2 +- sqrt(f''(0)^2 sigma^4 - f'(0)^2), whose real part is < 0 for
sigma > 0 (f''(0) < 0): gradient descent converges locally; with sigma = 0 it does not.

  add_instance_noise(x, seed=None, *, sigma): one random perturbation (stateless when seeded);
  sigma_schedule(step, *, sigma, final_sigma, decay_steps): the annealed sigma, gin-configurable;
  gauss_hermite_noise(*, sigma, num_nodes): nodes and weights with sum_k w_k h(eps_k) =
      E_{eps ~ N(0, sigma^2)} h(eps) exactly for polynomials h of degree < 2 num_nodes: the
      deterministic expectation over the noise (the Dirac-GAN's exact vector field and Jacobian).
"""
import gin
import numpy as np
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError, check_nonnegative


def add_instance_noise(x, seed=None, *, sigma):
    """x + sigma * eps, eps ~ N(0, I) of x's shape; `seed` (int [2]) draws statelessly."""
    check_nonnegative("instance_noise.sigma", sigma)
    x = tf.convert_to_tensor(x)
    if seed is None:
        eps = tf.random.normal(tf.shape(x), dtype=x.dtype)
    else:
        eps = noise.normal(x.shape.as_list(), seed, dtype=x.dtype)
    return x + sigma * eps


@gin.configurable
def sigma_schedule(step, *, sigma=1.0, final_sigma=0.0, decay_steps=0):
    """Linear annealing: sigma at step 0 to final_sigma at `decay_steps` (then constant);
    decay_steps = 0 keeps sigma constant. `step` may be a tensor (traced code)."""
    check_nonnegative("sigma_schedule.sigma", sigma)
    check_nonnegative("sigma_schedule.final_sigma", final_sigma)
    if not isinstance(decay_steps, int) or decay_steps < 0:
        raise ConfigError(f"sigma_schedule.decay_steps must be an integer >= 0, got {decay_steps!r}")
    if decay_steps == 0:
        return tf.constant(float(sigma))
    t = tf.minimum(tf.cast(step, tf.float32) / float(decay_steps), 1.0)
    return float(sigma) + (float(final_sigma) - float(sigma)) * t


def gauss_hermite_noise(*, sigma, num_nodes=32):
    """(eps [K], weights [K]) float64 numpy: E_{N(0, sigma^2)} h = sum_k weights_k h(eps_k).

    From the Gauss-Hermite rule int e^{-x^2} h(x) dx = sum_i w_i h(x_i): eps = sqrt(2) sigma x,
    weights = w / sqrt(pi) (they sum to 1)."""
    check_nonnegative("instance_noise.sigma", sigma)
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise ConfigError(f"gauss_hermite_noise.num_nodes must be an integer >= 1, got {num_nodes!r}")
    x, w = np.polynomial.hermite.hermgauss(num_nodes)
    return np.sqrt(2.0) * float(sigma) * x, w / np.sqrt(np.pi)
