"""Crash-safe writes: a file or directory appears complete, or not at all.

Every write goes to a new temporary file with an unpredictable name in the target's directory
(`tempfile`: O_CREAT | O_EXCL | O_NOFOLLOW, so an existing file or symbolic link of that name is
never opened), is fsynced, renamed over the target (a rename replaces a symbolic link at the
target rather than writing through it), and the directory is fsynced, so that after a crash or
power loss the target holds either its old or its new contents.
"""
import contextlib
import csv
import io
import os
import shutil
import tempfile


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp/mkdtemp make 0600/0700
_DIR_MODE = 0o777 & ~_umask()


def fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """A new file object (`mode` 'wb' or 'w') whose contents replace `path` when the block ends
    without an exception; on an exception `path` is untouched and the temporary file removed."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def write_bytes(path, data):
    with atomic_file(path) as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def append_csv_row(path, step, values):
    """Appends the row (step, *values) to a CSV (metrics.csv), with a header `step, *names` when
    the file is new. The file is rewritten atomically, so a crash never leaves half a row."""
    old = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    if not old:
        writer.writerow(["step", *values])
    writer.writerow([step, *(f"{v:.8g}" for v in values.values())])
    write_bytes(path, old + text.getvalue().encode("utf-8"))


def fsync_files(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temporary_directory(target):
    """A new, empty directory beside `target`, with an unpredictable name, to build `target` in
    (then `replace_directory`)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    os.chmod(path, _DIR_MODE)
    return path


def replace_directory(new, target):
    """Moves the complete directory `new` (from `temporary_directory(target)`) to `target`,
    fsynced. An existing `target` (the caller checked that it may be replaced) is first renamed
    to a fresh name beside it and deleted once `new` is in place: a crash in between leaves it
    there, hidden, rather than losing both."""
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    for root, dirs, names in os.walk(new):
        fsync_files(os.path.join(root, n) for n in names)
        fsync_directory(root)
    old = None
    if os.path.lexists(target):
        old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.", suffix=".old")
        os.rename(target, old)  # replaces the empty directory `old`
    os.rename(new, target)
    fsync_directory(parent)
    if old is not None:
        shutil.rmtree(old)
