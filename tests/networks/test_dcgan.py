"""The (SN)DCGAN networks: SNDCGAN at every resolution it takes."""
import pytest

from network_helpers import random_images as _images, random_z as _z

from tf_convgan import networks as N


@pytest.mark.parametrize("resolution", [32, 48, 64])
def test_sndcgan_resolutions(resolution):
    g = N.sndcgan_generator(resolution=resolution, z_dim=4, ch=8)
    assert g(_z(1, 4)).shape == (1, resolution, resolution, 3)
    d = N.build(N.sndcgan_discriminator(resolution=resolution), batch_size=1)
    assert d(_images(1, resolution)).shape == (1,)
    # flatten -> dense has (resolution / 8)^2 * 512 inputs
    assert d.fc.kernel.shape == ((resolution // 8) ** 2 * 512, 1)
