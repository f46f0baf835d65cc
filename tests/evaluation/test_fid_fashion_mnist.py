"""FID/KID with the real Inception network on Fashion-MNIST (28x28 grey, replicated to RGB and
resized to 299 with the TF1 bilinear convention).

Default tests use 32 (series) and 50 (disjoint sets) images per set (the network runs at ~5-10 images/s on this project's 2-core
CPU): the noise/blur series compare the same 50 images with their degraded copies, so the distances
grow with the degradation far beyond the sampling noise (observed at 100 images: noise
77 < 137 < 201, blur 30 < 152 < 295; at 50: 85 < 149 < 217, 35 < 169 < 311). The slow test checks two disjoint 1000-image halves of train.
"""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import data
from tf_convgan.evaluation import features as evaluation
from tf_convgan.evaluation import metrics
from fid_helpers import FASHION_MNIST_DIR, FID_WEIGHTS, needs_fashion_mnist, needs_weights

pytestmark = [needs_weights, needs_fashion_mnist]


def _train_images(n, start=0):
    """n Fashion-MNIST train images (float [-1, 1], 28x28x3) in the seed-0 permutation order."""
    source = data.idx_source(directory=FASHION_MNIST_DIR, split="train", resolution=28)
    batch = next(iter(source.dataset(seed=0, start=start).batch(n)))[0]
    return batch.numpy()


def _noised(images, sigma, seed=0):
    noise = np.random.default_rng(seed).normal(size=images.shape).astype(np.float32)
    return np.clip(images + sigma * noise, -1.0, 1.0)


def _blurred(images, sigma):
    """Separable Gaussian blur (std `sigma` pixels, radius 3 sigma, symmetric borders)."""
    r = int(np.ceil(3 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).astype(np.float32)
    x = tf.pad(images, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    x = tf.nn.depthwise_conv2d(x, np.tile(k[None, :, None, None], (1, 1, 3, 1)), [1] * 4, "VALID")
    x = tf.nn.depthwise_conv2d(x, np.tile(k[:, None, None, None], (1, 1, 3, 1)), [1] * 4, "VALID")
    return x.numpy()


@pytest.fixture(scope="module")
def extractor():
    return evaluation.FeatureExtractor(weights_path=FID_WEIGHTS, batch_size=16, verbose=False)


@pytest.fixture(scope="module")
def base(extractor):
    images = _train_images(32)
    return images, extractor.features_of_images(images)


@pytest.mark.parametrize("degrade, levels", [
    pytest.param(_noised, (0.05, 0.1, 0.2), marks=pytest.mark.slow),
    (_blurred, (0.5, 1.0, 2.0))])
def test_fid_grows_monotonically_with_noise_and_blur(extractor, base, degrade, levels):
    images, real = base
    assert abs(metrics.frechet_distance_of_features(real, real)) < 1e-3
    fids, kids = [], []
    for level in levels:
        fake = extractor.features_of_images(degrade(images, level))
        fids.append(metrics.frechet_distance_of_features(real, fake))
        kids.append(metrics.kernel_inception_distance(real, fake, num_subsets=1,
                                                      subset_size=32)[0])
    print(f"{degrade.__name__} {levels}: FID {np.round(fids, 1)} KID {np.round(kids, 4)}")
    assert fids[0] > 1.0
    assert all(b > 1.2 * a for a, b in zip(fids, fids[1:])), fids
    assert all(b > a for a, b in zip(kids, kids[1:])), kids


def test_disjoint_sets_are_close_in_kid_far_from_noise(extractor):
    """Two disjoint 50-image sets of train: KID (unbiased) is ~0, far below noise sigma 0.1.
    (FID at 50 images is dominated by its small-sample bias; see the slow test.)"""
    real = extractor.features_of_images(_train_images(50))
    other = extractor.features_of_images(_train_images(50, start=50))
    kid_same, kid_std = metrics.kernel_inception_distance(real, other, num_subsets=20,
                                                          subset_size=25, seed=1)
    noised = extractor.features_of_images(_noised(_train_images(50, start=50), 0.1))
    kid_noise, _ = metrics.kernel_inception_distance(real, noised, num_subsets=20,
                                                     subset_size=25, seed=1)
    print(f"KID halves {kid_same:.4f} +- {kid_std:.4f}; vs noised {kid_noise:.4f}")
    assert abs(kid_same) < 3 * kid_std + 1e-3
    assert kid_noise > 10 * max(abs(kid_same), kid_std / 5)


@pytest.mark.slow
def test_fid_between_disjoint_halves_of_train_is_small(extractor):
    """1000 vs 1000 disjoint train images. FID has a positive small-sample bias of order 1/N
    (observed 59.3 / 38.6 / 23.2 at 250 / 500 / 1000 images, means over disjoint subsets), so "small" is relative: below half
    the FID to a lightly noised copy (sigma 0.05) of the second half at the same N (observed 23.2
    vs 65.5), and far below it after extrapolating both linearly in 1/N from 500 and 1000 images
    (observed 7.9 vs 49.4). KID, unbiased, is ~0 (observed -0.00000 +- 0.00022)."""
    fa = extractor.features_of_images(_train_images(1000))
    b = _train_images(1000, start=1000)
    fb, fn = extractor.features_of_images(b), extractor.features_of_images(_noised(b, 0.05))
    fid = metrics.frechet_distance_of_features

    def at(n, other):  # mean over the disjoint n-subsets of both sets
        return np.mean([fid(fa[i:i + n], other[i:i + n]) for i in range(0, 1000, n)])

    halves = {n: at(n, fb) for n in (250, 500, 1000)}
    noise = {n: at(n, fn) for n in (500, 1000)}
    halves_inf, noise_inf = 2 * halves[1000] - halves[500], 2 * noise[1000] - noise[500]
    kid, kid_std = metrics.kernel_inception_distance(fa, fb, num_subsets=100, subset_size=500)
    print(f"halves of train: FID {halves} (1/N-extrapolated {halves_inf:.1f}); noise 0.05: "
          f"{noise} (extrapolated {noise_inf:.1f}); KID {kid:.5f} +- {kid_std:.5f}")
    assert halves[250] > halves[500] > halves[1000]  # the bias shrinks with N
    assert halves[1000] < 0.5 * noise[1000]
    assert halves_inf < 0.25 * noise_inf
    assert abs(kid) < 3 * kid_std
