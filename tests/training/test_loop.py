"""End to end through run.py and train(): outputs, resume, and clear errors on bad input."""
import glob
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_GIN, checkpoint_values, random_batch, run_py, run_steps, tiny_args
from tf_convgan.cli import config
from tf_convgan.errors import ConfigError
from tf_convgan.training.loop import train


def event_tags(model_dir):
    tags = set()
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_run_py_writes_checkpoints_events_samples_and_config(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    result = run_py(*tiny_args(model_dir, npy_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(model_dir / "checkpoints" / "ckpt-3.index")
    operative = (model_dir / "operative_config.gin").read_text()
    assert "r1.gamma = 10.0" in operative and "train.batch_size = 4" in operative
    grid = tf.io.decode_png(tf.io.read_file(str(model_dir / "samples.png"))).numpy()
    assert grid.shape == (2 * 34 + 2, 2 * 34 + 2, 3)  # 4 samples of 32 px, 2 px padding
    assert os.path.exists(model_dir / "samples" / "step_0000002.png")
    assert tf.saved_model.contains_saved_model(str(model_dir / "export"))
    assert (model_dir / "export" / "operative_config.gin").read_text() == operative
    tags = event_tags(str(model_dir))
    for tag in ("d_loss", "g_loss", "penalty", "d_total", "d_real_logits", "d_fake_logits",
                "d_grad_norm", "g_grad_norm", "steps_per_second"):
        assert f"train/{tag}" in tags
    assert "samples_ema" in tags


def _train_in_process(model_dir, npy, num_steps):
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy}'", f"train.num_steps = {num_steps}"])
    try:
        return train(model_dir=str(model_dir))
    finally:
        gin.clear_config()


def _built_gan(model_dir, npy, *bindings):
    """The GAN that train() builds for the tiny config (train.num_steps = 0: nothing trained)."""
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy}'", "train.num_steps = 0", *bindings])
    try:
        return train(model_dir=str(model_dir))
    finally:
        gin.clear_config()


def test_train_seed_seeds_the_draws_of_the_step(tmp_path, npy_path):
    """train.seed reaches the step: from identical weights (set_weights) and data, one step of
    the GANs that train() built with train.seed 1 and 2 draws different z (different fakes: other
    D(fake) logits, G loss and updated weights), and train.seed 1 twice draws the same."""
    gans = {name: _built_gan(tmp_path / name, npy_path, f"train.seed = {seed}")
            for name, seed in (("a", 1), ("b", 2), ("a_again", 1))}
    weights_g, weights_d = gans["a"].generator.get_weights(), gans["a"].discriminator.get_weights()
    batch = random_batch(4)
    logs, after = {}, {}
    for name, gan in gans.items():
        gan.generator.set_weights(weights_g)
        gan.discriminator.set_weights(weights_d)
        logs[name] = run_steps(gan, [batch])
        after[name] = gan.generator.get_weights() + gan.discriminator.get_weights()
    for key in ("d_fake_logits", "g_loss", "d_real_logits"):
        assert logs["a"][key] == logs["a_again"][key], key
    assert logs["a"]["d_real_logits"] == logs["b"]["d_real_logits"]  # same weights, same data
    assert logs["a"]["d_fake_logits"] != logs["b"]["d_fake_logits"]
    assert logs["a"]["g_loss"] != logs["b"]["g_loss"]
    for x, y in zip(after["a"], after["a_again"]):
        np.testing.assert_array_equal(x, y)
    assert sum(not np.array_equal(x, y) for x, y in zip(after["a"], after["b"])) > len(after["a"]) // 2
    assert [gan.seed for gan in gans.values()] == [1, 2, 1]


def test_gan_seed_is_not_a_gin_parameter(npy_path):
    """One seed per run: train.seed; binding GAN.seed in gin is refused when the config is
    parsed, naming it, also to train.seed's own value."""
    for seeds in (["GAN.seed = 3"], ["train.seed = 3", "GAN.seed = 3"]):
        gin.clear_config()
        with pytest.raises(ValueError, match=r"GAN.seed is not a parameter: a run has one "
                                             r"seed, train.seed"):
            config.parse([TINY_GIN], [f"npy_source.path = '{npy_path}'", *seeds])
    gin.clear_config()


@pytest.mark.slow  # test_faults' kill -9 test checks the same through run.py
def test_resumed_run_equals_uninterrupted_run(tmp_path, npy_path):
    _train_in_process(tmp_path / "straight", npy_path, 4)
    _train_in_process(tmp_path / "resumed", npy_path, 2)
    first_half = checkpoint_values(tmp_path / "resumed")
    gan = _train_in_process(tmp_path / "resumed", npy_path, 4)
    assert int(gan.step.numpy()) == 4
    straight, resumed = checkpoint_values(tmp_path / "straight"), checkpoint_values(tmp_path / "resumed")
    assert straight.keys() == resumed.keys() and len(straight) > 50
    moved = 0
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
        moved += not np.array_equal(first_half[name], resumed[name])
    assert moved > len(straight) // 2  # the second half really trained


def test_batch_not_divisible_by_replicas(tmp_path, npy_path):
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy_path}'", "train.batch_size = 3",
                              "train.strategy = @mirrored_strategy()",
                              "mirrored_strategy.devices = ['/cpu:0', '/cpu:1']"])
    try:
        with pytest.raises(ConfigError, match=r"train.batch_size must be a positive multiple of "
                                              r"the number of replicas \(2\), got 3"):
            train(model_dir=str(tmp_path / "run"))
    finally:
        gin.clear_config()
    assert not os.path.exists(tmp_path / "run")


