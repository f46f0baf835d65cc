"""Checkpoints of a GAN: what is saved, strict restores, resuming, retention.

A checkpoint holds G, D, the EMA generator, both optimizers and the step counter.

Writes are crash-safe: the files of `ckpt-<step>` are written and fsynced first, then the
directory's `checkpoint` state file (what `tf.train.latest_checkpoint` reads) is replaced
atomically (run_dir.files), so a process killed at any moment leaves the previous checkpoint as
the latest one.

Restores are strict: a checkpoint that does not fit the configured networks (a changed
architecture) raises `CheckpointMismatchError` instead of restoring part of the weights; one whose
files cannot be read (truncated, corrupted: TensorFlow checks every tensor's checksum) raises
`UnreadableCheckpointError`.

Resuming (`restore_newest`) takes the newest checkpoint that can be read: among those up to the
state file's latest or, when the state file is missing or unreadable, among the `ckpt-*.index`
files themselves. Unreadable newer ones are reported (and, by a training run, moved into
`unreadable/` so that they are never overwritten), never deleted. The configured optimizer
hyperparameters (`apply_optimizer_settings`) win over the restored ones.

The directory may be a URL (gs://...): tf.train.Checkpoint writes through TensorFlow's
filesystems, and everything around it (the state file, listing, moving aside, retention) goes
through run_dir.files. There the state file is still written last, so the previous checkpoint
stays the latest until it is replaced, but nothing is fsynced (see run_dir.files).
"""
import contextlib
import logging
import os
import re
import typing

import numpy as np
import tensorflow as tf

from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import disk_full, files, layout

_CKPT_RE = re.compile(r"ckpt-(\d+)\.index$")


class CheckpointMismatchError(ConfigError):
    """A checkpoint whose variables do not fit the configured networks."""


class UnreadableCheckpointError(ConfigError):
    """A checkpoint whose files cannot be read (missing, truncated or corrupted)."""

    def __init__(self, path, problem):
        super().__init__(f"checkpoint {path} cannot be read ({problem})")
        self.path = path
        self.problem = problem


class ModelWeights(tf.Module):
    """Every weight of a Keras model (trainable or not: batch-norm statistics, spectral-norm
    vectors) as one ordered list. Checkpointing the list rather than the model itself keeps
    layers that a network holds in Python lists (Keras 3 does not expose those to TensorFlow's
    checkpoint graph), and does not depend on layer names, which Keras numbers per process."""

    def __init__(self, model):
        super().__init__()
        self.values = list(model.weights)


def make_checkpoint(gan):
    return tf.train.Checkpoint(
        generator=ModelWeights(gan.generator), discriminator=ModelWeights(gan.discriminator),
        generator_ema=ModelWeights(gan.generator_ema), g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer, step=gan.step_counter)


def checkpoint_step(path):
    """The step of a checkpoint prefix `.../ckpt-<step>`."""
    match = _CKPT_RE.search(path + ".index")
    if match is None:
        raise ConfigError(f"{path!r} is not a tf_convgan checkpoint prefix (.../ckpt-<step>)")
    return int(match.group(1))


def resolve_checkpoint(path):
    """A checkpoint prefix from a prefix, a checkpoints/ directory or a model directory."""
    if tf.io.gfile.exists(path + ".index"):
        return path
    for directory in (path, layout.checkpoint_dir(path)):
        if tf.io.gfile.isdir(directory):
            latest = tf.train.latest_checkpoint(directory)
            if latest is not None:
                return latest
    raise FileNotFoundError(f"no checkpoint found at {path!r} (give a model directory, its "
                            f"checkpoints/ directory or a prefix such as .../ckpt-1000)")


def load_reader(path):
    """A CheckpointReader of the checkpoint prefix `path`. (tf.train.load_checkpoint first asks
    whether `path` is a directory, which some filesystems answer yes for a prefix of file names,
    ram:// for one; a prefix is opened directly.)"""
    return tf.compat.v1.train.NewCheckpointReader(path)


