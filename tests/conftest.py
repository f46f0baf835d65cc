"""Test session set-up: two logical CPU devices (for the MirroredStrategy equality tests),
deterministic ops, and quiet TensorFlow logging. Must run before TensorFlow initialises devices."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()


@pytest.fixture
def npy_path(tmp_path):
    """16 random 32x32 RGB images as a .npy file (the data of tests/tiny.gin)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npy"
    np.save(path, rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8))
    return str(path)
