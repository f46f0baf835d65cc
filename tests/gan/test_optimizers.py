"""The optimizers against float64 NumPy references of their documented formulas: PyTorch's RMSprop
and Adam (torch_rmsprop, torch_adam), Keras' (rmsprop, adam); state, checkpoints, XLA, loss
scaling; bad hyperparameters (pre-summed gradients under 2 replicas: test_distribution.py)."""
import functools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_gan, random_batch, run_steps, weights
from tf_convgan.run_dir import checkpoints
from tf_convgan.gan import optimizers
from tf_convgan.errors import ConfigError

RNG = np.random.default_rng(0)
SHAPE = (5, 7)
W0 = RNG.normal(size=SHAPE)
# 20 gradients whose scale spans 1e-8 .. 1 (at GAN initialisation entries of 1e-6 are common):
# epsilon matters for the small ones, and with beta_1 = 0 a large exp_avg meets a tiny g.
GRADS = RNG.normal(size=(20,) + SHAPE) * 10.0 ** RNG.uniform(-8, 0, size=(20, 1, 1))
LR = 2.0 ** -10  # exact in float32 (Keras keeps the learning rate in a float32 variable)


# PyTorch's documented algorithms (torch.optim.RMSprop / Adam; momentum 0, not centered, no
# weight decay, not amsgrad), in float64.
def torch_rmsprop_reference(grads, lr, alpha, eps):
    w, square_avg, trajectory = W0.copy(), np.zeros(SHAPE), []
    for g in grads:
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        w = w - lr * g / (np.sqrt(square_avg) + eps)
        trajectory.append((w, {"square_avg": square_avg}))
    return trajectory


def torch_adam_reference(grads, lr, beta_1, beta_2, eps):
    """PyTorch's Adam since August 2019: eps added to the bias-corrected sqrt(v). `eps` may be a
    function of t (for the identity between the two forms)."""
    w, exp_avg, exp_avg_sq, trajectory = W0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), []
    for t, g in enumerate(grads, 1):
        exp_avg = beta_1 * exp_avg + (1 - beta_1) * g
        exp_avg_sq = beta_2 * exp_avg_sq + (1 - beta_2) * g * g
        eps_t = eps(t) if callable(eps) else eps
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta_2 ** t) + eps_t
        w = w - lr / (1 - beta_1 ** t) * exp_avg / denom
        trajectory.append((w, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}))
    return trajectory


def torch_adam_2018_reference(grads, lr, beta_1, beta_2, eps):
    """PyTorch's Adam before August 2019 (0.4.x, 1.0, 1.1): denom = sqrt(v) + eps, then
    step_size = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)."""
    w, exp_avg, exp_avg_sq, trajectory = W0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), []
    for t, g in enumerate(grads, 1):
        exp_avg = beta_1 * exp_avg + (1 - beta_1) * g
        exp_avg_sq = beta_2 * exp_avg_sq + (1 - beta_2) * g * g
        denom = np.sqrt(exp_avg_sq) + eps
        step_size = lr * math.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        w = w - step_size * exp_avg / denom
        trajectory.append((w, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}))
    return trajectory


# Keras' documented algorithms (keras.optimizers.RMSprop / Adam), in float64.
def keras_rmsprop_reference(grads, lr, rho, eps):
    w, v, trajectory = W0.copy(), np.zeros(SHAPE), []
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        w = w - lr * g / np.sqrt(v + eps)
        trajectory.append((w, {}))
    return trajectory


def keras_adam_reference(grads, lr, beta_1, beta_2, eps):
    # Keras takes the powers beta^t of the betas rounded to float32 (ops.cast of a Python float
    # goes through a float32 tensor), also for float64 variables.
    beta_1_32, beta_2_32 = float(np.float32(beta_1)), float(np.float32(beta_2))
    w, m, v, trajectory = W0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), []
    for t, g in enumerate(grads, 1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * math.sqrt(1 - beta_2_32 ** t) / (1 - beta_1_32 ** t)
        w = w - alpha * m / (np.sqrt(v) + eps)
        trajectory.append((w, {}))
    return trajectory


def _run(optimizer, dtype, grads=GRADS):
    """(weights, {state name: value}) after every step, as float64."""
    variable = keras.Variable(W0.astype(dtype))
    trajectory = []
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g.astype(dtype)), variable)])
        state = optimizer.state(variable) if hasattr(optimizer, "state") else {}
        trajectory.append((variable.numpy().astype(np.float64),
                           {k: v.numpy().astype(np.float64) for k, v in state.items()}))
    return trajectory


