"""Gin-configurable optimizer factories (gin.tf's registrations do not import on TF 2.16+).

Bind them per player with gin scopes, for example

    GAN.g_optimizer = @g/torch_adam()
    GAN.d_optimizer = @d/torch_adam()
    torch_adam.learning_rate = 1e-4
    torch_adam.beta_1 = 0.0
    torch_adam.beta_2 = 0.99

Two families, because Keras and PyTorch put epsilon in different places, and at the start of
GAN training (gradients of 1e-6 and below) epsilon decides the step size:

  rmsprop, adam, lazy_adam: Keras' optimizers (keras.optimizers.RMSprop / Adam).
      RMSprop:  w <- w - lr g / sqrt(v + eps)
      Adam:     w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + eps)
                (eps is Kingma & Ba's "epsilon hat": the effective eps is eps / sqrt(1 - beta_2^t),
                10x PyTorch's at step 1 with beta_2 = 0.99).
      TensorFlow GAN code (compare_gan: CR, ICR) used these; its configs keep them.
  torch_rmsprop, torch_adam: TorchRMSprop / TorchAdam, PyTorch's torch.optim.RMSprop / Adam
      formulas, which GAN_stability (Mescheder et al. 2018) trained with:
      RMSprop:  w <- w - lr g / (sqrt(v) + eps)
      Adam:     w <- w - lr / (1 - beta_1^t) m / (sqrt(v) / sqrt(1 - beta_2^t) + eps)
      With eps = 1e-8 and a gradient entry g ~ 3e-6 at the first step, PyTorch's RMSprop moves
      that weight by ~10 lr, Keras' by ~0.03 lr: the GAN_stability configs use these.
      PyTorch's Adam changed in August 2019 (pytorch/pytorch#22628): before, it added eps before
      the bias correction, w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m / (sqrt(v) + eps),
      which is the formula above with eps / sqrt(1 - beta_2^t) for eps (Keras' "epsilon hat").
      `torch_adam(epsilon_placement=...)` offers both (EPSILON_PLACEMENTS); PyTorch's RMSprop
      has no bias correction and has kept sqrt(v) + eps throughout.

In both, v <- rho v + (1 - rho) g^2 (PyTorch's `alpha` is Keras' `rho`) and, for Adam,
m <- beta_1 m + (1 - beta_1) g; t counts the optimizer's updates from 1.

Learning-rate annealing (`torch_rmsprop`, `torch_adam`, `sgd`: `lr_anneal`, `lr_anneal_every`):
GAN_stability's `build_lr_scheduler`, PyTorch's StepLR stepped once per iteration before the
updates. The n-th update of the optimizer (n = 1, 2, ...) uses

    learning_rate * lr_anneal ** (n // lr_anneal_every)

(`StepDecay`; the lr_anneal_every-th update is the first with the annealed rate, one update
earlier than keras.optimizers.schedules.ExponentialDecay(staircase=True), which Keras calls with
the n - 1 updates done). Each optimizer counts its own updates: with `GAN.d_steps = k`, D's counts
k per GAN step and G's one, so GAN_stability's per-iteration schedule (an iteration is one D
update; G updates every d_steps-th) is D's `lr_anneal_every` and G's `lr_anneal_every / k`
(`tf_convgan.gan_stability.config` translates it so).
"""
import math

import gin
import keras
from keras import ops

from tf_convgan.errors import ConfigError, check_nonnegative


def _check_learning_rate(name, learning_rate):
    try:
        ok = math.isfinite(float(learning_rate)) and float(learning_rate) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name}.learning_rate must be a finite number > 0, got "
                          f"{learning_rate!r}")


def _check_decay(name, value):
    """A decay rate (rho, beta_1, beta_2) in [0, 1)."""
    try:
        ok = 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


def _one_minus_power(beta, t):
    """1 - beta^t for a Python float beta in [0, 1) and a float tensor t >= 1, as
    -expm1(t log(beta)): accurate to a few ulps also in float32, where 1 - beta^t would lose
    digits to cancellation (PyTorch computes it in float64)."""
    if beta == 0.0:
        return ops.ones_like(t)
    return -ops.expm1(t * math.log(beta))


@keras.saving.register_keras_serializable(package="tf_convgan")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's StepLR as GAN_stability steps it (see the module docstring): Keras calls the
    schedule with the optimizer's update count `step` before the update, and that update uses

        initial_learning_rate * decay_rate ** ((step + 1) // decay_steps)

    (integer division, exact at any step)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, name="step_decay"):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_rate = float(decay_rate)
        self.name = name

    def __call__(self, step):
        count = ops.add(ops.cast(step, "int64"), 1)
        exponent = ops.cast(ops.floor_divide(count, self.decay_steps), "float32")
        return ops.multiply(self.initial_learning_rate,
                            ops.power(ops.cast(self.decay_rate, "float32"), exponent))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "name": self.name}


