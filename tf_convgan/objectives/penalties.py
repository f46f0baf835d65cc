"""Gradient penalties on the discriminator: pure functions, one value per example.

    penalty(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None,
            <hyperparameters>) -> [B]

d_fn: images -> logits [B] (labels and `training` bound); real, fake: [B, ...] of one static
shape; seed: a stateless [2] seed of the penalty's random draws, made for the global batch (None:
the global generator); real_gradients: None, or a function giving grad_x sum D(x) at `real` from
the caller's forward pass; loss_scale: None, or the loss scale under mixed_float16
(`input_gradients`). `roth` also takes the step (`takes_step`). The values are already weighted,
gamma/2 * E[...] (Mescheder et al. 2018). The formulas, their references and conversions
(GAN_stability's reg_param 10 == gamma 20), the calling convention and what the input gradient is
under batch norm: docs/conventions.md, "Gradient penalties".
"""
import inspect

import gin
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError, check_nonnegative

# What the step hands every penalty: not hyperparameters, not gin parameters.
_NOT_HYPERPARAMETERS = ["real_gradients", "loss_scale"]
_NORM_EPS = 1e-12  # keeps the gradient of ||g|| finite at g = 0


def input_gradients(d_fn, x, *, loss_scale=None):
    """grad_x D(x_i) for every example of the batch x, by GradientTape (differentiable).

    Under loss scaling (mixed_float16) the gradient is taken of loss_scale * D, so that it does
    not underflow in float16, and divided by loss_scale again here, before any penalty squares it
    (TensorFlow's issue 48662 describes the underflow)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(tf.cast(d_fn(x), tf.float32))
        if loss_scale is not None:
            total *= tf.cast(loss_scale, tf.float32)
    gradients = tape.gradient(total, x)
    if loss_scale is not None:
        gradients = tf.cast(gradients, tf.float32) / tf.cast(loss_scale, tf.float32)
    return gradients


def _compute_dtype(x):
    """float32, or float64 for float64 data (the Dirac-GAN study)."""
    return tf.float64 if x.dtype == tf.float64 else tf.float32


def logits_and_input_gradients(d_fn, x, *, loss_scale=None):
    """(D(x) [B], grad_x D(x_i)) from one forward pass, both in float32 (float64 for float64 x);
    the gradient as `input_gradients` takes it (unscaled under loss scaling)."""
    dtype = _compute_dtype(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = tf.cast(d_fn(x), dtype)
        total = tf.reduce_sum(logits)
        if loss_scale is not None:
            total *= tf.cast(loss_scale, dtype)
    gradients = tape.gradient(total, x)
    if loss_scale is not None:
        gradients = tf.cast(gradients, dtype) / tf.cast(loss_scale, dtype)
    return logits, tf.cast(gradients, dtype)


def takes_step(penalty):
    """Whether `penalty` has a `step` parameter (the GAN step then passes it: `roth`)."""
    try:
        return "step" in inspect.signature(penalty).parameters
    except (TypeError, ValueError):  # a callable without a signature
        return False


def squared_norm(gradients):
    """Per-example squared L2 norm over all non-batch axes: [B, ...] -> [B]."""
    return tf.reduce_sum(tf.square(gradients), axis=_non_batch_axes(gradients))


def _non_batch_axes(x):
    return list(range(1, x.shape.rank))


def _per_example_shape(x):
    return [x.shape[0]] + [1] * (x.shape.rank - 1)


def _uniform(shape, seed, dtype):
    """U[0, 1): stateless and independent of the replica split when seeded (see noise.py)."""
    if seed is None:
        return tf.random.uniform(shape, dtype=dtype)
    return noise.uniform(shape, seed, dtype)


def interpolate(real, fake, seed=None):
    """x^ = eps * real + (1 - eps) * fake with eps ~ U[0, 1] drawn per example."""
    eps = _uniform(_per_example_shape(real), seed, real.dtype)
    return eps * real + (1.0 - eps) * fake


def _real_gradients(d_fn, real, real_gradients, loss_scale):
    """grad_x D at the real batch: from the caller's forward pass when it hands it over."""
    if real_gradients is not None:
        return real_gradients()
    return input_gradients(d_fn, real, loss_scale=loss_scale)


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def r1(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None, gamma=10.0):
    """R1: gamma/2 * ||grad_x D(x)||^2 on real data (Mescheder et al. 2018, eq. 9)."""
    del fake, seed
    check_nonnegative("r1.gamma", gamma)
    return 0.5 * gamma * squared_norm(_real_gradients(d_fn, real, real_gradients, loss_scale))


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def r2(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None, gamma=10.0):
    """R2: gamma/2 * ||grad_x D(x)||^2 on generated data (Mescheder et al. 2018, eq. 10)."""
    del real, seed, real_gradients
    check_nonnegative("r2.gamma", gamma)
    return 0.5 * gamma * squared_norm(input_gradients(d_fn, fake, loss_scale=loss_scale))


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def r1_r2(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None, gamma=10.0):
    """R1 + R2: gamma/2 * (||grad D(real)||^2 + ||grad D(fake)||^2)."""
    del seed
    check_nonnegative("r1_r2.gamma", gamma)
    real_sq = squared_norm(_real_gradients(d_fn, real, real_gradients, loss_scale))
    fake_sq = squared_norm(input_gradients(d_fn, fake, loss_scale=loss_scale))
    return 0.5 * gamma * (real_sq + fake_sq)