def _update_error(got, want):
    """max over steps of max|w_got - w_want| / max|w_want - w0|: relative to the change of w."""
    return max(np.abs(g[0] - w[0]).max() / np.abs(w[0] - W0).max() for g, w in zip(got, want))


CASES = {
    "torch_rmsprop": (lambda: optimizers.torch_rmsprop(learning_rate=LR, rho=0.99, epsilon=1e-8),
                      lambda g: torch_rmsprop_reference(g, LR, 0.99, 1e-8)),
    "torch_adam": (lambda: optimizers.torch_adam(learning_rate=LR, beta_1=0.0, beta_2=0.99,
                                                 epsilon=1e-8),
                   lambda g: torch_adam_reference(g, LR, 0.0, 0.99, 1e-8)),
    "torch_adam_momentum": (lambda: optimizers.torch_adam(learning_rate=LR, beta_1=0.9,
                                                          beta_2=0.999, epsilon=1e-8),
                            lambda g: torch_adam_reference(g, LR, 0.9, 0.999, 1e-8)),
    "torch_adam_2018": (lambda: optimizers.torch_adam(
                            learning_rate=LR, beta_1=0.0, beta_2=0.99, epsilon=1e-8,
                            epsilon_placement="before_bias_correction"),
                        lambda g: torch_adam_2018_reference(g, LR, 0.0, 0.99, 1e-8)),
    "torch_adam_2018_momentum": (lambda: optimizers.torch_adam(
                                     learning_rate=LR, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                     epsilon_placement="before_bias_correction"),
                                 lambda g: torch_adam_2018_reference(g, LR, 0.9, 0.999, 1e-8)),
    "rmsprop": (lambda: optimizers.rmsprop(learning_rate=LR, rho=0.99, epsilon=1e-8),
                lambda g: keras_rmsprop_reference(g, LR, 0.99, 1e-8)),
    "adam": (lambda: optimizers.adam(learning_rate=LR, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
             lambda g: keras_adam_reference(g, LR, 0.0, 0.99, 1e-8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_updates_follow_the_documented_formula(name):
    """20 updates in float64 equal the float64 reference to 1e-7 of the weights' change (and the
    PyTorch optimizers' state too); in float32 to 1e-6 of the weights (float32 rounds w itself)."""
    make, reference = CASES[name]
    want = reference(GRADS)
    got = _run(make(), "float64")
    assert _update_error(got, want) < 1e-7
    for (_, got_state), (_, want_state) in zip(got, want):
        assert set(got_state) == set(want_state)
        for key in want_state:
            np.testing.assert_allclose(got_state[key], want_state[key], rtol=1e-7, atol=0)
    got32 = _run(make(), "float32")
    assert max(np.abs(g[0] - w[0]).max() / np.abs(w[0]).max()
               for g, w in zip(got32, want)) < 1e-6


def test_torch_adam_with_beta_1_zero_keeps_the_gradient_exactly():
    """PyTorch's lerp gives exp_avg = g exactly when beta_1 = 0, also after a large gradient:
    exp_avg + (g - exp_avg) would round 1e-8 - 1 + 1 to 0 in float32."""
    variable = keras.Variable(np.zeros(3, np.float32))
    optimizer = optimizers.torch_adam(learning_rate=LR, beta_1=0.0)
    for g in ([1.0, -2.0, 3.0], [1e-8, 3e-9, -2e-10]):
        optimizer.apply_gradients([(tf.constant(g, tf.float32), variable)])
        np.testing.assert_array_equal(optimizer.state(variable)["exp_avg"].numpy(),
                                      np.float32(g))


@pytest.mark.parametrize("torch_name,keras_name", [("torch_rmsprop", "rmsprop"),
                                                   ("torch_adam", "adam")])
def test_pytorch_and_keras_formulas_differ_where_epsilon_matters(torch_name, keras_name):
    """Each optimizer fails the other family's reference (so the tests above tell them apart).
    First step on a gradient of 3e-6 (lr 1): PyTorch's RMSprop moves by
    g / (0.1 |g| + 1e-8) = 9.68, Keras' by g / sqrt(0.01 g^2 + 1e-8) = 0.0300; PyTorch's Adam
    (beta_2 0.99) by g / (|g| + 1e-8) = 0.9967, Keras' by 0.1 g / (0.1 |g| + 1e-8) = 0.9677."""
    torch_opt, keras_opt = CASES[torch_name][0](), CASES[keras_name][0]()
    assert _update_error(_run(torch_opt, "float64"), CASES[keras_name][1](GRADS)) > 1e-3
    assert _update_error(_run(keras_opt, "float64"), CASES[torch_name][1](GRADS)) > 1e-3
    g = np.full((1, 1), 3e-6)
    expected = {"torch_rmsprop": 3e-6 / (0.1 * 3e-6 + 1e-8),
                "rmsprop": 3e-6 / math.sqrt(0.01 * 9e-12 + 1e-8),
                "torch_adam": 3e-6 / (3e-6 + 1e-8),
                "adam": 0.1 * 3e-6 / (0.1 * 3e-6 + 1e-8)}
    for name in (torch_name, keras_name):
        factory = getattr(optimizers, name)
        variable = keras.Variable(np.zeros((1, 1)))
        factory(learning_rate=1.0).apply_gradients([(tf.constant(g), variable)])
        np.testing.assert_allclose(-variable.numpy()[0, 0], expected[name], rtol=1e-6)


@pytest.mark.parametrize("beta_1,beta_2", [(0.0, 0.99), (0.9, 0.999)])
def test_torch_adam_epsilon_placements_differ_by_the_bias_correction_of_epsilon(beta_1, beta_2):
    """PyTorch's 2018 Adam, lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), is today's
    lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps_t) with eps_t = eps / sqrt(1 - b2^t):
    the 2018 form matches today's reference with that eps_t to 1e-7 over 20 steps, and misses
    today's reference with eps itself (and vice versa) where eps matters."""
    def eps_t(t):
        return 1e-8 / math.sqrt(1 - beta_2 ** t)

    make = lambda placement: optimizers.torch_adam(  # noqa: E731
        learning_rate=LR, beta_1=beta_1, beta_2=beta_2, epsilon=1e-8, epsilon_placement=placement)
    old = _run(make("before_bias_correction"), "float64")
    new = _run(make("after_bias_correction"), "float64")
    assert _update_error(old, torch_adam_reference(GRADS, LR, beta_1, beta_2, eps_t)) < 1e-7
    assert _update_error(old, torch_adam_reference(GRADS, LR, beta_1, beta_2, 1e-8)) > 1e-3
    assert _update_error(new, torch_adam_2018_reference(GRADS, LR, beta_1, beta_2, 1e-8)) > 1e-3


def test_torch_adam_2018_first_step_uses_ten_times_epsilon():
    """First step (lr 1, beta_2 0.99) on g = 3e-6: today's form moves by g / (|g| + 1e-8) =
    0.99668, the 2018 form by 0.1 g / (0.1 |g| + 1e-8) = g / (|g| + 1e-7) = 0.96774 (eps 10x:
    sqrt(1 - 0.99) = 0.1). The default is today's form (the step-equality oracle's)."""
    g = np.full((1, 1), 3e-6)
    for placement, expected in ((None, 3e-6 / (3e-6 + 1e-8)),
                                ("after_bias_correction", 3e-6 / (3e-6 + 1e-8)),
                                ("before_bias_correction", 3e-6 / (3e-6 + 1e-7))):
        kwargs = {} if placement is None else {"epsilon_placement": placement}
        variable = keras.Variable(np.zeros((1, 1)))
        optimizers.torch_adam(learning_rate=1.0, **kwargs).apply_gradients(
            [(tf.constant(g), variable)])
        np.testing.assert_allclose(-variable.numpy()[0, 0], expected, rtol=1e-9)


def test_torch_adam_config_keeps_the_epsilon_placement():
    optimizer = optimizers.torch_adam(epsilon_placement="before_bias_correction")
    restored = optimizers.TorchAdam.from_config(optimizer.get_config())
    assert restored.epsilon_placement == "before_bias_correction"


@pytest.mark.parametrize("factory", [optimizers.torch_rmsprop, optimizers.torch_adam])
def test_set_state_continues_like_the_reference(factory):
    """The state after 10 reference steps, set with set_state, and 10 more updates give the
    reference's 20-step trajectory."""
    name = factory.__name__
    want = CASES[name][1](GRADS)
    w10, state10 = want[9]
    optimizer = factory(learning_rate=LR)
    variable = keras.Variable(w10)
    optimizer.build([variable])
    optimizer.set_state(10, [(variable, state10)])
    assert int(optimizer.iterations.numpy()) == 10
    for g, (w, _) in zip(GRADS[10:], want[10:]):
        optimizer.apply_gradients([(tf.constant(g), variable)])
        np.testing.assert_allclose(variable.numpy(), w, rtol=0, atol=1e-7 * np.abs(w - W0).max())
    with pytest.raises(ConfigError, match="needs the state"):
        optimizer.set_state(1, [(variable, {"wrong": w10})])
    with pytest.raises(ConfigError, match="must have shape"):
        optimizer.set_state(1, [(variable, {k: v[:2] for k, v in state10.items()})])
    assert int(optimizer.iterations.numpy()) == 20  # nothing written by the failed calls


@pytest.mark.parametrize("factory", [optimizers.torch_rmsprop, optimizers.torch_adam])
def test_checkpoint_restores_the_state(factory, tmp_path):
    """A GAN checkpoint holds the slots and the step: a restored GAN continues exactly."""
    optimizer = lambda: factory(learning_rate=1e-3)  # noqa: E731
    batches = [random_batch(4, seed=s) for s in (0, 1)]
    trained = make_gan(optimizer=optimizer)
    run_steps(trained, batches[:1])
    path = checkpoints.make_checkpoint(trained).write(str(tmp_path / "ckpt"))
    restored = make_gan(optimizer=optimizer, seed=5)  # other initial weights
    checkpoints.make_checkpoint(restored).read(path).assert_consumed()
    for a, b in ((trained.d_optimizer, restored.d_optimizer),
                 (trained.g_optimizer, restored.g_optimizer)):
        assert int(b.iterations.numpy()) == 1
        for x, y in zip(a.variables, b.variables):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    slots = [s for v in restored.discriminator.trainable_variables
             for s in restored.d_optimizer.state(v).values()]
    assert all(np.abs(s.numpy()).max() > 0 for s in slots)
    run_steps(trained, batches[1:])
    run_steps(restored, batches[1:])
    for a, b in zip(weights(trained), weights(restored)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("factory", [
    optimizers.torch_rmsprop, optimizers.torch_adam,
    functools.partial(optimizers.torch_adam, epsilon_placement="before_bias_correction")],
    ids=["torch_rmsprop", "torch_adam", "torch_adam_2018"])
def test_xla_update_equals_the_graph_update(factory):
    def run(jit_compile):
        variable = keras.Variable(W0.astype(np.float32))
        optimizer = factory(learning_rate=LR)
        optimizer.build([variable])
        step = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]),
                           jit_compile=jit_compile)
        for g in GRADS:
            step(tf.constant(g.astype(np.float32)))
        return variable.numpy()

    graph, xla = run(False), run(True)
    np.testing.assert_allclose(xla, graph, rtol=0, atol=1e-6 * np.abs(graph - W0).max())


@pytest.mark.parametrize("factory", [optimizers.torch_rmsprop, optimizers.torch_adam])
def test_loss_scale_optimizer_wraps_them(factory):
    """Wrapped in LossScaleOptimizer (mixed_float16), scaled gradients give the unscaled update;
    a non-finite gradient skips the update and leaves the state alone."""
    plain_var = keras.Variable(W0.astype(np.float32))
    plain = factory(learning_rate=LR)
    scaled_var = keras.Variable(W0.astype(np.float32))
    scaled = keras.optimizers.LossScaleOptimizer(factory(learning_rate=LR))
    scaled.build([scaled_var])
    for g in GRADS[:5]:
        plain.apply_gradients([(tf.constant(g.astype(np.float32)), plain_var)])
        g_scaled = tf.constant(g.astype(np.float32)) * scaled.dynamic_scale
        scaled.apply_gradients([(g_scaled, scaled_var)])
    np.testing.assert_allclose(scaled_var.numpy(), plain_var.numpy(), rtol=0,
                               atol=1e-6 * np.abs(plain_var.numpy() - W0).max())
    before = scaled_var.numpy()
    slots = [v.numpy() for v in scaled.inner_optimizer.state(scaled_var).values()]
    scaled.apply_gradients([(tf.fill(SHAPE, np.inf), scaled_var)])
    np.testing.assert_array_equal(scaled_var.numpy(), before)
    for slot, value in zip(scaled.inner_optimizer.state(scaled_var).values(), slots):
        np.testing.assert_array_equal(slot.numpy(), value)
    assert int(scaled.inner_optimizer.iterations.numpy()) == 5


def test_mixed_float16_gan_trains_with_them():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = make_gan(optimizer=lambda: optimizers.torch_adam(learning_rate=1e-3))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert isinstance(gan.d_optimizer.inner_optimizer, optimizers.TorchAdam)
    before = weights(gan)
    logs = run_steps(gan, [random_batch(4)])
    assert all(np.isfinite(v) for v in logs.values())
    assert sum(not np.array_equal(a, b) for a, b in zip(before, weights(gan))) > len(before) // 2


FACTORIES = [optimizers.rmsprop, optimizers.adam, optimizers.torch_rmsprop,
             optimizers.torch_adam, optimizers.lazy_adam, optimizers.sgd]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0, -1e-4, "fast"])
