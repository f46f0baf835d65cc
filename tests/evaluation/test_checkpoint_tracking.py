"""Every network's checkpoint holds all of its weights (Keras 3 does not hand layers kept in list
attributes to tf.train.Checkpoint by itself; networks.common.CheckpointListsMixin does), and a
fresh model restored from it computes the same outputs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_NETWORKS
from tf_convgan.networks import build


@pytest.mark.parametrize("network", sorted(TINY_NETWORKS))
def test_checkpoint_saves_and_restores_every_weight(tmp_path, network):
    make_g, make_d = TINY_NETWORKS[network]
    for make in (make_g, make_d):
        keras.utils.set_random_seed(1)
        model = build(make(1))
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / network))
        saved = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
                 if k.startswith("model/")]
        assert len(saved) == len(model.weights)
        keras.utils.set_random_seed(2)
        fresh = build(make(1))
        tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
        for a, b in zip(model.weights, fresh.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
