"""Evaluation sources and plumbing: SavedModel / image folders / model directories through the
command line, the reference cache, and FID during training (CSV, TensorBoard, plot, best
checkpoint).
"""
import glob
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.cli import config
from tf_convgan.cli import evaluate
from tf_convgan.evaluation import features as evaluation
from tf_convgan.run_dir import images as images_lib
from tf_convgan.training.loop import train
from tests.fid_helpers import FID_WEIGHTS, needs_weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_GIN = os.path.join(ROOT, "tests", "tiny.gin")
Z_DIM = 4


class _TinyGenerator(tf.Module):
    """The SavedModel contract: serving_default(z [N, z_dim]) -> images (uint8), images_float."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(Z_DIM, 16 * 16 * 3)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, Z_DIM], tf.float32, name="z")])
    def serve(self, z):
        images_float = tf.reshape(tf.tanh(z @ self.w), [-1, 16, 16, 3])
        return {"images_float": images_float, "images": images_lib.to_uint8(images_float)}


def _z(num, seed=0):
    """The z the evaluation draws for example i: stateless_normal(seed=[seed, i])."""
    return tf.stack([tf.random.stateless_normal([Z_DIM], seed=[seed, i]) for i in range(num)])


def _write_folder(directory, images):
    for i, image in enumerate(np.asarray(images)):
        images_lib.write_png(os.path.join(directory, f"{i:04d}.png"), image)
    return str(directory)


def _main(capsys, *args):
    status = evaluate.main(["evaluate", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    module = _TinyGenerator()
    path = str(tmp_path_factory.mktemp("saved") / "generator")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path, module


@needs_weights
def test_saved_model_and_image_folder_against_a_folder(tmp_path, saved_model, capsys):
    """The SavedModel's images for z_0..z_7 written as PNGs are the reference: FID ~0, and KID
    is the unbiased estimate for two identical sets (slightly negative: the cross term includes the
    diagonal k(x, x)). A noised copy of the folder is far."""
    path, module = saved_model
    images = module.serve(_z(8))["images"].numpy()
    reference = _write_folder(tmp_path / "reference", images)
    common = ["--weights", FID_WEIGHTS, "--reference_dir", reference, "--num_samples", "8",
              "--batch_size", "8", "--cache_dir", str(tmp_path / "cache")]
    status, out, err = _main(capsys, "--saved_model", path, *common)
    assert status == 0, err
    same = json.loads(out.strip().splitlines()[-1])
    assert same["num_samples"] == 8 and same["resize"] == "tf1bilinear"
    assert abs(same["fid"]) < 1e-2 and same["kid"] < 0
    noise = np.random.default_rng(0).normal(0, 80, images.shape)
    noised = _write_folder(tmp_path / "noised", np.clip(images + noise, 0, 255).astype(np.uint8))
    status, out, err = _main(capsys, "--image_dir", noised, *common,
                             "--output_json", str(tmp_path / "m.json"))
    assert status == 0, err
    far = json.loads(open(tmp_path / "m.json").read())
    assert far["fid"] > 10 and far["fid"] > 1000 * abs(same["fid"])
    status, out, err = _main(capsys, "--image_dir", reference, *common)  # the folder itself
    assert status == 0 and abs(json.loads(out.strip().splitlines()[-1])["fid"]) < 1e-2


@pytest.mark.parametrize("args, flag", [
    ([], "--model_dir"),
    (["--image_dir", "a", "--saved_model", "b"], "--model_dir"),
    (["--image_dir", "/nonexistent-dir"], "--image_dir"),
    (["--saved_model", "/nonexistent-dir", "--weights", "/nonexistent.npz"], "--saved_model"),
    (["--model_dir", "/nonexistent-dir", "--weights", "/nonexistent.npz"], "--model_dir"),
    (["--image_dir", "x", "--num_samples", "0"], "--num_samples"),
    (["--image_dir", "x", "--no_such_flag"], "no_such_flag"),
    (["--image_dir", "x", "--fit", "bogus"], "--fit"),
    (["--image_dir", "x", "--resolution", "-5"], "--resolution"),
    (["--image_dir", "x", "--seed", str(2 ** 70)], "--seed"),
])
def test_command_line_errors_name_the_flag(capsys, args, flag):
    status, out, err = _main(capsys, *args)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and flag in err, err


def test_images_are_counted_and_checked_before_the_network_is_loaded(tmp_path, capsys):
    """Fewer than 2 images, a text file named .png and a truncated PNG are one line naming the
    flag and the file, before the Inception weights are even looked for."""
    images = np.zeros((2, 8, 8, 3), np.uint8)
    one = _write_folder(tmp_path / "one", images[:1])
    two = _write_folder(tmp_path / "two", images)
    text = _write_folder(tmp_path / "text", images)
    (tmp_path / "text" / "0002.png").write_text("not an image")
    truncated = _write_folder(tmp_path / "truncated", images)
    data = (tmp_path / "truncated" / "0001.png").read_bytes()
    (tmp_path / "truncated" / "0001.png").write_bytes(data[:len(data) // 2])
    no_weights = ["--weights", "/nonexistent.npz"]
    for args, expected in [
            (["--image_dir", one], "error: --image_dir: '%s' has 1 image" % one),
            (["--image_dir", two, "--reference_dir", one], "error: --reference_dir: "),
            (["--image_dir", text], "error: --image_dir: image file '%s/0002.png' is not a PNG"
             % text),
            (["--image_dir", two, "--reference_dir", truncated],
             "error: --reference_dir: image file '%s/0001.png' is a truncated PNG" % truncated),
            (["--image_dir", two, "--reference_dir", two], "error: --weights: ")]:
        status, out, err = _main(capsys, *args, *no_weights)
        assert status == 2 and err.startswith(expected) and len(err.splitlines()) == 1, err


def test_command_line_exit_status_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "tf_convgan.evaluate", "--image_dir", "a",
                             "--model_dir", "b"], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model_dir")


class _CountingExtractor:
    def __init__(self):
        self.calls = 0

    def features_of_source(self, source, num, *, seed, description):
        self.calls += 1
        return np.random.default_rng(num + seed).normal(size=(num, 8)).astype(np.float32)


@needs_weights
def test_reference_features_are_cached_by_key(tmp_path):
    from tf_convgan import data

    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    source = data.array_source(images=images, resolution=8)
    extractor = _CountingExtractor()
    kwargs = dict(extractor=extractor, dataset="toy", split="train", directory=str(tmp_path),
                  weights_path=FID_WEIGHTS)
    first = evaluation.reference_features(source, 10, **kwargs)
    again = evaluation.reference_features(source, 10, **kwargs)
    assert extractor.calls == 1
    np.testing.assert_array_equal(first, again)
    files = glob.glob(str(tmp_path / "*.npz"))
    assert len(files) == 1
    name = os.path.basename(files[0])
    assert name.startswith("toy_train_8px_tf1bilinear_n10_s0_")
    with np.load(files[0]) as f:
        np.testing.assert_allclose(f["mu"], first.mean(0), rtol=1e-6)
        assert json.loads(bytes(f["meta_json"]))["num"] == 10
    evaluation.reference_features(source, 11, **kwargs)  # another count: another key
    evaluation.reference_features(data.array_source(images=images, resolution=16), 10, **kwargs)
    evaluation.reference_features(source, 10, **{**kwargs, "split": "test"})
    assert extractor.calls == 4 and len(glob.glob(str(tmp_path / "*.npz"))) == 4


class _ScriptedEvaluator:
    """Returns the given FIDs in turn (no network): tests the bookkeeping of train()."""

    def __init__(self, fids):
        self.fids = list(fids)
        self.steps = []

    def __call__(self, generator_ema, step, *, strategy=None, data=None):
        self.steps.append(step)
        fid = self.fids.pop(0)
        return {"fid": fid, "kid": fid / 100, "kid_std": 0.0}


@pytest.fixture
def npy_path(tmp_path):
    path = tmp_path / "images.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8))
    return str(path)


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
    table = evaluation.read_metrics_csv(str(model_dir / "metrics.csv"))
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


@needs_weights
@pytest.mark.slow  # the default suite checks in-training FID and the best checkpoint above
def test_in_training_fid_and_best_checkpoint_through_the_command_line(tmp_path, capsys):
    """Real FID every 2 steps of a tiny run; `evaluate --model_dir --checkpoint best` reproduces
    the FID logged for the best step (same z, same reference images, restored EMA weights)."""
    model_dir = tmp_path / "run"
    cache = str(tmp_path / "cache")
    npy_path = str(tmp_path / "eight.npy")  # the reference: all 8 training images
    np.save(npy_path, np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    _train(model_dir, npy_path, "train.num_steps = 4", "train.eval_every = 2",
           "train.evaluator = @fid_evaluator()", "fid_evaluator.num_samples = 8",
           "fid_evaluator.batch_size = 8", f"fid_evaluator.weights_path = '{FID_WEIGHTS}'",
           f"fid_evaluator.cache_dir = '{cache}'", "fid_evaluator.verbose = False")
    table = evaluation.read_metrics_csv(str(model_dir / "metrics.csv"))
    np.testing.assert_array_equal(table["step"], [2, 4])
    assert np.all(np.isfinite(table["fid"])) and np.all(table["fid"] > 0)
    assert set(_event_scalars(str(model_dir), "eval/kid")) == {2, 4}
    best = json.load(open(model_dir / "best" / "best.json"))
    assert best["fid"] == pytest.approx(table["fid"].min(), rel=1e-6)
    assert len(glob.glob(os.path.join(cache, "*.npz"))) == 1
    reference = _write_folder(tmp_path / "reference", np.load(npy_path))
    status, out, err = _main(capsys, "--model_dir", str(model_dir), "--checkpoint", "best",
                             "--reference_dir", reference, "--num_samples", "8",
                             "--batch_size", "8", "--weights", FID_WEIGHTS, "--cache_dir", cache)
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["checkpoint"].endswith(f"ckpt-{best['step']}")
    assert result["fid"] == pytest.approx(best["fid"], rel=1e-3)
    assert result["kid"] == pytest.approx(best["kid"], rel=1e-2, abs=1e-5)


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
        fids[name] = evaluation.read_metrics_csv(str(tmp_path / name / "metrics.csv"))["fid"]
    np.testing.assert_allclose(fids["two"], fids["one"], rtol=1e-4)