def test_bad_learning_rate_is_rejected_by_name(factory, value):
    with pytest.raises(ConfigError, match=rf"{factory.__name__}\.learning_rate must be a finite "
                                          rf"number > 0"):
        factory(learning_rate=value)


@pytest.mark.parametrize("call,param", [
    (lambda: optimizers.rmsprop(rho=1.0), "rmsprop.rho"),
    (lambda: optimizers.torch_rmsprop(rho=float("nan")), "torch_rmsprop.rho"),
    (lambda: optimizers.torch_rmsprop(epsilon=float("inf")), "torch_rmsprop.epsilon"),
    (lambda: optimizers.torch_adam(beta_1=-0.1), "torch_adam.beta_1"),
    (lambda: optimizers.torch_adam(beta_2=float("inf")), "torch_adam.beta_2"),
    (lambda: optimizers.torch_adam(epsilon_placement="pytorch_0_4"),
     "torch_adam.epsilon_placement must be one of"),
    (lambda: optimizers.adam(epsilon=float("nan")), "adam.epsilon"),
    (lambda: optimizers.lazy_adam(epsilon=-1.0), "lazy_adam.epsilon"),
    (lambda: optimizers.sgd(momentum=float("inf")), "sgd.momentum"),
])
def test_bad_hyperparameters_are_rejected_by_name(call, param):
    with pytest.raises(ConfigError, match=param.replace(".", r"\.")):
        call()


