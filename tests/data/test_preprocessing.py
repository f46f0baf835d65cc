"""Tests for tf_convgan.data.preprocessing: exact scaling to [-1, 1], padding, centre crops,
resizing and channel conversions."""
import numpy as np
import pytest
import tensorflow as tf

from data_helpers import scale, take
from tf_convgan import data
from tf_convgan.errors import ConfigError


def test_uint8_scaling_is_exact():
    images = np.array([[[0, 255], [127, 128]]], np.uint8)
    source = data.array_source(images=images, resolution=2, channels=1, fit="none")
    image, label = take(source.dataset(seed=0, start=0), 1)
    np.testing.assert_array_equal(
        image[0, ..., 0], np.array([[-1.0, 1.0], [scale(127), scale(128)]],
                                   np.float32))
    assert image.dtype == np.float32 and label.dtype == np.int32 and label[0] == 0
    assert source.num_classes is None


def test_pad_28_to_32():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    out = data.preprocess_image(image, resolution=32, channels=3, fit="pad").numpy()
    assert out.shape == (32, 32, 3)
    expected = scale(image)
    for c in range(3):
        np.testing.assert_array_equal(out[2:30, 2:30, c], expected)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[border] == -1.0)
    # odd difference: extra row/column goes to the bottom/right
    odd = data.preprocess_image(np.full((3, 2), 255, np.uint8), resolution=6, channels=1,
                                fit="pad").numpy()[..., 0]
    expected_odd = -np.ones((6, 6), np.float32)
    expected_odd[1:4, 2:4] = 1.0
    np.testing.assert_array_equal(odd, expected_odd)


def test_resize_crop_takes_the_centre():
    wide = np.tile(np.arange(16, dtype=np.uint8) * 10, (8, 1))  # 8x16, column-coded
    out = data.preprocess_image(wide, resolution=8, channels=1, fit="resize_crop").numpy()
    np.testing.assert_array_equal(out[..., 0], scale(wide[:, 4:12]))
    tall = wide.T.copy()  # 16x8
    out = data.preprocess_image(tall, resolution=8, channels=1, fit="resize_crop").numpy()
    np.testing.assert_array_equal(out[..., 0], scale(tall[4:12, :]))
    # with rescaling: 16x32 -> short side 8 -> 8x16 -> centre columns 4:12
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    out = data.preprocess_image(big, resolution=8, channels=3, fit="resize_crop").numpy()
    reference = tf.image.resize(scale(big), [8, 16],
                                antialias=True).numpy()[:, 4:12]
    np.testing.assert_allclose(out, np.clip(reference, -1, 1), atol=1e-6)
    # same answer when the image size is only known at run time
    dynamic = tf.function(
        lambda x: data.preprocess_image(x, resolution=8, channels=3, fit="resize_crop"),
        input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    np.testing.assert_allclose(dynamic(big).numpy(), out, atol=1e-6)


def test_resize_and_channel_conversions():
    red = np.zeros((5, 7, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 10  # RGBA: alpha must be dropped
    out = data.preprocess_image(red, resolution=3, channels=3, fit="resize").numpy()
    np.testing.assert_allclose(out[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[..., 1:], -1.0, atol=1e-6)
    assert out.min() >= -1.0 and out.max() <= 1.0
    gray = data.preprocess_image(red, resolution=3, channels=1, fit="resize").numpy()
    np.testing.assert_allclose(gray, 0.299 * 1.0 + 0.701 * -1.0, atol=1e-6)
    tiled = data.preprocess_image(np.full((4, 4, 1), 51, np.uint8), resolution=4,
                                  fit="none").numpy()
    np.testing.assert_array_equal(tiled, np.full((4, 4, 3), scale(51), np.float32))
    floats = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(
        data.preprocess_image(floats, resolution=4, channels=1, fit="none").numpy()[..., 0],
        floats)
    up = data.preprocess_image(np.full((2, 3), 200, np.uint8), resolution=9, channels=1,
                               fit="resize").numpy()
    np.testing.assert_allclose(up, 200 / 127.5 - 1, atol=1e-6)


def test_preprocess_image_checks_its_arguments():
    image = np.zeros((4, 4), np.uint8)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="`resolution` must be a positive int"):
            data.preprocess_image(image, resolution=bad)
    with pytest.raises(ConfigError, match="`channels` must be 1 or 3"):
        data.preprocess_image(image, resolution=4, channels=2)
    with pytest.raises(ConfigError, match="`fit` must be one of"):
        data.preprocess_image(image, resolution=4, fit="stretch")
    with pytest.raises(ConfigError, match=r"`image` must have shape \[H, W\] or \[H, W, C\]"):
        data.preprocess_image(np.zeros((2, 2, 2, 2), np.uint8), resolution=2)
    with pytest.raises(ConfigError, match="`image` must have 1 to 4 channels"):
        data.preprocess_image(np.zeros((2, 2, 5), np.uint8), resolution=2)
    with pytest.raises(ConfigError, match="integer or float dtype"):
        data.preprocess_image(np.zeros((2, 2), bool), resolution=2)
    with pytest.raises(ConfigError, match="fit='pad'.*`resolution`=2"):
        data.preprocess_image(np.zeros((3, 3), np.uint8), resolution=2, fit="pad")
