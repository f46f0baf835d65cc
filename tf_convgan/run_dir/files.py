"""Crash-safe writes, and every file operation on a run directory, on any filesystem.

A path is either local (a plain file name) or a URL (`gs://bucket/run`, `s3://...`, `ram://...`:
`is_url`). `filesystem(path)` gives the implementation for it; the module-level functions
(`exists`, `listdir`, `atomic_file`, ...) dispatch on the path, so callers never use os, glob,
open or shutil on a path that may be a URL.

Local paths (`LocalFilesystem`): a file or directory appears complete, or not at all. Every write goes to a new temporary file with an unpredictable name in the target's directory
(`tempfile`: O_CREAT | O_EXCL | O_NOFOLLOW, so an existing file or symbolic link of that name is
never opened), is fsynced, renamed over the target (a rename replaces a symbolic link at the
target rather than writing through it), and the directory is fsynced, so that after a crash or
power loss the target holds either its old or its new contents.

URLs (`GFileFilesystem`, through `tf.io.gfile`): a write goes to a temporary object with an
unpredictable name beside the target and is then renamed over it (`tf.io.gfile.rename(...,
overwrite=True)`). There is no fsync (an object is durable once its upload completes) and no
symbolic links. On object stores such as GCS a rename is a copy and a delete, not atomic across
processes: readers see the old or the new object, never half of one, but a crash can leave the
temporary object behind (`.<name>.<random>.tmp`, harmless). Whole directories (an export) are
moved file by file, the top-level files (saved_model.pb) last.

A write that fails because the disk is full (ENOSPC, run_dir.disk_full) leaves the target as it
was, removes its temporary file and raises DiskFullError naming the target.
"""
import contextlib
import csv
import fcntl
import fnmatch
import io
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile

from tf_convgan.run_dir.disk_full import DiskFullError, is_disk_full

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path):
    """Whether `path` names a file through a filesystem scheme (gs://, s3://, ram://, ...)."""
    return isinstance(path, (str, bytes, os.PathLike)) and bool(_URL.match(os.fsdecode(path)))


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


def _local_fsync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _local_atomic_file(path, mode="wb"):
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise DiskFullError(path) from e
        raise
    _local_fsync_directory(directory)


def write_bytes(path, data):
    with atomic_file(path) as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def file_sha256(path):
    """sha256 hex digest of a file's bytes (local or a URL), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with filesystem(path).open_read(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path):
    return read_bytes(path).decode("utf-8")


def append_csv_row(path, step, values):
    """Appends the row (step, *values) to a CSV (metrics.csv), with a header `step, *names` when
    the file is new. The file is rewritten atomically, so a crash never leaves half a row."""
    old = b""
    if exists(path):
        old = read_bytes(path)
        if old and not old.endswith(b"\n"):
            old += b"\n"
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    if not old:
        writer.writerow(["step", *values])
    writer.writerow([step, *(f"{v:.8g}" for v in values.values())])
    write_bytes(path, old + text.getvalue().encode("utf-8"))


def _local_fsync_files(paths):
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _local_temporary_directory(target):
    """A new, empty directory beside `target`, with an unpredictable name, to build `target` in
    (then `replace_directory`)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    os.chmod(path, _DIR_MODE)
    return path


def _local_replace_directory(new, target):
    """Moves the complete directory `new` (from `temporary_directory(target)`) to `target`,
    fsynced. An existing `target` (the caller checked that it may be replaced) is first renamed
    to a fresh name beside it and deleted once `new` is in place: a crash in between leaves it
    there, hidden, rather than losing both."""
    target = os.path.abspath(target)
    parent = os.path.dirname(target)
    for root, dirs, names in os.walk(new):
        _local_fsync_files(os.path.join(root, n) for n in names)
        _local_fsync_directory(root)
    old, held = None, None
    if os.path.lexists(target):
        if os.path.isdir(target) and not os.path.islink(target):
            # held while it is `old` (run_dir.temporaries: a later writer removes it only if
            # this process was killed before it could)
            held = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(target)}.", suffix=".old")
        os.rename(target, old)  # replaces the empty directory `old`
    try:
        os.rename(new, target)
        _local_fsync_directory(parent)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if held is not None:
            os.close(held)


# -- the filesystems ---------------------------------------------------------------------------