def _norm(gradients):
    return tf.sqrt(squared_norm(gradients) + _NORM_EPS)


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def wgan_gp(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None,
            gamma=20.0, g0=1.0):
    """WGAN-GP: gamma/2 * (||grad D(x^)|| - g0)^2 at interpolates x^ (gamma=20 is lambda=10)."""
    del real_gradients
    check_nonnegative("wgan_gp.gamma", gamma)
    check_nonnegative("wgan_gp.g0", g0)
    norm = _norm(input_gradients(d_fn, interpolate(real, fake, seed), loss_scale=loss_scale))
    return 0.5 * gamma * tf.square(norm - g0)


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def wgan_gp_one_sided(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None,
                      gamma=20.0, g0=1.0):
    """One-sided WGAN-GP: gamma/2 * max(0, ||grad D(x^)|| - g0)^2 at interpolates x^."""
    del real_gradients
    check_nonnegative("wgan_gp_one_sided.gamma", gamma)
    check_nonnegative("wgan_gp_one_sided.g0", g0)
    norm = _norm(input_gradients(d_fn, interpolate(real, fake, seed), loss_scale=loss_scale))
    return 0.5 * gamma * tf.square(tf.nn.relu(norm - g0))


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def wgan_gp0(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None,
             gamma=10.0):
    """WGAN-GP0: zero-centred penalty at interpolates, gamma/2 * ||grad D(x^)||^2."""
    del real_gradients
    check_nonnegative("wgan_gp0.gamma", gamma)
    grads = input_gradients(d_fn, interpolate(real, fake, seed), loss_scale=loss_scale)
    return 0.5 * gamma * squared_norm(grads)


@gin.configurable
def exponential_annealing(step, *, decay=0.01, decay_steps):
    """The factor decay^(min(step, decay_steps) / decay_steps): 1 at step 0, `decay` at step
    `decay_steps` and after (constant from there). `step` may be a tensor (traced code).
    `decay_steps` is required (no default: a forgotten one would anneal over a guessed length).

    `roth.annealing = @exponential_annealing` anneals Roth et al.'s gamma as their code does
    (rothk/Stabilizing_GANs, `--annealing`, default `decay_factor` 0.01): gamma_t = gamma *
    decay^(t / (T - 1)) for iterations t = 0 .. T - 1, i.e. decay_steps = train.num_steps - 1 here
    (the GAN's step counter is 0 in the first step)."""
    if not 0.0 < float(decay) <= 1.0:
        raise ConfigError(f"exponential_annealing.decay must be in (0, 1], got {decay!r}")
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps < 1:
        raise ConfigError(
            f"exponential_annealing.decay_steps must be an integer >= 1, got {decay_steps!r}")
    t = tf.minimum(tf.cast(step, tf.float32), float(decay_steps)) / float(decay_steps)
    return tf.pow(tf.constant(float(decay), tf.float32), t)