BAD_INPUT = {
    "misspelled_binding": (["train.num_stpes = 5"], "num_stpes"),
    "unknown_configurable": (["trian.num_steps = 5"], "trian"),
    "negative_gamma": (["r1.gamma = -1.0"], "r1.gamma must be a finite number >= 0, got -1.0"),
    "unknown_tfds_name": (["train.data = @tfds_source()", "tfds_source.name = 'no_such_dataset'",
                           "tfds_source.resolution = 32"], "no_such_dataset"),
    "missing_data_directory": (["train.data = @idx_source()", "idx_source.resolution = 32",
                                "idx_source.directory = '/no/such/dir'"], "/no/such/dir"),
    "bad_loss_reference": (["GAN.loss = @non_saturating"], "GAN.loss must be a GANLoss"),
}


_DEFAULT_BAD_INPUT = ("negative_gamma", "misspelled_binding", "missing_data_directory")


@pytest.mark.parametrize("case", [c if c in _DEFAULT_BAD_INPUT else
                                  pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(BAD_INPUT)])
def test_bad_input_gives_a_clear_error_and_writes_nothing(tmp_path, npy_path, case):
    params, message = BAD_INPUT[case]
    model_dir = tmp_path / "run"
    result = run_py(*tiny_args(model_dir, npy_path, *params))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(model_dir / "checkpoints")


def test_images_of_the_wrong_rank(tmp_path):
    path = tmp_path / "flat.npy"
    np.save(path, np.zeros((16, 32), np.uint8))
    result = run_py(*tiny_args(tmp_path / "run", str(path)))
    assert result.returncode == 2 and "images" in result.stderr, result.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


@pytest.mark.slow  # test_faults checks the same after a NaN and a changed architecture
def test_bad_input_leaves_existing_checkpoints_intact(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    assert run_py(*tiny_args(model_dir, npy_path)).returncode == 0
    before = {p: open(p, "rb").read() for p in glob.glob(str(model_dir / "checkpoints" / "*"))}
    result = run_py(*tiny_args(model_dir, npy_path, "train.num_steps = 6", "r1.gamma = -5.0"))
    assert result.returncode == 2 and "r1.gamma" in result.stderr
    after = {p: open(p, "rb").read() for p in glob.glob(str(model_dir / "checkpoints" / "*"))}
    assert before == after
    tf.train.Checkpoint().read(tf.train.latest_checkpoint(str(model_dir / "checkpoints")))
