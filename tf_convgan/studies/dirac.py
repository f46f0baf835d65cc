"""The Dirac-GAN (Mescheder et al. 2018, sections 2 and 3), on the library's own losses and penalties.

Generator p_theta = delta_theta, data delta_0, linear discriminator D_psi(x) = psi * x. The losses
(`tf_convgan.objectives.losses`) and penalties (`tf_convgan.objectives.penalties`) are applied to
this D as they are to images: real = [[0]], fake = [[theta]], d_fn(x) = psi * sum(x, axis=1), so
the study tests the code that trains the image GANs.

Sign convention. The library's D gives real data high logits (D minimises softplus(-r) +
softplus(f)); the paper's D_psi maximises f(D(fake)) + f(-D(real)) with f(t) = -log(1 + e^{-t}).
So the library's psi is the paper's -psi: the fields are mirror images in psi, with the same
Jacobian eigenvalues (J' = S J S, S = diag(1, -1)). With the minimax loss f'(0) = 1/2 and
f''(0) = -1/4; with the Wasserstein loss f(t) = t, f'(0) = 1.

Roth et al. 2017 ('roth', minimax loss, constant gamma). On the Dirac-GAN, psi(x) = psi x, the
penalty is gamma/2 [(1 - s(0))^2 psi^2 + s(psi theta)^2 psi^2] (s the sigmoid; real data at 0), so
u_psi = -theta s(psi theta) - gamma/2 [psi/2 + 2 s(psi theta)^2 psi + 2 psi^2 theta s s'] and
u_theta = psi s(psi theta) (non-saturating: psi s(-psi theta), the same derivatives at 0). At the
equilibrium s(0) = 1/2 the weights are 1/4 and
    J = [[0, f'(0)], [-f'(0), -gamma/2]],  eigenvalues -gamma/4 +- sqrt(gamma^2/16 - f'(0)^2),
R1's Jacobian with gamma/2, i.e. (1/4) (R1 + R2): the real parts are < 0 for gamma > 0, so
gradient descent converges locally for small enough steps. Like R1 and R2 the regularizer damps
D's parameter psi at the equilibrium (the penalty is O(psi^2) there), which the unregularized game
lacks; the sigmoid weights only matter away from it.

Update field u(theta, psi) = -(dL_G/dtheta, dL_D/dpsi) (each player descends its own loss), plus
ConOpt's consensus term and instance noise where the method has them. Instance noise makes u an
expectation over eps ~ N(0, sigma^2) added to real and fake data alike; it is computed
deterministically with Gauss-Hermite quadrature (`instance_noise.gauss_hermite_noise`), which is
exact for the Jacobian at the equilibrium (its entries are polynomial moments of eps).

simGD: x <- x + h u(x). altGD: `d_steps` D steps psi <- P(psi + h u_psi) then one G step
theta <- theta + h u_theta at the new psi. P is WGAN's weight clipping to [-c, c] (identity else).

Everything is batched over N independent games (theta, psi of shape [N]): each game's psi acts on
its own examples only, so one gradient of the summed objectives gives every game's gradient.
"""
import dataclasses
from typing import Callable, Optional

import gin
import numpy as np
import tensorflow as tf

from tf_convgan.objectives import losses
from tf_convgan.objectives import penalties
from tf_convgan.objectives.consensus import consensus_term
from tf_convgan.errors import ConfigError, check_nonnegative
from tf_convgan.objectives.instance_noise import gauss_hermite_noise

DTYPE = tf.float64
METHODS = ("unregularized", "non_saturating", "wgan", "wgan_gp", "dragan", "instance_noise",
           "conopt", "r1", "r2", "r1_r2", "roth")


@dataclasses.dataclass(frozen=True)
class Method:
    """A training method on the Dirac-GAN: the library's loss and penalty, plus the extras."""
    name: str
    loss: losses.GANLoss
    penalty: Optional[Callable] = None   # penalty(d_fn, real, fake) with hyperparameters bound
    sigma: float = 0.0                   # instance noise
    consensus_gamma: float = 0.0         # ConOpt
    clip: Optional[float] = None         # WGAN weight clipping of psi to [-clip, clip]
    num_nodes: int = 32                  # Gauss-Hermite nodes for instance noise


