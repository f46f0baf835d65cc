"""Long runs do not lose work: kill -9 and rerun, SIGTERM, NaN, retention, changed architecture."""
import glob
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT, checkpoint_values, run_py, tiny_args
from tf_convgan.checkpoints import CheckpointKeeper, checkpoint_step


def _start_run_py(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(process, step):
    """Reads the progress lines ('step k/n ...') until step `step` has finished; returns them."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(f"step {step}/"):
            return lines
    raise AssertionError(f"run.py ended before step {step}: {process.stderr.read()[-2000:]}")


def _checkpoint_files(model_dir):
    return {p: open(p, "rb").read() for p in glob.glob(str(model_dir / "checkpoints" / "*"))}


def test_kill_9_mid_run_then_rerun_equals_uninterrupted(tmp_path, npy_path):
    params = ["train.num_steps = 8", "train.checkpoint_every = 2", "train.sample_every = 100",
              "train.export_at_end = False"]
    straight = tmp_path / "straight"
    assert run_py(*tiny_args(straight, npy_path, *params)).returncode == 0

    killed_at = random.Random().randint(3, 6)  # any step: mid-step, mid-checkpoint-write
    killed = tmp_path / "killed"
    process = _start_run_py(*tiny_args(killed, npy_path, *params))
    _wait_for_step(process, killed_at)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed_from = checkpoint_step(tf.train.latest_checkpoint(str(killed / "checkpoints")))
    assert resumed_from in (killed_at - killed_at % 2, killed_at - killed_at % 2 - 2), killed_at

    result = run_py(*tiny_args(killed, npy_path, *params))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {resumed_from}" in result.stdout
    want, got = checkpoint_values(straight), checkpoint_values(killed)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_array_equal(want[name], got[name], err_msg=f"{name} (killed at "
                                                                     f"step {killed_at})")


def test_sigterm_writes_a_checkpoint_of_the_current_step_and_rerun_resumes(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    params = ["train.num_steps = 100000", "train.checkpoint_every = 100000",
              "train.sample_every = 100000"]
    process = _start_run_py(*tiny_args(model_dir, npy_path, *params))
    stdout = "".join(_wait_for_step(process, 3))
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=120)
    stdout += rest
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    step = checkpoint_step(latest)
    assert step >= 3 and f"SIGTERM: wrote checkpoint {latest} at step {step}" in stderr
    last_logged = int([l for l in stdout.splitlines() if l.startswith("step ")][-1].split()[1]
                      .split("/")[0])
    assert step == last_logged  # the step that was running when the signal came, not an older one

    result = run_py(*tiny_args(model_dir, npy_path, f"train.num_steps = {step + 1}",
                               "train.export_at_end = False"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {step}" in result.stdout
    assert checkpoint_step(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == step + 1


def test_injected_nan_stops_with_the_step_and_term_and_keeps_the_last_checkpoint(tmp_path,
                                                                                 npy_path):
    model_dir = tmp_path / "run"
    assert run_py(*tiny_args(model_dir, npy_path, "train.export_at_end = False")).returncode == 0
    before = _checkpoint_files(model_dir)
    result = run_py(*tiny_args(model_dir, npy_path, "import tests.faults",
                               "GAN.loss = @nan_d_loss()", "train.num_steps = 6"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "training diverged at step 4: non-finite d_loss=nan" in result.stderr
    assert "last good checkpoint (ckpt-3) is kept" in result.stderr
    assert "Traceback" not in result.stderr
    assert _checkpoint_files(model_dir) == before
    values = checkpoint_values(model_dir)
    assert all(np.isfinite(v).all() for v in values.values() if v.dtype.kind == "f")
    assert run_py(*tiny_args(model_dir, npy_path, "train.num_steps = 4")).returncode == 0


def test_changed_architecture_is_a_clear_error_and_the_checkpoints_stay(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    assert run_py(*tiny_args(model_dir, npy_path, "train.export_at_end = False")).returncode == 0
    before = _checkpoint_files(model_dir)
    for change in ("resnet_generator.nf = 8",):
        result = run_py(*tiny_args(model_dir, npy_path, change, "train.num_steps = 5"))
        assert result.returncode == 2, result.stderr[-3000:]
        assert "does not fit the configured networks" in result.stderr, change
        assert "Traceback" not in result.stderr
    assert _checkpoint_files(model_dir) == before


def test_retention_keeps_the_last_k_and_every_nth(tmp_path):
    variable = tf.Variable(0.0)
    keeper = CheckpointKeeper(tf.train.Checkpoint(v=variable), str(tmp_path), keep_last=3,
                              keep_every=5)
    for step in range(1, 21):
        variable.assign(float(step))
        keeper.save(step)
    assert keeper.steps() == [5, 10, 15, 18, 19, 20]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [checkpoint_step(p) for p in state.all_model_checkpoint_paths] == [5, 10, 15, 18, 19,
                                                                              20]
    assert checkpoint_step(tf.train.latest_checkpoint(str(tmp_path))) == 20
    for step in keeper.steps():
        restored = tf.Variable(-1.0)
        tf.train.Checkpoint(v=restored).read(str(tmp_path / f"ckpt-{step}")).assert_consumed()
        assert float(restored.numpy()) == step


def test_retention_without_keep_every(tmp_path):
    keeper = CheckpointKeeper(tf.train.Checkpoint(v=tf.Variable(1.0)), str(tmp_path),
                              keep_last=2)
    for step in (1, 2, 3, 7):
        keeper.save(step)
    assert keeper.steps() == [3, 7]


@pytest.mark.parametrize("kwargs,message", [
    (dict(keep_last=0), "keep_last must be an integer >= 1, got 0"),
    (dict(keep_last=2, keep_every=0), "keep_every must be None or an integer >= 1, got 0"),
])
def test_retention_rejects_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckpointKeeper(tf.train.Checkpoint(), str(tmp_path), **kwargs)


@pytest.mark.parametrize("network", ["resnet", "resnet_cifar"])
def test_a_checkpoint_holds_every_weight_of_g_d_and_the_ema(tmp_path, network):
    """Including layers held in Python lists, batch-norm statistics and spectral-norm vectors."""
    from helpers import make_gan, random_batch, run_steps, weights
    from tf_convgan.checkpoints import make_checkpoint, restore
    gan = make_gan(network, ema_beta=0.5)
    run_steps(gan, [random_batch(4, seed=s) for s in range(2)])
    path = CheckpointKeeper(make_checkpoint(gan), str(tmp_path), keep_last=1).save(2)
    fresh = make_gan(network, seed=7, ema_beta=0.5)
    assert not all(np.array_equal(a, b) for a, b in zip(weights(gan), weights(fresh)))
    restore(make_checkpoint(fresh), path)
    assert len(weights(gan)) > 3 * 20
    for want, got in zip(weights(gan), weights(fresh)):
        np.testing.assert_array_equal(want, got)
    assert int(fresh.step.numpy()) == 2
