"""Long runs do not lose work: kill -9 and rerun, SIGTERM, Ctrl-C, NaN, retention, changed
architecture, unreadable checkpoints, a lost state file, changed optimizer settings, a second
writer, and bad input that is refused with one line before anything is written."""
import glob
import os
import random
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers import (ROOT, checkpoint_values, copy_run, run_py, run_py_in_process, tiny_args,
                     train_in_process, tree_bytes)
from tf_convgan.run_dir.checkpoints import CheckpointKeeper, checkpoint_step


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
    straight = tmp_path / "straight"  # the uninterrupted run, alongside the one killed
    straight_process = _start_run_py(*tiny_args(straight, npy_path, *params))

    killed_at = random.Random().randint(3, 6)  # any step: mid-step, mid-checkpoint-write
    killed = tmp_path / "killed"
    process = _start_run_py(*tiny_args(killed, npy_path, *params))
    _wait_for_step(process, killed_at)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, stderr = straight_process.communicate(timeout=300)
    assert straight_process.returncode == 0, stderr[-3000:]
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

    # The rerun: run.py's main in this process (the signal needed a process; resuming does not).
    status, out, err = run_py_in_process(*tiny_args(model_dir, npy_path,
                                                    f"train.num_steps = {step + 1}",
                                                    "train.export_at_end = False"))
    assert status == 0, err[-3000:]
    assert f"at step {step}" in out
    assert checkpoint_step(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == step + 1


def test_injected_nan_stops_with_the_step_and_term_and_keeps_the_last_checkpoint(
        trained_run, tmp_path):
    """run.py's main in this process (an exception would fail the test) on a copy of the
    session's 4-step run."""
    model_dir = copy_run(trained_run.model_dir, tmp_path / "run")
    keep = "train.keep_last = 10"  # as the run was trained: resuming prunes nothing
    before = _checkpoint_files(model_dir)
    status, _, err = run_py_in_process(*tiny_args(model_dir, trained_run.npy, "import tests.faults",
                                                  "GAN.loss = @nan_d_loss()", keep,
                                                  "train.num_steps = 6"))
    assert status == 3, err[-3000:]
    assert "training diverged at step 5: non-finite d_loss=nan" in err
    assert "last good checkpoint (ckpt-4) is kept" in err
    assert "Traceback" not in err
    assert _checkpoint_files(model_dir) == before
    values = checkpoint_values(model_dir)
    assert all(np.isfinite(v).all() for v in values.values() if v.dtype.kind == "f")
    status, _, err = run_py_in_process(*tiny_args(model_dir, trained_run.npy, keep,
                                                  "train.num_steps = 5"))
    assert status == 0, err[-3000:]


def test_changed_architecture_is_a_clear_error_and_the_checkpoints_stay(trained_run, tmp_path):
    """One line, the last one said: TensorFlow's warnings about the values the failed restore
    left (hundreds of lines with a larger network) no longer follow it. A separate process (the
    whole of its stderr, TensorFlow's logging included) on a copy of the session's run."""
    model_dir = copy_run(trained_run.model_dir, tmp_path / "run")
    before = _checkpoint_files(model_dir)
    for change in ("resnet_generator.nf = 8",):
        result = run_py(*tiny_args(model_dir, trained_run.npy, change, "train.keep_last = 10",
                                   "train.num_steps = 5"))
        assert result.returncode == 2, result.stderr[-3000:]
        assert "does not fit the configured networks" in result.stderr, change
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: checkpoint "), \
            result.stderr[-3000:]
        assert "Value in checkpoint could not be found" not in result.stderr
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
    from tf_convgan.run_dir.checkpoints import make_checkpoint, restore
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


# -- resuming: unreadable checkpoints, a lost state file, changed optimizer settings -----------

def _resume(model_dir, npy, *params):
    return train_in_process(model_dir, npy, "train.export_at_end = False",
                            "train.sample_every = 100", *params)


@pytest.fixture(scope="module")
def resumed_from_ckpt_3(trained_run, tmp_path_factory):
    """The checkpoint values of the session's run resumed directly from ckpt-3 to step 4."""
    run = copy_run(trained_run.model_dir, tmp_path_factory.mktemp("direct") / "run")
    for path in glob.glob(str(run / "checkpoints" / "ckpt-4.*")):
        os.remove(path)
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    _resume(run, trained_run.npy, "train.num_steps = 4")
    return checkpoint_values(run)


@pytest.mark.parametrize("damage", ["truncate", "flip_a_bit"])
def test_an_unreadable_latest_checkpoint_is_kept_and_the_one_before_resumes(
        trained_run, resumed_from_ckpt_3, tmp_path, capsys, damage):
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    data_file = glob.glob(str(run / "checkpoints" / "ckpt-4.data-*"))[0]
    data = bytearray(open(data_file, "rb").read())
    if damage == "truncate":
        data = data[:len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    with open(data_file, "wb") as f:
        f.write(data)
    damaged = {os.path.basename(p): open(p, "rb").read()
               for p in glob.glob(str(run / "checkpoints" / "ckpt-4.*"))}

    _resume(run, trained_run.npy, "train.num_steps = 4")
    out, err = capsys.readouterr()
    assert f"restored {run}/checkpoints/ckpt-3 at step 3" in out
    warning = [line for line in err.splitlines() if "ckpt-4 cannot be read" in line]
    assert len(warning) == 1 and warning[0].endswith("; using ckpt-3"), err
    kept = run / "checkpoints" / "unreadable" / "ckpt-4"
    assert f"moved to {kept}" in warning[0]
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == damaged  # never deleted
    got = checkpoint_values(run)
    assert got.keys() == resumed_from_ckpt_3.keys()
    for name in got:
        np.testing.assert_array_equal(got[name], resumed_from_ckpt_3[name], err_msg=name)


def test_a_checkpoint_whose_name_disagrees_with_its_step_is_set_aside_like_an_unreadable_one(
        trained_run, resumed_from_ckpt_3, tmp_path, capsys):
    """ckpt-4 holding step 2 (renamed files) would resume at the wrong step of the data and of
    every random draw: it is kept in unreadable/ and ckpt-3 resumes, as from ckpt-3 directly."""
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    checkpoints = run / "checkpoints"
    for path in glob.glob(str(checkpoints / "ckpt-4.*")):
        os.remove(path)
    for path in glob.glob(str(checkpoints / "ckpt-2.*")):
        shutil.copy(path, path.replace("ckpt-2.", "ckpt-4."))
    renamed = {os.path.basename(p): open(p, "rb").read()
               for p in glob.glob(str(checkpoints / "ckpt-4.*"))}
    _resume(run, trained_run.npy, "train.num_steps = 4")
    out, err = capsys.readouterr()
    assert f"restored {checkpoints}/ckpt-3 at step 3" in out
    kept = checkpoints / "unreadable" / "ckpt-4"
    assert (f"warning: checkpoint ckpt-4 cannot be read (it holds step 2, not the step 4 of its "
            f"name), moved to {kept}; using ckpt-3") in err, err
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == renamed
    got = checkpoint_values(run)
    for name in got:
        np.testing.assert_array_equal(got[name], resumed_from_ckpt_3[name], err_msg=name)


@pytest.mark.parametrize("left", ["the_lock_file", "the_lock_and_a_temporary_config"])
def test_a_directory_left_by_a_killed_first_step_is_trained(tmp_path, npy_path, left):
    """A run killed before its operative config was complete leaves the lock file (and a
    temporary of the config): that directory is the run's, and training starts in it."""
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / ".tf_convgan.lock").write_bytes(b"")
    if left == "the_lock_and_a_temporary_config":
        (model_dir / ".operative_config.gin.k2j4_x9q.tmp").write_text("train.num_")
    status, out, err = run_py_in_process(*tiny_args(model_dir, npy_path, "train.num_steps = 1",
                                                    "train.export_at_end = False"))
    assert status == 0, err
    assert checkpoint_step(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == 1


def test_without_the_state_file_the_newest_checkpoint_file_resumes(trained_run, tmp_path,
                                                                   capsys):
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    os.remove(run / "checkpoints" / "checkpoint")
    before = tree_bytes(run / "checkpoints")
    gan = _resume(run, trained_run.npy, "train.num_steps = 4")  # nothing left to train
    out, err = capsys.readouterr()
    assert int(gan.step.numpy()) == 4 and f"restored {run}/checkpoints/ckpt-4 at step 4" in out
    assert "checkpoint state file" in err and "is missing" in err
    assert tree_bytes(run / "checkpoints") == before  # nothing overwritten


def test_a_changed_learning_rate_applies_on_resume_and_is_reported(trained_run, tmp_path,
                                                                   capsys):
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    gan = _resume(run, trained_run.npy, "train.num_steps = 4",
                  "torch_rmsprop.learning_rate = 3e-4")
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(3e-4, rel=1e-6)
    out = capsys.readouterr().out
    assert ("optimizer hyperparameters differ from the checkpoint's; the configured ones apply: "
            "g_optimizer.learning_rate 0.0001 -> 0.0003, d_optimizer.learning_rate 0.0001 -> "
            "0.0003\n") in out


# -- one writer per model directory; Ctrl-C ----------------------------------------------------

def test_a_second_run_py_is_refused_while_the_first_finishes_normally(tmp_path, npy_path):
    model_dir, go = tmp_path / "run", tmp_path / "go"
    first = _start_run_py(*tiny_args(
        model_dir, npy_path, "import tests.faults", "train.num_steps = 3",
        "train.export_at_end = False", "train.sample_writer = @sample_writer_waiting_for()",
        f"sample_writer_waiting_for.path = '{go}'", "sample_writer_waiting_for.at_step = 2"))
    try:
        _wait_for_step(first, 2)  # it now waits in its sample writer, holding model_dir
        names = sorted(tree_bytes(model_dir))  # (its events file keeps changing)
        checkpoints = tree_bytes(model_dir / "checkpoints")
        status, out, err = run_py_in_process(*tiny_args(model_dir, npy_path,
                                                        "train.num_steps = 5"))
        assert status == 2 and err.startswith(f"error: model_dir '{model_dir}' is in use: "), err
        assert len(err.splitlines()) == 1
        assert sorted(tree_bytes(model_dir)) == names
        assert tree_bytes(model_dir / "checkpoints") == checkpoints
    finally:
        go.write_text("go")
    rest, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert "step 3/3" in rest
    assert checkpoint_step(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == 3


def test_ctrl_c_writes_a_checkpoint_of_the_current_step_and_exits_130(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    status, out, err = run_py_in_process(*tiny_args(
        model_dir, npy_path, "import tests.faults", "train.num_steps = 100",
        "train.checkpoint_every = 100", "train.sample_writer = @sample_writer_interrupting()",
        "sample_writer_interrupting.at_step = 2"))
    assert status == 128 + signal.SIGINT, err
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert err.strip() == (f"SIGINT: wrote checkpoint {latest} at step 2; rerun the same "
                           f"command to resume")
    assert checkpoint_step(latest) == 2


# -- bad input: one line naming the flag, parameter or file; nothing written -------------------

def _bad_input_case(case, tmp_path, npy, trained_run):
    """(run.py arguments, the model directory, expected start of the error line)."""
    model_dir = tmp_path / "run"
    if case == "model_dir_is_a_file":
        model_dir.write_text("x")
        return tiny_args(model_dir, npy), model_dir, f"error: --model_dir '{model_dir}' is a file"
    if case == "model_dir_in_proc":
        model_dir = "/proc/tf_convgan_run"
        return (tiny_args(model_dir, npy), model_dir,
                f"error: --model_dir '{model_dir}' cannot be created in '/proc'")
    if case == "missing_include":
        gin_file = tmp_path / "broken.gin"
        gin_file.write_text("include 'no/such/file.gin'\n")
        return (["--gin_file", str(gin_file), *tiny_args(model_dir, npy)], model_dir,
                "error: gin: Unable to open file: no/such/file.gin")
    if case == "gin_file_is_a_directory":
        return (["--gin_file", str(tmp_path), *tiny_args(model_dir, npy)], model_dir,
                f"error: --gin_file '{tmp_path}' is a directory")
    if case == "duplicate_devices":
        return (tiny_args(model_dir, npy, "train.strategy = @mirrored_strategy()",
                          "mirrored_strategy.devices = ['/cpu:0', '/CPU:0']"), model_dir,
                "error: mirrored_strategy.devices names a device twice")
    if case == "text_file_named_png":
        folder = tmp_path / "images"
        folder.mkdir()
        (folder / "a.png").write_text("not an image")
        return (tiny_args(model_dir, npy, "train.data = @image_folder_source()",
                          f"image_folder_source.directory = '{folder}'",
                          "image_folder_source.resolution = 32"), model_dir,
                f"error: image file '{folder}/a.png' is not a PNG, JPEG, GIF or BMP image")
    if case == "model_dir_is_empty":  # it trained into runs/quickstart
        return (tiny_args("", npy), model_dir, "error: --model_dir: is empty ('')")
    if case == "batch_size_is_a_string":  # a TypeError deep inside
        return (tiny_args(model_dir, npy, "train.batch_size = 'eight'"), model_dir,
                "error: train.batch_size must be an integer, got 'eight'")
    if case == "num_steps_below_the_restored_step":
        model_dir = copy_run(trained_run.model_dir, model_dir)
        return (tiny_args(model_dir, trained_run.npy, "train.num_steps = 2"), model_dir,
                "error: train.num_steps = 2 is below the step of the checkpoint to resume from")
    if case in ("state_file_names_a_missing_checkpoint", "garbled_state_file_no_checkpoint"):
        model_dir = copy_run(trained_run.model_dir, model_dir)
        state = model_dir / "checkpoints" / "checkpoint"
        for path in glob.glob(str(model_dir / "checkpoints" / "ckpt-*")):
            os.remove(path)
        if case == "garbled_state_file_no_checkpoint":
            state.write_bytes(b"\x00garbled")
            what = "cannot be read"
        else:
            what = "names ckpt-4, whose files are missing"
        return (tiny_args(model_dir, trained_run.npy, "train.num_steps = 6"), model_dir,
                f"error: the checkpoint state file {state} {what}, and there is no checkpoint "
                f"file")
    if case == "no_readable_checkpoint":
        model_dir = copy_run(trained_run.model_dir, model_dir)
        for path in glob.glob(str(model_dir / "checkpoints" / "ckpt-*.data-*")):
            with open(path, "r+b") as f:
                f.truncate(100)
        return (tiny_args(model_dir, trained_run.npy, "train.num_steps = 6"), model_dir,
                f"error: no checkpoint in {model_dir}/checkpoints can be read: ckpt-4 (")
    raise ValueError(case)


@pytest.mark.parametrize("case", [
    "model_dir_is_a_file", "model_dir_in_proc", "missing_include", "gin_file_is_a_directory",
    "duplicate_devices", "text_file_named_png", "num_steps_below_the_restored_step",
    "no_readable_checkpoint", "state_file_names_a_missing_checkpoint",
    "garbled_state_file_no_checkpoint", "model_dir_is_empty", "batch_size_is_a_string"])
def test_bad_input_is_one_line_and_changes_nothing(tmp_path, npy_path, trained_run, case):
    args, model_dir, expected = _bad_input_case(case, tmp_path, npy_path, trained_run)
    before = tree_bytes(tmp_path)
    status, out, err = run_py_in_process(*args)
    assert status == 2 and err.startswith(expected) and len(err.splitlines()) == 1, err
    assert tree_bytes(tmp_path) == before  # incl. no new model directory
    assert not os.path.exists("/proc/tf_convgan_run")


def test_num_steps_0_says_that_nothing_is_trained(tmp_path, npy_path):
    status, out, err = run_py_in_process(*tiny_args(tmp_path / "run", npy_path,
                                                    "train.num_steps = 0"))
    assert status == 0, err
    assert "train.num_steps = 0: the networks are built; nothing to train, nothing written" in out
    assert not os.path.exists(tmp_path / "run")
