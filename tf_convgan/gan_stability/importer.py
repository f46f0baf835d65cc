"""Turn a GAN_stability checkpoint and its YAML config into a tf_convgan model directory.

    python -m tf_convgan.import_gan_stability --config celebAHQ_pretrained.yaml \\
        --checkpoint celebahq-baab46b2.pt --model_dir runs/celebahq

The checkpoint is read by tf_convgan.gan_stability.torch_pickle (no PyTorch; nothing in the file
is executed), the config by tf_convgan.gan_stability.config (merged over GAN_stability's
default.yaml). The model directory then holds what run.py writes:
  checkpoints/ckpt-<step>    G (`generator`), D (`discriminator`), the EMA generator
                             (`generator_test`; G where the checkpoint has none), both optimizers
                             with the checkpoint's optimizer state (RMSprop square_avg, Adam
                             exp_avg/exp_avg_sq, the update count) and the step counter
  operative_config.gin       the config translated to gin (this library's configurables, literal
                             values)
  export/                    the EMA generator as a SavedModel (see tf_convgan.export)
  gan_stability_import.json  what was imported (files, sha256, `it`, step)
The step is GAN_stability's `it` + 1: `it` is the 0-based index of the last iteration done, so
after `it` = 2 three generator steps are done (and PyTorch's optimizer `step` is 3), and training
resumes with the fourth:

    python run.py --gin_file runs/celebahq/operative_config.gin --model_dir runs/celebahq \\
        --gin_param 'train.num_steps = 600000'      (and train.data where the config's has none)

(with d_steps = k, GAN_stability's `it` counts D steps: the step is (it + 1) // k.)
A `wgan` checkpoint's critic is negated on import (its critic maximises D(fake) - D(real), ours
D(real) - D(fake)); the gradient penalties do not depend on the sign.

Bad input (a file that is not a plain PyTorch checkpoint, a truncated file, a config that does
not fit the checkpoint, a --model_dir that holds anything but an earlier import) prints one line
and exits with status 2, before anything is written. The directory is written beside its final
place and moved there at the end, so an earlier import is replaced only by a complete one.
The command line: tf_convgan.cli.import_gan_stability.
"""
import contextlib
import json
import os

import numpy as np

from tf_convgan import run_dir
from tf_convgan.run_dir import files
from tf_convgan.errors import ConfigError

IMPORT_RECORD = "gan_stability_import.json"
_IMPORT_FILES = {IMPORT_RECORD, run_dir.OPERATIVE_CONFIG, run_dir.CHECKPOINT_SUBDIR,
                 run_dir.EXPORT_SUBDIR, run_dir.LOCK_FILE}
_MODELS = ("generator", "discriminator")
# The PyTorch state of each of GAN_stability's `training.optimizer`s.
_OPTIMIZER_STATE = {"rmsprop": ("square_avg",), "adam": ("exp_avg", "exp_avg_sq"), "sgd": ()}
_DATA_PARALLEL_PREFIX = "module."


def read_checkpoint(path):
    """The checkpoint dict of a GAN_stability `CheckpointIO.save` file, checked for the keys
    the import needs."""
    from tf_convgan.gan_stability import torch_pickle
    checkpoint = torch_pickle.load(path)
    if not isinstance(checkpoint, dict) or not all(
            isinstance(checkpoint.get(k), dict) for k in _MODELS):
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConfigError(f"{path}: not a GAN_stability checkpoint (needs the state dicts "
                          f"'generator' and 'discriminator'; it has {keys})")
    it = checkpoint.get("it")
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise ConfigError(f"{path}: the iteration 'it' must be an integer >= 0, got {it!r}")
    return checkpoint


def _strip(state):
    return {k[len(_DATA_PARALLEL_PREFIX):] if k.startswith(_DATA_PARALLEL_PREFIX) else k: v
            for k, v in state.items()}


# ----------------------------------------------------------------------------- model_dir

