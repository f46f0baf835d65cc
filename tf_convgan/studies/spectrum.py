"""The spectrum of the game Jacobian of a GAN, matrix-free (Mescheder et al. 2018, sec. 2).

At a fixed batch and training step's random draws, the field v(theta, psi) = (-grad_theta L_G,
-grad_psi L_D) of the objectives `GAN.train_step` composes, and J = dv/dx at x = (theta, psi): J u
by forward-over-reverse and J^T w by reverse-over-reverse autodiff, with the networks' weights
passed as tensors (`keras.StatelessScope`); SciPy's ARPACK, in float64, for J's leading
eigenvalues, those of the simGD and altGD update maps, D's Hessian and the coupling blocks'
singular values. The derivation (the blocks of J, the altGD map, when simGD converges), the
precision, distribution and what the field leaves out: docs/spectrum.md, "What is computed".

Outputs: `spectrum(...)` -> `SpectrumResult`; `record(...)` appends it to a history (JSON) and
re-plots every evaluation's eigenvalues in the complex plane (colour = step) into one PNG, and
writes TensorBoard scalars; `SpectrumEvaluator` (gin `@spectrum_evaluator()`) plugs into
`train.evaluator`; `python -m tf_convgan.spectrum --model_dir runs/X` evaluates a run directory
(`load_run`: the networks, the checkpoint and the whole objective read back as data through
tf_convgan.run_dir; a term it cannot rebuild is refused, naming it).
"""
import copy
import dataclasses
import json
import os
import sys
import time
from typing import Callable, NamedTuple, Optional

import gin
import keras
import numpy as np
import scipy.sparse.linalg as sla
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError
from tf_convgan.evaluation.hook import EvaluationHook
# The step's purposes of the seed (tf_convgan.gan): the same draws as GAN.train_step.
from tf_convgan.gan.model import _CONSISTENCY, _INSTANCE_NOISE, _PENALTY, _Z_D, _Z_G, _ZCR

HISTORY_JSON = "spectrum_history.json"
PLOT_PNG = "spectrum.png"
WHICH = ("LM", "LR")
BLOCKS = ("d_hessian", "coupling")
UPDATE_MAPS = ("sim", "alt")
_FLOAT_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- the objectives

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


# --------------------------------------------------------------------------- the operator

def _dense(t):
    return tf.convert_to_tensor(t) if isinstance(t, tf.IndexedSlices) else t


