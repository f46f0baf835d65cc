"""FID during training (the `fid_evaluator` hook): CSV, TensorBoard, plot, best checkpoint."""
import glob
import json
import os
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_GIN
from tf_convgan.cli import config
from tf_convgan.evaluation import hook
from tf_convgan.training.loop import train
from fid_helpers import FID_WEIGHTS, needs_weights, run_evaluate, write_folder


class _ScriptedEvaluator(hook.EvaluationHook):
    """Returns the given FIDs in turn (no network): tests the bookkeeping of train()."""

    def __init__(self, fids):
        self.fids = list(fids)
        self.steps = []
        self.arguments = []

    def evaluate(self, generator_ema, step, *, strategy=None, data=None):
        self.steps.append(step)
        self.arguments.append((generator_ema, strategy, data))
        fid = self.fids.pop(0)
        return {"fid": fid, "kid": fid / 100, "kid_std": 0.0}


def _train(model_dir, npy_path, *params):
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy_path}'", *params])
    try:
        return train(model_dir=str(model_dir))
    finally:
        gin.clear_config()


def _event_scalars(model_dir, tag):
    values = {}
    for path in glob.glob(os.path.join(model_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag == tag:
                    values[event.step] = float(tf.make_ndarray(v.tensor))
    return values


def test_training_logs_eval_metrics_and_keeps_the_best_checkpoint(tmp_path, npy_path):
    model_dir = tmp_path / "run"
    scripted = _ScriptedEvaluator([5.0, 3.0, 4.0])
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy_path}'", "train.num_steps = 5"])
    try:
        train(model_dir=str(model_dir), evaluator=scripted, eval_every=2)
    finally:
        gin.clear_config()
    assert scripted.steps == [2, 4, 5]  # every 2 steps and at the end
    table = hook.read_metrics_csv(str(model_dir / "metrics.csv"))
    np.testing.assert_array_equal(table["step"], [2, 4, 5])
    np.testing.assert_allclose(table["fid"], [5.0, 3.0, 4.0])
    assert _event_scalars(str(model_dir), "eval/fid") == pytest.approx({2: 5.0, 4: 3.0, 5: 4.0})
    assert open(model_dir / "fid.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    best = json.load(open(model_dir / "best" / "best.json"))
    assert best["step"] == 4 and best["fid"] == 3.0  # the worse step 5 did not replace it
    path = tf.train.latest_checkpoint(str(model_dir / "best"))
    assert path.endswith("ckpt-4")
    latest = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    kept = tf.train.load_checkpoint(path)
    name = [n for n in kept.get_variable_to_shape_map() if n.startswith("generator_ema/")][0]
    assert not np.array_equal(kept.get_tensor(name), latest.get_tensor(name))  # step 4 != 5


def test_the_hook_evaluates_its_context_and_records(tmp_path):
    """The call the training loop makes: hook(context) evaluates context.gan.generator_ema at
    context.step with the context's strategy and data, returns the values, and records them in
    context.model_dir (CSV, TensorBoard, plot, best/ holding context.checkpoint)."""
    scripted = _ScriptedEvaluator([5.0, 3.0, 4.0])
    generator_ema, data = object(), object()
    gan = types.SimpleNamespace(generator=None, discriminator=None, generator_ema=generator_ema)
    variable = tf.Variable(0.0)
    checkpoint = tf.train.Checkpoint(v=variable)
    writer = tf.summary.create_file_writer(str(tmp_path))
    for step in (1, 2, 3):
        variable.assign(float(step))
        context = types.SimpleNamespace(gan=gan, step=step, num_steps=3, model_dir=str(tmp_path),
                                        writer=writer, strategy=None, data=data,
                                        checkpoint=checkpoint)
        values = scripted(context)
    assert values == {"fid": 4.0, "kid": 0.04, "kid_std": 0.0}
    assert scripted.steps == [1, 2, 3]
    assert scripted.arguments == [(generator_ema, None, data)] * 3
    table = hook.read_metrics_csv(str(tmp_path / "metrics.csv"))
    np.testing.assert_allclose(table["fid"], [5.0, 3.0, 4.0])
    assert _event_scalars(str(tmp_path), "eval/kid") == pytest.approx({1: 0.05, 2: 0.03, 3: 0.04})
    assert open(tmp_path / "fid.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert hook.read_best(str(tmp_path))["step"] == 2
    kept = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "best")))
    assert kept.get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE") == 2.0