def _annealed(name, learning_rate, lr_anneal, lr_anneal_every):
    """The checked learning rate: the number, or a StepDecay when lr_anneal != 1."""
    _check_learning_rate(name, learning_rate)
    try:
        ok = math.isfinite(float(lr_anneal)) and float(lr_anneal) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(lr_anneal, bool):
        raise ConfigError(f"{name}.lr_anneal must be a finite number > 0, got {lr_anneal!r}")
    if float(lr_anneal) == 1.0:
        return learning_rate
    if (isinstance(lr_anneal_every, bool) or not isinstance(lr_anneal_every, int)
            or lr_anneal_every < 1):
        raise ConfigError(f"{name}.lr_anneal_every must be an integer >= 1 (updates of this "
                          f"optimizer) when lr_anneal != 1, got {lr_anneal_every!r}")
    return StepDecay(learning_rate, lr_anneal_every, lr_anneal)


class _TorchOptimizer(keras.optimizers.Optimizer):
    """Shared state handling of the PyTorch-exact optimizers.

    State, in PyTorch's names: for every model variable one slot variable per name in `STATE`,
    of the variable's shape and (Keras) layout; and the update count `iterations`, which is
    PyTorch's per-parameter `step` (the same for every parameter). `state(variable)` gives a
    variable's slots; `set_state(step, states)` writes all of them, e.g. to continue from a
    PyTorch checkpoint's optimizer state."""

    STATE = ()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._slots = {name: self.add_optimizer_variables(var_list, name) for name in self.STATE}

    def state(self, variable):
        """{PyTorch state name: slot variable} of a model variable this optimizer updates."""
        index = self._get_variable_index(variable)
        return {name: slots[index] for name, slots in self._slots.items()}

    def set_state(self, step, states):
        """Sets the update count to `step` and, for every (variable, {name: value}) in `states`,
        the variable's slots (values of the variable's shape, in its Keras layout; every name of
        `STATE` is needed). Everything is checked before anything is written."""
        checked = []
        for variable, values in states:
            if set(values) != set(self.STATE):
                raise ConfigError(f"{type(self).__name__}.set_state: {variable.path} needs the "
                                  f"state {sorted(self.STATE)}, got {sorted(values)}")
            for name, slot in self.state(variable).items():
                value = ops.convert_to_tensor(values[name], dtype=slot.dtype)
                if tuple(value.shape) != tuple(slot.shape):
                    raise ConfigError(
                        f"{type(self).__name__}.set_state: {name} of {variable.path} must have "
                        f"shape {tuple(slot.shape)}, got {tuple(value.shape)}")
                checked.append((slot, value))
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ConfigError(f"{type(self).__name__}.set_state: step must be an integer >= 0, "
                              f"got {step!r}")
        for slot, value in checked:
            slot.assign(value)
        self.iterations.assign(int(step))


