"""The names of everything in a run directory (`model_dir`) and what an export may hold.

    <model_dir>/
      operative_config.gin          the gin bindings the run used (read back as data: run_config)
      checkpoints/ckpt-<step>.*     G, D, the EMA generator, both optimizers, the step counter
      checkpoints/checkpoint        the state file: the latest checkpoint and the kept ones
      checkpoints/unreadable/       checkpoints that could not be read when a run resumed (kept)
      checkpoints/worker_<i>/       multi-worker training: the other workers' copies
      best/ckpt-<step>.*, best/best.json   the best checkpoint by FID and its metrics
      export/                       the EMA generator as a SavedModel
      samples.png, samples/step_XXXXXXX.png   sample grids of the EMA generator
      metrics.csv, fid.png          evaluations during training
      events.out.tfevents.*         TensorBoard
      .tf_convgan.lock              the writer lock (an empty file; see run_dir.lock)
"""
import os
import re

from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import files

OPERATIVE_CONFIG = "operative_config.gin"
CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_STATE = "checkpoint"  # tf.train.latest_checkpoint's file name
UNREADABLE_SUBDIR = "unreadable"
BEST_SUBDIR = "best"
BEST_JSON = "best.json"
EXPORT_SUBDIR = "export"
SAMPLES_SUBDIR = "samples"
SAMPLES_PNG = "samples.png"
METRICS_CSV = "metrics.csv"
FID_PLOT = "fid.png"
LOCK_FILE = ".tf_convgan.lock"

# An export is a SavedModel and the run's operative config, nothing else.
_EXPORT_FILES = {"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", OPERATIVE_CONFIG}
_EXPORT_VARIABLES = re.compile(r"variables\.(index|data-\d+-of-\d+)$")


def operative_config_path(model_dir):
    return os.path.join(model_dir, OPERATIVE_CONFIG)


def checkpoint_dir(model_dir):
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def best_dir(model_dir):
    return os.path.join(model_dir, BEST_SUBDIR)


def export_dir(model_dir):
    return os.path.join(model_dir, EXPORT_SUBDIR)


def sample_grid_paths(model_dir, step):
    """The grid of `step` and the latest grid."""
    return (os.path.join(model_dir, SAMPLES_SUBDIR, f"step_{step:07d}.png"),
            os.path.join(model_dir, SAMPLES_PNG))


def is_run_directory(path):
    """Whether `path` looks like a training run's directory."""
    return (files.isfile(operative_config_path(path))
            or files.isdir(checkpoint_dir(path)))


def is_inside(path, directory):
    """Whether `path` is `directory` or lies below it (symlinks resolved; URLs compared as
    names)."""
    if files.is_url(path) or files.is_url(directory):
        path, directory = os.fspath(path).rstrip("/"), os.fspath(directory).rstrip("/")
        return path == directory or path.startswith(directory + "/")
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def _ancestors(path):
    """`path` and every directory above it: resolved (symbolic links, '..') for a local path,
    by name for a URL."""
    if files.is_url(path):
        path = os.fspath(path).rstrip("/")
        scheme, _, rest = path.partition("://")
        parts = rest.split("/")
        return [f"{scheme}://" + "/".join(parts[:i]) for i in range(len(parts), 1, -1)]
    path = os.path.realpath(path)
    found = [path]
    while os.path.dirname(found[-1]) != found[-1]:
        found.append(os.path.dirname(found[-1]))
    return found


def checkpoint_area(path):
    """The checkpoint directory that `path` is or lies in, or None: a run's checkpoints/ or best/
    (beside its operative_config.gin) or any directory holding a checkpoint state file."""
    for directory in _ancestors(path):
        parent, base = os.path.split(directory)
        if ((base in (CHECKPOINT_SUBDIR, BEST_SUBDIR) and files.isfile(operative_config_path(
                parent))) or files.isfile(os.path.join(directory, CHECKPOINT_STATE))):
            return directory
    return None


