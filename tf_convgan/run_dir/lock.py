"""One writer per run directory, and a writable directory before anything runs.

The writer holds an exclusive `flock` on `<model_dir>/.tf_convgan.lock` while it writes
(training, an export into the directory, an import). The lock belongs to the open file: the
kernel releases it when the process ends, however it ends (kill -9 included), so a lock is never
left stuck; a second writer is refused at once with one line.

A URL (gs://, s3://, ram://: run_dir.files.is_url) has no flock, and tf.io.gfile cannot create an
object only if it does not exist (GCS's ifGenerationMatch=0 is not exposed), so a lock object
could neither be taken atomically nor be released by a process that was killed. There the writer
lock is not taken: a second writer is NOT refused, and the user must make sure that one process at
a time writes such a directory (docs/running.md, "Where files go"). `writer_lock` says so in one
line on stderr (`url_lock_warning`) each time a writer starts on such a path.
"""
import contextlib
import errno
import fcntl
import os
import sys
import tempfile

from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import files
from tf_convgan.run_dir.layout import LOCK_FILE


class RunDirectoryBusyError(ConfigError):
    """Another process holds the run directory's writer lock."""


def check_writable(model_dir, *, name="model_dir"):
    """Raises ConfigError naming `name` (a flag or parameter) unless `model_dir` is a directory
    this process can write, or can be created. Creates nothing: the check makes and removes an
    empty probe directory in the nearest existing directory. A URL is only checked not to be
    a file (probing an object store would write to it)."""
    if files.is_url(model_dir):
        if files.exists(model_dir) and not files.isdir(model_dir):
            raise ConfigError(f"{name} {model_dir!r} is a file; give a directory")
        return
    path = os.path.abspath(model_dir)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is a file" if existing == path else f"cannot be created: {existing!r} is a file"
        raise ConfigError(f"{name} {model_dir!r} {what}; give a directory")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".tf_convgan-probe-"))
    except OSError as e:
        what = ("is not writable" if existing == path else
                f"cannot be created in {existing!r}")
        raise ConfigError(f"{name} {model_dir!r} {what} ({e.strerror})") from None


def url_lock_warning(model_dir, name="model_dir"):
    """The line `writer_lock` prints on stderr when `model_dir` is a URL (no lock there)."""
    return (f"warning: {name} {model_dir} is on a filesystem without file locks (an object "
            f"store): a second process writing to it at the same time is NOT refused; make sure "
            f"only one process writes it")


def _makedirs(path):
    """Creates `path` and its missing parents; returns the ones created, outermost first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    created = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
            created.append(directory)
        except FileExistsError:
            pass
    return created


def _acquire(lock_path, model_dir, name):
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ConfigError(f"{name} {model_dir!r}: {LOCK_FILE} is a symbolic link; "
                                  f"remove it") from None
            raise ConfigError(f"{name} {model_dir!r}: cannot open its lock file ({e.strerror})"
                              ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirectoryBusyError(
                f"{name} {model_dir!r} is in use: another process is writing to it (training, "
                f"an export or an import); wait until it has finished or use another "
                f"directory") from None
        # The holder we raced with may have removed the file (a directory it created and left
        # empty): then the lock is on a file nobody else will open; take the new one.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def writer_lock(model_dir, *, name="model_dir"):
    """Holds the writer lock of `model_dir` within the block, creating the directory if needed.

    Raises RunDirectoryBusyError at once if another process holds it. A directory this call
    created is removed again at the end if nothing but the lock file was written into it, so
    that a run that fails on bad input leaves nothing behind.

    A URL gets no lock (see the module's doc): the directory is created and one line on stderr
    (`url_lock_warning`) says that a second writer is not refused."""
    if files.is_url(model_dir):
        files.makedirs(model_dir)
        print(url_lock_warning(model_dir, name), file=sys.stderr, flush=True)
        yield
        return
    model_dir = os.path.abspath(model_dir)
    created = _makedirs(model_dir)
    lock_path = os.path.join(model_dir, LOCK_FILE)
    try:
        fd = _acquire(lock_path, model_dir, name)
    except BaseException:
        _remove_if_empty(created, lock_path=None)
        raise
    try:
        yield
    finally:
        try:
            _remove_if_empty(created, lock_path=lock_path)
        finally:
            os.close(fd)  # releases the lock


def _remove_if_empty(created, *, lock_path):
    if not created:
        return
    if lock_path is not None:
        if os.listdir(created[-1]) != [LOCK_FILE]:
            return
        os.unlink(lock_path)
    for directory in reversed(created):
        try:
            os.rmdir(directory)
        except OSError:
            return
