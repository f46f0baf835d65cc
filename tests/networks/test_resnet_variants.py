"""The ResNet variants (resnet2, resnet3, resnet4): checkpoints hold every weight, any
resolution that is a multiple of the variant's s0 divisor."""
import numpy as np
import pytest
import tensorflow as tf

from network_helpers import random_z as _z

from tf_convgan import networks as N


@pytest.mark.parametrize("arch", ["resnet2", "resnet3", "resnet4"])
def test_resnet_variant_checkpoints_hold_every_weight(tmp_path, arch):
    """The blocks sit in a list attribute; CheckpointListsMixin hands them to
    tf.train.Checkpoint."""
    resolution = 32 if arch == "resnet2" else 64
    for make in (lambda: getattr(N, f"{arch}_generator")(resolution=resolution, nf=1, z_dim=4),
                 lambda: getattr(N, f"{arch}_discriminator")(resolution=resolution, nf=1)):
        model = N.build(make())
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / arch))
        saved = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
                 if k.startswith("model/")]
        assert len(saved) == len(model.weights)
        fresh = N.build(make())
        tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
        for a, b in zip(model.weights, fresh.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("arch,resolution,s0", [("resnet2", 96, 3), ("resnet3", 192, 3),
                                                ("resnet4", 128, 2)])
def test_resnet_variants_take_any_multiple_of_their_s0_divisor(arch, resolution, s0):
    g = getattr(N, f"{arch}_generator")(resolution=resolution, nf=1, z_dim=4)
    d = getattr(N, f"{arch}_discriminator")(resolution=resolution, nf=1)
    x = g(_z(1, 4))
    assert x.shape == (1, resolution, resolution, 3) and g.s0 == d.s0 == s0
    assert d(x).shape == (1,)
