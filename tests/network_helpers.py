"""Random inputs shared by the network tests (tests/networks/; their seeding fixture is in
tests/networks/conftest.py)."""
import numpy as np


def rng(seed=0):
    return np.random.default_rng(seed)


def random_images(n, res, seed=0):
    return rng(seed).uniform(-1, 1, (n, res, res, 3)).astype(np.float32)


def random_z(n, z_dim, seed=0):
    return rng(seed).standard_normal((n, z_dim)).astype(np.float32)
