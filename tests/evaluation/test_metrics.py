"""FID, KID, IS and precision/recall as pure float64 functions, against independent NumPy/SciPy
references and closed forms."""
import numpy as np
import pytest
import scipy.linalg

from tf_convgan.evaluation import metrics


def _correlated(rng, n, d, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def _ttur_fid(f1, f2):
    """TTUR's formula: scipy sqrtm of sigma1 @ sigma2, real part."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


@pytest.mark.parametrize("d", [16, 256])
def test_fid_equals_scipy_reference_on_random_activations(d):
    rng = np.random.default_rng(d)
    f1 = np.abs(_correlated(rng, 3 * d, d))  # ReLU-like activations
    f2 = np.abs(_correlated(rng, 3 * d, d, shift=0.3, scale=1.2))
    expected = _ttur_fid(f1, f2)
    assert expected > 1.0
    assert metrics.frechet_distance_of_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert metrics.frechet_distance_of_features(f1, f1) == pytest.approx(0.0, abs=1e-8 * d)


def test_fid_stable_when_covariances_are_singular():
    """Fewer samples than dimensions: covariances of rank N-1. The FID of a set with itself is 0
    (up to float64 noise of the null space, ~1e-8 of the trace) and rotating both sets does not
    change the distance."""
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 0.5
    rotation = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    value = metrics.frechet_distance_of_features(f1, f2)
    trace = np.trace(np.cov(f1, rowvar=False))
    assert metrics.frechet_distance_of_features(f1, f1) == pytest.approx(0.0, abs=1e-7 * trace)
    assert value > 0.1 * trace
    assert metrics.frechet_distance_of_features(f1 @ rotation, f2 @ rotation) == pytest.approx(
        value, rel=1e-7)


def _reference_mmd2_unbiased(x, y):
    """Loops over pairs of the cubic kernel (x.y / d + 1)^3, i != j for the within-set terms."""
    d = x.shape[1]
    k = lambda a, b: (np.dot(a, b) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_equals_reference_on_random_activations():
    rng = np.random.default_rng(2)
    f1, f2 = np.abs(_correlated(rng, 80, 32)), np.abs(_correlated(rng, 90, 32, shift=0.2))
    subsets = list(metrics.kid_subset_indices(80, 90, num_subsets=4, subset_size=30, seed=5))
    values = [_reference_mmd2_unbiased(f1[i], f2[j]) for i, j in subsets]
    mean, std = metrics.kernel_inception_distance(f1, f2, num_subsets=4, subset_size=30, seed=5)
    assert mean == pytest.approx(np.mean(values), rel=1e-6)
    assert std == pytest.approx(np.std(values), rel=1e-6)
    assert mean > 5 * std / 2  # the sets differ: clearly positive


def test_kid_is_unbiased_for_the_same_distribution():
    """Same distribution: the estimates average to ~0 (within 4 standard errors) over many
    independent pairs of sets, while the biased (V-statistic) estimate is clearly positive."""
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(16, 16)) / 4
    unbiased, biased = [], []
    for _ in range(300):
        x = np.abs(rng.normal(size=(40, 16)) @ mixing)
        y = np.abs(rng.normal(size=(40, 16)) @ mixing)
        unbiased.append(metrics.mmd2_unbiased(x, y))
        k = metrics.polynomial_kernel
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    stderr = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 4 * stderr
    assert np.mean(biased) > 10 * np.std(biased) / np.sqrt(len(biased))
    mean, std = metrics.kernel_inception_distance(
        np.abs(rng.normal(size=(2000, 16)) @ mixing), np.abs(rng.normal(size=(2000, 16)) @ mixing),
        num_subsets=50, subset_size=200, seed=0)
    assert abs(mean) < 3 * std  # std of single-subset estimates


def test_inception_score_on_synthetic_logits():
    k = 10
    uniform = np.zeros((100, k))
    assert metrics.inception_score(uniform, num_splits=5) == pytest.approx((1.0, 0.0))
    peaked = np.full((100, k), -50.0)
    peaked[np.arange(100), np.arange(100) % k] = 50.0  # confident and every class equally often
    mean, std = metrics.inception_score(peaked, num_splits=5)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    one_class = np.full((100, k), -50.0)
    one_class[:, 3] = 50.0  # confident but no diversity
    assert metrics.inception_score(one_class, num_splits=5)[0] == pytest.approx(1.0)
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(90, k)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(p, 3):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(q * np.log(q / py)) for q in part])))
    assert metrics.inception_score(logits, num_splits=3) == pytest.approx(
        (np.mean(scores), np.std(scores)), rel=1e-9)


def _brute_precision_recall(real, fake, k):
    def radii(x):
        return np.array([np.sort(np.linalg.norm(x - p, axis=1))[k] for p in x])
    rr, fr = radii(real), radii(fake)
    precision = np.mean([any(np.linalg.norm(f - r) <= rad for r, rad in zip(real, rr))
                         for f in fake])
    recall = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake, fr))
                      for r in real])
    return precision, recall


def test_precision_recall():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(50, 5)) * 1.5 + 0.5
    result = metrics.precision_recall(real, fake, k=3)
    assert (result["precision"], result["recall"]) == pytest.approx(
        _brute_precision_recall(real, fake, 3))
    assert metrics.precision_recall(real, real, k=3) == {"precision": 1.0, "recall": 1.0}
    far = metrics.precision_recall(real, real + 100.0, k=3)
    assert far == {"precision": 0.0, "recall": 0.0}
    # real has two far-apart modes; fake covers one of them only: precise but half the recall
    two_modes = np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 50])
    one_mode = rng.normal(size=(100, 2))
    result = metrics.precision_recall(two_modes, one_mode, k=3)
    assert result["precision"] > 0.9 and 0.4 < result["recall"] <= 0.5


def _full_matrix_precision_recall(real, fake, k):
    """The unblocked computation: whole N x M float64 distance matrices, same formula."""
    def dist(x, y):
        d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
        return np.sqrt(np.clip(d2, 0.0, None))
    rr = np.partition(dist(real, real), k, axis=1)[:, k]
    fr = np.partition(dist(fake, fake), k, axis=1)[:, k]
    d = dist(fake, real)
    return rr, fr, (d <= rr[None, :]).any(1).mean(), (d.T <= fr[None, :]).any(1).mean()


@pytest.mark.parametrize("block_size", [1, 7, 1000])
def test_precision_recall_blocked_equals_references(block_size):
    rng = np.random.default_rng(6)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(50, 5)) * 1.5 + 0.5
    result = metrics.precision_recall(real, fake, k=3, block_size=block_size)
    assert (result["precision"], result["recall"]) == pytest.approx(
        _brute_precision_recall(real, fake, 3))
    rr, fr, precision, recall = _full_matrix_precision_recall(real, fake, 3)
    assert result == {"precision": precision, "recall": recall}
    np.testing.assert_allclose(metrics.knn_radii(real, 3, block_size), rr, rtol=1e-12)
    np.testing.assert_allclose(metrics.knn_radii(fake, 3, block_size), fr, rtol=1e-12)
    assert metrics.precision_recall(real, real, k=3, block_size=block_size) == {
        "precision": 1.0, "recall": 1.0}
    assert metrics.precision_recall(real, real + 100.0, k=3, block_size=block_size) == {
        "precision": 0.0, "recall": 0.0}


def test_precision_recall_rejects_bad_block_size():
    x = np.zeros((10, 2))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="block_size"):
            metrics.precision_recall(x, x, block_size=bad)


@pytest.mark.parametrize("n, block_size, budget_mb", [
    (6000, 512, 32),
    pytest.param(20000, 1024, 200, marks=pytest.mark.slow),
])
def test_precision_recall_memory_is_bounded_by_the_block(n, block_size, budget_mb):
    """One full float64 distance matrix would be n^2 * 8 bytes (288 MB at 6000, 3.2 GB at
    20000); the blocked computation peaks (tracemalloc sees numpy's buffers) far below."""
    import tracemalloc
    rng = np.random.default_rng(7)
    budget = budget_mb * 2 ** 20
    assert n * n * 8 > 8 * budget
    real = rng.normal(size=(n, 8))
    fake = rng.normal(size=(n, 8)) * 1.2
    tracemalloc.start()
    try:
        result = metrics.precision_recall(real, fake, k=3, block_size=block_size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget, peak
    # fake is the wider set: it covers more of real than real covers of it
    assert 0.5 < result["precision"] < result["recall"] < 1.0
