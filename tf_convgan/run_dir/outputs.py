"""What a command may write where the user pointed it (every output flag of every command).

The rule, checked before anything is computed (ConfigError naming the flag: one line, status 2):

  1. Nothing is written inside a run's checkpoints/ or best/ (`checkpoint_area`): a directory
     named so beside an operative_config.gin, or any directory holding a checkpoint state file
     (`checkpoint`), and everything below them (symbolic links resolved).
  2. An output file (evaluate --output_json, sweep --commands_file) is new, or an existing
     regular file that the command recognises as its own earlier output (`own(path)`, e.g. a
     JSON object with the keys evaluate writes). Anything else, a link or a directory included,
     is refused.
  3. An output directory (sampling, spectrum and sweep --out_dir, the Dirac study's model_dir) is
     new, empty, or marked by the library as one it writes its outputs into: the mark
     `.tf_convgan_outputs` (JSON: the commands that wrote there) is written before the first
     output (`claim_output_dir`). In a marked directory a command replaces the files of its
     own names; a file of its names that another command's mark does not account for is
     refused. A non-empty directory without the mark is refused, unless the command
     recognises it (`own(directory)`, e.g. a sweep's directory of its cells' runs). Files of
     other names are never touched.
  Training and export have their own rules (layout.check_training_dir, layout.check_export_dir:
  a run directory, a previous export), and refuse a checkpoint area too.
"""
import json
import os

from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import files, layout

OUTPUTS_MARK = ".tf_convgan_outputs"
_MAX_MARK_BYTES = 1 << 16


def checkpoint_area(path):
    """The checkpoint directory (a run's checkpoints/ or best/, or a directory holding a
    checkpoint state file) that `path` is or lies in, or None. Local paths are resolved first
    (symbolic links, '..'); URLs are compared as names."""
    return layout.checkpoint_area(path)


def check_not_in_checkpoints(path, *, name):
    area = checkpoint_area(path)
    if area is not None:
        raise ConfigError(f"{name}: {path!r} lies in {area!r}, the checkpoints of a run: "
                          f"nothing is ever written there; give a path outside it")


def check_output_file(path, *, name, own):
    """Raises ConfigError naming `name` unless the file `path` may be written: not in a
    checkpoint area, and new or recognised by `own(path)` as the command's earlier output."""
    check_not_in_checkpoints(path, name=name)
    what = files.kind(path)
    if what is None:
        return
    if what != "file":
        kind = {"dir": "a directory", "link": "a symbolic link"}.get(what, "not a regular file")
        raise ConfigError(f"{name}: {path!r} is {kind}; give the path of a new file")
    if not own(path):
        raise ConfigError(f"{name}: {path!r} exists and is not an output of this command: it "
                          f"is never replaced; give a new file name or remove it yourself")


def claimed(directory):
    """The commands that the mark of `directory` names ([] when it has none or it cannot be
    read)."""
    path = os.path.join(directory, OUTPUTS_MARK)
    try:
        if files.kind(path) != "file" or files.getsize(path) > _MAX_MARK_BYTES:
            return []
        commands = json.loads(files.read_bytes(path)).get("commands")
    except (OSError, ValueError, AttributeError):
        return []
    return [c for c in commands if isinstance(c, str)] if isinstance(commands, list) else []


def _exists_below(directory, pattern):
    """Whether a file matching `pattern` (a relative name; '*' within its last part) exists."""
    parent, base = os.path.split(pattern)
    return bool(files.matching(os.path.join(directory, parent), base))


def check_output_dir(directory, *, name, command, names, own=None):
    """Raises ConfigError naming `name` unless `command` may write the files `names` (relative
    names, '*' allowed in the last part) into `directory`: see rule 3 of the module."""
    check_not_in_checkpoints(directory, name=name)
    what = files.kind(directory)
    if what is None:
        return
    if what == "link" and files.isdir(directory):
        what = "dir"
    if what != "dir":
        raise ConfigError(f"{name}: {directory!r} is a file; give a directory")
    entries = files.listdir(directory)
    if not entries:
        return
    commands = claimed(directory)
    if not commands and not (own is not None and own(directory)):
        shown = ", ".join(sorted(entries)[:4]) + (", ..." if len(entries) > 4 else "")
        raise ConfigError(
            f"{name}: {directory!r} is not empty and holds no outputs of tf_convgan (it holds "
            f"{shown}): files there are never replaced; give a new or empty directory")
    if command in commands or not commands:
        return
    taken = [n for n in names if _exists_below(directory, n)]
    if taken:
        raise ConfigError(f"{name}: {directory!r} holds {', '.join(taken[:4])}, which "
                          f"{command} did not write: it is never replaced; give another "
                          f"directory")


def claim_output_dir(directory, command):
    """Marks `directory` (created if needed) as one that `command` writes its outputs into;
    call it after check_output_dir and before the first output is written."""
    commands = claimed(directory)
    if command in commands:
        return
    files.makedirs(directory)
    files.write_text(os.path.join(directory, OUTPUTS_MARK),
                     json.dumps({"commands": sorted(commands + [command])}) + "\n")


def json_object_with(path, keys, *, max_bytes=1 << 24):
    """Whether `path` holds a JSON object (at most `max_bytes`) with every key of `keys`: how a
    command recognises a JSON file it wrote."""
    try:
        if files.getsize(path) > max_bytes:
            return False
        value = json.loads(files.read_bytes(path))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(value, dict) and all(k in value for k in keys)