def _annealing_factor(annealing, step):
    """annealing(step); a required hyperparameter left unbound is a ConfigError naming it."""
    try:
        return annealing(step)
    except TypeError as e:
        if "missing" not in str(e) or "required" not in str(e):
            raise
        message = str(e).splitlines()[0]
        raise ConfigError(f"roth.annealing: {message} (bind it in the config, e.g. "
                          f"exponential_annealing.decay_steps = train.num_steps - 1)") from e


@gin.configurable(denylist=_NOT_HYPERPARAMETERS + ["step"])
def roth(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None, step=None,
         gamma=2.0, annealing=None):
    """Roth et al. 2017's regularizer of the (minimax / non-saturating) GAN with D = sigmoid(psi),
    psi = d_fn's logit, per example i (real example i and fake example i):

        gamma_t/2 * [(1 - sigmoid(psi(real_i)))^2 ||grad psi(real_i)||^2
                     + sigmoid(psi(fake_i))^2 ||grad psi(fake_i)||^2]

    the mean of which is gamma_t/2 * Omega, their eq. (their code: `disc_loss += (gamma/2.0) *
    disc_reg`, so their gamma == gamma). The sigmoid weights are differentiated as well, as in
    their code. gamma_t = gamma * annealing(step) (annealing None: gamma_t = gamma); annealing,
    e.g. `@exponential_annealing`, needs the step, which the GAN step passes (`takes_step`);
    called without a step (the Dirac-GAN study) it raises.

    The real half: with `real_gradients` (the caller's forward pass) the gradient is reused and
    psi(real) comes from one more forward pass of D (no backward pass); without it, psi(real) and
    its gradient come from one pass here. The fake half: one pass for both. (So D runs twice more
    than for the loss, R1 + R2 once; with spectral norm in training mode each pass also refines
    the power iteration's u once more.) Per example, no batch
    statistics: R replicas give one device's values; under mixed_float16 the gradients are
    unscaled before they are squared (`loss_scale`); the sigmoids are of float32 logits (float64 for float64 data).

    Near the equilibrium, sigmoid(psi) = 1/2, the weights are 1/4: the regularizer acts like
    (1/4) * r1_r2 with the same gamma (the Dirac-GAN Jacobian of `tf_convgan.studies.dirac`)."""
    del seed
    check_nonnegative("roth.gamma", gamma)
    dtype = _compute_dtype(real)
    weight = tf.constant(0.5 * float(gamma), dtype)
    if annealing is not None:
        if step is None:
            raise ConfigError(
                "roth.annealing needs the training step, which the GAN step passes; without it "
                "(e.g. the Dirac-GAN study) set roth.annealing = None")
        weight *= tf.cast(_annealing_factor(annealing, step), dtype)
    if real_gradients is not None:
        real_logits = tf.cast(d_fn(real), dtype)
        real_grads = tf.cast(real_gradients(), dtype)
    else:
        real_logits, real_grads = logits_and_input_gradients(d_fn, real, loss_scale=loss_scale)
    fake_logits, fake_grads = logits_and_input_gradients(d_fn, fake, loss_scale=loss_scale)
    real_term = tf.square(tf.sigmoid(-real_logits)) * squared_norm(real_grads)  # 1 - s(t) = s(-t)
    fake_term = tf.square(tf.sigmoid(fake_logits)) * squared_norm(fake_grads)
    return weight * (real_term + fake_term)