def _lock_or_config_temporary(name):
    """The lock file, or a temporary of the operative config (a run killed while writing it)."""
    return name == LOCK_FILE or re.fullmatch(r"\.operative_config\.gin\.[^/]+\.tmp", name)


def check_training_dir(path, *, name="model_dir"):
    """Raises ConfigError unless a training run may write `path`: it does not exist, is empty,
    is a run directory (see is_run_directory), or holds only what a run killed before its first
    step left (the lock file, a temporary of operative_config.gin); and it is not in a run's
    checkpoints (checkpoint_area)."""
    area = checkpoint_area(path)
    if area is not None:
        raise ConfigError(f"{name} {path!r} lies in {area!r}, the checkpoints of a run; give "
                          f"a directory outside it")
    if not files.isdir(path) or is_run_directory(path):
        return
    others = sorted(n for n in files.listdir(path) if not _lock_or_config_temporary(n))
    if others:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise ConfigError(
            f"{name} {path!r} is not empty and is not a training run's directory (it holds "
            f"{shown}): training would write its checkpoints, samples and config over what is "
            f"there; give a new or empty directory")


def _not_an_export(path):
    """Why the existing `path` may not be replaced by an export, or None when it may: it is an
    empty directory or holds a SavedModel and nothing else (a previous export)."""
    what = files.kind(path)
    if what == "link":
        return "it is a symbolic link"
    if what != "dir":
        return "it is a file"
    entries = sorted(files.listdir(path))
    if not entries:
        return None
    others = []
    for name in entries:
        full = os.path.join(path, name)
        what = files.kind(full)
        if name in _EXPORT_FILES and what == "file":
            continue
        if name == "variables" and what == "dir" and all(
                _EXPORT_VARIABLES.match(v) and files.kind(os.path.join(full, v)) == "file"
                for v in files.listdir(full)):
            continue
        if name == "assets" and what == "dir" and all(
                files.kind(os.path.join(full, a)) == "file" for a in files.listdir(full)):
            continue
        others.append(name)
    if others:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        return f"it holds {shown}"
    if "saved_model.pb" not in entries and "saved_model.pbtxt" not in entries:
        return "it holds no saved_model.pb"
    return None


_SAVE_TEMPORARY = re.compile(r"part-\d+-of-\d+\.(index|data-\d+-of-\d+)$")  # variables_temp/


def is_partial_export(path):
    """Whether the directory `path` holds nothing but (part of) an export: what an export killed
    while writing it, or while replacing a previous one, leaves in its temporary directory."""
    reason = _not_an_export(path)
    if reason in (None, "it holds no saved_model.pb"):
        return True
    for root, dirs, names in files.walk(path):
        relative = os.path.relpath(root, path)
        for n in names:
            ok = ((relative == "." and (n in _EXPORT_FILES or
                                        re.fullmatch(r"\.operative_config\.gin\..+\.tmp", n)))
                  or (relative == "variables" and _EXPORT_VARIABLES.match(n))
                  or (relative == os.path.join("variables", "variables_temp")
                      and _SAVE_TEMPORARY.match(n))
                  or relative == "assets")
            if not ok or files.kind(os.path.join(root, n)) != "file":
                return False
        for d in dirs:
            if os.path.normpath(os.path.join(relative, d)) not in (
                    "variables", "assets", os.path.join("variables", "variables_temp")):
                return False
    return True


def check_export_dir(path):
    """Raises ConfigError unless an export may be written to `path`: it does not exist, is an
    empty directory, or holds a previous export (a SavedModel and nothing else); never in a
    run's checkpoints (checkpoint_area)."""
    area = checkpoint_area(path)
    if area is not None:
        raise ConfigError(f"{path!r} lies in {area!r}, the checkpoints of a run: an export is "
                          f"never written there; give a directory outside it")
    if not files.lexists(path):
        return
    reason = _not_an_export(path)
    if reason is not None:
        raise ConfigError(
            f"{path!r} is not a previous export ({reason}): an export replaces only a directory "
            f"that holds a SavedModel and nothing else; give a new directory")
