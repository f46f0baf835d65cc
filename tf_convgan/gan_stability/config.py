"""GAN_stability's YAML configs as gin bindings of this library.

GAN_stability (Mescheder et al. 2018) configures a run with a YAML file merged over its
`configs/default.yaml` (`load_config(path, 'configs/default.yaml')`: nested dicts are merged key by
key, other values replaced; a file may name `inherit_from: other.yaml` instead). `load()` does the
same with the default values built in (`DEFAULT_CONFIG`, so the repository is not needed) and
parses YAML with `yaml.safe_load` (data only). `gin_bindings()` translates the merged config:

| GAN_stability | tf_convgan |
|---|---|
| generator/discriminator `name` resnet, resnet2, ... | `@<name>_generator` / `@<name>_discriminator` |
| `kwargs` nfilter, nfilter_max, embed_size | `nf`, `nf_max`, `embed_size` |
| data.img_size, data.nlabels, z_dist.dim | `resolution`, `num_classes`, `z_dim` (and `init = 'pytorch'`) |
| training.gan_type standard / wgan | `@non_saturating()` / `@wasserstein()` |
| training.reg_type real / fake / real_fake / wgangp / wgangp0 / none | `@r1` / `@r2` / `@r1_r2` / `@wgan_gp` / `@wgan_gp0` / None |
| training.reg_param | gamma = 2 * reg_param (its penalties have no 1/2; ours are gamma/2 E[...]) |
| training.optimizer rmsprop / adam / sgd, lr_g, lr_d | `@g/torch_rmsprop()` / `@g/torch_adam()` / `@g/sgd()` (and `d/`): PyTorch's formulas, its settings (Adam: the 2018 form, `epsilon_placement = 'before_bias_correction'`) |
| training.lr_anneal, lr_anneal_every (StepLR, stepped per iteration) | `<player>/<factory>.lr_anneal`, `lr_anneal_every` (d: lr_anneal_every, g: lr_anneal_every / d_steps; see tf_convgan.gan.optimizers) |
| training.batch_size, d_steps, model_average_beta | `train.batch_size`, `GAN.d_steps`, `GAN.ema_beta` (0 without take_model_average) |
| training.sample_every, backup_every | `train.sample_every`, `train.keep_every` |
| data.type image / lsun / cifar10 | `@image_folder_source()` / `@tfds_source()` (lsun/<category>, cifar10) |
| its input transform (all data types but npy): random horizontal flip, + U[0, 1/128) | `make_input_pipeline.random_flip = True`, `dequantization_noise = 0.0078125` |

Settings with no counterpart (equalize_lr, model_average_reinit, uniform z) raise
ConfigError; data types without a source here (npy folders, lsun_class) become
`@gan_stability_unsupported_data()`, which raises a clear error only when training needs the data
(bind `train.data` yourself with --gin_param). Monitoring, workers, time-based saving, inception
scores and the `test`/`interpolations` sections do not affect training and are ignored.
`train.num_steps` is not set (GAN_stability trains until stopped): pass it with --gin_param.
"""
import copy
import inspect
import os
import sys

import gin

from tf_convgan.errors import ConfigError

# GAN_stability's configs/default.yaml, the base every config is merged over.
DEFAULT_CONFIG = {
    "data": {"type": "lsun", "train_dir": "data/LSUN", "test_dir": "data/LSUN",
             "lsun_categories_train": ["bedroom_train"],
             "lsun_categories_test": ["bedroom_test"], "img_size": 256, "nlabels": 1},
    "generator": {"name": "resnet", "kwargs": None},
    "discriminator": {"name": "resnet", "kwargs": None},
    "z_dist": {"type": "gauss", "dim": 256},
    "training": {
        "out_dir": "output/default", "gan_type": "standard", "reg_type": "real",
        "reg_param": 10.0, "batch_size": 64, "nworkers": 16, "take_model_average": True,
        "model_average_beta": 0.999, "model_average_reinit": False, "monitoring": "tensorboard",
        "sample_every": 1000, "sample_nlabels": 20, "inception_every": -1, "save_every": 900,
        "backup_every": 100000, "restart_every": -1, "optimizer": "rmsprop", "lr_g": 0.0001,
        "lr_d": 0.0001, "lr_anneal": 1.0, "lr_anneal_every": 150000, "d_steps": 1,
        "equalize_lr": False, "model_file": "model.pt"},
    "test": {"batch_size": 32, "sample_size": 64, "sample_nrow": 8, "use_model_average": True,
             "compute_inception": False, "conditional_samples": False,
             "model_file": "model.pt"},
    "interpolations": {"nzs": 10, "nsubsteps": 75},
}