def batch_std(x):
    """The standard deviation of all elements of the *global* batch x (a scalar), the same however
    the batch is split over replicas; no gradient flows into it.

    In replica context with R > 1 replicas (`strategy.run`), each replica holds a slice of the
    global batch: the element sum and count are summed over replicas (all-reduce), which gives the
    global mean, then the sum of squared deviations from that mean is summed over replicas:
    std = sqrt(sum (x - mean)^2 / n), the population std (NumPy's default, ddof = 0). Two passes,
    as tf.math.reduce_std, rather than E[x^2] - E[x]^2, which cancels digits in float32. Outside a
    replica context (or with one replica) it is tf.math.reduce_std of x. Computed in float32 (at
    least) and returned in x's dtype."""
    x = tf.stop_gradient(tf.convert_to_tensor(x))
    dtype = x.dtype
    compute = tf.float64 if dtype == tf.float64 else tf.float32
    x = tf.cast(x, compute)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.cast(tf.math.reduce_std(x), dtype)
    total_and_count = _all_reduce_sum(
        ctx, tf.stack([tf.reduce_sum(x), tf.cast(tf.size(x), compute)]))
    count = total_and_count[1]
    mean = total_and_count[0] / count
    squares = _all_reduce_sum(ctx, tf.reduce_sum(tf.square(x - mean)))
    return tf.cast(tf.sqrt(squares / count), dtype)


def _all_reduce_sum(ctx, value):
    """The replica sum of `value`. MirroredStrategy all-reduces through a merge_call, which it
    refuses inside control flow (a tf.cond branch such as GAN.lazy_interval's): that is reported
    as a ConfigError that says what to change."""
    try:
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)
    except RuntimeError as e:
        if "merge_call" not in str(e):
            raise
        raise ConfigError(
            "dragan.std_over = 'batch' (dragan_compare_gan's too) needs the std of the global "
            "batch, an all-reduce over replicas, which this strategy cannot run inside control "
            "flow (GAN.lazy_interval evaluates the penalty in a tf.cond): set "
            "dragan.std_over = 'example' (or dragan_compare_gan.std_over) or "
            "GAN.lazy_interval = None") from e


def _example_std(x):
    """Each example's standard deviation over its own elements, [B, 1, ..., 1]."""
    return tf.math.reduce_std(tf.stop_gradient(x), axis=_non_batch_axes(x), keepdims=True)


_STD_OVER = ("batch", "example")


def _perturbation_std(real, std_over, name):
    """The std that scales DRAGAN's perturbation: of the global batch, or each example's own."""
    if std_over not in _STD_OVER:
        raise ConfigError(f"{name}.std_over must be one of {_STD_OVER}, got {std_over!r}")
    return batch_std(real) if std_over == "batch" else _example_std(real)


def _sub_seed(seed, purpose):
    """An independent stateless seed for a second draw (None: the global generator draws)."""
    return None if seed is None else noise.fold_in(seed, purpose)


_ALPHA = 1  # the purpose folded into the seed of dragan's interpolation weights


def dragan_points(real, seed=None, *, c=0.5, std_over="batch"):
    """Kodali et al.'s evaluation points: x_p = x + c * std * u, u ~ U[0, 1) elementwise (from
    `seed`), then x^ = x + alpha * (x_p - x), alpha ~ U[0, 1) per example (from a seed folded
    from `seed`), both drawn for the global batch. No gradient flows into std."""
    std = _perturbation_std(real, std_over, "dragan")
    perturbed = real + c * std * _uniform(real.shape.as_list(), seed, real.dtype)
    alpha = _uniform(_per_example_shape(real), _sub_seed(seed, _ALPHA), real.dtype)
    return real + alpha * (perturbed - real)


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def dragan(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None, gamma=20.0,
           g0=1.0, c=0.5, std_over="batch"):
    """DRAGAN as Kodali et al. 2017's code computes it (kodalinaveen3/DRAGAN, DRAGAN.ipynb):
    gamma/2 * (||grad D(x^)|| - g0)^2 at

        x_p = x + c * std * u,          u ~ U[0, 1) elementwise, x real
        x^  = x + alpha * (x_p - x),    alpha ~ U[0, 1) per example

    (their `get_perturbed_batch`: `X + 0.5 * X.std() * np.random.random(X.shape)`, then
    `interpolates = X + alpha * (X_p - X)` with alpha of shape [batch, 1]; `dragan_points`).

    std_over='batch' (default, theirs): std is the standard deviation of all elements of the
      global batch of real data (`batch_std`: NumPy's `X.std()`, population std, all-reduced over
      replicas, so the result does not depend on how the batch is split).
    std_over='example': each example's own std over its elements (an example-local variant).

    gamma = 20 is their lambda = 10 (`disc_cost += lambd * mean((slopes - 1)^2)`; the module's
    gamma/2 convention), c = 0.5 and g0 = 1 are theirs. compare_gan's form (no interpolation,
    u - 1/2, clipping) is `dragan_compare_gan`."""
    del fake, real_gradients  # the gradients are taken at perturbed real data
    check_nonnegative("dragan.gamma", gamma)
    check_nonnegative("dragan.g0", g0)
    check_nonnegative("dragan.c", c)
    points = dragan_points(real, seed, c=c, std_over=std_over)
    norm = _norm(input_gradients(d_fn, points, loss_scale=loss_scale))
    return 0.5 * gamma * tf.square(norm - g0)