class GameOperator:
    """J (and v, J^T) of one game at a fixed point x0 and batch: see `game_operator`.

    Methods take and return float64 NumPy vectors of length n (G's numbers first):
      field(x=None) -> v(x) (default x0); jvp(u) -> J u; vjp(w) -> J^T w;
      dense() -> J as an n x n matrix, column i = J e_i (n products).
    `counts` counts the products since creation ({'jvp': ..., 'vjp': ...}). The traced
    functions take the point, the step's seeds and sigma as inputs: `moved` gives the operator
    of another point and step on the same batch without tracing again."""

    def __init__(self, *, generator, discriminator, terms, real, labels, seed_d, seed_g,
                 strategy, step):
        self.generator, self.discriminator = generator, discriminator
        self.terms, self.step, self.strategy = terms, int(step), strategy
        self.g_vars = list(generator.trainable_variables)
        self.d_vars = list(discriminator.trainable_variables)
        dtypes = {v.dtype for v in self.g_vars + self.d_vars}
        if len(dtypes) != 1 or next(iter(dtypes)) not in _FLOAT_DTYPES:
            raise ConfigError(f"the spectrum needs float32 or float64 networks (one dtype for G "
                              f"and D), got weights of {sorted(dtypes)}; mixed precision is "
                              f"not supported")
        self.dtype = tf.as_dtype(next(iter(dtypes)))
        self.shapes = [tuple(v.shape) for v in self.g_vars + self.d_vars]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n_g = sum(self.sizes[:len(self.g_vars)])
        self.n_d = sum(self.sizes[len(self.g_vars):])
        self.n = self.n_g + self.n_d
        self.x0 = np.concatenate([np.asarray(v.numpy(), np.float64).ravel()
                                  for v in self.g_vars + self.d_vars])
        self.counts = {"jvp": 0, "vjp": 0}
        self.seed_d, self.seed_g = seed_d, seed_g
        self._real_np, self._labels_np = real, labels
        replicas = strategy.num_replicas_in_sync
        if real.shape[0] % replicas:
            raise ConfigError(f"the batch ({real.shape[0]}) must be a multiple of the "
                              f"{replicas} replicas")
        rows = real.shape[0] // replicas
        real, labels = tf.constant(real), tf.constant(labels, tf.int32)
        if replicas == 1:
            self._batch = (real, labels)
        else:
            self._batch = strategy.experimental_distribute_values_from_function(
                lambda ctx: (real[ctx.replica_id_in_sync_group * rows:
                                  (ctx.replica_id_in_sync_group + 1) * rows],
                             labels[ctx.replica_id_in_sync_group * rows:
                                    (ctx.replica_id_in_sync_group + 1) * rows]))
        self._field_fn = self._distributed(self._replica_field)
        self._jvp_fn = self._distributed(self._replica_jvp)
        self._vjp_fn = self._distributed(self._replica_vjp)

    def moved(self, *, step, seed_d, seed_g, terms):
        """This operator at the networks' current weights and another step's draws (same
        batch, networks and terms up to sigma): shares the traced functions."""
        other = copy.copy(self)
        other.step, other.seed_d, other.seed_g, other.terms = int(step), seed_d, seed_g, terms
        other.x0 = np.concatenate([np.asarray(v.numpy(), np.float64).ravel()
                                   for v in self.g_vars + self.d_vars])
        other.counts = {"jvp": 0, "vjp": 0}
        return other

    def fits(self, *, generator, discriminator, terms, real, labels, strategy):
        """Whether `moved` may serve this game (the traced functions fit it)."""
        same = lambda a, b: a is b  # noqa: E731
        return (same(generator, self.generator) and same(discriminator, self.discriminator)
                and same(strategy, self.strategy) and np.array_equal(real, self._real_np)
                and np.array_equal(labels, self._labels_np)
                and all(same(getattr(terms, f), getattr(self.terms, f)) for f in (
                    "loss", "penalty", "consistency", "latent_consistency", "noise_source"))
                and terms.noisy == self.terms.noisy
                and terms.conditional == self.terms.conditional)

    # -- replica functions: (real, labels, x, u, seed_d, seed_g, sigma) -> this replica's share

    def _split(self, x):
        parts = tf.split(x, self.sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, self.shapes)]

    def _v(self, params, real, labels, seed_d, seed_g, sigma):
        """The flat field v at `params` (a list of tensors), this replica's share."""
        n_g = len(self.g_vars)
        mapping = list(zip(self.g_vars + self.d_vars, params))
        with noise.source_scope(self.terms.noise_source or noise.active_source()):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(params)
                with keras.StatelessScope(state_mapping=mapping):
                    l_g, l_d = objectives(terms=self.terms, generator=self.generator,
                                          discriminator=self.discriminator, real=real,
                                          labels=labels, seed_d=seed_d, seed_g=seed_g,
                                          sigma=sigma)
            zero = tf.UnconnectedGradients.ZERO
            grads = (tape.gradient(l_g, params[:n_g], unconnected_gradients=zero) +
                     tape.gradient(l_d, params[n_g:], unconnected_gradients=zero))
            del tape
        return -tf.concat([tf.reshape(_dense(g), [-1]) for g in grads], axis=0)

    def _replica_field(self, real, labels, x, u, *draws):
        del u
        return self._v(self._split(x), real, labels, *draws)

    def _replica_jvp(self, real, labels, x, u, *draws):
        params = self._split(x)
        with tf.autodiff.ForwardAccumulator(params, self._split(u)) as acc:
            v = self._v(params, real, labels, *draws)
        return acc.jvp(v, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _replica_vjp(self, real, labels, x, w, *draws):
        params = self._split(x)
        with tf.GradientTape() as tape:
            tape.watch(params)
            inner = tf.reduce_sum(self._v(params, real, labels, *draws) * w)
        grads = tape.gradient(inner, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.concat([tf.reshape(_dense(g), [-1]) for g in grads], axis=0)

    def _distributed(self, inner):
        """inner(real, labels, x, u, seed_d, seed_g, sigma) on every replica's rows, summed
        over replicas, in one tf.function. (Not XLA: TensorFlow has no forward-mode rule through
        XLA's ops, e.g. XlaDynamicUpdateSlice, so the JVP cannot be compiled.)"""
        strategy = self.strategy
        spec = tf.TensorSpec([self.n], self.dtype)
        seed = tf.TensorSpec([2], tf.int64)
        batch = self._batch

        @tf.function(input_signature=[spec, spec, seed, seed, tf.TensorSpec([], tf.float32)],
                     autograph=False)  # no tensor-dependent Python control flow
        def run(x, u, seed_d, seed_g, sigma):
            args = (*batch, x, u, seed_d, seed_g, sigma)
            if strategy.num_replicas_in_sync == 1:
                return inner(*args)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(inner, args=args),
                                   axis=None)

        def call(operator, x, u):
            with strategy.scope():
                return run(tf.constant(x, self.dtype), tf.constant(u, self.dtype),
                           operator.seed_d, operator.seed_g,
                           tf.constant(operator.terms.sigma, tf.float32))

        return call

    # -- float64 NumPy interface

    def _out(self, t):
        return np.asarray(t.numpy(), np.float64)

    def field(self, x=None):
        """v(x) (default: at x0)."""
        x = self.x0 if x is None else np.asarray(x, np.float64)
        return self._out(self._field_fn(self, x, np.zeros(self.n)))

    def jvp(self, u):
        """J u at x0, one forward-over-reverse product."""
        self.counts["jvp"] += 1
        return self._out(self._jvp_fn(self, self.x0, np.asarray(u, np.float64)))

    def vjp(self, w):
        """J^T w at x0, one reverse-over-reverse product."""
        self.counts["vjp"] += 1
        return self._out(self._vjp_fn(self, self.x0, np.asarray(w, np.float64)))

    def cjvp(self, u):
        """J u for a complex u (J is real: two products, one for each part; one when real)."""
        u = np.asarray(u)
        if not np.iscomplexobj(u) or not np.any(u.imag):
            return self.jvp(np.real(u)).astype(np.complex128)
        return self.jvp(u.real) + 1j * self.jvp(u.imag)

    def dense(self):
        """J assembled column by column from the products J e_i."""
        columns = []
        for i in range(self.n):
            e = np.zeros(self.n)
            e[i] = 1.0
            columns.append(self.jvp(e))
        return np.stack(columns, axis=1)


def game_operator(*, gan, real, labels=None, step=None, strategy=None, generator=None,
                  discriminator=None, like=None):
    """The game operator of `gan` at its current weights, on the global batch `real`
    [B, ...] (or [B, d_steps, ...]: the first D step's slice) with `labels` [B] (default
    zeros), with the random draws of training step `step` (default: the GAN's step).

    `generator`, `discriminator`: networks to use in place of the GAN's (e.g. the float64 twins
    of `float64_networks`), with the GAN's loss and terms. `strategy`: where the products run
    (default: the current strategy); the result is the same for any number of replicas.
    `like`: an earlier operator; when it was made for the same networks, batch, strategy and
    terms, the new one shares its traced functions (no tracing: the in-training evaluator)."""
    strategy = strategy or tf.distribute.get_strategy()
    step = int(gan.step.numpy()) if step is None else int(step)
    real = np.asarray(real)
    data_shape = tuple(getattr(gan.discriminator, "data_shape", None) or
                       (gan.discriminator.resolution, gan.discriminator.resolution, 3))
    if real.ndim == len(data_shape) + 2:
        real = real[:, 0]
    if tuple(real.shape[1:]) != data_shape:
        raise ConfigError(f"real data of shape {real.shape} does not fit the discriminator's "
                          f"examples {data_shape}")
    labels = (np.zeros(real.shape[0], np.int32) if labels is None else
              np.asarray(labels, np.int32).reshape(real.shape[0], -1)[:, 0])
    seed_d, seed_g = step_seeds(seed=gan.seed, step=step, d_steps=gan.d_steps)
    generator, discriminator = generator or gan.generator, discriminator or gan.discriminator
    terms, real = game_terms(gan, step=step), real.astype(np.float32)
    if like is not None and like.fits(generator=generator, discriminator=discriminator,
                                      terms=terms, real=real, labels=labels, strategy=strategy):
        return like.moved(step=step, seed_d=seed_d, seed_g=seed_g, terms=terms)
    return GameOperator(generator=generator, discriminator=discriminator, terms=terms, real=real,
                        labels=labels, seed_d=seed_d, seed_g=seed_g, strategy=strategy,
                        step=step)


def float64_networks(*, generator_fn, discriminator_fn, generator, discriminator, strategy=None):
    """Float64 twins of `generator` and `discriminator`: `generator_fn()` and
    `discriminator_fn()` built under Keras' float64 dtype policy, with the weights copied
    (trainable and not). For `game_operator(..., generator=, discriminator=)`."""
    from tf_convgan.networks import build
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            twins = build(generator_fn()), build(discriminator_fn())
    finally:
        keras.config.set_dtype_policy(previous)
    for twin, model in zip(twins, (generator, discriminator)):
        if [tuple(w.shape) for w in twin.weights] != [tuple(w.shape) for w in model.weights]:
            raise ConfigError(f"the float64 twin of {model.name} has other weights: "
                              f"generator_fn / discriminator_fn must build the same networks")
        for w_twin, w in zip(twin.weights, model.weights):
            w_twin.assign(np.asarray(w.numpy(), np.float64))
    return twins


# --------------------------------------------------------------------------- the spectrum

@dataclasses.dataclass
class SpectrumResult:
    """One evaluation (see `spectrum`). Eigenvalues are complex128 arrays, sorted by
    decreasing modulus ('LM'), real part ('LR'), modulus (update maps)."""
    step: int
    n: int
    n_g: int
    n_d: int
    dtype: str
    method: str                         # 'arnoldi' or 'dense'
    field_norm: float                   # ||v(x0)||: how far from a stationary point
    eigenvalues: dict                   # which -> eigenvalues of J
    residuals: dict                     # which -> ||J u - lambda u|| / |lambda|
    g_fraction: dict = dataclasses.field(default_factory=dict)  # which -> ||u_theta||^2 / ||u||^2
    learning_rate: Optional[float] = None
    sim_eigenvalues: Optional[np.ndarray] = None   # of I + h J, largest modulus first
    sim_radius: Optional[float] = None             # max |1 + h lambda|
    alt_eigenvalues: Optional[np.ndarray] = None
    alt_radius: Optional[float] = None
    d_steps: int = 1
    d_hessian_eigenvalues: Optional[np.ndarray] = None   # of grad^2_psi L_D = -J_DD (both ends)
    coupling_dg: Optional[np.ndarray] = None    # singular values of J_DG = d v_psi / d theta
    coupling_gd: Optional[np.ndarray] = None    # singular values of J_GD = d v_theta / d psi
    counts: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple = ()

    def all_eigenvalues(self):
        values = [v for v in self.eigenvalues.values() if v is not None and len(v)]
        return np.concatenate(values) if values else np.zeros(0, np.complex128)

    @property
    def max_real(self):
        """The largest real part among the computed eigenvalues of J."""
        values = self.all_eigenvalues()
        return float(values.real.max()) if values.size else float("nan")

    @property
    def max_abs_imag(self):
        values = self.all_eigenvalues()
        return float(np.abs(values.imag).max()) if values.size else float("nan")

    def scalars(self):
        """The headline numbers: largest real part, largest |imag|, spectral radii."""
        out = {"max_real": self.max_real, "max_abs_imag": self.max_abs_imag}
        if self.sim_radius is not None:
            out["sim_radius"] = self.sim_radius
        if self.alt_radius is not None:
            out["alt_radius"] = self.alt_radius
        return out

    def to_json(self):
        def enc(value):
            if isinstance(value, np.ndarray):
                if np.iscomplexobj(value):
                    return {"re": value.real.tolist(), "im": value.imag.tolist()}
                return value.tolist()
            if isinstance(value, dict):
                return {k: enc(v) for k, v in value.items()}
            if isinstance(value, tuple):
                return list(value)
            return value
        out = {f.name: enc(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out.update(self.scalars())
        return out


def _sort(values, key):
    values = np.asarray(values, np.complex128)
    order = np.argsort(-key(values), kind="stable")
    return values[order], order


_KEYS = {"LM": np.abs, "LR": np.real}


def _arpack(fn, *args, **kwargs):
    """ARPACK's answer; on ArpackNoConvergence the converged part and a note."""
    try:
        return fn(*args, **kwargs), None
    except sla.ArpackNoConvergence as e:
        found = (e.eigenvalues, e.eigenvectors)
        return found, f"{fn.__name__} {kwargs.get('which')}: ARPACK converged {len(e.eigenvalues)}"\
                      f" of {kwargs.get('k')} ({e})"


def _start_vector(n, seed):
    return np.random.default_rng(seed).standard_normal(n)


def _eigs(matvec, n, *, k, which, tol, maxiter, seed, dense=None, ncv=None):
    """(eigenvalues, eigenvectors [n, k], note) of a real n x n operator, sorted by `which`."""
    if dense is not None:
        values, vectors = np.linalg.eig(dense)
        note = None
    else:
        op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        (values, vectors), note = _arpack(sla.eigs, op, k=k, which=which, tol=tol,
                                          maxiter=maxiter, v0=_start_vector(n, seed),
                                          ncv=None if ncv is None else min(ncv, n - 1))
    values, order = _sort(values, _KEYS[which])
    return values[:k], np.asarray(vectors)[:, order][:, :k], note


def _residuals(operator, values, vectors):
    out = []
    for value, vector in zip(values, vectors.T):
        vector = vector / np.linalg.norm(vector)
        out.append(np.linalg.norm(operator.cjvp(vector) - value * vector) /
                   max(abs(value), np.finfo(float).tiny))
    return np.array(out)


def _alt_dense(jac, n_g, h, d_steps):
    n = jac.shape[0]
    g, d = slice(0, n_g), slice(n_g, n)
    a_d = np.eye(n)
    a_d[d, :] += h * jac[d, :]
    a_g = np.eye(n)
    a_g[g, :] += h * jac[g, :]
    return a_g @ np.linalg.matrix_power(a_d, d_steps)


def _check_spectrum_arguments(*, k, which, learning_rate, d_steps, blocks):
    """Checks `spectrum`'s arguments; returns `blocks` as a tuple of names of BLOCKS."""
    for name in which:
        if name not in WHICH:
            raise ConfigError(f"which must name orderings among {WHICH}, got {name!r}")
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    if learning_rate is not None and not float(learning_rate) > 0:
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not isinstance(d_steps, int) or d_steps < 1:
        raise ConfigError(f"d_steps must be an integer >= 1, got {d_steps!r}")
    blocks = BLOCKS if blocks is True else () if not blocks else tuple(blocks)
    for name in blocks:
        if name not in BLOCKS:
            raise ConfigError(f"blocks must name blocks among {BLOCKS}, got {name!r}")
    return blocks


def _default_tol(operator):
    """ARPACK's tolerance for the operator's products: 1e-12 in float64, 1e-6 in float32."""
    return 1e-12 if operator.dtype == tf.float64 else 1e-6


def _jacobian_eigenvalues(operator, jac, *, which, k, notes, **arpack):
    """{'eigenvalues', 'residuals', 'g_fraction'}: for each ordering of `which`, the k leading
    eigenvalues of J (ARPACK on the JVPs, or of the dense `jac`), their residuals and their
    eigenvectors' shares in G's coordinates. ARPACK's notes go to `notes`."""
    eigenvalues, residuals, g_fraction = {}, {}, {}
    for name in which:
        values, vectors, note = _eigs(operator.jvp, operator.n, k=k, which=name, dense=jac,
                                      **arpack)
        eigenvalues[name] = values
        residuals[name] = _residuals(operator, values, vectors)
        weights = np.abs(vectors) ** 2
        g_fraction[name] = (weights[:operator.n_g].sum(axis=0) /
                            np.maximum(weights.sum(axis=0), 1e-300))
        if note:
            notes.append(note)
    return {"eigenvalues": eigenvalues, "residuals": residuals, "g_fraction": g_fraction}


def _sim_map(operator, h):
    """u -> (I + h J) u: the linearised simGD update."""
    return lambda u: u + h * operator.jvp(u)


def _alt_map(operator, h, d_steps):
    """u -> A_G A_D^d_steps u: the linearised altGD update (d_steps D steps, then G's)."""
    n_g = operator.n_g

    def alt(u):
        for _ in range(d_steps):  # D steps: psi += h (J u)_psi
            u = np.concatenate([u[:n_g], u[n_g:] + h * operator.jvp(u)[n_g:]])
        return np.concatenate([u[:n_g] + h * operator.jvp(u)[:n_g], u[n_g:]])
    return alt


def _update_maps(result, operator, jac, *, h, d_steps, k, notes, maps=UPDATE_MAPS, **arpack):
    """Sets result.{sim,alt}_eigenvalues (k by modulus) and result.{sim,alt}_radius of the
    simGD and altGD maps at learning rate h (those named in `maps`; each is its own ARPACK run
    from the same start vector, so one alone gives the same numbers as both)."""
    n = operator.n
    for attr, matvec, dense in (
            ("sim", _sim_map(operator, h), None if jac is None else np.eye(n) + h * jac),
            ("alt", _alt_map(operator, h, d_steps),
             None if jac is None else _alt_dense(jac, operator.n_g, h, d_steps))):
        if attr not in maps:
            continue
        values, _, note = _eigs(matvec, n, k=k, which="LM", dense=dense, **arpack)
        setattr(result, f"{attr}_eigenvalues", values)
        setattr(result, f"{attr}_radius",
                float(np.abs(values).max()) if len(values) else float("nan"))
        if note:
            notes.append(note)


def spectrum(*, operator, k=6, which=WHICH, learning_rate=None, d_steps=1, update_maps=True,
             blocks=True, tol=None, maxiter=None, ncv=None, dense_below=64, seed=0):
    """The leading eigenvalues of the game Jacobian J = dv/dx (docs/spectrum.md).

    Args:
      operator: a `GameOperator` (`game_operator(gan=..., real=..., labels=...)`).
      k: eigenvalues per request.
      which: ARPACK's orderings of J to compute: 'LM' (largest modulus), 'LR' (largest real part).
      learning_rate: h; with `update_maps` the k largest-modulus eigenvalues of the simGD map
        I + h J and of the altGD map (`d_steps` D steps, then G), and their spectral radii.
        update_maps: True (both), False (neither) or a tuple of 'sim' and/or 'alt' (the other's
        fields stay None).
      blocks: True (both), False (neither) or a tuple of 'd_hessian' (the eigenvalues of D's
        Hessian grad^2_psi L_D, k from both ends, eigsh) and 'coupling' (the k largest singular
        values of the coupling blocks J_DG and J_GD, svds).
      tol: ARPACK's relative tolerance (default 1e-12 for float64 products, 1e-6 for float32).
      maxiter: ARPACK's restarts (default max(100, n)); ncv: its Krylov dimension (default
        max(2k + 1, 20)). Each restart costs about ncv - k products; eigenvalues that did not
        converge within maxiter are left out (a note says how many converged).
      dense_below: up to this n, J is assembled from the n products J e_i and decomposed
        densely (ARPACK needs k < n - 1); every number still comes from the JVP operator.
      seed: ARPACK's start vector (results are reproducible for a given seed).
    Returns a `SpectrumResult` (with the products used, `counts`, and the seconds taken).
    """
    blocks = _check_spectrum_arguments(k=k, which=which, learning_rate=learning_rate,
                                       d_steps=d_steps, blocks=blocks)
    maps = UPDATE_MAPS if update_maps is True else () if not update_maps else tuple(update_maps)
    if any(name not in UPDATE_MAPS for name in maps):
        raise ConfigError(f"update_maps must be True, False or a tuple of names among "
                          f"{UPDATE_MAPS}, got {update_maps!r}")
    start, counts_before = time.time(), dict(operator.counts)
    n = operator.n
    arpack = {"tol": _default_tol(operator) if tol is None else tol,
              "maxiter": maxiter or max(100, n), "seed": seed}
    use_dense = n <= dense_below or k >= n - 1
    jac = operator.dense() if use_dense else None
    notes = list(operator.terms.notes)
    h = None if learning_rate is None else float(learning_rate)

    result = SpectrumResult(
        step=operator.step, n=n, n_g=operator.n_g, n_d=operator.n_d, dtype=operator.dtype.name,
        method="dense" if use_dense else "arnoldi", learning_rate=h, d_steps=d_steps,
        **_jacobian_eigenvalues(operator, jac, which=which, k=min(k, n), ncv=ncv, notes=notes,
                                **arpack),
        field_norm=float(np.linalg.norm(operator.field())))
    if h is not None and maps:
        _update_maps(result, operator, jac, h=h, d_steps=d_steps, k=min(k, n), ncv=ncv,
                     notes=notes, maps=maps, **arpack)
    if blocks:
        _block_spectra(result, operator, jac, k=k, notes=notes, blocks=blocks, **arpack)
    result.counts = {key: operator.counts[key] - counts_before.get(key, 0)
                     for key in operator.counts}
    result.seconds = time.time() - start
    result.notes = tuple(notes)
    return result


def _both_ends(values, k):
    """k of the sorted `values` from both ends (all when there are at most k), descending."""
    values = np.sort(np.asarray(values, np.float64))
    if len(values) > k:
        values = np.concatenate([values[:k // 2], values[len(values) - (k + 1) // 2:]])
    return values[::-1]


def _d_hessian(operator, jac, *, k, tol, maxiter, seed, notes):
    """Eigenvalues of D's Hessian grad^2_psi L_D = -J_DD (symmetric), k from both ends."""
    n_g, n_d = operator.n_g, operator.n_d
    if jac is not None or k >= n_d:
        block = -(jac if jac is not None else operator.dense())[n_g:, n_g:]
        return _both_ends(np.linalg.eigvalsh(0.5 * (block + block.T)), k)
    op = sla.LinearOperator(
        (n_d, n_d), dtype=np.float64,
        matvec=lambda u: -operator.jvp(np.concatenate([np.zeros(n_g), np.ravel(u)]))[n_g:])
    found, note = _arpack(sla.eigsh, op, k=k, which="BE", tol=tol, maxiter=maxiter,
                          v0=_start_vector(n_d, seed), return_eigenvectors=False)
    if note:
        notes.append(note)
    return _both_ends(found if note is None else found[0], k)


def _coupling(operator, jac, *, rows_are_d, k, tol, maxiter, seed, notes):
    """The k largest singular values of J_DG (rows_are_d: rows psi, columns theta) or J_GD;
    matrix-free by svds with J u (matvec) and J^T w (rmatvec) on zero-padded vectors."""
    n, n_g = operator.n, operator.n_g
    g, d = slice(0, n_g), slice(n_g, n)
    rows, cols = (d, g) if rows_are_d else (g, d)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if jac is not None or k >= min(shape):
        block = (jac if jac is not None else operator.dense())[rows, cols]
        return np.linalg.svd(block, compute_uv=False)[:k]

    def padded(u, where):
        x = np.zeros(n)
        x[where] = np.ravel(u)
        return x

    op = sla.LinearOperator(shape, dtype=np.float64,
                            matvec=lambda u: operator.jvp(padded(u, cols))[rows],
                            rmatvec=lambda w: operator.vjp(padded(w, rows))[cols])
    try:
        values = sla.svds(op, k=k, tol=tol, maxiter=maxiter, solver="arpack",
                          v0=_start_vector(min(shape), seed), return_singular_vectors=False)
    except sla.ArpackNoConvergence as e:
        notes.append(f"svds {'J_DG' if rows_are_d else 'J_GD'}: {e}")
        values = np.zeros(0)
    return np.sort(np.asarray(values, np.float64))[::-1]


def _block_spectra(result, operator, jac, *, blocks, **kwargs):
    if "d_hessian" in blocks:
        result.d_hessian_eigenvalues = _d_hessian(operator, jac, **kwargs)
    if "coupling" in blocks:
        result.coupling_dg = _coupling(operator, jac, rows_are_d=True, **kwargs)
        result.coupling_gd = _coupling(operator, jac, rows_are_d=False, **kwargs)


# --------------------------------------------------------------------------- outputs

def format_table(result):
    """A plain-text table of a result."""
    lines = [f"step {result.step}: n = {result.n} (G {result.n_g}, D {result.n_d}), "
             f"{result.dtype} products, {result.method}, ||v|| = {result.field_norm:.4g}"]
    for name, values in result.eigenvalues.items():
        order = "largest modulus" if name == "LM" else "largest real part"
        lines.append(f"eigenvalues of J, {name} ({order}):")
        lines.append(f"  {'#':>3} {'real':>13} {'imag':>13} {'|lambda|':>11} {'residual':>10} "
                     f"{'G share':>8}")
        shares = result.g_fraction.get(name, np.full(len(values), np.nan))
        for i, (value, res, share) in enumerate(zip(values, result.residuals[name], shares)):
            lines.append(f"  {i:>3} {value.real:>13.6g} {value.imag:>13.6g} {abs(value):>11.5g} "
                         f"{res:>10.2g} {share:>8.3f}")
    scalars = result.scalars()
    lines.append(f"largest real part {scalars['max_real']:.6g}, largest |imag| "
                 f"{scalars['max_abs_imag']:.6g}")
    radii = [f"of simGD (I + hJ) {result.sim_radius:.10g}"] if result.sim_radius is not None \
        else []
    if result.alt_radius is not None:
        radii.append(f"of altGD ({result.d_steps} D step(s), then G) {result.alt_radius:.10g}")
    if radii:
        lines.append(f"h = {result.learning_rate:g}: spectral radius " + ", ".join(radii))
    if result.d_hessian_eigenvalues is not None:
        lines.append("D's Hessian grad^2_psi L_D (both ends): " +
                     ", ".join(f"{v:.5g}" for v in result.d_hessian_eigenvalues))
    if result.coupling_dg is not None:
        lines.append("singular values of J_DG: " + ", ".join(f"{v:.5g}" for v in
                                                           result.coupling_dg))
        lines.append("singular values of J_GD: " + ", ".join(f"{v:.5g}" for v in
                                                           result.coupling_gd))
    lines.append(f"{result.counts.get('jvp', 0)} JVPs, {result.counts.get('vjp', 0)} VJPs, "
                 f"{result.seconds:.1f} s")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def write_summaries(result, *, writer, prefix="spectrum"):
    """TensorBoard scalars <prefix>/max_real, max_abs_imag, sim_radius, alt_radius at the
    result's step."""
    with writer.as_default(step=result.step):
        for name, value in result.scalars().items():
            tf.summary.scalar(f"{prefix}/{name}", value)
    writer.flush()


def read_history(out_dir):
    """The evaluations recorded in out_dir/spectrum_history.json (a local path or a URL); []
    when there is none."""
    from tf_convgan import run_dir
    path = os.path.join(out_dir, HISTORY_JSON)
    if not run_dir.files.isfile(path):
        return []
    return json.loads(run_dir.read_text(path))


def draw_history(ax, history, *, norm, cmap, title="Leading eigenvalues of the game Jacobian"):
    """Scatters every evaluation's eigenvalues of `history` on a matplotlib axis, coloured by
    step through `norm` and `cmap`."""
    for entry in history:
        re = [x for values in entry["eigenvalues"].values() for x in values["re"]]
        im = [x for values in entry["eigenvalues"].values() for x in values["im"]]
        ax.scatter(re, im, s=14, color=cmap(norm(entry["step"])), alpha=0.8, lw=0)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel("Re lambda")
    ax.set_ylabel("Im lambda")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_history(history, path):
    """Eigenvalues of every evaluation in `history` in the complex plane, colour = step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tf_convgan import run_dir

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    steps = [entry["step"] for entry in history]
    norm = matplotlib.colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    cmap = matplotlib.colormaps["viridis"]
    draw_history(ax, history, norm=norm, cmap=cmap)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="step")
    fig.tight_layout()
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def _is_history_dir(directory):
    """A spectrum directory written before the library marked its output directories: its
    history is a JSON list of evaluations."""
    from tf_convgan import run_dir
    path = os.path.join(directory, HISTORY_JSON)
    try:
        history = json.loads(run_dir.read_bytes(path))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(history, list) and all(isinstance(e, dict) and "step" in e
                                             for e in history)


def check_out_dir(out_dir, *, name="spectrum_evaluator.out_dir"):
    """Raises ConfigError naming `name` unless the spectrum may write its history and PNG into
    `out_dir` (run_dir.outputs: not in a run's checkpoints, not a directory of the user's)."""
    from tf_convgan.run_dir import outputs
    outputs.check_output_dir(out_dir, name=name, command="spectrum",
                             names=(HISTORY_JSON, PLOT_PNG), own=_is_history_dir)


def record(result, *, out_dir=None, writer=None):
    """Appends `result` to out_dir/spectrum_history.json (an evaluation of the same step
    replaces the earlier one) and re-plots out_dir/spectrum.png from the whole history; writes
    TensorBoard scalars when `writer` (a tf.summary writer) is given. Returns the PNG's path."""
    if writer is not None:
        write_summaries(result, writer=writer)
    if out_dir is None:
        return None
    from tf_convgan import run_dir
    check_out_dir(out_dir)
    run_dir.outputs.claim_output_dir(out_dir, "spectrum")
    history = [e for e in read_history(out_dir) if e["step"] != result.step]
    history = sorted(history + [result.to_json()], key=lambda e: e["step"])
    run_dir.write_text(os.path.join(out_dir, HISTORY_JSON), json.dumps(history))
    path = os.path.join(out_dir, PLOT_PNG)
    plot_history(history, path)
    return path


# --------------------------------------------------------------------------- in training

def real_batch(source, *, batch_size, seed=0):
    """The first `batch_size` examples of `source.dataset(seed=seed)`: (images, labels)."""
    images, labels = next(iter(source.dataset(seed=seed).batch(batch_size)))
    if images.shape[0] != batch_size:
        raise ConfigError(f"the data has {images.shape[0]} examples, the spectrum's batch_size "
                          f"is {batch_size}")
    return images.numpy(), labels.numpy()


@gin.configurable("spectrum_evaluator")
class SpectrumEvaluator(EvaluationHook):
    """The spectrum of the game Jacobian during training: `train.evaluator =
    @spectrum_evaluator()` (every `train.eval_every` steps).

    A training hook (tf_convgan.training.hooks): called with the loop's context it evaluates the
    context's GAN (or `gan`) and records the values as every evaluation hook does (TensorBoard
    eval/*, metrics.csv). `evaluate(generator_ema, step, strategy=, data=)` takes a fixed batch of `batch_size`
    examples of `data` (the first of the stream of `seed`, the same at every evaluation),
    computes the spectrum at the current weights with the step's random draws, appends it to
    `out_dir` (history and PNG; None: not written) and returns the scalars, which train() logs to
    TensorBoard as eval/spectrum_* and to metrics.csv."""

    def __init__(self, *, k=6, which=("LR",), batch_size=64, learning_rate=None, blocks=False,
                 out_dir=None, seed=0, tol=None, maxiter=None, gan=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"spectrum_evaluator.batch_size must be an integer >= 1, got "
                              f"{batch_size!r}")
        for name in which:
            if name not in WHICH:
                raise ConfigError(f"spectrum_evaluator.which must name orderings among {WHICH}, "
                                  f"got {name!r}")
        self.k, self.which, self.batch_size = k, tuple(which), batch_size
        self.learning_rate, self.blocks, self.out_dir = learning_rate, blocks, out_dir
        self.seed, self.tol, self.maxiter, self.gan = seed, tol, maxiter, gan
        self._context_gan = None
        self._batch = None
        self._operator = None  # traced once, moved to every evaluation's weights and step
        self.last = None

    def __call__(self, context):
        self._context_gan = context.gan
        return super().__call__(context)

    def evaluate(self, generator_ema, step, *, strategy=None, data=None):
        gan = self.gan or self._context_gan
        if gan is None or gan.generator_ema is not generator_ema:
            raise ConfigError("spectrum_evaluator: no GAN owns this generator: run it as "
                              "train.evaluator or pass gan=")
        if self._batch is None:
            if data is None:
                raise ConfigError("spectrum_evaluator needs the training data (data=)")
            self._batch = real_batch(data, batch_size=self.batch_size, seed=self.seed)
        operator = game_operator(gan=gan, real=self._batch[0], labels=self._batch[1],
                                 strategy=strategy, like=self._operator)
        self._operator = operator
        result = spectrum(operator=operator, k=self.k, which=self.which,
                          learning_rate=self.learning_rate, d_steps=gan.d_steps,
                          blocks=self.blocks, tol=self.tol, maxiter=self.maxiter, seed=self.seed)
        record(result, out_dir=self.out_dir)
        self.last = result
        return {f"spectrum_{name}": value for name, value in result.scalars().items()}


# --------------------------------------------------------------------------- run directories

_DATA = ("fashion_mnist_source", "npy_source", "idx_source", "image_folder_source")


class LoadedRun(NamedTuple):
    """What `load_run` rebuilt from a run directory."""
    gan: object          # the GAN at the checkpoint's weights and step
    path: str            # the checkpoint's prefix
    source: object       # the run's data source, or None
    notes: tuple         # what the result's notes should add


def data_source(config, *, data_dir=None):
    """The source bound to train.data in a RunConfig when it is one of the library's file
    sources (`_DATA`, unscoped) with literal bindings, else None. `data_dir` replaces the
    directory of a source that has one (fashion_mnist_source, idx_source, image_folder_source)."""
    import inspect
    from tf_convgan import data as data_lib
    reference = config.reference("train.data")
    name = reference.selector.rpartition(".")[2] if reference is not None else None
    if name not in _DATA or reference.scope:
        return None
    function = inspect.unwrap(getattr(data_lib, name))
    kwargs = config.literal_kwargs(name, function)
    if data_dir is not None and "directory" in inspect.signature(function).parameters:
        kwargs["directory"] = data_dir
    return function(**kwargs)


def _run_notes(config):
    """Notes on what the spectrum of a run directory computes differently from its training."""
    policy = config.literal("train.mixed_precision")
    if policy is None:
        return ()
    return (f"train.mixed_precision = {policy!r}: the products run in float32 (float64 with "
            f"--float64), not in the run's {policy}",)


def load_run(model_dir, *, checkpoint=None, float64=False, data_dir=None):
    """A GAN rebuilt from a run directory, what was restored, and the run's data source.

    Read as data, never through gin (tf_convgan.run_dir): G and D from the run config's network
    factories and the checkpoint (latest readable, 'best', a name or a prefix: run_dir.generators
    .load_players); the objective, loss and every term the step composes (penalty, instance
    noise, consistency, zCR, seeds, d_steps, lazy_interval, consensus_gamma), from the config's
    bindings (run_dir.objective.read_objective: a term that cannot be rebuilt raises a
    RunConfigError naming it). The data: `data_source`. With `float64`, the networks are
    float64 twins (`float64_networks`) of the checkpoint's float32 ones. Returns a `LoadedRun`
    (gan, checkpoint path, data source or None, notes)."""
    from tf_convgan.gan.model import GAN
    from tf_convgan.run_dir import generators, objective
    from tf_convgan.run_dir.run_config import read_run_config

    config = read_run_config(model_dir)
    game = objective.read_objective(config)
    players = generators.load_players(model_dir, checkpoint=checkpoint, config=config,
                                      dtype_policy="float32")
    generator, discriminator = players.generator, players.discriminator
    if float64:
        generator, discriminator = float64_networks(
            generator_fn=lambda: config.build("train.generator_fn"),
            discriminator_fn=lambda: config.build("train.discriminator_fn"),
            generator=generator, discriminator=discriminator)
    generator_ema = generators.build_network(config, "train.generator_fn",
                                             dtype_policy="float64" if float64 else "float32")
    gan = GAN(generator, discriminator, generator_ema, **game.gan_kwargs())
    gan.step_counter.assign(players.step)
    return LoadedRun(gan, players.path, data_source(config, data_dir=data_dir),
                     _run_notes(config))


# --------------------------------------------------------------------------- command line

USAGE = """The leading eigenvalues of the game Jacobian of a training run's checkpoint.

    python -m tf_convgan.spectrum --model_dir runs/quickstart [--checkpoint latest|best|ckpt-1000]
        [--k 20] [--which LM,LR] [--batch_size 32] [--learning_rate 3e-4] [--noblocks]
        [--float64] [--out_dir runs/quickstart/spectrum] [--data_dir DIR]

Reads the run as data (its run config and checkpoint, never through gin), prints the table and
appends the evaluation to <out_dir>/spectrum_history.json and spectrum.png (default out_dir:
<model_dir>/spectrum; local or a URL such as gs://). Bad input prints one line naming the flag
and exits with status 2 (docs/spectrum.md).
"""


def _flags():
    from absl import flags
    f = flags.FlagValues()
    flags.DEFINE_string("model_dir", None, "A training run's directory.", flag_values=f)
    flags.DEFINE_string("checkpoint", None, "latest (default), best, a name (ckpt-100) or a "
                        "prefix.", flag_values=f)
    flags.DEFINE_integer("k", 20, "Eigenvalues per ordering.", flag_values=f)
    flags.DEFINE_list("which", list(WHICH), "Orderings of J: LM, LR.", flag_values=f)
    flags.DEFINE_integer("batch_size", None, "The fixed batch (default: the run's "
                         "train.batch_size).", flag_values=f)
    flags.DEFINE_float("learning_rate", None, "h of the simGD / altGD update maps (default: "
                       "none computed).", flag_values=f)
    flags.DEFINE_boolean("blocks", True, "D's Hessian and the coupling blocks' singular "
                         "values.", flag_values=f)
    flags.DEFINE_boolean("float64", False, "Float64 networks (products in float64).",
                         flag_values=f)
    flags.DEFINE_string("out_dir", None, "Where the history and the PNG go (default: "
                        "<model_dir>/spectrum).", flag_values=f)
    flags.DEFINE_string("data_dir", None, "The Fashion-MNIST IDX directory, in place of the "
                        "run's.", flag_values=f)
    flags.DEFINE_integer("seed", 0, "Data stream and ARPACK start vector.", flag_values=f)
    flags.DEFINE_float("tol", None, "ARPACK's tolerance (default 1e-6 float32, 1e-12 float64).",
                       flag_values=f)
    flags.DEFINE_integer("maxiter", None, "ARPACK's restarts.", flag_values=f)
    return f


FLAGS = _flags()


def evaluate_run(f):
    """What the command does, given its parsed flags; returns (result, PNG path)."""
    from tf_convgan.errors import FlagError, blame
    if not f.model_dir:
        raise FlagError("model_dir", "a training run's directory is required")
    if f.k < 1:
        raise FlagError("k", f"must be >= 1, got {f.k}")
    if f.batch_size is not None and f.batch_size < 1:
        raise FlagError("batch_size", f"must be >= 1, got {f.batch_size}")
    if f.learning_rate is not None and not f.learning_rate > 0:
        raise FlagError("learning_rate", f"must be > 0, got {f.learning_rate}")
    bad = [w for w in f.which if w not in WHICH]
    if bad or not f.which:
        raise FlagError("which", f"must be a comma-separated list of {', '.join(WHICH)}, "
                                 f"got {','.join(f.which)!r}")
    check_out_dir(f.out_dir or os.path.join(f.model_dir, "spectrum"), name="--out_dir")
    from tf_convgan.run_dir.run_config import RunConfigError
    flag = "checkpoint" if f.checkpoint not in (None, "latest") else "model_dir"
    with blame(flag):
        try:
            gan, path, source, notes = load_run(f.model_dir, checkpoint=f.checkpoint,
                                                float64=f.float64, data_dir=f.data_dir)
        except RunConfigError as e:  # the run config's, whatever the checkpoint
            raise FlagError("model_dir", str(e).splitlines()[0]) from e
    if source is None:
        raise FlagError("model_dir", "the run's train.data is not one of the file sources "
                                     f"{', '.join(_DATA)}: its data cannot be read back")
    from tf_convgan.run_dir.run_config import read_run_config
    batch_size = f.batch_size or int(read_run_config(f.model_dir).literal("train.batch_size",
                                                                          64))
    with blame("batch_size" if f.batch_size else "model_dir"):
        real, labels = real_batch(source, batch_size=batch_size, seed=f.seed)
    operator = game_operator(gan=gan, real=real, labels=labels)
    result = spectrum(operator=operator, k=f.k, which=tuple(f.which),
                      learning_rate=f.learning_rate, d_steps=gan.d_steps, blocks=f.blocks,
                      tol=f.tol, maxiter=f.maxiter, seed=f.seed)
    result.notes = tuple(notes) + result.notes + (f"checkpoint {path}",)
    png = record(result, out_dir=f.out_dir or os.path.join(f.model_dir, "spectrum"))
    return result, png


def main(argv):
    """`python -m tf_convgan.spectrum` (argv[0] is the program name; see USAGE): prints the
    table, writes the PNG; returns the exit status (2: bad input, one line `error: ...` naming
    the flag)."""
    from tf_convgan.errors import command_status, parse_flags

    def run():
        parse_flags(FLAGS, argv, usage=USAGE)
        result, png = evaluate_run(FLAGS)
        print(format_table(result))
        print(f"wrote {png}")

    return command_status(run)

