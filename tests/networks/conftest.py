"""Every network test starts from the same weight initialisation."""
import keras
import pytest


@pytest.fixture(autouse=True)
def seeded_weights():
    keras.utils.set_random_seed(1234)  # reproducible weight init
