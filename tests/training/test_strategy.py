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


def test_importing_the_package_starts_no_tensorflow_runtime():
    """MultiWorkerMirroredStrategy must configure collectives before TensorFlow runs anything:
    importing tf_convgan (every module) creates no tensor, so the eager context is not yet
    initialized (a module-level tf.constant once broke multi-worker training)."""
    import subprocess
    import sys

    from helpers import ROOT
    code = ("import tf_convgan; from tensorflow.python.eager import context; "
            "print(context.context()._initialized)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
