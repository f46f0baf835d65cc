"""A full disk (ENOSPC) during a run: a checkpoint, sample grid, metrics or export write that
fails stops run.py with one line naming the file and status 4, leaves every file written before
(the last checkpoint included) as it was and nothing half-written, and the same command, rerun
once space is freed, continues from the last checkpoint to the same weights as a run that never
stopped. The failures are injected where the bytes are written: the fsync of run_dir.files'
atomic write (as a full disk reports delayed writes), TensorFlow's checkpoint writer and
SavedModel writer (raising TensorFlow's own errors, as they do)."""
import errno
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import checkpoint_values, run_py_in_process, tiny_args, tree_bytes
from tf_convgan.run_dir import disk_full, files

NO_SPACE = "No space left on device"


def _stable(tree):
    """The files that must not change: all but TensorBoard's event files (appended by design),
    the writer lock and temporary files."""
    return {k: v for k, v in tree.items() if "events.out.tfevents" not in k
            and not k.endswith(".tmp") and "lock" not in os.path.basename(k)}


class _Injector:
    """Fails the write number `occurrence` (1: the first) whose target name contains `target`,
    recording the run directory as it was just before."""

    def __init__(self, model_dir, target, occurrence=1):
        self.model_dir, self.target, self.before = model_dir, target, None
        self.left = occurrence

    def due(self, name):
        if self.before is None and self.target in name:
            self.left -= 1
            if not self.left:
                self.before = _stable(tree_bytes(self.model_dir))
                return True
        return False


def _inject_fsync(monkeypatch, injector):
    real = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") \
            else ""
        if os.path.basename(name).startswith(".") and injector.due(os.path.basename(name)):
            raise OSError(errno.ENOSPC, NO_SPACE)
        return real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)


def _inject_checkpoint(monkeypatch, injector):
    real = tf.train.Checkpoint.write

    def write(self, file_prefix, options=None):
        if injector.due(file_prefix):
            with open(file_prefix + ".data-00000-of-00001", "wb") as f:  # half written
                f.write(b"\0" * 100)
            os.makedirs(file_prefix + "_temp_0123/part-00000-of-00001", exist_ok=True)
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{file_prefix}_temp_0123/part-00000-of-00001.data-00000-of-00001; "
                            f"{NO_SPACE}")
        return real(self, file_prefix, options=options)

    monkeypatch.setattr(tf.train.Checkpoint, "write", write)


def _inject_export(monkeypatch, injector):
    def save(obj, export_dir, signatures=None, options=None):
        if injector.due("export"):
            os.makedirs(os.path.join(export_dir, "variables"), exist_ok=True)
            with open(os.path.join(export_dir, "variables", "variables.data-00000-of-00001"),
                      "wb") as f:
                f.write(b"\0" * 100)
            raise tf.errors.UnknownError(None, None, f"Failed to write: {NO_SPACE}")
        raise AssertionError("one export only")

    monkeypatch.setattr(tf.saved_model, "save", save)


EVALUATOR = ("import tests.faults", "train.evaluator = @decreasing_fid_evaluator()",
             "train.eval_every = 1")
# (what fails, the injection, the part of the written file's name it fails, the file the
#  message names, the checkpoint the rerun continues from)
CASES = {
    "checkpoint": (_inject_checkpoint, "checkpoints/ckpt-2", "checkpoints/ckpt-2", 1),
    "sample grid": (_inject_fsync, ".step_0000002.png.", "samples/step_0000002.png", 1),
    "metrics": (_inject_fsync, ".metrics.csv.", "metrics.csv", 1),  # its 2nd write: step 2
    "export": (_inject_export, "export", "export", 3),
}


@pytest.fixture(scope="module")
def straight_values(tmp_path_factory):
    """The weights of the tiny 3-step run that never stopped, on conftest's npy_path data
    (the metrics case adds an evaluator: it does not change training)."""
    tmp = tmp_path_factory.mktemp("straight")
    rng = np.random.default_rng(0)  # the images of conftest's npy_path
    np.save(tmp / "images.npy", rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8))
    status, _, err = run_py_in_process(*tiny_args(tmp / "run", str(tmp / "images.npy")))
    assert status == 0, err[-3000:]
    return checkpoint_values(str(tmp / "run"))


@pytest.mark.parametrize("case", list(CASES))
def test_a_full_disk_stops_with_one_line_keeps_every_file_and_resumes(tmp_path, npy_path,
                                                                      monkeypatch, case,
                                                                      straight_values):
    inject, target, named, resumes_from = CASES[case]
    model_dir = tmp_path / "run"
    args = tiny_args(model_dir, npy_path, *(EVALUATOR if case == "metrics" else ()))
    injector = _Injector(str(model_dir), target, occurrence=2 if case == "metrics" else 1)
    with monkeypatch.context() as patch:
        inject(patch, injector)
        status, out, err = run_py_in_process(*args)
    assert status == 4, err[-3000:]
    assert injector.before is not None
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: the disk is full (no space left on device) "), err
    assert os.path.join(str(model_dir), named) in lines[0], lines[0]
    assert "free some space and rerun the same command to continue" in lines[0]
    after = tree_bytes(str(model_dir))
    assert not [k for k in after if k.endswith(".tmp") or "_temp" in k], sorted(after)
    assert _stable(after) == injector.before  # nothing earlier changed, nothing half-written
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert latest.endswith(f"ckpt-{resumes_from}"), latest

    status, out, err = run_py_in_process(*args)  # space freed: the same command continues
    assert status == 0, err[-3000:]
    assert f"at step {resumes_from}" in out, out[-2000:]
    assert os.path.exists(model_dir / "export" / "saved_model.pb")
    want, got = straight_values, checkpoint_values(str(model_dir))
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(want[name], got[name], err_msg=name)
    if case == "metrics":  # the step-2 row written on the rerun, after the step-1 row kept
        rows = (model_dir / "metrics.csv").read_text().splitlines()
        assert [r.split(",")[:2] for r in rows] == [["step", "fid"], ["1", "9"], ["2", "8"],
                                                    ["3", "7"]], rows


def test_disk_full_is_recognised_from_python_and_tensorflow_errors(tmp_path):
    """ENOSPC / EDQUOT OSErrors and TensorFlow's errors with the C library's text are a full
    disk, also as the cause of another error; other errors are not. An atomic write that fails
    so leaves the target as it was and no temporary file, and names the target."""
    assert disk_full.is_disk_full(OSError(errno.ENOSPC, NO_SPACE))
    assert disk_full.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk_full.is_disk_full(tf.errors.ResourceExhaustedError(None, None, f"x; {NO_SPACE}"))
    assert disk_full.is_disk_full(tf.errors.UnknownError(None, None, f"x: {NO_SPACE}"))
    try:
        try:
            raise OSError(errno.ENOSPC, NO_SPACE)
        except OSError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert disk_full.is_disk_full(wrapped)
    assert not disk_full.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full.is_disk_full(tf.errors.ResourceExhaustedError(None, None, "OOM"))
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(disk_full.DiskFullError, match="file.txt"):
        with files.atomic_file(str(target), "w") as f:
            f.write("new, half")
            raise OSError(errno.ENOSPC, NO_SPACE)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["file.txt"]