def _torch_step_lr(lr, gamma, step_size, iterations):
    """The learning rate of every iteration of GAN_stability's loop: StepLR(last_epoch=-1) steps
    once at construction and once at the start of every iteration (before the updates)."""
    last_epoch, rates = 0, []
    for _ in range(iterations):
        last_epoch += 1
        if last_epoch % step_size == 0:
            lr *= gamma
        rates.append(lr)
    return rates


@pytest.mark.parametrize("factory", ["torch_rmsprop", "torch_adam", "sgd"])
def test_lr_anneal_multiplies_the_learning_rate_every_lr_anneal_every_updates(factory):
    every, lr, anneal = 5, 1e-3, 0.5
    optimizer = getattr(optimizers, factory)(learning_rate=lr, lr_anneal=anneal,
                                             lr_anneal_every=every)
    reference = _torch_step_lr(lr, anneal, every, 2 * every + 1)
    for done in (0, every - 2, every - 1, every, 2 * every - 1, 2 * every):
        optimizer.iterations.assign(done)  # the next update is update number done + 1
        want = lr * anneal ** ((done + 1) // every)
        np.testing.assert_allclose(float(optimizer.learning_rate), want, rtol=1e-6)
        np.testing.assert_allclose(want, reference[done], rtol=1e-12)


def test_lr_anneal_is_what_the_update_uses():
    every = 3
    optimizer = optimizers.sgd(learning_rate=0.5, lr_anneal=0.1, lr_anneal_every=every)
    w = keras.Variable(0.0)
    steps = []
    for _ in range(2 * every):
        before = float(w.numpy())
        optimizer.apply_gradients([(tf.constant(1.0), w)])
        steps.append(before - float(w.numpy()))
    np.testing.assert_allclose(steps, _torch_step_lr(0.5, 0.1, every, 2 * every), rtol=1e-6)


def test_lr_anneal_of_one_keeps_a_constant_learning_rate():
    optimizer = optimizers.torch_adam(learning_rate=2e-4)
    optimizer.iterations.assign(10 ** 7)
    np.testing.assert_allclose(float(optimizer.learning_rate), 2e-4, rtol=1e-6)


@pytest.mark.parametrize("kwargs,param", [
    ({"lr_anneal": 0.5}, "torch_adam.lr_anneal_every"),
    ({"lr_anneal": 0.5, "lr_anneal_every": 0}, "torch_adam.lr_anneal_every"),
    ({"lr_anneal": 0.0, "lr_anneal_every": 10}, "torch_adam.lr_anneal"),
    ({"lr_anneal": float("nan"), "lr_anneal_every": 10}, "torch_adam.lr_anneal"),
])
def test_bad_lr_anneal_is_rejected_by_name(kwargs, param):
    with pytest.raises(ConfigError, match=param.replace(".", r"\.") + " must"):
        optimizers.torch_adam(**kwargs)