YAML_SUFFIXES = (".yaml", ".yml")
NETWORK_NAMES = ("resnet", "resnet2", "resnet3", "resnet4")
# The kwargs each GAN_stability network uses (others are accepted and ignored by PyTorch) and
# their PyTorch defaults; the names of the ports' parameters.
_TORCH_KWARGS = {
    ("resnet", "generator"): {"nfilter": 64, "nfilter_max": 512, "embed_size": 256},
    ("resnet", "discriminator"): {"nfilter": 64, "nfilter_max": 1024},
    **{(name, "generator"): {"nfilter": 64, "embed_size": 256}
       for name in ("resnet2", "resnet3", "resnet4")},
    **{(name, "discriminator"): {"nfilter": 64} for name in ("resnet2", "resnet3", "resnet4")},
}
_KWARGS = {"nfilter": "nf", "nfilter_max": "nf_max", "embed_size": "embed_size"}
_LOSSES = {"standard": "non_saturating", "wgan": "wasserstein"}
_PENALTIES = {"real": "r1", "fake": "r2", "real_fake": "r1_r2", "wgangp": "wgan_gp",
              "wgangp0": "wgan_gp0", "none": None}
# build_optimizers(): torch.optim RMSprop(alpha=0.99, eps=1e-8), Adam(betas=(0, 0.99),
# eps=1e-8), SGD: {name: (the PyTorch-exact gin factory, its settings)}.
# Adam: eps before the bias correction, as the PyTorch of 2018 that GAN_stability's experiments ran
# (today's PyTorch adds it after; see tf_convgan.gan.optimizers.TorchAdam).
OPTIMIZERS = {"rmsprop": ("torch_rmsprop", {"rho": 0.99, "epsilon": 1e-8}),
              "adam": ("torch_adam", {"beta_1": 0.0, "beta_2": 0.99, "epsilon": 1e-8,
                                      "epsilon_placement": "before_bias_correction"}),
              "sgd": ("sgd", {"momentum": 0.0})}
_LSUN_SUFFIX = "_train"


def is_yaml(path):
    return str(path).lower().endswith(YAML_SUFFIXES)


def merge(base, update):
    """GAN_stability's update_recursive: dicts merge key by key, anything else replaces."""
    for key, value in update.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def _read_yaml(path):
    import yaml
    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except OSError as e:
        raise FileNotFoundError(f"GAN_stability config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        detail = " ".join(str(e).split())
        raise ConfigError(f"GAN_stability config {path} is not valid YAML: {detail}") from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"GAN_stability config {path} must be a mapping of sections "
                          f"(data, generator, ...), got {type(config).__name__}")
    return config


# Keys GAN_stability reads beyond its default.yaml (interpolate_class.py: the classes to walk)
_OTHER_KEYS = {("interpolations", "ys")}


def unknown_keys(special):
    """The `section.key`s (and sections) of a config file's mapping that GAN_stability does not
    read (DEFAULT_CONFIG and _OTHER_KEYS; a network's `kwargs` are its own)."""
    unknown = []
    for section, values in special.items():
        if section == "inherit_from":
            continue
        if section not in DEFAULT_CONFIG:
            unknown.append(str(section))
        elif isinstance(values, dict):
            unknown += [f"{section}.{key}" for key in values
                        if key not in DEFAULT_CONFIG[section]
                        and (section, key) not in _OTHER_KEYS]
    return unknown