class TorchRMSprop(_TorchOptimizer):
    """RMSprop with PyTorch's formula (torch.optim.RMSprop, momentum 0, not centered, no weight
    decay), the optimizer of GAN_stability's default config:

        square_avg <- rho square_avg + (1 - rho) g^2
        w <- w - lr g / (sqrt(square_avg) + epsilon)

    `rho` is PyTorch's `alpha`, `epsilon` its `eps`. State: `square_avg` (see `state`)."""

    STATE = ("square_avg",)

    def __init__(self, learning_rate=1e-4, rho=0.99, epsilon=1e-8, name="torch_rmsprop",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = float(rho)
        self.epsilon = float(epsilon)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        square_avg = self._slots["square_avg"][self._get_variable_index(variable)]
        self.assign(square_avg, ops.add(ops.multiply(square_avg, self.rho),
                                        ops.multiply(ops.square(gradient), 1.0 - self.rho)))
        denominator = ops.add(ops.sqrt(square_avg), self.epsilon)
        self.assign_sub(variable, ops.multiply(ops.divide(gradient, denominator), lr))

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config


# Where PyTorch's Adam adds eps (TorchAdam): after the bias correction of sqrt(v) (PyTorch since
# August 2019, pytorch/pytorch#22628), or before it (PyTorch 0.4.x, 1.0, 1.1: the 2018 form).
EPSILON_PLACEMENTS = ("after_bias_correction", "before_bias_correction")


def check_epsilon_placement(name, epsilon_placement):
    if epsilon_placement not in EPSILON_PLACEMENTS:
        raise ConfigError(f"{name} must be one of {EPSILON_PLACEMENTS}, got "
                          f"{epsilon_placement!r}")
    return epsilon_placement


class TorchAdam(_TorchOptimizer):
    """Adam with PyTorch's formula (torch.optim.Adam, not amsgrad, no weight decay), as
    GAN_stability's Adam configs (betas 0, 0.99):

        exp_avg <- beta_1 exp_avg + (1 - beta_1) g
        exp_avg_sq <- beta_2 exp_avg_sq + (1 - beta_2) g^2
        w <- w - lr / (1 - beta_1^t) exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta_2^t) + epsilon)

    with t the update count from 1 (`epsilon_placement='after_bias_correction'`, PyTorch since
    August 2019). `epsilon_placement='before_bias_correction'` is the PyTorch of 2018 (0.4.x, up
    to its change in pytorch/pytorch#22628):

        w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) exp_avg / (sqrt(exp_avg_sq) + epsilon)

    that is, the first form with epsilon / sqrt(1 - beta_2^t) in place of epsilon: 10 epsilon at
    t = 1 with beta_2 = 0.99, tending to epsilon as t grows (the same update as Keras' Adam).
    exp_avg is updated like PyTorch's lerp (with beta_1 = 0 it is exactly g; old PyTorch's
    beta_1 m + (1 - beta_1) g differs by rounding only). State: `exp_avg`, `exp_avg_sq` (see
    `state`), the same in both forms."""

    STATE = ("exp_avg", "exp_avg_sq")

    def __init__(self, learning_rate=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 epsilon_placement="after_bias_correction", name="torch_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.epsilon_placement = check_epsilon_placement("TorchAdam.epsilon_placement",
                                                         epsilon_placement)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        exp_avg = self._slots["exp_avg"][index]
        exp_avg_sq = self._slots["exp_avg_sq"][index]
        t = ops.cast(self.iterations + 1, variable.dtype)
        # PyTorch's lerp(exp_avg, g, w): exp_avg + w (g - exp_avg) for w < 1/2, else
        # g - (g - exp_avg)(1 - w); the second form keeps g exactly when w = 1.
        weight = 1.0 - self.beta_1
        if weight < 0.5:
            new_avg = ops.add(exp_avg, ops.multiply(ops.subtract(gradient, exp_avg), weight))
        else:
            new_avg = ops.subtract(gradient,
                                   ops.multiply(ops.subtract(gradient, exp_avg), 1.0 - weight))
        self.assign(exp_avg, new_avg)
        self.assign(exp_avg_sq, ops.add(ops.multiply(exp_avg_sq, self.beta_2),
                                        ops.multiply(ops.square(gradient), 1.0 - self.beta_2)))
        step_size = ops.divide(lr, _one_minus_power(self.beta_1, t))
        sqrt_correction_2 = ops.sqrt(_one_minus_power(self.beta_2, t))
        if self.epsilon_placement == "after_bias_correction":
            denominator = ops.add(ops.divide(ops.sqrt(exp_avg_sq), sqrt_correction_2),
                                  self.epsilon)
        else:  # before_bias_correction: PyTorch's step_size lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
            step_size = ops.multiply(step_size, sqrt_correction_2)
            denominator = ops.add(ops.sqrt(exp_avg_sq), self.epsilon)
        self.assign_sub(variable, ops.multiply(ops.divide(exp_avg, denominator), step_size))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                       "epsilon_placement": self.epsilon_placement})
        return config


@gin.configurable
def rmsprop(*, learning_rate=1e-4, rho=0.99, epsilon=1e-8):
    """Keras' RMSprop: w <- w - lr g / sqrt(v + epsilon) (epsilon inside the root; see the module
    docstring: PyTorch's and GAN_stability's is `torch_rmsprop`)."""
    _check_learning_rate("rmsprop", learning_rate)
    _check_decay("rmsprop.rho", rho)
    check_nonnegative("rmsprop.epsilon", epsilon)
    return keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho, epsilon=epsilon)


@gin.configurable
def adam(*, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8):
    """Keras' Adam (epsilon is "epsilon hat", see the module docstring; PyTorch's and
    GAN_stability's is `torch_adam`). The defaults are GAN_stability's betas (0, 0.99)."""
    _check_learning_rate("adam", learning_rate)
    _check_decay("adam.beta_1", beta_1)
    _check_decay("adam.beta_2", beta_2)
    check_nonnegative("adam.epsilon", epsilon)
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