class LocalFilesystem:
    """Local disk: os, with the crash-safe writes above (O_EXCL temporary names that never
    follow a symbolic link, fsync, atomic rename, directory fsync)."""

    url = False

    def abspath(self, path):
        return os.path.abspath(path)

    def exists(self, path):
        return os.path.exists(path)

    def lexists(self, path):
        return os.path.lexists(path)

    def isdir(self, path):
        return os.path.isdir(path)

    def isfile(self, path):
        return os.path.isfile(path)

    def kind(self, path):
        """'link', 'dir', 'file' (anything else that exists) or None, not following links."""
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return "link"
        return "dir" if stat.S_ISDIR(mode) else ("file" if stat.S_ISREG(mode) else "other")

    def listdir(self, path):
        return os.listdir(path)

    def makedirs(self, path):
        os.makedirs(path, exist_ok=True)

    def remove(self, path):
        os.remove(path)

    def rename(self, source, target):
        os.rename(source, target)

    def rmtree(self, path):
        shutil.rmtree(path, ignore_errors=True)

    def read_bytes(self, path):
        with open(path, "rb") as f:
            return f.read()

    def open_read(self, path):
        """A binary file object to read `path` from (read(n) in blocks)."""
        return open(path, "rb")

    def getsize(self, path):
        return os.path.getsize(path)

    def walk(self, path):
        return os.walk(path)

    atomic_file = staticmethod(_local_atomic_file)
    fsync_files = staticmethod(_local_fsync_files)
    fsync_directory = staticmethod(_local_fsync_directory)
    temporary_directory = staticmethod(_local_temporary_directory)
    replace_directory = staticmethod(_local_replace_directory)


class GFileFilesystem:
    """A URL (gs://, s3://, ram://, ...) through tf.io.gfile: writes go to a temporary object
    with an unpredictable name and are renamed over the target; no fsync, no symbolic links."""

    url = True

    @staticmethod
    def _gfile():
        import tensorflow as tf  # only for URLs: the local functions need the standard library
        return tf.io.gfile

    @staticmethod
    def _not_found():
        import tensorflow as tf
        return tf.errors.NotFoundError

    def abspath(self, path):
        return path

    def exists(self, path):
        return self._gfile().exists(path)

    lexists = exists

    def isdir(self, path):
        return self._gfile().isdir(path)

    def isfile(self, path):
        return self._gfile().exists(path) and not self._gfile().isdir(path)

    def kind(self, path):
        if self._gfile().isdir(path):
            return "dir"
        return "file" if self._gfile().exists(path) else None

    def listdir(self, path):
        if not self._gfile().isdir(path):
            raise FileNotFoundError(f"{path!r} is not a directory")
        return [name.rstrip("/") for name in self._gfile().listdir(path)]

    def makedirs(self, path):
        self._gfile().makedirs(path)

    def remove(self, path):
        self._gfile().remove(path)

    def rename(self, source, target):
        self._gfile().rename(source, target, overwrite=True)

    def rmtree(self, path):
        with contextlib.suppress(self._not_found()):
            self._gfile().rmtree(path)

    def read_bytes(self, path):
        try:
            with self._gfile().GFile(path, "rb") as f:
                return f.read()
        except self._not_found():
            raise FileNotFoundError(f"{path!r} does not exist") from None

    def open_read(self, path):
        if not self._gfile().exists(path):
            raise FileNotFoundError(f"{path!r} does not exist")
        return self._gfile().GFile(path, "rb")

    def getsize(self, path):
        return self._gfile().stat(path).length

    def walk(self, path):
        for root, dirs, names in self._gfile().walk(path):
            yield root, [d.rstrip("/") for d in dirs], names

    def _temporary_name(self, path, suffix):
        parent, name = _split(path)
        return f"{parent}/.{name}.{secrets.token_hex(8)}{suffix}"

    @contextlib.contextmanager
    def atomic_file(self, path, mode="wb"):
        """Collects the contents in memory, writes them to a temporary object beside `path` and
        renames that over `path` when the block ends without an exception."""
        if mode not in ("wb", "w"):
            raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
        buffer = io.BytesIO() if mode == "wb" else io.StringIO()
        yield buffer
        data = buffer.getvalue()
        if mode == "w":
            data = data.encode("utf-8")
        gfile = self._gfile()
        gfile.makedirs(_split(path)[0])
        tmp = self._temporary_name(path, ".tmp")
        try:
            with gfile.GFile(tmp, "wb") as f:
                f.write(data)
            gfile.rename(tmp, path, overwrite=True)
        except BaseException as e:
            with contextlib.suppress(Exception):
                gfile.remove(tmp)
            if is_disk_full(e) and not isinstance(e, DiskFullError):
                raise DiskFullError(path) from e
            raise

    def fsync_files(self, paths):
        del paths  # an uploaded object is durable; there is nothing to flush

    def fsync_directory(self, path):
        del path

    def temporary_directory(self, target):
        path = self._temporary_name(target, ".tmp")
        self._gfile().makedirs(path)
        return path

    def _move_tree(self, source, target):
        """Renames every file of `source` to the same place under `target`, the deepest first
        and the top-level files last (saved_model.pb: a reader finds it only when the
        variables it needs are there)."""
        moves = []
        for root, dirs, names in self.walk(source):
            relative = root[len(source):].strip("/")
            depth = relative.count("/") + 1 if relative else 0
            destination = f"{target}/{relative}" if relative else target
            self.makedirs(destination)
            moves += [(-depth, f"{root.rstrip('/')}/{n}", f"{destination}/{n}") for n in names]
        for _, a, b in sorted(moves, key=lambda m: m[0]):
            self.rename(a, b)

    def replace_directory(self, new, target):
        """Moves the files of `new` into `target`. An existing `target` is first moved to a
        fresh name beside it and deleted once `new` is in place."""
        old = None
        if self.exists(target):
            old = self._temporary_name(target, ".old")
            self._move_tree(target, old)
            self.rmtree(target)
        self._move_tree(new, target)
        self.rmtree(new)
        if old is not None:
            self.rmtree(old)


