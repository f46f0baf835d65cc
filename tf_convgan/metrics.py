"""Distances between image distributions that do not depend on the discriminator.

`frechet_distance` is the distance of FID (Heusel et al. 2017) between Gaussians fitted to
features; `pixel_features` are small fixed features (downsampled grey pixels) used to track
training without a feature network.
"""
import numpy as np
import scipy.linalg
import tensorflow as tf


def gaussian_statistics(features):
    """Mean and covariance (float64, unbiased) of features [N, D]."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64.

    The matrix square root is taken with scipy's sqrtm; when the product is near singular, a
    small multiple of the identity is added to both covariances (as TTUR does)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_of_features(features1, features2):
    return frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))


def pixel_features(images, size=8):
    """Grey-level images average-pooled to size x size, flattened: [N, H, W, C] -> [N, size^2]."""
    images = tf.convert_to_tensor(images, tf.float32)
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    pooled = tf.image.resize(grey, [size, size], method="area")
    return tf.reshape(pooled, [tf.shape(pooled)[0], -1]).numpy()