@gin.configurable
def dirac_method(name, *, gamma=1.0, sigma=1.0, clip=1.0, num_nodes=32):
    """The method `name` (one of METHODS) with the paper's loss for it.

    gamma: weight of R1/R2/R1+R2/WGAN-GP/DRAGAN/Roth et al. (gamma/2 E[...], Roth's constant: no
      annealing in the study) and ConOpt (gamma/2 ||v||^2);
    sigma: instance-noise std; clip: WGAN's clipping bound c."""
    if name not in METHODS:
        raise ConfigError(f"dirac_method.name must be one of {METHODS}, got {name!r}")
    check_nonnegative("dirac_method.gamma", gamma)
    check_nonnegative("dirac_method.sigma", sigma)
    if not float(clip) > 0:
        raise ConfigError(f"dirac_method.clip must be > 0, got {clip!r}")

    def bind(penalty):  # a fixed stateless seed: D is linear, so the random points do not matter
        return lambda d_fn, real, fake: penalty(d_fn, real, fake, seed=tf.constant([0, 0], tf.int64),
                                                gamma=gamma)

    minimax = losses.minimax()
    return {
        "unregularized": lambda: Method(name, minimax),
        "non_saturating": lambda: Method(name, losses.non_saturating()),
        "wgan": lambda: Method(name, losses.wasserstein(), clip=float(clip)),
        "wgan_gp": lambda: Method(name, losses.wasserstein(), bind(penalties.wgan_gp)),
        "dragan": lambda: Method(name, minimax, bind(penalties.dragan)),
        "instance_noise": lambda: Method(name, minimax, sigma=float(sigma), num_nodes=num_nodes),
        "conopt": lambda: Method(name, minimax, consensus_gamma=float(gamma)),
        "r1": lambda: Method(name, minimax, bind(penalties.r1)),
        "r2": lambda: Method(name, minimax, bind(penalties.r2)),
        "r1_r2": lambda: Method(name, minimax, bind(penalties.r1_r2)),
        "roth": lambda: Method(name, minimax, bind(penalties.roth)),
    }[name]()


def _noise(method):
    if method.sigma > 0:
        eps, weights = gauss_hermite_noise(sigma=method.sigma, num_nodes=method.num_nodes)
    else:
        eps, weights = np.zeros(1), np.ones(1)
    return tf.constant(eps, DTYPE), tf.constant(weights, DTYPE)


def objectives(method, theta, psi):
    """(L_G, L_D), each [N]: the library's per-example losses (+ penalty) of N Dirac-GANs,
    averaged over the instance noise."""
    eps, weights = _noise(method)
    k = eps.shape[0]
    n = tf.shape(theta)[0]
    psi_k = tf.repeat(psi, k)                       # game i's psi for each of its k examples
    eps_k = tf.tile(eps, [n])
    real = eps_k[:, None]                           # delta_0 (+ noise), shape [N k, 1]
    fake = (tf.repeat(theta, k) + eps_k)[:, None]   # delta_theta (+ noise)

    def d_fn(x):
        return psi_k * tf.reduce_sum(x, axis=1)

    d_fake = d_fn(fake)
    d_obj = method.loss.d_loss(d_fn(real), d_fake)
    if method.penalty is not None:
        d_obj += method.penalty(d_fn, real, fake)
    g_obj = method.loss.g_loss(d_fake)
    w = tf.reshape(tf.tile(weights, [n]), [n, k])
    return (tf.reduce_sum(tf.reshape(g_obj, [n, k]) * w, axis=1),
            tf.reduce_sum(tf.reshape(d_obj, [n, k]) * w, axis=1))