def _warn_about_unknown_keys(special, path):
    unknown = unknown_keys(special)
    if unknown:
        print(f"warning: GAN_stability config {path}: ignoring unknown keys "
              f"{', '.join(unknown)} (not settings of GAN_stability: misspelt?)",
              file=sys.stderr, flush=True)


def load(path, _seen=()):
    """The config at `path` merged over its `inherit_from` (resolved next to `path`, then from
    the working directory, as GAN_stability does) or over DEFAULT_CONFIG."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GAN_stability config {path} does not exist")
    if os.path.abspath(path) in _seen:
        raise ConfigError(f"GAN_stability config {path}: inherit_from forms a cycle")
    special = _read_yaml(path)
    _warn_about_unknown_keys(special, path)
    parent = special.pop("inherit_from", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: inherit_from must be a file name, got {parent!r}")
        beside = os.path.join(os.path.dirname(path), parent)
        config = load(beside if os.path.isfile(beside) else parent,
                      _seen + (os.path.abspath(path),))
    else:
        config = copy.deepcopy(DEFAULT_CONFIG)
    return merge(config, special)


# ------------------------------------------------------------------------------ translation

def _section(config, name):
    section = config.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"GAN_stability config: `{name}` must be a mapping, got {section!r}")
    return section


def _get(config, section, key, kinds, *, what=None):
    value = _section(config, section).get(key)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ConfigError(f"GAN_stability config: {section}.{key} must be {what or names}, "
                          f"got {value!r}")
    return value


def _positive_int(config, section, key):
    value = _get(config, section, key, (int,), what="a positive integer")
    if value < 1:
        raise ConfigError(f"GAN_stability config: {section}.{key} must be a positive integer, "
                          f"got {value!r}")
    return value


def _literal(value):
    """A gin literal (Python syntax for numbers, strings, booleans, None)."""
    if isinstance(value, float):
        return repr(float(value))
    return repr(value)


def network_factories(name):
    """(generator, discriminator) gin names of GAN_stability's network `name`; ConfigError if
    this library has no port of it (yet)."""
    from tf_convgan import networks
    available = [n for n in NETWORK_NAMES if hasattr(networks, f"{n}_generator")
                 and hasattr(networks, f"{n}_discriminator")]
    if name not in available:
        raise ConfigError(f"GAN_stability network {name!r} has no tf_convgan port; available: "
                          f"{available} (of GAN_stability's {list(NETWORK_NAMES)})")
    return f"{name}_generator", f"{name}_discriminator"


def _network_bindings(config, role, factory):
    from tf_convgan import networks
    name = _get(config, role, "name", (str,))
    kwargs = _section(config, role).get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"GAN_stability config: {role}.kwargs must be a mapping, got {kwargs!r}")
    unknown = sorted(set(kwargs) - set(_KWARGS))
    if unknown:
        raise ConfigError(f"GAN_stability config: {role}.kwargs {unknown} are not supported "
                          f"(supported: {sorted(_KWARGS)})")
    values = {"resolution": _positive_int(config, "data", "img_size"),
              "num_classes": _positive_int(config, "data", "nlabels")}
    if role == "generator":
        values["z_dim"] = _positive_int(config, "z_dist", "dim")
    used = _TORCH_KWARGS[(name, role)]
    for key, default in used.items():
        value = kwargs.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"GAN_stability config: {role}.kwargs.{key} must be a positive "
                              f"integer, got {value!r}")
        values[_KWARGS[key]] = value  # what the PyTorch network ignores is left out
    accepted = inspect.signature(getattr(networks, factory)).parameters
    if "init" in accepted:
        values["init"] = "pytorch"  # PyTorch's default initialisation, as GAN_stability's
    missing = [key for key in values if key not in accepted]
    if missing:
        raise ConfigError(f"tf_convgan's {factory} has no parameter {missing[0]!r}, which "
                          f"GAN_stability's {name} {role} needs")
    return [f"{factory}.{key} = {_literal(value)}" for key, value in values.items()]


# gan_training/inputs.py's transform (RandomHorizontalFlip, then x + 1/128 * torch.rand): every
# data type's but npy's (a DatasetFolder of arrays, loaded without the transform).
_INPUT_TRANSFORM = ["make_input_pipeline.random_flip = True",
                    f"make_input_pipeline.dequantization_noise = {_literal(1.0 / 128.0)}"]


def _data_bindings(config):
    data_type = _get(config, "data", "type", (str,))
    transform = [] if data_type == "npy" else _INPUT_TRANSFORM
    return _source_bindings(config, data_type) + transform


def _source_bindings(config, data_type):
    resolution = _positive_int(config, "data", "img_size")
    nlabels = _positive_int(config, "data", "nlabels")
    if data_type == "image":
        directory = _get(config, "data", "train_dir", (str,))
        return ["train.data = @image_folder_source()",
                f"image_folder_source.directory = {_literal(directory)}",
                f"image_folder_source.resolution = {resolution}",
                "image_folder_source.fit = 'resize_crop'",
                f"image_folder_source.labels_from_subdirs = {nlabels > 1}"]
    if data_type in ("lsun", "cifar10"):
        if data_type == "lsun":
            categories = _section(config, "data").get("lsun_categories_train")
            if isinstance(categories, str):
                categories = [categories]
            if (not isinstance(categories, list) or len(categories) != 1
                    or not isinstance(categories[0], str)
                    or not categories[0].endswith(_LSUN_SUFFIX)):
                raise ConfigError(f"GAN_stability config: data.lsun_categories_train must be one "
                                  f"category such as [bedroom_train], got {categories!r}")
            name = "lsun/" + categories[0][:-len(_LSUN_SUFFIX)]
        else:
            name = "cifar10"
        return ["train.data = @tfds_source()", f"tfds_source.name = {_literal(name)}",
                f"tfds_source.resolution = {resolution}", "tfds_source.fit = 'resize_crop'"]
    return ["train.data = @gan_stability_unsupported_data()",
            f"gan_stability_unsupported_data.data_type = {_literal(data_type)}"]


@gin.configurable
def gan_stability_unsupported_data(*, data_type):
    """Stands for a GAN_stability data type this library has no source for."""
    raise ConfigError(
        f"GAN_stability data.type {data_type!r} has no tf_convgan data source: bind train.data "
        f"yourself, e.g. --gin_param 'train.data = @image_folder_source()' --gin_param "
        f"'image_folder_source.directory = \"DIR\"' (or @npy_source(), @tfds_source())")


def _lr_anneal(config, d_steps):
    """training.lr_anneal / lr_anneal_every as (lr_anneal, {player: lr_anneal_every in that
    player's updates}), or None when lr_anneal is 1.

    GAN_stability's StepLR steps once per iteration, before the updates; an iteration is one D
    update, and G updates every d_steps-th iteration. The optimizers' StepDecay counts each one's
    own updates the same way, so D's period is lr_anneal_every updates and G's
    lr_anneal_every / d_steps (a whole number, else the two schedules cannot agree)."""
    lr_anneal = _get(config, "training", "lr_anneal", (int, float), what="a number")
    if lr_anneal == 1:
        return None
    if not lr_anneal > 0:
        raise ConfigError(f"GAN_stability config: training.lr_anneal must be > 0, "
                          f"got {lr_anneal!r}")
    every = _positive_int(config, "training", "lr_anneal_every")
    if every % d_steps:
        raise ConfigError(f"GAN_stability config: training.lr_anneal_every ({every}) must be a "
                          f"multiple of training.d_steps ({d_steps}): G updates every d_steps-th "
                          f"iteration, and its learning rate can only change between its updates")
    return float(lr_anneal), {"d": every, "g": every // d_steps}


def _training_bindings(config):
    lines = []
    gan_type = _get(config, "training", "gan_type", (str,))
    if gan_type not in _LOSSES:
        raise ConfigError(f"GAN_stability config: training.gan_type must be one of "
                          f"{sorted(_LOSSES)}, got {gan_type!r}")
    lines.append(f"GAN.loss = @{_LOSSES[gan_type]}()")
    reg_type = _get(config, "training", "reg_type", (str,))
    if reg_type not in _PENALTIES:
        raise ConfigError(f"GAN_stability config: training.reg_type must be one of "
                          f"{sorted(_PENALTIES)}, got {reg_type!r}")
    penalty = _PENALTIES[reg_type]
    if penalty is None:
        lines.append("GAN.penalty = None")
    else:
        reg_param = _get(config, "training", "reg_param", (int, float), what="a number")
        if reg_param < 0:
            raise ConfigError(f"GAN_stability config: training.reg_param must be >= 0, "
                              f"got {reg_param!r}")
        lines += [f"GAN.penalty = @{penalty}", f"{penalty}.gamma = {_literal(2.0 * reg_param)}"]
    if _get(config, "training", "take_model_average", (bool,)):
        beta = _get(config, "training", "model_average_beta", (int, float), what="a number")
    else:
        beta = 0.0
    lines.append(f"GAN.ema_beta = {_literal(float(beta))}")
    lines.append(f"GAN.d_steps = {_positive_int(config, 'training', 'd_steps')}")
    for key, problem in (("model_average_reinit", "resetting the average to G at a restart"),
                         ("equalize_lr", "per-parameter learning rates")):
        if _get(config, "training", key, (bool,)):
            raise ConfigError(f"GAN_stability config: training.{key} is true, but {problem} is "
                              f"not supported; set it to false")
    d_steps = _positive_int(config, "training", "d_steps")
    anneal = _lr_anneal(config, d_steps)
    optimizer = _get(config, "training", "optimizer", (str,))
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"GAN_stability config: training.optimizer must be one of "
                          f"{sorted(OPTIMIZERS)}, got {optimizer!r}")
    factory, settings = OPTIMIZERS[optimizer]
    for player, key in (("g", "lr_g"), ("d", "lr_d")):
        lr = _get(config, "training", key, (int, float), what="a number")
        lines.append(f"GAN.{player}_optimizer = @{player}/{factory}()")
        lines.append(f"{player}/{factory}.learning_rate = {_literal(float(lr))}")
        lines += [f"{player}/{factory}.{name} = {_literal(value)}"
                  for name, value in settings.items()]
        if anneal:
            lines.append(f"{player}/{factory}.lr_anneal = {_literal(anneal[0])}")
            lines.append(f"{player}/{factory}.lr_anneal_every = {anneal[1][player]}")
    lines.append(f"train.batch_size = {_positive_int(config, 'training', 'batch_size')}")
    lines.append(f"train.sample_every = {_positive_int(config, 'training', 'sample_every')}")
    backup_every = _get(config, "training", "backup_every", (int,))
    if backup_every > 0:
        lines.append(f"train.keep_every = {backup_every}")
    return lines


def gin_bindings(config):
    """The merged GAN_stability config `config` as gin binding lines (this library's
    configurables, literal values only). Raises ConfigError for what has no counterpart."""
    z_type = _get(config, "z_dist", "type", (str,))
    if z_type != "gauss":
        raise ConfigError(f"GAN_stability config: z_dist.type {z_type!r} is not supported "
                          f"(tf_convgan draws z ~ N(0, I): use gauss)")
    g_name = _get(config, "generator", "name", (str,))
    d_name = _get(config, "discriminator", "name", (str,))
    generator = network_factories(g_name)[0]
    discriminator = network_factories(d_name)[1]
    lines = [f"train.generator_fn = @{generator}", f"train.discriminator_fn = @{discriminator}"]
    lines += _network_bindings(config, "generator", generator)
    lines += _network_bindings(config, "discriminator", discriminator)
    lines += _data_bindings(config)
    lines += _training_bindings(config)
    return lines


def gin_text(path):
    """The gin config (a string) for the GAN_stability YAML config at `path`."""
    lines = gin_bindings(load(path))
    header = [f"# Translated from the GAN_stability config {os.path.basename(path)} "
              f"by tf_convgan.gan_stability.config."]
    return "\n".join(header + lines) + "\n"