def _split(path):
    """(parent, name) of a URL or path, ignoring a trailing slash."""
    path = os.fspath(path).rstrip("/")
    parent, _, name = path.rpartition("/")
    return parent, name


LOCAL = LocalFilesystem()
GFILE = GFileFilesystem()


def filesystem(path):
    """The filesystem of `path`: GFILE for a URL, LOCAL otherwise."""
    return GFILE if is_url(path) else LOCAL


def abspath(path):
    return filesystem(path).abspath(path)


def exists(path):
    return filesystem(path).exists(path)


def lexists(path):
    return filesystem(path).lexists(path)


def isdir(path):
    return filesystem(path).isdir(path)


def isfile(path):
    return filesystem(path).isfile(path)


def kind(path):
    return filesystem(path).kind(path)


def listdir(path):
    return filesystem(path).listdir(path)


def makedirs(path):
    filesystem(path).makedirs(path)


def remove(path):
    filesystem(path).remove(path)


def rename(source, target):
    filesystem(target).rename(source, target)


def rmtree(path):
    """Removes a directory tree, ignoring errors (cleanup)."""
    filesystem(path).rmtree(path)


def read_bytes(path):
    return filesystem(path).read_bytes(path)


def getsize(path):
    return filesystem(path).getsize(path)


def walk(path):
    return filesystem(path).walk(path)


def matching(directory, pattern):
    """Paths of the entries of `directory` whose names match the shell `pattern` (fnmatch, so
    that no character of `directory` is special), sorted; [] when there is no directory."""
    try:
        names = listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(os.path.join(directory, n) for n in names if fnmatch.fnmatchcase(n, pattern))


def atomic_file(path, mode="wb"):
    """A new file object (`mode` 'wb' or 'w') whose contents replace `path` when the block ends
    without an exception; on an exception `path` is untouched and the temporary file removed."""
    return filesystem(path).atomic_file(path, mode)


def fsync_files(paths):
    paths = list(paths)
    if paths:
        filesystem(paths[0]).fsync_files(paths)


def fsync_directory(path):
    filesystem(path).fsync_directory(path)


def temporary_directory(target):
    """A new, empty directory beside `target`, with an unpredictable name, to build `target` in
    (then `replace_directory`)."""
    return filesystem(target).temporary_directory(target)


def replace_directory(new, target):
    """Moves the complete directory `new` (from `temporary_directory(target)`) to `target` (see
    the filesystems)."""
    filesystem(target).replace_directory(new, target)