def unreadable(path):
    """Why the checkpoint `path` cannot be read (every tensor is read, which verifies its
    checksum), or None if it can."""
    try:
        reader = load_reader(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001  (any failure to read the files)
        detail = " ".join(str(e).split()) or type(e).__name__
        detail = re.sub(r"^\{\{[^}]*\}\}\s*", "", detail)  # TF's function-node prefix
        return detail[:200] + (" ..." if len(detail) > 200 else "")
    return None


class _UnrestoredValueFilter(logging.Filter):
    """Drops TensorFlow's warnings about checkpoint values left unrestored, which it logs when
    the objects of a failed restore are collected (one or two lines per value: hundreds, after
    the one-line error, scrolling it away)."""

    PREFIXES = ("Value in checkpoint could not be found in the restored object",
                "Detecting that an object or model or tf.train.Checkpoint is being deleted with "
                "unrestored values")

    def filter(self, record):
        return not str(record.getMessage()).startswith(self.PREFIXES)


def _silence_unrestored_value_warnings():
    """Installs _UnrestoredValueFilter on TensorFlow's logger (once): called when a restore
    fails, so that the error is the last thing said."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _UnrestoredValueFilter) for f in logger.filters):
        logger.addFilter(_UnrestoredValueFilter())


def restore(checkpoint, path, *, partial=False):
    """Restores `checkpoint` (a tf.train.Checkpoint) from `path`, strictly.

    Every variable of the configured objects must be in the checkpoint with its shape; unless
    `partial`, every value in the checkpoint must also be used (no leftover layers). Raises
    UnreadableCheckpointError when the files cannot be read, CheckpointMismatchError when they
    do not fit."""
    try:
        status = checkpoint.read(path)  # the counterpart of write(): no save_counter
        if partial:
            status.expect_partial()
            status.assert_existing_objects_matched()
        else:
            status.assert_consumed()
    except Exception as e:  # noqa: BLE001  (classified below)
        _silence_unrestored_value_warnings()
        problem = unreadable(path)
        if problem is not None:
            raise UnreadableCheckpointError(path, problem) from None
        if not isinstance(e, (AssertionError, ValueError, tf.errors.InvalidArgumentError)):
            raise
        detail = " ".join(str(e).split())
        if len(detail) > 600:
            detail = detail[:600] + " ..."
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit the configured networks (was the architecture "
            f"changed since it was written? use a new --model_dir, or the gin config the "
            f"checkpoint was trained with): {detail}") from None
    return path


def restore_gan(gan, path):
    """Restores every part of `gan` from `path` (restore(make_checkpoint(gan), path)) and checks
    that the step counter it holds is the step of its name: a checkpoint whose name disagrees
    (files renamed or copied by hand) would resume at the wrong step of the data and of every
    random draw, and retention would delete by the wrong name. Such a checkpoint raises
    UnreadableCheckpointError, so that resuming treats it as an unreadable one."""
    restore(make_checkpoint(gan), path)
    stored, named = int(gan.step.numpy()), checkpoint_step(path)
    if stored != named:
        raise UnreadableCheckpointError(
            path, f"it holds step {stored}, not the step {named} of its name")
    return path


def checkpoint_steps(directory):
    """Steps of the `ckpt-<step>.index` files in `directory`, sorted."""
    paths = files.matching(directory, "ckpt-*.index")
    return sorted(int(_CKPT_RE.search(p).group(1)) for p in paths if _CKPT_RE.search(p))


def _state_latest_step(directory):
    """(the step of the state file's latest checkpoint, None) or (None, what is wrong with the
    state file)."""
    if not files.exists(os.path.join(directory, layout.CHECKPOINT_STATE)):
        return None, "is missing"
    try:
        state = tf.train.get_checkpoint_state(directory)
        return checkpoint_step(state.model_checkpoint_path), None
    except Exception:  # noqa: BLE001  (empty, garbled, or naming no ckpt-<step>)
        return None, "cannot be read"


def resume_candidates(directory):
    """Checkpoint prefixes to resume from, newest first, and notes on the state file: those up
    to the state file's latest, or every `ckpt-*.index` when the state file is missing or
    unreadable (a checkpoint newer than the state file's latest was never completed)."""
    steps = checkpoint_steps(directory)
    latest, problem = _state_latest_step(directory)
    notes = []
    if latest is None:
        if steps:
            notes.append(f"the checkpoint state file {os.path.join(directory, 'checkpoint')} "
                         f"{problem}: resuming from the checkpoint files themselves (newest: "
                         f"ckpt-{steps[-1]})")
    else:
        if latest not in steps:
            notes.append(f"the checkpoint state file names ckpt-{latest}, whose files are "
                         f"missing")
        steps = [s for s in steps if s <= latest]
    return [os.path.join(directory, f"ckpt-{s}") for s in reversed(steps)], notes


class Resumed(typing.NamedTuple):
    path: typing.Optional[str]  # the restored checkpoint; None: none to restore
    unreadable: list  # [(prefix, problem)] newer checkpoints that could not be read
    notes: list  # one-line messages: the state file, skipped checkpoints


def restore_newest(directory, restore_fn, *, set_aside_unreadable=False):
    """Calls `restore_fn(prefix)` on the newest checkpoint of `directory` whose files can be
    read (see resume_candidates); with `set_aside_unreadable` (a training run, which would
    overwrite them) newer unreadable ones are then moved into unreadable/ (`set_aside`). Raises
    ConfigError, changing nothing, when there are checkpoints but none can be read, and when the
    state file exists but no checkpoint file up to its latest does (it is written only after a
    checkpoint's files: they were lost, and starting from step 0 would overwrite it)."""
    candidates, notes = resume_candidates(directory)
    if not candidates:
        _refuse_a_state_file_without_checkpoints(directory)
    skipped = []
    for path in candidates:
        try:
            restore_fn(path)
        except UnreadableCheckpointError as e:
            skipped.append((path, e.problem))
            continue
        for unreadable_path, problem in skipped:
            name = os.path.basename(unreadable_path)
            where = ""
            if set_aside_unreadable:
                where = f", moved to {set_aside(unreadable_path)}"
            notes.append(f"checkpoint {name} cannot be read ({problem}){where}; using "
                         f"{os.path.basename(path)}")
        return Resumed(path, skipped, notes)
    if skipped:
        raise ConfigError(
            f"no checkpoint in {directory} can be read: " + "; ".join(
                f"{os.path.basename(p)} ({problem})" for p, problem in skipped)
            + ". Nothing was changed; move them elsewhere to start again from step 0")
    return Resumed(None, [], notes)


def _refuse_a_state_file_without_checkpoints(directory):
    state = os.path.join(directory, layout.CHECKPOINT_STATE)
    if not files.lexists(state):
        return
    latest, problem = _state_latest_step(directory)
    what = problem if latest is None else f"names ckpt-{latest}, whose files are missing"
    steps = checkpoint_steps(directory)
    newer = (f" up to it (ckpt-{steps[0]} is newer: it was never completed)" if steps else
             " to resume from")
    raise ConfigError(
        f"the checkpoint state file {state} {what}, and there is no checkpoint file{newer}. "
        f"Nothing was changed; restore the checkpoints, or move {directory} elsewhere to start "
        f"again from step 0")


def set_aside(path):
    """Moves the files of checkpoint `path` into `<its directory>/unreadable/<name>/` (a fresh
    name if that exists), so that a resumed run never overwrites them; returns the directory."""
    directory, name = os.path.split(path)
    target = os.path.join(directory, layout.UNREADABLE_SUBDIR, name)
    suffix = 1
    while files.lexists(target):
        target = os.path.join(directory, layout.UNREADABLE_SUBDIR, f"{name}.{suffix}")
        suffix += 1
    files.makedirs(target)
    for f in files.matching(directory, name + ".*"):
        files.rename(f, os.path.join(target, os.path.basename(f)))
    files.fsync_directory(target)
    files.fsync_directory(directory)
    return target


def restore_latest(gan, directory):
    """Restores the newest readable checkpoint of `directory` into `gan` (see restore_newest);
    returns its path or None."""
    return restore_newest(directory, lambda p: restore_gan(gan, p)).path


# -- optimizer hyperparameters ----------------------------------------------------------------

def _optimizer_parts(name, optimizer):
    """(name, optimizer) of an optimizer and of the one it wraps (a loss-scale optimizer)."""
    parts = [(name, optimizer)]
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        parts.append((name, inner))
    return parts


def _settings(optimizer):
    return {k: v for k, v in optimizer.get_config().items()
            if k not in ("name", "inner_optimizer")}


def optimizer_settings(optimizers):
    """The hyperparameters (get_config(), any Keras optimizer) of {name: optimizer}: take them
    before a restore, which overwrites those Keras keeps in variables (the learning rate)."""
    return {(name, id(part)): (part, _settings(part))
            for role, optimizer in optimizers.items()
            for name, part in _optimizer_parts(role, optimizer)}


def apply_optimizer_settings(configured):
    """Sets back the hyperparameters of `configured` (optimizer_settings taken before a restore)
    that the restore changed; returns ['g_optimizer.learning_rate 0.0001 -> 0.0002', ...]
    (checkpoint -> configured). A changed one that cannot be set raises ConfigError naming it."""
    changed = []
    for (name, _), (optimizer, settings) in configured.items():
        restored = _settings(optimizer)
        for key, value in settings.items():
            if restored.get(key) == value:
                continue
            variable = getattr(optimizer, key, None)
            if not hasattr(variable, "assign"):
                raise ConfigError(
                    f"{name}.{key} is {value!r} in the configuration but {restored.get(key)!r} "
                    f"in the checkpoint, and it cannot be set after restoring: configure "
                    f"{restored.get(key)!r} or use a new --model_dir")
            variable.assign(value)
            changed.append(f"{name}.{key} {_short(restored.get(key))} -> {_short(value)}")
    return changed


def _short(value):
    return f"{value:.6g}" if isinstance(value, float) else repr(value)


def all_finite(variables):
    return all(bool(np.isfinite(v.numpy()).all()) for v in variables)


class CheckpointKeeper:
    """Saves `ckpt-<step>` and keeps the last `keep_last` plus every step divisible by
    `keep_every` (None: none extra). The state file lists the kept checkpoints in step order."""

    def __init__(self, checkpoint, directory, *, keep_last, keep_every=None):
        if not isinstance(keep_last, int) or keep_last < 1:
            raise ConfigError(f"keep_last must be an integer >= 1, got {keep_last!r}")
        if keep_every is not None and (not isinstance(keep_every, int) or keep_every < 1):
            raise ConfigError(f"keep_every must be None or an integer >= 1, got {keep_every!r}")
        self.checkpoint = checkpoint
        self.directory = directory
        self.keep_last = keep_last
        self.keep_every = keep_every

    def steps(self):
        """Steps of the checkpoints on disk (complete or not), sorted."""
        return checkpoint_steps(self.directory)

    def _prefix(self, step):
        return os.path.join(self.directory, f"ckpt-{step}")

    def save(self, step):
        """Writes ckpt-<step> (fsynced), makes it the latest, then deletes what retention
        drops. On a full disk (disk_full) the files of ckpt-<step> written so far are removed
        and DiskFullError is raised: the state file and the earlier checkpoints are untouched."""
        files.makedirs(self.directory)
        before = set(files.listdir(self.directory))
        try:
            path = self.checkpoint.write(self._prefix(step))
            files.fsync_files(files.matching(self.directory, os.path.basename(path) + ".*"))
            files.fsync_directory(self.directory)
        except Exception as e:
            if not disk_full.is_disk_full(e):
                raise
            self._remove_new(before, f"ckpt-{step}")
            raise disk_full.DiskFullError(self._prefix(step), "writing checkpoint") from e
        steps = [s for s in self.steps() if s <= step]
        recent = set(steps[-self.keep_last:])
        kept = [s for s in steps if s in recent or (self.keep_every and s % self.keep_every == 0)]
        self._write_state(os.path.basename(path), [f"ckpt-{s}" for s in kept])
        for s in set(self.steps()) - set(kept) - {step}:
            if s < step:
                for f in files.matching(self.directory, f"ckpt-{s}.*"):
                    files.remove(f)
        return path

    def _remove_new(self, before, name):
        """Removes what a failed write of checkpoint `name` left: its files and TensorFlow's
        temporary directories (`<name>_temp*`) that were not in the directory `before`."""
        for entry in set(files.listdir(self.directory)) - before:
            entry = entry.rstrip("/")
            if entry.startswith(name + ".") or entry.startswith(name + "_temp"):
                target = os.path.join(self.directory, entry)
                with contextlib.suppress(OSError):
                    if files.isdir(target):
                        files.rmtree(target)
                    else:
                        files.remove(target)

    def _write_state(self, latest, kept):
        """The `checkpoint` file (a CheckpointState text proto) that tf.train.latest_checkpoint
        reads, with names relative to the directory (so that it can be moved), replaced
        atomically."""
        lines = [f'model_checkpoint_path: "{latest}"']
        lines += [f'all_model_checkpoint_paths: "{name}"' for name in kept]
        files.write_text(os.path.join(self.directory, layout.CHECKPOINT_STATE),
                         "\n".join(lines) + "\n")
