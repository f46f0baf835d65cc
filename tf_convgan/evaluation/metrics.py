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


def _pairwise_distances(x, y, batch=2048):
    """Euclidean distances [len(x), len(y)] in float64, in row batches."""
    y_sq = (y * y).sum(axis=1)
    out = np.empty((len(x), len(y)))
    for s in range(0, len(x), batch):
        xb = x[s:s + batch]
        d2 = (xb * xb).sum(axis=1)[:, None] + y_sq[None, :] - 2.0 * xb @ y.T
        out[s:s + batch] = np.sqrt(np.clip(d2, 0.0, None))
    return out


def knn_radii(features, k=3):
    """Distance of each sample to its k-th nearest neighbour in the same set (itself excluded)."""
    features = np.asarray(features, np.float64)
    if len(features) <= k:
        raise ValueError(f"k-NN radii need more than k={k} samples, got {len(features)}")
    d = _pairwise_distances(features, features)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the sample itself (distance 0)


def precision_recall(real_features, fake_features, k=3):
    """Improved precision and recall (Kynkaanniemi et al. 2019), k-NN manifold estimates.

    precision: fraction of fake samples inside the real manifold (within the k-NN radius of some
    real sample); recall: fraction of real samples inside the fake manifold. Returns a dict."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    d = _pairwise_distances(fake, real)  # [fake, real]
    precision = float((d <= real_radii[None, :]).any(axis=1).mean())
    recall = float((d.T <= fake_radii[None, :]).any(axis=1).mean())
    return {"precision": precision, "recall": recall}


def pixel_features(images, size=8):
    """Grey-level images average-pooled to size x size, flattened: [N, H, W, C] -> [N, size^2]."""
    images = tf.convert_to_tensor(images, tf.float32)
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    pooled = tf.image.resize(grey, [size, size], method="area")
    return tf.reshape(pooled, [tf.shape(pooled)[0], -1]).numpy()
