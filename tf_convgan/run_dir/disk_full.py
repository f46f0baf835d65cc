"""A full disk: recognising the error, whoever raised it, and naming what could not be written.

Python raises OSError with errno ENOSPC (or EDQUOT, a full quota); TensorFlow's writers
(checkpoints, SavedModels, summaries) raise their own errors (tf.errors.ResourceExhaustedError,
UnknownError, ...) whose message carries the C library's text, "No space left on device".
`is_disk_full` recognises both (the error or any error it was raised from); `DiskFullError` is
the one error the library raises for it, naming the file, so that a command prints one line and
stops (run.py: exit status 4) with every file written before intact: writes are atomic
(run_dir.files) and a checkpoint that could not be completed is removed (checkpoints).
"""
import errno

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXTS = ("no space left on device", "disk quota exceeded")


class DiskFullError(OSError):
    """Writing `path` failed because its filesystem is full (errno ENOSPC)."""

    def __init__(self, path, what="writing"):
        super().__init__(errno.ENOSPC, f"the disk is full (no space left on device) {what} "
                                       f"{path!s}: nothing written before was changed; free some "
                                       f"space and rerun the same command to continue")
        self.path = path

    def __str__(self):
        return self.strerror


def is_disk_full(error):
    """Whether `error`, or an error it was raised from, is a full disk: an OSError with errno
    ENOSPC / EDQUOT, or an error (TensorFlow's) whose message says so."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(error).lower() for text in _DISK_FULL_TEXTS):
            return True
        error = error.__cause__ or error.__context__
    return False
