"""Test session set-up: two logical CPU devices (for the MirroredStrategy equality tests),
deterministic ops, and quiet TensorFlow logging. Must run before TensorFlow initialises devices.
Shared fixtures: the tiny training data, a tiny trained run directory, the FID feature
extractor, and a guard that no ram:// path (helpers.ram_url) reaches the local disk."""
import builtins
import collections
import os
import shutil
import sys
import sysconfig
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()

from helpers import train_in_process  # noqa: E402  (after the device set-up)


@pytest.fixture
def npy_path(tmp_path):
    """16 random 32x32 RGB images as a .npy file (the data of tests/tiny.gin)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npy"
    np.save(path, rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8))
    return str(path)


TrainedRun = collections.namedtuple("TrainedRun", "model_dir npy")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run of tests/tiny.gin trained once per session: 4 steps, every checkpoint kept
    (ckpt-1 ... ckpt-4), exported at the end. Read-only: tests that change it use a copy
    (helpers.copy_run) and resume it with the same `npy`."""
    tmp = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    np.save(tmp / "images.npy", rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8))
    train_in_process(tmp / "run", str(tmp / "images.npy"), "train.num_steps = 4",
                     "train.keep_last = 10")
    return TrainedRun(tmp / "run", str(tmp / "images.npy"))


@pytest.fixture(scope="module")
def extractor():
    """The FID feature extractor on the shared weights, batches of 4 (a test module may define
    its own)."""
    from tf_convgan.evaluation.features import FeatureExtractor
    from fid_helpers import FID_WEIGHTS
    return FeatureExtractor(weights_path=FID_WEIGHTS, batch_size=4, verbose=False)


class LocalDiskTouched(AssertionError):
    pass


@pytest.fixture
def no_local_disk_for_ram(tmp_path, monkeypatch):
    """Runs the test in an empty working directory; every os / open / shutil / tempfile call
    given a path with 'ram:' raises. Yields the working directory (checked empty at the end)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    touched = []
    stdlib = sysconfig.get_paths()["stdlib"]

    def tensorflows_read():
        """Whether the first caller outside the standard library is TensorFlow itself (its
        checkpoint metrics glob the prefix on the local disk, finding nothing)."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith(stdlib) and (
                "-packages" not in frame.f_code.co_filename):
            frame = frame.f_back
        return frame is not None and "/tensorflow/" in frame.f_code.co_filename

    def guard(module, name, read_only=False):
        original = getattr(module, name)

        def guarded(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, (str, bytes, os.PathLike)) and "ram:" in os.fsdecode(a):
                    if read_only and tensorflows_read():
                        continue
                    touched.append((name, os.fsdecode(a)))
                    raise LocalDiskTouched(f"{module.__name__}.{name}({os.fsdecode(a)!r})")
            return original(*args, **kwargs)
        monkeypatch.setattr(module, name, guarded)

    guard(builtins, "open")
    for name in ("open", "makedirs", "mkdir", "replace", "rename", "remove", "unlink", "rmdir"):
        guard(os, name)
    for name in ("listdir", "scandir", "stat", "lstat", "walk"):
        guard(os, name, read_only=True)
    for name in ("rmtree", "copytree", "move"):
        guard(shutil, name)
    for name in ("mkstemp", "mkdtemp"):
        guard(tempfile, name)
    yield cwd
    assert not touched, touched
    assert os.listdir(cwd) == [], os.listdir(cwd)
