"""The Keras FID Inception port against the reference features, the resize convention, the
uint8/grey conventions, the strategy path, and the error for missing weights."""
import numpy as np
import pytest
import tensorflow as tf

import helpers

from tf_convgan.evaluation import features as evaluation
from tf_convgan.evaluation import inception
from tests.fid_helpers import FID_REFERENCE_IO, FID_WEIGHTS, needs_reference_io, needs_weights


@pytest.fixture(scope="module")
def extractor():
    return evaluation.FeatureExtractor(weights_path=FID_WEIGHTS, batch_size=4, verbose=False)


@needs_reference_io
def test_port_reproduces_reference_pool3(extractor):
    reference = np.load(FID_REFERENCE_IO)
    x = np.transpose(reference["x"], (0, 2, 3, 1))  # NCHW -> NHWC, already (uint8 - 128) / 128
    features = extractor.model(x, training=False).numpy()
    error = np.abs(features - reference["pool3"]).max()
    print(f"max |pool3 - reference| = {error:.2e} (features up to {reference['pool3'].max():.2f})")
    assert features.shape == (4, 2048)
    assert error < 1e-4  # observed 8e-6


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
    ours = evaluation.resize_bilinear_tf1(images).numpy()
    expected = _legacy_bilinear_numpy(images, 299)
    assert np.abs(ours - expected).max() < 1e-3  # float32 vs float64 on a 0..255 scale
    half_pixel = tf.image.resize(images, [299, 299], method="bilinear").numpy()
    assert np.abs(half_pixel - expected).max() > 10  # TF2's default is another convention


def test_inception_inputs_conventions():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (2, 16, 16, 1)).astype(np.uint8)
    rgb = np.repeat(grey, 3, axis=-1)
    from_grey = evaluation.inception_inputs(grey).numpy()
    np.testing.assert_array_equal(from_grey, evaluation.inception_inputs(rgb).numpy())
    floats = grey.astype(np.float32) / 127.5 - 1.0  # the data sources' mapping of uint8
    np.testing.assert_array_equal(evaluation.inception_inputs(floats).numpy(), from_grey)
    expected = (_legacy_bilinear_numpy(rgb, 299) - 128.0) / 128.0
    assert from_grey.shape == (2, 299, 299, 3)
    assert np.abs(from_grey - expected).max() < 1e-5
    full = rng.integers(0, 256, (1, 299, 299, 3)).astype(np.uint8)  # not resized
    np.testing.assert_array_equal(evaluation.inception_inputs(full).numpy(),
                                  (full.astype(np.float32) - 128) / 128)


@needs_weights
def test_features_under_mirrored_strategy_equal_one_device(extractor):
    """Batches split over 2 replicas (2 logical CPUs), last batch padded: same features."""
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    one = extractor.features_of_images(images)
    strategy = helpers.two_cpu_strategy()
    mirrored = evaluation.FeatureExtractor(weights_path=FID_WEIGHTS, strategy=strategy,
                                           batch_size=4, verbose=False)
    two = mirrored.features_of_images(images)
    assert one.shape == two.shape == (6, 2048)
    np.testing.assert_allclose(two, one, atol=1e-4)
    single = extractor.features_of_images(images[5:])  # batch composition does not matter
    np.testing.assert_allclose(single[0], one[5], atol=1e-4)
    assert np.abs(one[0] - one[1]).max() > 0.1  # different images, different features


def test_missing_weights_error_names_path_and_remedy(tmp_path, monkeypatch):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as e:
        inception.fid_inception(str(missing))
    assert str(missing) in str(e.value) and "TF_CONVGAN_FID_WEIGHTS" in str(e.value)
    assert "convert_fid_weights" in str(e.value)
    monkeypatch.setenv("TF_CONVGAN_FID_WEIGHTS", str(missing))
    with pytest.raises(FileNotFoundError, match="TF_CONVGAN_FID_WEIGHTS"):
        inception.resolve_weights_path()


def test_default_weights_path_is_relative_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONVGAN_FID_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)  # not the repository: the project root is still searched
    import os
    expected = os.path.join(inception.PROJECT_ROOT, inception.DEFAULT_WEIGHTS)
    if os.path.isfile(expected):
        assert inception.resolve_weights_path() == expected
    else:
        with pytest.raises(FileNotFoundError, match="project root"):
            inception.resolve_weights_path()
