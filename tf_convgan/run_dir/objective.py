"""A run's objective read back as data: the terms `GAN.train_step` composes, from the run's
operative config (the restricted reader, run_config), never through gin.

Only the library's own objective functions are called, with the literal hyperparameters the
config binds to them (unbound ones keep the functions' defaults, as under gin):

    GAN.loss                 @minimax() @non_saturating() @wasserstein() @hinge()
                             @least_squares() @least_squares_sigmoid()
                             (unbound: non_saturating, GAN's default)
    GAN.penalty              @r1 @r2 @r1_r2 @wgan_gp @wgan_gp_one_sided @wgan_gp0 @dragan
                             @dragan_compare_gan
    GAN.instance_noise       @sigma_schedule (sigma_schedule.sigma, .final_sigma, .decay_steps)
    GAN.consistency          @cr @bcr, with `cr.augment` / `bcr.augment` one of the
                             augmentations of objectives.augment (@identity @gaussian_noise
                             @shift_flip @cutout @shift_flip_cutout; unbound: the term's default)
    GAN.latent_consistency   @zcr()
    GAN.d_steps, GAN.lazy_interval, GAN.consensus_gamma, train.seed (older runs: GAN.seed)

A term bound to anything else (another configurable, a scoped reference such as `@s/r1`, a
reference where a literal is needed) raises a `RunConfigError` naming the term: a reader of a
run directory gets the run's objective or an error, never another objective.
"""
import functools
import inspect
from typing import Callable, NamedTuple, Optional

from tf_convgan.objectives import augment, consistency, instance_noise, losses, penalties
from tf_convgan.run_dir.run_config import RunConfigError

LOSSES = ("minimax", "non_saturating", "wasserstein", "hinge", "least_squares",
          "least_squares_sigmoid")
PENALTIES = ("r1", "r2", "r1_r2", "wgan_gp", "wgan_gp_one_sided", "wgan_gp0", "dragan",
             "dragan_compare_gan")
INSTANCE_NOISE = ("sigma_schedule",)
CONSISTENCY = ("cr", "bcr")
AUGMENTATIONS = ("identity", "gaussian_noise", "shift_flip", "cutout", "shift_flip_cutout")
LATENT_CONSISTENCY = ("zcr",)
# What the step hands a term (not hyperparameters), and the augmentation (read as a reference).
_PASSED = ("real_gradients", "loss_scale", "step", "augment")


class RunObjective(NamedTuple):
    """The keyword arguments of `GAN` that define its objective (see `read_objective`)."""
    loss: object
    penalty: Optional[Callable] = None
    instance_noise: Optional[Callable] = None
    consistency: Optional[Callable] = None
    latent_consistency: Optional[object] = None
    seed: int = 0
    d_steps: int = 1
    lazy_interval: Optional[int] = None
    consensus_gamma: Optional[float] = None

    def gan_kwargs(self):
        """{name: value} for `GAN(generator, discriminator, generator_ema, **kwargs)`."""
        return self._asdict()


def _function(module, name):
    """The plain function `name` of `module` (gin's wrapper removed: only the bindings read
    here apply, whatever gin's global configuration holds)."""
    return inspect.unwrap(getattr(module, name))


def _refuse(config, term, reason):
    """The RunConfigError of a term of GAN that is not rebuilt: names the file and the term."""
    return RunConfigError(f"{config.path}: {term} cannot be rebuilt from a run directory: "
                          f"{reason}")


def _library_term(config, key, names, *, evaluate, what, term=None):
    """The name among `names` of the unscoped reference `@name` (`@name()` when `evaluate`)
    bound to `key`; None when `key` is unbound or None. Anything else: a RunConfigError naming
    `term` (default: `key`), the binding and what is rebuilt."""
    term = term or key
    allowed = ", ".join(f"@{n}{'()' if evaluate else ''}" for n in names)
    only = f"only {what} are ({allowed}, unscoped, with literal hyperparameters)"
    reference = config.reference(key)
    if reference is None:
        value = config.literal(key)
        if value is not None:
            raise _refuse(config, term, f"{key} = {value!r}; {only}")
        return None
    name = reference.selector.rpartition(".")[2]
    if name not in names or reference.scope or reference.evaluate != evaluate:
        bound = (f"@{reference.scope + '/' if reference.scope else ''}{reference.selector}"
                 f"{'()' if reference.evaluate else ''}")
        raise _refuse(config, term, f"{key} = {bound}; {only}")
    return name


