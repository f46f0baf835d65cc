"""Throughput of FID feature extraction (images/s) on this machine, in one run.

    python benchmarks/fid_throughput.py [--batch_sizes 16,50] [--num_images 200] [--jit_compile]

Measures the Inception network alone on 299x299 inputs and the full path from 32x32 uint8 images
(TF1 bilinear resize to 299 + the network), for each batch size, after one warm-up batch.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_convgan.evaluation import features  # noqa: E402


def measure(extractor, images):
    extractor.features_of_images(images[:extractor.batch_size])  # warm-up: trace and compile
    start = time.perf_counter()
    extractor.features_of_images(images)
    return len(images) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_sizes", default="16,50")
    parser.add_argument("--num_images", type=int, default=200)
    parser.add_argument("--jit_compile", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (args.num_images, 32, 32, 3), dtype=np.uint8)
    full = rng.integers(0, 256, (args.num_images, 299, 299, 3), dtype=np.uint8)
    print(f"TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_logical_devices()]}, "
          f"CPU cores visible: {os.cpu_count()}, jit_compile={args.jit_compile}")
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        extractor = features.FeatureExtractor(batch_size=bs, jit_compile=args.jit_compile,
                                              verbose=False)
        no_resize = measure(extractor, full)
        with_resize = measure(extractor, small)
        print(f"batch {bs:4d}: network only (299x299 uint8) {no_resize:7.1f} images/s | "
              f"32x32 uint8 -> resize -> network {with_resize:7.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
