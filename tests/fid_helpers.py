"""Paths of the shared FID data (env vars with ../shared defaults), skip markers, and helpers of
the evaluation tests: image folders and the `evaluate` command run in process."""
import os

import numpy as np
import pytest

from tf_convgan.cli import evaluate
from tf_convgan.run_dir import images as images_lib

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


def write_folder(directory, images):
    """Writes uint8 images [N, H, W, C] as directory/0000.png, 0001.png, ...; returns the path."""
    for i, image in enumerate(np.asarray(images)):
        images_lib.write_png(os.path.join(directory, f"{i:04d}.png"), image)
    return str(directory)


def run_evaluate(capsys, *args):
    """`python -m tf_convgan.evaluate *args` in process: (exit status, stdout, stderr)."""
    status = evaluate.main(["evaluate", *args])
    out, err = capsys.readouterr()
    return status, out, err


class FixedFeatureExtractor:
    """An extractor whose features of a source are `num` fixed random 8-d vectors (a function of
    num and seed), streamed into the sink as the real one does; counts its calls."""

    def __init__(self):
        self.calls = 0

    def summary(self, num, *, max_rows, is_splits=None):
        from tf_convgan.evaluation import streaming
        return streaming.FeatureSummary(num, feature_dim=8, max_rows=max_rows)

    def features_of_source(self, source, num, *, seed, description, sink):
        self.calls += 1
        sink.add(np.random.default_rng(num + seed).normal(size=(num, 8)).astype(np.float32))
        return sink