def _hyperparameters(config, term, name, function):
    """`function`'s literal bindings `name.<parameter>`; a reference among them raises a
    RunConfigError naming `term`."""
    try:
        return config.literal_kwargs(name, function, exclude=_PASSED)
    except RunConfigError as e:
        raise _refuse(config, term, str(e).removeprefix(f"{config.path}: ")) from None


def read_loss(config):
    """GAN.loss: one of the library's losses (unbound or None: non_saturating)."""
    name = _library_term(config, "GAN.loss", LOSSES, evaluate=True, what="the library's losses")
    return _function(losses, name or "non_saturating")()


def read_penalty(config):
    """GAN.penalty: one of the library's penalties with its literal hyperparameters, or None."""
    name = _library_term(config, "GAN.penalty", PENALTIES, evaluate=False,
                         what="the library's penalties")
    if name is None:
        return None
    function = _function(penalties, name)
    return functools.partial(function, **_hyperparameters(config, "GAN.penalty", name, function))


def read_instance_noise(config):
    """GAN.instance_noise: the schedule step -> sigma (sigma_schedule with its literal
    hyperparameters), or None."""
    name = _library_term(config, "GAN.instance_noise", INSTANCE_NOISE, evaluate=False,
                         what="the library's sigma_schedule")
    if name is None:
        return None
    function = _function(instance_noise, name)
    return functools.partial(function,
                             **_hyperparameters(config, "GAN.instance_noise", name, function))


def read_consistency(config):
    """GAN.consistency: cr or bcr with its literal weights and its augmentation (one of
    objectives.augment's, with literal hyperparameters), or None."""
    key = "GAN.consistency"
    name = _library_term(config, key, CONSISTENCY, evaluate=False,
                         what="the library's consistency terms")
    if name is None:
        return None
    function = _function(consistency, name)
    kwargs = _hyperparameters(config, key, name, function)
    augment_name = _library_term(config, f"{name}.augment", AUGMENTATIONS, evaluate=False,
                                 what="the library's augmentations", term=key)
    if augment_name is None:  # unbound: the term's default augmentation
        augment_name = inspect.signature(function).parameters["augment"].default.__name__
    augmentation = _function(augment, augment_name)
    kwargs["augment"] = functools.partial(
        augmentation, **_hyperparameters(config, key, augment_name, augmentation))
    return functools.partial(function, **kwargs)


def read_latent_consistency(config):
    """GAN.latent_consistency: zcr() with its literal hyperparameters, or None."""
    key = "GAN.latent_consistency"
    name = _library_term(config, key, LATENT_CONSISTENCY, evaluate=True,
                         what="the library's zcr()")
    if name is None:
        return None
    function = _function(consistency, name)
    return function(**_hyperparameters(config, key, name, function))


def read_objective(config):
    """The `RunObjective` of a RunConfig (see the module docstring); RunConfigError naming the
    term that cannot be rebuilt."""
    penalty = read_penalty(config)
    lazy_interval = config.literal("GAN.lazy_interval")
    # The run's one seed is train.seed (older runs' configs have GAN.seed: the same value).
    seed = config.literal("train.seed", config.literal("GAN.seed", 0))
    return RunObjective(
        loss=read_loss(config), penalty=penalty,
        instance_noise=read_instance_noise(config), consistency=read_consistency(config),
        latent_consistency=read_latent_consistency(config), seed=int(seed),
        d_steps=int(config.literal("GAN.d_steps", 1)),
        lazy_interval=lazy_interval if penalty is not None else None,
        consensus_gamma=config.literal("GAN.consensus_gamma"))
