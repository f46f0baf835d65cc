"""The generic checks of tf_convgan.errors: integers (not bools, numpy integers included) with a
minimum, seeds in the int64 range; each raises ConfigError naming the parameter."""
import numpy as np
import pytest

from tf_convgan.errors import ConfigError, check_int, check_seed, is_int


def test_is_int():
    for value in (0, -5, 2 ** 70, np.int64(3), np.uint8(255)):
        assert is_int(value), value
    for value in (True, False, np.bool_(True), 1.0, 2.5, "3", None, np.float32(1)):
        assert not is_int(value), value


def test_check_int():
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", -7) == -7
    assert check_int("n", 0, minimum=0) == 0
    with pytest.raises(ConfigError, match=r"^n must be an integer >= 1, got 0$"):
        check_int("n", 0, minimum=1)
    with pytest.raises(ConfigError, match=r"^`size` must be an integer, got 2.5$"):
        check_int("`size`", 2.5)
    with pytest.raises(ConfigError, match=r"^n must be an integer >= 0, got True$"):
        check_int("n", True, minimum=0)
    assert issubclass(ConfigError, ValueError)


def test_check_seed():
    assert check_seed("seed", 2 ** 63 - 1) == 2 ** 63 - 1
    assert check_seed("seed", -(2 ** 63)) == -(2 ** 63)
    assert type(check_seed("seed", np.uint32(7))) is int
    for bad in (2 ** 63, -(2 ** 63) - 1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match=r"^seed must be an integer in the int64 range, "):
            check_seed("seed", bad)
