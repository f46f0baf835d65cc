"""The gin factories of strategies: what they say when they fall back."""
import tensorflow as tf

from tf_convgan.training import strategy


def test_tpu_strategy_or_default_says_it_falls_back_without_a_tpu(capsys):
    got = strategy.tpu_strategy_or_default()
    assert got is tf.distribute.get_strategy()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no TPU found" in lines[0] and "falling back to the default strategy" in lines[0]
