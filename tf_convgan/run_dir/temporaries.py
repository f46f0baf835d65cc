"""The temporary directories of whole-directory writes (an export): held by their writer while
they exist, removed by a later writer once their own is gone.

`files.temporary_directory(target)` makes `.<name>.<8 random characters>.tmp` beside `target`;
`files.replace_directory` moves a replaced `target` to `.<name>.<8 random characters>.old` until
the new one is in place. A process killed in between leaves them behind. Each writer holds an
exclusive `flock` on them (`held`; replace_directory on the `.old` one), which the kernel releases
when the process ends, however it ends. `remove_stale(target, holds)` removes, beside `target`,
exactly the directories that have such a name, that no process holds, and whose contents `holds`
accepts (e.g. layout.is_partial_export): nothing else, not a live writer's. On a URL nothing is
removed (no flock there: a live writer's temporaries cannot be told from a dead one's).
"""
import contextlib
import fcntl
import os
import re
import shutil

from tf_convgan.run_dir import files

_RANDOM = "[a-z0-9_]{8}"  # tempfile's names


def _open_directory(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


@contextlib.contextmanager
def held(directory):
    """Holds an exclusive flock on the local `directory` within the block (nothing on a URL)."""
    if files.is_url(directory):
        yield
        return
    fd = _open_directory(directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale(target, holds):
    """Removes the temporaries of `target` (see the module) that no process holds and whose
    contents `holds(path)` accepts; returns their paths."""
    if files.is_url(target):
        return []
    parent, name = os.path.split(os.path.abspath(target))
    pattern = re.compile(re.escape(f".{name}.") + _RANDOM + r"\.(tmp|old)")
    removed = []
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if not pattern.fullmatch(entry) or files.kind(path) != "dir":
            continue
        try:
            fd = _open_directory(path)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            os.close(fd)
            continue
        try:
            if holds(path):
                shutil.rmtree(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed
