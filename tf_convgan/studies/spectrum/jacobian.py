"""The game Jacobian J = dv/dx as a matrix-free operator: J u by forward-over-reverse and J^T w
by reverse-over-reverse autodiff of the field v = (-grad_theta L_G, -grad_psi L_D), with the
networks' weights passed as tensors (`keras.StatelessScope`), on one batch and step's draws,
summed over the replicas of a tf.distribute strategy."""
import copy

import keras
import numpy as np
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError
from tf_convgan.studies.spectrum.game import game_terms, objectives, step_seeds

_FLOAT_DTYPES = ("float32", "float64")


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