def _earlier_import_problem(model_dir):
    """None if `model_dir` holds an unchanged earlier import, else what it holds instead. Reads
    through run_dir.files (a local path or a URL)."""
    entries = set(files.listdir(model_dir))
    if IMPORT_RECORD not in entries:
        return f"it holds {sorted(entries)[:5]} and no {IMPORT_RECORD}"
    if entries - _IMPORT_FILES:
        return f"it has been used since the import ({sorted(entries - _IMPORT_FILES)[:5]})"
    try:
        step = int(json.loads(run_dir.read_text(os.path.join(model_dir, IMPORT_RECORD)))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {IMPORT_RECORD} is unreadable"
    checkpoints = run_dir.checkpoint_dir(model_dir)
    names = set(files.listdir(checkpoints)) if files.isdir(checkpoints) else set()
    others = {n for n in names if n != "checkpoint" and not n.startswith(f"ckpt-{step}.")}
    if others:
        return f"it has been trained since the import (checkpoints/{sorted(others)[0]})"
    return None


def check_model_dir(model_dir):
    """Refuses a --model_dir (a local path or a URL) that exists, is not empty and is not an
    earlier import."""
    if not files.exists(model_dir):
        return
    if not files.isdir(model_dir):
        raise ConfigError(f"--model_dir {model_dir} exists and is not a directory")
    if set(files.listdir(model_dir)) - {run_dir.LOCK_FILE}:
        problem = _earlier_import_problem(model_dir)
        if problem:
            raise ConfigError(f"--model_dir {model_dir} is not empty and not an earlier import "
                              f"({problem}); choose a new --model_dir")


# ----------------------------------------------------------------------------- optimizers

def _torch_optimizer_state(optimizer_state, parameter_names, kind, what):
    """({torch parameter name: {state name: array}}, step) of a torch optimizer state dict.

    Its parameters are numbered (ids) in `param_groups[*]['params']`, in the order of
    `module.parameters()`, which is the state dict's order for networks without buffers."""
    names = _OPTIMIZER_STATE[kind]
    try:
        ids = [pid for group in optimizer_state["param_groups"] for pid in group["params"]]
        states = optimizer_state["state"]
        groups = optimizer_state["param_groups"]
    except (KeyError, TypeError):
        raise ConfigError(f"{what}: not a PyTorch optimizer state dict") from None
    if len(ids) != len(parameter_names):
        raise ConfigError(f"{what} updates {len(ids)} parameters but the network has "
                          f"{len(parameter_names)}: the checkpoint does not fit the config")
    for group in groups:
        for key, allowed in (("momentum", 0), ("centered", False), ("weight_decay", 0),
                             ("amsgrad", False), ("nesterov", False)):
            if group.get(key, allowed) != allowed:
                raise ConfigError(f"{what}: {key}={group[key]!r} is not supported "
                                  f"(GAN_stability's optimizers use {key}={allowed!r})")
    out, steps = {}, set()
    for pid, name in zip(ids, parameter_names):
        state = states.get(pid)
        if not state:  # a parameter that never had a gradient: PyTorch's initial state
            continue
        found = {k for k in state if k != "step" and k != "momentum_buffer"}
        if found != set(names):
            raise ConfigError(
                f"{what}: parameter {name!r} has the optimizer state {sorted(found)} but the "
                f"config's optimizer ({kind}) keeps {sorted(names)}: set training.optimizer to "
                f"the optimizer the checkpoint was trained with, or import without the "
                f"optimizer state (--nooptimizer_state)")
        out[name] = {k: np.asarray(state[k], np.float32) for k in names}
        if "step" in state:
            steps.add(int(np.asarray(state["step"]).reshape(())))
    return out, max(steps, default=0)


def _keras_slots(make_network, torch_slots, names, variables):
    """[(variable, {state name: value in Keras layout})] for the network's trainable
    variables: each state is loaded like weights into a scratch copy of the network, whose
    variables then hold it in Keras layout (the networks' torch_port does the layout)."""
    from tf_convgan.networks import build, torch_port
    scratch = build(make_network())
    per_name = {}
    for state_name in names:
        weights = torch_port.state_dict(scratch)
        zeros = {k: np.zeros_like(v) for k, v in weights.items()}
        zeros.update({k: v[state_name] for k, v in torch_slots.items()})
        torch_port.load_state_dict(scratch, zeros)
        per_name[state_name] = [v.numpy() for v in scratch.trainable_variables]
    return [(variable, {n: per_name[n][i] for n in names}) for i, variable in
            enumerate(variables)]


def _set_optimizer_state(optimizer, step, slots):
    """Writes `slots` ([(variable, {PyTorch state name: value})]) and the update count through
    the PyTorch-exact optimizers' set_state (SGD without momentum has no state)."""
    if hasattr(optimizer, "set_state"):
        optimizer.set_state(step, slots)
    elif not slots:
        optimizer.iterations.assign(step)
    else:
        raise ConfigError(f"{type(optimizer).__name__} cannot take a PyTorch optimizer state")


# ----------------------------------------------------------------------------- import

def _build(gin_text, config):
    """The GAN of the translated config (the data source is not needed, nor built)."""
    import gin
    import tensorflow as tf
    from tf_convgan import networks
    from tf_convgan.gan import optimizers  # noqa: F401  (registers the configurables that
    from tf_convgan.objectives import losses, penalties  # noqa: F401  the config names)
    from tf_convgan.gan_stability import config as gan_stability_config
    from tf_convgan.training.loop import build_gan
    gin.clear_config()
    gin.parse_config(gin_text)
    make_generator = getattr(networks, gan_stability_config.network_factories(
        config["generator"]["name"])[0])
    make_discriminator = getattr(networks, gan_stability_config.network_factories(
        config["discriminator"]["name"])[1])
    gan = build_gan(make_generator, make_discriminator, tf.distribute.get_strategy())
    return gan, make_generator, make_discriminator


def import_checkpoint(config_path, checkpoint_path, model_dir, *, export=True,
                      optimizer_state=True):
    """Writes the model directory; returns (model_dir, step). See the module docstring.
    `optimizer_state=False` leaves the optimizers in their initial state (update count 0).
    Replaces the global gin config with the translated one."""
    from tf_convgan.gan_stability import config as gan_stability_config
    from tf_convgan.run_dir import checkpoints as checkpoints_lib
    from tf_convgan.networks import torch_port

    model_dir = files.abspath(model_dir)  # a URL (gs://, ram://) stays as it is
    config = gan_stability_config.load(config_path)
    gin_text = gan_stability_config.gin_text(config_path)
    checkpoint = read_checkpoint(checkpoint_path)
    check_model_dir(model_dir)
    training = config["training"]
    d_steps = int(training["d_steps"])
    step = (checkpoint["it"] + 1) // d_steps
    what = f"checkpoint {checkpoint_path} does not fit config {config_path}"

    gan, make_generator, make_discriminator = _build(gin_text, config)
    states = {"generator": _strip(checkpoint["generator"]),
              "discriminator": _strip(checkpoint["discriminator"]),
              "generator_ema": _strip(checkpoint.get("generator_test") or checkpoint["generator"])}
    if training["gan_type"] == "wgan":  # GAN_stability's critic has the opposite sign
        states["discriminator"] = _negate_last_layer(states["discriminator"])
    try:
        for name, network in (("generator", gan.generator), ("discriminator", gan.discriminator),
                              ("generator_ema", gan.generator_ema)):
            try:
                torch_port.load_state_dict(network, states[name])
            except torch_port.StateDictMismatchError as e:
                raise ConfigError(f"{what}: {name}: {e}") from None
        optimizer_kind = training["optimizer"]
        imported_optimizers = []
        for player, network, make, optimizer in (
                ("g", gan.generator, make_generator, gan.g_optimizer),
                ("d", gan.discriminator, make_discriminator, gan.d_optimizer)):
            key = f"{player}_optimizer"
            if not optimizer_state or not isinstance(checkpoint.get(key), dict):
                continue
            model_key = "generator" if player == "g" else "discriminator"
            torch_slots, opt_step = _torch_optimizer_state(
                checkpoint[key], list(states[model_key]), optimizer_kind,
                f"{checkpoint_path}: {key}")
            if training["gan_type"] == "wgan" and player == "d":
                torch_slots = _negate_first_moments(torch_slots)
            names = _OPTIMIZER_STATE[optimizer_kind]
            slots = (_keras_slots(make, torch_slots, names, network.trainable_variables)
                     if names else [])
            _set_optimizer_state(optimizer, opt_step if torch_slots else step, slots)
            imported_optimizers.append(key)
    except torch_port.StateDictMismatchError as e:
        raise ConfigError(f"{what}: {e}") from None
    gan.step_counter.assign(step)

    tmp_dir = run_dir.temporary_directory(model_dir)
    try:
        keeper = checkpoints_lib.CheckpointKeeper(
            checkpoints_lib.make_checkpoint(gan), run_dir.checkpoint_dir(tmp_dir), keep_last=1)
        keeper.save(step)
        run_dir.write_text(run_dir.operative_config_path(tmp_dir), gin_text)
        if export:
            from tf_convgan.serving import export as export_lib
            export_lib.export_generator(gan.generator_ema, run_dir.export_dir(tmp_dir),
                                        operative_config=gin_text)
        record = {"config": files.abspath(config_path),
                  "checkpoint": files.abspath(checkpoint_path),
                  "checkpoint_sha256": run_dir.file_sha256(checkpoint_path), "it": checkpoint["it"],
                  "step": step, "optimizer_state": imported_optimizers}
        run_dir.write_text(os.path.join(tmp_dir, IMPORT_RECORD), json.dumps(record, indent=1))
        # An earlier import is replaced under its writer lock: never while a run trains in it.
        lock = (run_dir.writer_lock(model_dir, name="--model_dir") if files.isdir(model_dir)
                else contextlib.nullcontext())
        with lock:
            check_model_dir(model_dir)  # nothing appeared meanwhile
            run_dir.replace_directory(tmp_dir, model_dir)
    finally:
        files.rmtree(tmp_dir)
    return model_dir, step


def _negate_last_layer(state):
    """D -> -D: GAN_stability's networks end with the linear layer `fc`."""
    if "fc.weight" not in state or "fc.bias" not in state:
        raise ConfigError("wgan checkpoint: the discriminator has no final layer fc")
    state = dict(state)
    state["fc.weight"], state["fc.bias"] = -state["fc.weight"], -state["fc.bias"]
    return state


def _negate_first_moments(torch_slots):
    """Adam's exp_avg of the negated layer changes sign too (squares do not)."""
    out = {}
    for name, values in torch_slots.items():
        values = dict(values)
        if name in ("fc.weight", "fc.bias") and "exp_avg" in values:
            values["exp_avg"] = -values["exp_avg"]
        out[name] = values
    return out