_COMPARE_GAN_NORM_EPS = 1e-4  # compare_gan: slopes = sqrt(0.0001 + sum g^2)


def dragan_compare_gan_points(real, seed=None, *, c=1.0, std_over="batch", clip=(-1.0, 1.0)):
    """compare_gan's evaluation points: x~ = clip(x + c * std * (u - 1/2), lo, hi), u ~ U[0, 1)
    elementwise (from `seed`, drawn for the global batch); clip None: not clipped."""
    std = _perturbation_std(real, std_over, "dragan_compare_gan")
    points = real + c * std * (_uniform(real.shape.as_list(), seed, real.dtype) - 0.5)
    if clip is None:
        return points
    low, high = clip
    return tf.clip_by_value(points, tf.cast(low, real.dtype), tf.cast(high, real.dtype))


def _check_clip(name, clip):
    """None, or a pair (low, high) of numbers with low < high."""
    if clip is None:
        return
    try:
        low, high = (float(v) for v in clip)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not low < high:
        raise ConfigError(f"{name}.clip must be None or a pair (low, high) with low < high, "
                          f"got {clip!r}")


@gin.configurable(denylist=_NOT_HYPERPARAMETERS)
def dragan_compare_gan(d_fn, real, fake, seed=None, *, real_gradients=None, loss_scale=None,
                       gamma=20.0, g0=1.0, c=1.0, std_over="batch", clip=(-1.0, 1.0)):
    """DRAGAN as compare_gan computes it (google/compare_gan, gans/penalty_lib.py,
    `dragan_penalty`), the code of Kurach et al. 2019's study: gamma/2 * (s - g0)^2 with
    s = sqrt(||grad D(x~)||^2 + 1e-4) at

        x~ = clip(x + c * std * (u - 1/2), lo, hi),   u ~ U[0, 1) elementwise, x real, c = 1,

    no interpolation; std the standard deviation of all elements of the batch of real data
    (compare_gan: `tf.nn.moments` over all axes, the population std; here of the global batch,
    `std_over='batch'`; 'example': each example's own). compare_gan clips to [0, 1], its data
    range; the library's images are in [-1, 1] (x' = 2x - 1 maps its points onto these), so
    `clip` defaults to (-1, 1); None: no clipping. The gradient is taken at the clipped point, as
    compare_gan's `tf.gradients(logits, [x_noisy])`. Its weight `lambda * mean(...)` is
    gamma = 2 * lambda (lambda = 10: gamma = 20)."""
    del fake, real_gradients
    check_nonnegative("dragan_compare_gan.gamma", gamma)
    check_nonnegative("dragan_compare_gan.g0", g0)
    check_nonnegative("dragan_compare_gan.c", c)
    _check_clip("dragan_compare_gan", clip)
    points = dragan_compare_gan_points(real, seed, c=c, std_over=std_over, clip=clip)
    grads = input_gradients(d_fn, points, loss_scale=loss_scale)
    norm = tf.sqrt(squared_norm(grads) + _COMPARE_GAN_NORM_EPS)
    return 0.5 * gamma * tf.square(norm - g0)
