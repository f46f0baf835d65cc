"""Paths of the shared FID data (env vars with ../shared defaults) and skip markers."""
import os

import pytest

_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
FID_WEIGHTS = os.environ.get(
    "TF_CONVGAN_FID_WEIGHTS",
    os.path.join(_SHARED, "fid_inception", "fid_inception_2015-12-05_pool3_weights.npz"))
FID_REFERENCE_IO = os.environ.get(
    "TF_CONVGAN_FID_REFERENCE_IO",
    os.path.join(_SHARED, "fid_inception", "fid_inception_reference_io_seed0.npz"))
FASHION_MNIST_DIR = os.environ.get("TF_CONVGAN_FASHION_MNIST_DIR",
                                   os.path.join(_SHARED, "fashion_mnist"))

needs_weights = pytest.mark.skipif(
    not os.path.isfile(FID_WEIGHTS),
    reason=f"FID Inception weights not found at {FID_WEIGHTS} (set TF_CONVGAN_FID_WEIGHTS)")
needs_reference_io = pytest.mark.skipif(
    not (os.path.isfile(FID_WEIGHTS) and os.path.isfile(FID_REFERENCE_IO)),
    reason=f"FID weights / reference io not found ({FID_WEIGHTS}, {FID_REFERENCE_IO}; set "
           f"TF_CONVGAN_FID_WEIGHTS and TF_CONVGAN_FID_REFERENCE_IO)")
needs_fashion_mnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"Fashion-MNIST IDX files not found in {FASHION_MNIST_DIR} "
           f"(set TF_CONVGAN_FASHION_MNIST_DIR)")
