"""Tests for tf_convgan.data.pipeline: batching order, resume, errors, under a MirroredStrategy,
and configured by gin."""
import numpy as np
import pytest
import tensorflow as tf

import helpers

from data_helpers import fake_idx_dir, indexed_source, scale, stream_indices
from tf_convgan import data
from tf_convgan.errors import ConfigError


def test_input_pipeline_shapes_and_order():
    source = indexed_source(11, size=3, channels=3)
    batch, d = 4, 3
    ds = data.make_input_pipeline(source, global_batch_size=batch, d_steps=d, seed=2)
    real_spec, label_spec = ds.element_spec
    assert real_spec.shape.as_list() == [4, 3, 3, 3, 3] and real_spec.dtype == tf.float32
    assert label_spec.shape.as_list() == [4, 3] and label_spec.dtype == tf.int32
    assert ds.options().deterministic is True
    assert (ds.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    stream = stream_indices(source, seed=2, start=0, n=5 * batch * d)
    batches = [(r.numpy(), lbl.numpy()) for r, lbl in ds.take(5)]
    for b, (real, labels) in enumerate(batches):
        for j in range(batch):
            for k in range(d):
                assert labels[j, k] == stream[b * batch * d + j * d + k]
        flat = (np.arange(11 * 9) % 256).reshape(11, 3, 3)
        np.testing.assert_array_equal(real[..., 1], scale(flat[labels]))
    resumed = data.make_input_pipeline(source, global_batch_size=batch, d_steps=d, seed=2,
                                       start_step=2)
    for (real, labels), (real_r, labels_r) in zip(batches[2:], resumed.take(3)):
        np.testing.assert_array_equal(labels, labels_r.numpy())
        np.testing.assert_array_equal(real, real_r.numpy())


def test_input_pipeline_errors():
    source = indexed_source(4)
    with pytest.raises(ConfigError, match="global_batch_size"):
        data.make_input_pipeline(source, global_batch_size=0)
    with pytest.raises(ConfigError, match="d_steps"):
        data.make_input_pipeline(source, global_batch_size=2, d_steps=0)
    with pytest.raises(ConfigError, match="start_step"):
        data.make_input_pipeline(source, global_batch_size=2, start_step=-1)
    with pytest.raises(TypeError, match="source"):
        data.make_input_pipeline(np.zeros(3), global_batch_size=2)
    with pytest.raises(ConfigError, match="seed"):
        source.dataset(seed=1.5, start=0)
    with pytest.raises(ConfigError, match="start"):
        source.dataset(seed=0, start=-3)


def test_input_pipeline_under_mirrored_strategy():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the 2 logical CPUs set up by conftest.py")
    strategy = helpers.two_cpu_strategy()
    source = indexed_source(9, size=2, channels=1)
    ds = data.make_input_pipeline(source, global_batch_size=4, d_steps=2, seed=7)
    expected = [(r.numpy(), lbl.numpy()) for r, lbl in ds.take(3)]
    dist = strategy.experimental_distribute_dataset(ds)
    for (real, labels), (exp_real, exp_labels) in zip(dist, expected):
        parts = strategy.experimental_local_results(labels)
        assert [p.shape.as_list() for p in parts] == [[2, 2], [2, 2]]
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), exp_labels)
        real_parts = strategy.experimental_local_results(real)
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in real_parts]),
                                      exp_real)


def test_gin_configuration(tmp_path):
    import gin

    fake = fake_idx_dir(tmp_path / "fm")
    empty_tfds = tmp_path / "tfds"
    empty_tfds.mkdir()
    try:
        gin.parse_config(f"""
            fashion_mnist_source.directory = '{fake}'
            fashion_mnist_source.data_dir = '{empty_tfds}'
            fashion_mnist_source.resolution = 28
            fashion_mnist_source.channels = 1
            fashion_mnist_source.fit = 'none'
            make_input_pipeline.source = @fashion_mnist_source()
            make_input_pipeline.global_batch_size = 2
            make_input_pipeline.d_steps = 3
            make_input_pipeline.seed = 11
        """)
        ds = data.make_input_pipeline()
        real, labels = next(iter(ds))
        assert real.shape == (2, 3, 28, 28, 1) and labels.shape == (2, 3)
        np.testing.assert_array_equal(real.numpy()[:, :, 5, 5, 0], scale(labels.numpy()))
    finally:
        gin.clear_config()


# --------------------------------------------------------------------------- augmentation
# GAN_stability's inputs: x / 127.5 - 1, a horizontal flip with probability 1/2, then
# x + 1/128 * U[0, 1) (gan_training/inputs.py).
W = 1.0 / 128.0