def vector_field(method, theta, psi):
    """The update direction u = (u_theta, u_psi), each [N], at the points (theta, psi)."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([theta, psi])
        with tf.GradientTape(persistent=True) as inner:
            inner.watch([theta, psi])
            g_obj, d_obj = objectives(method, theta, psi)
        g_theta = inner.gradient(g_obj, theta)
        d_psi = inner.gradient(d_obj, psi)
        if method.consensus_gamma > 0:
            consensus = consensus_term([g_theta, d_psi], gamma=method.consensus_gamma)
    u_theta, u_psi = -g_theta, -d_psi
    if method.consensus_gamma > 0:
        c_theta, c_psi = outer.gradient(consensus, [theta, psi])
        u_theta, u_psi = u_theta - c_theta, u_psi - c_psi
    del inner, outer
    return u_theta, u_psi


def _project(method, psi):
    return psi if method.clip is None else tf.clip_by_value(psi, -method.clip, method.clip)


def sim_step(method, theta, psi, *, learning_rate):
    """One simultaneous gradient step of both players."""
    u_theta, u_psi = vector_field(method, theta, psi)
    return theta + learning_rate * u_theta, _project(method, psi + learning_rate * u_psi)


def alt_step(method, theta, psi, *, learning_rate, d_steps=1):
    """`d_steps` discriminator steps, then one generator step at the updated psi."""
    for _ in range(d_steps):
        psi = _project(method, psi + learning_rate * vector_field(method, theta, psi)[1])
    return theta + learning_rate * vector_field(method, theta, psi)[0], psi


def _check_mode(mode):
    if mode not in ("sim", "alt"):
        raise ConfigError(f"mode must be 'sim' (simultaneous) or 'alt' (alternating), got {mode!r}")


def _step_fn(method, mode, learning_rate, d_steps):
    _check_mode(mode)
    if not float(learning_rate) > 0:
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not isinstance(d_steps, int) or d_steps < 1:
        raise ConfigError(f"d_steps must be an integer >= 1, got {d_steps!r}")
    if mode == "sim":
        return lambda t, p: sim_step(method, t, p, learning_rate=learning_rate)
    return lambda t, p: alt_step(method, t, p, learning_rate=learning_rate, d_steps=d_steps)


def trajectory(method, start, *, num_steps, learning_rate, mode="sim", d_steps=1):
    """Points (theta, psi) of gradient descent from `start`: numpy [num_steps + 1, 2]."""
    step = _step_fn(method, mode, learning_rate, d_steps)

    @tf.function
    def run(x0):
        points = tf.TensorArray(DTYPE, size=num_steps + 1).write(0, x0)
        x = x0
        for i in tf.range(num_steps):
            theta, psi = step(x[:1], x[1:])
            x = tf.concat([theta, psi], axis=0)
            points = points.write(i + 1, x)
        return points.stack()

    return run(tf.constant(start, DTYPE)).numpy()


def field_on_grid(method, theta, psi):
    """u at the points of flat arrays theta, psi: numpy (u_theta, u_psi)."""
    u = tf.function(lambda t, p: vector_field(method, t, p))(
        tf.constant(theta, DTYPE), tf.constant(psi, DTYPE))
    return u[0].numpy(), u[1].numpy()


def _jacobian_of(fn, point):
    x = tf.constant(point, DTYPE)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = fn(x[:1], x[1:])
    rows = [tape.gradient(y, x) for y in outputs]  # d theta' / dx, d psi' / dx
    return tf.stack(rows).numpy()


def jacobian(method, point=(0.0, 0.0)):
    """d u / d(theta, psi) at `point` (default the equilibrium), by autodiff: numpy [2, 2]."""
    return _jacobian_of(lambda t, p: vector_field(method, t, p), point)


def update_jacobian(method, *, learning_rate, mode="sim", d_steps=1, point=(0.0, 0.0)):
    """Jacobian of one simGD or altGD update map at `point` (simGD: I + h J)."""
    return _jacobian_of(_step_fn(method, mode, learning_rate, d_steps), point)


def eigenvalues(matrix):
    """Eigenvalues sorted by (real, imaginary) part."""
    values = np.linalg.eigvals(matrix)
    return values[np.lexsort((values.imag, values.real))]


def spectral_radius(matrix):
    return float(np.max(np.abs(np.linalg.eigvals(matrix))))
