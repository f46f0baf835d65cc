"""Input data for GAN training: deterministic, resumable, infinite image streams.

Every source is an :class:`ImageSource`; ``source.dataset(seed=s, start=i)`` is an infinite
``tf.data.Dataset`` of ``(image, label)``, images float32 ``[resolution, resolution, channels]``
in ``[-1, 1]``, labels int32, and a pure function of ``(seed, start)``.

    preprocessing  conversion to [-1, 1], channels, the fit modes (:data:`FIT_MODES`),
                   :func:`preprocess_image`, and the checks of resolution, channels and fit;
                   GAN_stability's random flip and dequantization noise (augment_image)
    readers        file formats and where to find them: .npy / .npz, IDX (:func:`read_idx`,
                   the Fashion-MNIST directory and ``$TF_CONVGAN_FASHION_MNIST_DIR``), image
                   file checks, tensorflow-datasets builders (:class:`TFDSNotPreparedError`)
    sources        :class:`ImageSource`, the per-epoch permuted index stream, and the gin
                   sources: array_source, npy_source, idx_source, image_folder_source,
                   tfds_source, fashion_mnist_source
    pipeline       :func:`make_input_pipeline`: batches ``[global_batch_size, d_steps, ...]``,
                   optionally flipped and dequantized (random_flip, dequantization_noise)

Imports flow one way: pipeline -> sources -> readers, preprocessing. Bad input raises
:class:`~tf_convgan.errors.ConfigError`, checked once by the public function that takes it; a
missing file or directory raises ``FileNotFoundError`` (:class:`TFDSNotPreparedError` too).
"""
from tf_convgan.data.pipeline import make_input_pipeline
from tf_convgan.data.preprocessing import FIT_MODES, preprocess_image
from tf_convgan.data.readers import FASHION_MNIST_ENV_VAR, TFDSNotPreparedError, read_idx
from tf_convgan.data.sources import (ImageSource, array_source, fashion_mnist_source, idx_source,
                                     image_folder_source, npy_source, tfds_source)
from tf_convgan.data.sources import IndexedImageSource, TFDSImageSource  # noqa: F401

__all__ = [
    "FIT_MODES",
    "FASHION_MNIST_ENV_VAR",
    "ImageSource",
    "TFDSNotPreparedError",
    "array_source",
    "fashion_mnist_source",
    "idx_source",
    "image_folder_source",
    "make_input_pipeline",
    "npy_source",
    "preprocess_image",
    "read_idx",
    "tfds_source",
]