def _asymmetric_source(n=24, size=4, channels=3):
    """uint8 images with distinct left and right halves (no image equals its mirror); the label
    is the example index, so the unaugmented image of every output is known."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, size, size, channels)).astype(np.uint8)
    images[:, :, 0, :] = 0
    images[:, :, -1, :] = 255
    return images, data.array_source(images=images, labels=np.arange(n), resolution=size,
                                     channels=channels, fit="none")


def _examples(ds, num_batches):
    """(images [N, H, W, C], labels [N]) of the first num_batches batches, in stream order."""
    real, labels = zip(*[(r.numpy(), lbl.numpy()) for r, lbl in ds.take(num_batches)])
    real, labels = np.stack(real), np.stack(labels)
    return real.reshape((-1,) + real.shape[-3:]), labels.reshape(-1)


def test_dequantization_noise_is_uniform_on_0_to_w_and_leaves_the_256_level_lattice():
    images, source = _asymmetric_source()
    plain, labels = _examples(data.make_input_pipeline(source, global_batch_size=8, seed=3), 30)
    noisy, noisy_labels = _examples(data.make_input_pipeline(
        source, global_batch_size=8, seed=3, dequantization_noise=W), 30)
    np.testing.assert_array_equal(noisy_labels, labels)  # same examples, same order
    np.testing.assert_array_equal(plain, scale(images[labels]))
    noise = (noisy - plain).ravel().astype(np.float64)
    # In [0, w] (float32 rounding of x + u can reach x + w at |x| ~ 1; 1 ulp there is 1.2e-7).
    assert noise.min() >= 0.0 and noise.max() <= W + 1.2e-7
    # The mean shift is the noise's mean w/2, to 5 standard errors (w / sqrt(12 N)).
    n = noise.size
    assert abs(noise.mean() - W / 2) < 5 * W / np.sqrt(12 * n)
    assert abs(float(noisy.mean() - plain.mean()) - W / 2) < 5 * W / np.sqrt(12 * n)
    # Uniform: Kolmogorov-Smirnov distance of noise / w to U[0, 1) (5% level: 1.36 / sqrt(N)).
    u = np.sort(noise / W)
    ks = np.max(np.maximum(np.arange(1, n + 1) / n - u, u - np.arange(n) / n))
    assert ks < 1.36 / np.sqrt(n)
    # The plain values sit on the 256 levels (x + 1) * 127.5 in {0..255}, the noisy ones not.
    def off_lattice(x):
        level = (x.astype(np.float64) + 1.0) * 127.5
        return np.abs(level - np.round(level)) > 1e-3
    assert not off_lattice(plain).any()
    assert off_lattice(noisy).mean() > 0.95
    # Every value is shifted independently: no two values of an image get the same noise.
    per_image = (noisy - plain).reshape(len(labels), -1)
    assert all(len(np.unique(row)) > 0.9 * row.size for row in per_image)


def test_random_flip_mirrors_each_image_or_keeps_it_about_half_the_time():
    images, source = _asymmetric_source()
    flipped, labels = _examples(data.make_input_pipeline(
        source, global_batch_size=8, d_steps=2, seed=5, random_flip=True), 20)
    original = scale(images[labels])
    mirrored = original[:, :, ::-1, :]
    is_original = np.all(flipped == original, axis=(1, 2, 3))
    is_mirrored = np.all(flipped == mirrored, axis=(1, 2, 3))
    assert np.all(is_original ^ is_mirrored)  # each output is one of the two, exactly
    n = len(labels)
    assert abs(is_mirrored.sum() - n / 2) < 3 * np.sqrt(n) / 2  # Binomial(n, 1/2), 3 sigma
    # Not tied to the example: the same image comes out both ways over the epochs.
    for index in range(len(images)):
        assert set(is_mirrored[labels == index]) == {False, True}


def test_flip_and_noise_together_are_gan_stability_order():
    """Flip, then noise: the output minus the original or its mirror is noise in [0, w]."""
    images, source = _asymmetric_source()
    out, labels = _examples(data.make_input_pipeline(
        source, global_batch_size=8, seed=9, random_flip=True, dequantization_noise=W), 10)
    original = scale(images[labels])
    for x, o in zip(out, original):
        candidates = [x - o, x - o[:, ::-1]]
        fits = [d.min() >= 0 and d.max() <= W + 1.2e-7 for d in candidates]
        assert sum(fits) == 1


def test_augmented_stream_is_deterministic_per_seed_and_resumes_exactly():
    _, source = _asymmetric_source()
    kwargs = dict(global_batch_size=4, d_steps=3, random_flip=True, dequantization_noise=W)
    run = [(r.numpy(), lbl.numpy())
           for r, lbl in data.make_input_pipeline(source, seed=2, **kwargs).take(6)]
    again = [(r.numpy(), lbl.numpy())
             for r, lbl in data.make_input_pipeline(source, seed=2, **kwargs).take(6)]
    for (a, la), (b, lb) in zip(run, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    resumed = data.make_input_pipeline(source, seed=2, start_step=4, **kwargs)
    for (a, la), (b, lb) in zip(run[4:], resumed.take(2)):
        np.testing.assert_array_equal(la, lb.numpy())
        np.testing.assert_array_equal(a, b.numpy())
    other, _ = next(iter(data.make_input_pipeline(source, seed=3, **kwargs)))
    assert not np.array_equal(other.numpy(), run[0][0])


@pytest.mark.parametrize("kwargs, match", [
    ({"random_flip": "yes"}, r"`random_flip` must be True or False"),
    ({"random_flip": 1}, r"`random_flip` must be True or False"),
    ({"dequantization_noise": -W}, r"`dequantization_noise` must be a finite number >= 0"),
    ({"dequantization_noise": float("nan")}, r"`dequantization_noise` must be a finite"),
    ({"dequantization_noise": True}, r"`dequantization_noise` must be a finite number >= 0"),
])
def test_bad_augmentation_settings_are_rejected_by_name(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        data.make_input_pipeline(indexed_source(4), global_batch_size=2, **kwargs)


def test_augmentation_of_a_source_without_images_is_a_clear_error():
    from tf_convgan.studies import toy2d

    points = toy2d.point_source(problem="circle")
    with pytest.raises(ConfigError, match="need a source of images"):
        data.make_input_pipeline(points, global_batch_size=2, random_flip=True)
