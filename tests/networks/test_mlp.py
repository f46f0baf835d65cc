"""The MLP networks of the 2D problems: exact parameter counts, shapes, per-example logits,
unconditional only."""
import numpy as np
import pytest

from network_helpers import rng

from tf_convgan import networks as N


def test_mlp_param_counts_and_shapes():
    g = N.build(N.mlp_generator(z_dim=5, data_dim=3, width=7, depth=2))
    d = N.build(N.mlp_discriminator(data_dim=3, width=7, depth=3))
    assert N.count_params(g) == (5 + 1) * 7 + (7 + 1) * 7 + (7 + 1) * 3
    assert N.count_params(d) == (3 + 1) * 7 + 2 * (7 + 1) * 7 + (7 + 1) * 1
    assert g.data_shape == d.data_shape == (3,) and g.num_classes == d.num_classes == 1
    x = g(rng(0).standard_normal((4, 5)).astype(np.float32)).numpy()
    assert x.shape == (4, 3) and x.std() > 0
    logits = d(x).numpy()
    assert logits.shape == (4,)
    # Per example: example 0 alone gives the same logit.
    np.testing.assert_allclose(d(x[:1]).numpy(), logits[:1], rtol=1e-6)


@pytest.mark.parametrize("factory", [N.mlp_generator, N.mlp_discriminator])
def test_mlp_is_unconditional(factory):
    with pytest.raises(ValueError, match="num_classes must be 1, got 3"):
        factory(num_classes=3)
