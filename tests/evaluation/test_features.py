"""Inception features: the resize convention, the uint8/grey conventions, the strategy path, and
the features of a SavedModel's and an image folder's images (through the command line).
"""
import json

import numpy as np
import pytest
import tensorflow as tf

import helpers

from tf_convgan.evaluation import features
from tf_convgan.run_dir import images as images_lib
from fid_helpers import FID_WEIGHTS, needs_weights, run_evaluate, write_folder

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
    reference = write_folder(tmp_path / "reference", images)
    common = ["--weights", FID_WEIGHTS, "--reference_dir", reference, "--num_samples", "8",
              "--batch_size", "8", "--cache_dir", str(tmp_path / "cache")]
    status, out, err = run_evaluate(capsys, "--saved_model", path, *common)
    assert status == 0, err
    same = json.loads(out.strip().splitlines()[-1])
    assert same["num_samples"] == 8 and same["resize"] == "tf1bilinear"
    assert abs(same["fid"]) < 1e-2 and same["kid"] < 0
    noise = np.random.default_rng(0).normal(0, 80, images.shape)
    noised = write_folder(tmp_path / "noised", np.clip(images + noise, 0, 255).astype(np.uint8))
    status, out, err = run_evaluate(capsys, "--image_dir", noised, *common,
                             "--output_json", str(tmp_path / "m.json"))
    assert status == 0, err
    far = json.loads(open(tmp_path / "m.json").read())
    assert far["fid"] > 10 and far["fid"] > 1000 * abs(same["fid"])
    status, out, err = run_evaluate(capsys, "--image_dir", reference, *common)  # the folder itself
    assert status == 0 and abs(json.loads(out.strip().splitlines()[-1])["fid"]) < 1e-2


def _legacy_bilinear_numpy(images, size):
    """TF1 ResizeBilinear, align_corners=False, legacy centers: src = dst * in / out, float64."""
    images = images.astype(np.float64)
    h, w = images.shape[1:3]

    def axis(n):
        src = np.arange(size) * (n / size)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n - 1), src - lo

    y0, y1, wy = axis(h)
    x0, x1, wx = axis(w)
    rows = images[:, y0] * (1 - wy)[None, :, None, None] + images[:, y1] * wy[None, :, None, None]
    return rows[:, :, x0] * (1 - wx)[None, None, :, None] + rows[:, :, x1] * wx[None, None, :, None]


def test_resize_is_tf1_bilinear_legacy():
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 32, 3)).astype(np.float32)
    ours = features.resize_bilinear_tf1(images).numpy()
    expected = _legacy_bilinear_numpy(images, 299)
    assert np.abs(ours - expected).max() < 1e-3  # float32 vs float64 on a 0..255 scale
    half_pixel = tf.image.resize(images, [299, 299], method="bilinear").numpy()
    assert np.abs(half_pixel - expected).max() > 10  # TF2's default is another convention


def test_inception_inputs_conventions():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (2, 16, 16, 1)).astype(np.uint8)
    rgb = np.repeat(grey, 3, axis=-1)
    from_grey = features.inception_inputs(grey).numpy()
    np.testing.assert_array_equal(from_grey, features.inception_inputs(rgb).numpy())
    floats = grey.astype(np.float32) / 127.5 - 1.0  # the data sources' mapping of uint8
    np.testing.assert_array_equal(features.inception_inputs(floats).numpy(), from_grey)
    expected = (_legacy_bilinear_numpy(rgb, 299) - 128.0) / 128.0
    assert from_grey.shape == (2, 299, 299, 3)
    assert np.abs(from_grey - expected).max() < 1e-5
    full = rng.integers(0, 256, (1, 299, 299, 3)).astype(np.uint8)  # not resized
    np.testing.assert_array_equal(features.inception_inputs(full).numpy(),
                                  (full.astype(np.float32) - 128) / 128)


@needs_weights
def test_features_under_mirrored_strategy_equal_one_device(extractor):
    """Batches split over 2 replicas (2 logical CPUs), last batch padded: same features."""
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    one = extractor.features_of_images(images)
    strategy = helpers.two_cpu_strategy()
    mirrored = features.FeatureExtractor(weights_path=FID_WEIGHTS, strategy=strategy,
                                         batch_size=4, verbose=False)
    two = mirrored.features_of_images(images)
    assert one.shape == two.shape == (6, 2048)
    np.testing.assert_allclose(two, one, atol=1e-4)
    single = extractor.features_of_images(images[5:])  # batch composition does not matter
    np.testing.assert_allclose(single[0], one[5], atol=1e-4)
    assert np.abs(one[0] - one[1]).max() > 0.1  # different images, different features
