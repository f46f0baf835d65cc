"""Tests for tf_convgan.data.pipeline: batching order, resume, errors, under a MirroredStrategy,
and configured by gin."""
import numpy as np
import pytest
import tensorflow as tf

import helpers

from tests.data_helpers import fake_idx_dir, indexed_source, scale, stream_indices
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
