"""Distances between image distributions, as pure float64 functions of features or logits.

* `frechet_distance` / `frechet_distance_of_features`: FID's distance (Heusel et al. 2017) between
  Gaussians fitted to features; the matrix square root is taken by symmetric eigendecompositions in
  float64 (stable for singular or ill-conditioned covariances).
* `kernel_inception_distance`: KID (Binkowski et al. 2018), the unbiased MMD^2 estimate with the
  cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets, with its std.
* `inception_score`: IS (Salimans et al. 2016) from classifier logits, over splits.
* `precision_recall`: improved precision and recall (Kynkaanniemi et al. 2019), k-NN manifolds.
* `pixel_features`: small fixed features (downsampled grey pixels) to track training without a
  feature network.
"""
import numpy as np
import scipy.special
import tensorflow as tf


def gaussian_statistics(features):
    """Mean and covariance (float64, unbiased) of features [N, D]."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrtm_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    matrix = (matrix + matrix.T) / 2.0
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2):
    """Tr((sigma1 sigma2)^(1/2)) for covariance matrices, in float64.

    sigma1 sigma2 is similar to the symmetric PSD matrix A = sigma1^(1/2) sigma2 sigma1^(1/2), so
    the trace is the sum of the square roots of A's eigenvalues (clipped at 0): two symmetric
    eigendecompositions, no non-symmetric sqrtm and no imaginary parts to discard."""
    root1 = _sqrtm_psd(np.asarray(sigma1, np.float64))
    inner = root1 @ np.asarray(sigma2, np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"statistics of different shapes: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
             - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return float(value)


def frechet_distance_of_features(features1, features2):
    return frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))


def polynomial_kernel(x, y, degree=3, gamma=None, coef0=1.0):
    """(gamma x.y + coef0)^degree, gamma = 1 / D by default (KID's kernel), in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x, y, kernel=polynomial_kernel):
    """The unbiased estimate of MMD^2 between samples x [m, D] and y [n, D]:
    mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                 + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2.0 * k_xy.mean())


def kid_subset_indices(n1, n2, *, num_subsets, subset_size, seed):
    """The subsets KID uses: for each subset, subset_size indices into each set drawn without
    replacement, by numpy's default_rng(seed) (first set, then second set, per subset)."""
    rng = np.random.default_rng(seed)
    for _ in range(num_subsets):
        yield rng.choice(n1, subset_size, replace=False), rng.choice(n2, subset_size, replace=False)


def kernel_inception_distance(features1, features2, *, num_subsets=100, subset_size=1000, seed=0):
    """KID: (mean, std) over `num_subsets` subsets of the unbiased MMD^2 with the cubic kernel.

    `subset_size` is clipped to the smaller set's size (standard setting: 100 subsets of 1000).
    The std is that of the subset estimates (ddof=0, as Binkowski et al. and TTUR report it)."""
    f1, f2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    subset_size = min(subset_size, len(f1), len(f2))
    values = np.array([mmd2_unbiased(f1[i], f2[j]) for i, j in kid_subset_indices(
        len(f1), len(f2), num_subsets=num_subsets, subset_size=subset_size, seed=seed)])
    return float(values.mean()), float(values.std())


def inception_score(logits, num_splits=10):
    """IS = exp(E_x KL(p(y|x) || p(y))) per split of the samples: (mean, std) over the splits.

    p(y|x) = softmax(logits); p(y) is the split's mean of p(y|x). In float64."""
    logits = np.asarray(logits, np.float64)
    log_p = scipy.special.log_softmax(logits, axis=1)
    scores = []
    for part in np.array_split(log_p, num_splits):
        log_py = np.log(np.exp(part).mean(axis=0))
        kl = (np.exp(part) * (part - log_py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _squared_norms(x):
    return (x * x).sum(axis=1)


def _squared_distances(xb, xb_sq, y, y_sq):
    """|x|^2 + |y|^2 - 2 x.y [len(xb), len(y)] in float64 (may be slightly negative); the
    distance is sqrt(max(., 0)) of it."""
    d2 = xb_sq[:, None] + y_sq[None, :]
    d2 -= 2.0 * xb @ y.T
    return d2


def _distance_from_squared(d2):
    return np.sqrt(np.clip(d2, 0.0, None))


def _squared_thresholds(radii):
    """The largest float64 t per radius r with sqrt(max(t, 0)) <= r: since that function is
    monotone, `distance <= r` holds exactly when `squared distance <= t` (no sqrt per pair)."""
    t = radii * radii
    while True:
        too_big = _distance_from_squared(t) > radii
        if not too_big.any():
            break
        t = np.where(too_big, np.nextafter(t, -np.inf), t)
    while True:
        up = np.nextafter(t, np.inf)
        grow = _distance_from_squared(up) <= radii
        if not grow.any():
            return t
        t = np.where(grow, up, t)


def _check_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"`block_size` must be a positive integer, got {block_size!r}")
    return int(block_size)


def knn_radii(features, k=3, block_size=1024):
    """Distance of each sample to its k-th nearest neighbour in the same set (itself excluded).

    Computed in blocks: `block_size` rows against `block_size` columns at a time, keeping only
    the k + 1 smallest distances per row (np.partition), so the memory is
    O(block_size^2 + N k), not N^2. The k-th order statistic does not depend on the blocking:
    the result equals that of the full distance matrix (same float64 formula)."""
    features = np.asarray(features, np.float64)
    block_size = _check_block_size(block_size)
    n = len(features)
    if n <= k:
        raise ValueError(f"k-NN radii need more than k={k} samples, got {n}")
    sq = _squared_norms(features)
    radii = np.empty(n)
    for s in range(0, n, block_size):
        xb, xb_sq = features[s:s + block_size], sq[s:s + block_size]
        best = None  # [rows, <= k + 1]: the smallest distances seen so far, unordered
        for c in range(0, n, block_size):
            d = _squared_distances(xb, xb_sq, features[c:c + block_size], sq[c:c + block_size])
            if best is not None:
                d = np.concatenate([best, d], axis=1)
            best = np.partition(d, k, axis=1)[:, :k + 1] if d.shape[1] > k + 1 else d
        # index 0 of the order is the sample itself (distance ~0); sqrt(max(., 0)) is monotone,
        # so it commutes with the order statistic
        radii[s:s + block_size] = _distance_from_squared(np.partition(best, k, axis=1)[:, k])
    return radii


def knn_coverage(candidates, references, radii, block_size=1024):
    """Boolean [len(candidates)]: whether each candidate lies within radii[j] of some
    reference j (distance <= radius, the float64 formula of `knn_radii`).

    Blocks of `block_size` candidates are checked against chunks of `block_size` references;
    a candidate leaves the search as soon as it is covered and a block stops when all of its
    candidates are, so memory is O(block_size^2)."""
    candidates = np.asarray(candidates, np.float64)
    references = np.asarray(references, np.float64)
    radii = np.asarray(radii, np.float64)
    block_size = _check_block_size(block_size)
    if len(radii) != len(references):
        raise ValueError(f"{len(radii)} radii for {len(references)} references")
    c_sq, r_sq = _squared_norms(candidates), _squared_norms(references)
    thresholds = _squared_thresholds(radii)
    covered = np.zeros(len(candidates), bool)
    for s in range(0, len(candidates), block_size):
        open_rows = np.arange(s, min(s + block_size, len(candidates)))
        for c in range(0, len(references), block_size):
            d2 = _squared_distances(candidates[open_rows], c_sq[open_rows],
                                    references[c:c + block_size], r_sq[c:c + block_size])
            hit = (d2 <= thresholds[None, c:c + block_size]).any(axis=1)
            covered[open_rows[hit]] = True
            open_rows = open_rows[~hit]
            if not len(open_rows):
                break
    return covered


def precision_recall(real_features, fake_features, k=3, block_size=1024):
    """Improved precision and recall (Kynkaanniemi et al. 2019), k-NN manifold estimates.

    precision: fraction of fake samples inside the real manifold (within the k-NN radius of some
    real sample); recall: fraction of real samples inside the fake manifold. Returns a dict.
    Distances are computed `block_size` x `block_size` at a time (`knn_radii`, `knn_coverage`):
    bounded memory (~ a few block_size^2 float64 arrays) at any number of samples."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    real_radii = knn_radii(real, k, block_size)
    fake_radii = knn_radii(fake, k, block_size)
    precision = float(knn_coverage(fake, real, real_radii, block_size).mean())
    recall = float(knn_coverage(real, fake, fake_radii, block_size).mean())
    return {"precision": precision, "recall": recall}


def pixel_features(images, size=8):
    """Grey-level images average-pooled to size x size, flattened: [N, H, W, C] -> [N, size^2]."""
    images = tf.convert_to_tensor(images, tf.float32)
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    pooled = tf.image.resize(grey, [size, size], method="area")
    return tf.reshape(pooled, [tf.shape(pooled)[0], -1]).numpy()