@needs_weights
@pytest.mark.slow  # the default suite checks in-training FID and the best checkpoint above
def test_in_training_fid_and_best_checkpoint_through_the_command_line(tmp_path, capsys):
    """Real FID every 2 steps of a tiny run; `evaluate --model_dir --checkpoint best` reproduces
    the FID logged for the best step, `--checkpoint ckpt-N` the one logged for step N (same z,
    same reference images, restored EMA weights)."""
    model_dir = tmp_path / "run"
    cache = str(tmp_path / "cache")
    npy_path = str(tmp_path / "eight.npy")  # the reference: all 8 training images
    np.save(npy_path, np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    _train(model_dir, npy_path, "train.num_steps = 4", "train.eval_every = 2",
           "train.evaluator = @fid_evaluator()", "fid_evaluator.num_samples = 8",
           "fid_evaluator.batch_size = 8", f"fid_evaluator.weights_path = '{FID_WEIGHTS}'",
           f"fid_evaluator.cache_dir = '{cache}'", "fid_evaluator.verbose = False")
    table = hook.read_metrics_csv(str(model_dir / "metrics.csv"))
    np.testing.assert_array_equal(table["step"], [2, 4])
    assert np.all(np.isfinite(table["fid"])) and np.all(table["fid"] > 0)
    assert set(_event_scalars(str(model_dir), "eval/kid")) == {2, 4}
    best = json.load(open(model_dir / "best" / "best.json"))
    assert best["fid"] == pytest.approx(table["fid"].min(), rel=1e-6)
    assert len(glob.glob(os.path.join(cache, "*.npz"))) == 1
    reference = write_folder(tmp_path / "reference", np.load(npy_path))
    status, out, err = run_evaluate(capsys, "--model_dir", str(model_dir), "--checkpoint", "best",
                             "--reference_dir", reference, "--num_samples", "8",
                             "--batch_size", "8", "--weights", FID_WEIGHTS, "--cache_dir", cache)
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["checkpoint"].endswith(f"ckpt-{best['step']}")
    assert result["fid"] == pytest.approx(best["fid"], rel=1e-3)
    assert result["kid"] == pytest.approx(best["kid"], rel=1e-2, abs=1e-5)
    other = 2 if best["step"] == 4 else 4  # a checkpoint by name: the other evaluated step
    status, out, err = run_evaluate(capsys, "--model_dir", str(model_dir), "--checkpoint",
                                    f"ckpt-{other}", "--reference_dir", reference,
                                    "--num_samples", "8", "--batch_size", "8",
                                    "--weights", FID_WEIGHTS, "--cache_dir", cache)
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["checkpoint"].endswith(f"ckpt-{other}")
    logged = table["fid"][list(table["step"]).index(other)]
    assert result["fid"] == pytest.approx(logged, rel=1e-3)


@needs_weights
@pytest.mark.slow
def test_in_training_fid_under_two_replicas_equals_one_device(tmp_path):
    """z -> G_ema -> uint8 -> resize -> Inception in one strategy.run per batch: with 2 replicas
    (2 logical CPUs) the logged FID equals the one-device run's (observed exactly equal)."""
    npy_path = str(tmp_path / "eight.npy")
    np.save(npy_path, np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    fids = {}
    for name, strategy in (("one", "None"), ("two", "@mirrored_strategy()")):
        _train(tmp_path / name, npy_path, "train.num_steps = 2", "train.eval_every = 2",
               f"train.strategy = {strategy}", "mirrored_strategy.devices = ['/cpu:0', '/cpu:1']",
               "train.evaluator = @fid_evaluator()", "fid_evaluator.num_samples = 8",
               "fid_evaluator.batch_size = 4", f"fid_evaluator.weights_path = '{FID_WEIGHTS}'",
               f"fid_evaluator.cache_dir = '{tmp_path / name}_cache'",
               "fid_evaluator.verbose = False")
        fids[name] = hook.read_metrics_csv(str(tmp_path / name / "metrics.csv"))["fid"]
    np.testing.assert_allclose(fids["two"], fids["one"], rtol=1e-4)
