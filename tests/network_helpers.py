"""Inputs and seeding shared by the network tests (tests/networks/): a test module imports
`seeded_weights` (an autouse fixture) and the random inputs it needs."""
import keras
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def seeded_weights():
    keras.utils.set_random_seed(1234)  # reproducible weight init


def rng(seed=0):
    return np.random.default_rng(seed)


def random_images(n, res, seed=0):
    return rng(seed).uniform(-1, 1, (n, res, res, 3)).astype(np.float32)


def random_z(n, z_dim, seed=0):
    return rng(seed).standard_normal((n, z_dim)).astype(np.float32)