@gin.configurable
def torch_rmsprop(*, learning_rate=1e-4, rho=0.99, epsilon=1e-8, lr_anneal=1.0,
                  lr_anneal_every=None):
    """PyTorch's RMSprop (`TorchRMSprop`): GAN_stability's default optimizer, lr 1e-4,
    alpha (rho) 0.99, eps 1e-8. `lr_anneal` != 1: the learning rate is multiplied by it every
    `lr_anneal_every` updates (`StepDecay`, see the module docstring)."""
    learning_rate = _annealed("torch_rmsprop", learning_rate, lr_anneal, lr_anneal_every)
    _check_decay("torch_rmsprop.rho", rho)
    check_nonnegative("torch_rmsprop.epsilon", epsilon)
    return TorchRMSprop(learning_rate=learning_rate, rho=rho, epsilon=epsilon)


@gin.configurable
def torch_adam(*, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8,
               epsilon_placement="after_bias_correction", lr_anneal=1.0, lr_anneal_every=None):
    """PyTorch's Adam (`TorchAdam`), with GAN_stability's betas (0, 0.99) and eps 1e-8 as
    defaults. `epsilon_placement`: 'after_bias_correction' (today's PyTorch, since August 2019;
    the default, and what the GAN_stability step-equality oracle ran) or
    'before_bias_correction' (PyTorch before August 2019, 0.4.x to 1.1 among them, which
    GAN_stability's published models trained with: effective epsilon epsilon / sqrt(1 - beta_2^t));
    see `TorchAdam`.
    `lr_anneal`, `lr_anneal_every`: as `torch_rmsprop`'s."""
    learning_rate = _annealed("torch_adam", learning_rate, lr_anneal, lr_anneal_every)
    _check_decay("torch_adam.beta_1", beta_1)
    _check_decay("torch_adam.beta_2", beta_2)
    check_nonnegative("torch_adam.epsilon", epsilon)
    check_epsilon_placement("torch_adam.epsilon_placement", epsilon_placement)
    return TorchAdam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                     epsilon_placement=epsilon_placement)


@gin.configurable
def lazy_adam(*, learning_rate=1e-4, beta_1=0.0, beta_2=0.99, epsilon=1e-8, interval=16):
    """Keras' Adam with StyleGAN2's lazy-regularization settings for interval k (Karras et al.
    2020, appendix B): c = k / (k + 1), learning rate learning_rate * c, betas beta_1 ** c and
    beta_2 ** c (epsilon unchanged). That substitution is all it does.

    It compensates nothing here. In StyleGAN2 the lazy penalty is an optimizer step of its own
    every k minibatches (k + 1 updates per k minibatches), and c keeps the learning rate and the
    betas per minibatch as without laziness (k + 1 steps of lr * c over k minibatches;
    (beta ** c) ** ((k + 1) / k) = beta). tf_convgan adds k * penalty to D's loss inside the
    regular D update (GAN.lazy_interval): k updates per k minibatches, so with this optimizer D
    just trains with a c times smaller learning rate and betas closer to 1 (Adam's moment averages
    about 1 / c times longer; beta = 0 stays 0). Use it to reproduce StyleGAN2's optimizer numbers;
    plain `adam` keeps the configured ones. The optimizer records k (`lazy_interval`); GAN checks
    that it equals GAN.lazy_interval."""
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(f"lazy_adam.interval must be an integer >= 1, got {interval!r}")
    _check_decay("lazy_adam.beta_1", beta_1)
    _check_decay("lazy_adam.beta_2", beta_2)
    _check_learning_rate("lazy_adam", learning_rate)
    check_nonnegative("lazy_adam.epsilon", epsilon)
    c = interval / (interval + 1.0)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate * c, beta_1=float(beta_1) ** c,
                                      beta_2=float(beta_2) ** c, epsilon=epsilon)
    optimizer.lazy_interval = interval
    return optimizer


@gin.configurable
def sgd(*, learning_rate=1e-4, momentum=0.0, lr_anneal=1.0, lr_anneal_every=None):
    """Plain (or momentum) gradient descent, for the Dirac-GAN and 2D studies and GAN_stability's
    `optimizer: sgd`. `lr_anneal`, `lr_anneal_every`: as `torch_rmsprop`'s."""
    learning_rate = _annealed("sgd", learning_rate, lr_anneal, lr_anneal_every)
    check_nonnegative("sgd.momentum", momentum)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
