"""The FID floor of Fashion-MNIST: FID of real training images against the test images.

    python scripts/fid_floor.py [--num 10000] [--resolution 32] [--output_json F]

With the conventions of `python -m tf_convgan.evaluate` (same Inception port, resize, padding to
`--resolution` and reference cache: the test split's features are the ones `evaluate
--dataset fashion_mnist --split test` uses): `--num` training images (seed 0) against `--num`
test images. A generator cannot be expected to score below it at the same sample count. Prints
one JSON line (also written to `--output_json`) with the wall time of each part.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tf_convgan import data as data_lib  # noqa: E402
from tf_convgan.evaluation import features, reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10000)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args()
    if not 2 <= args.num <= 10000:
        parser.error(f"--num: must be in [2, 10000] (the test split has 10,000), got {args.num}")
    extractor = features.FeatureExtractor(batch_size=args.batch_size)
    out = {"num": args.num, "resolution": args.resolution}
    feats = {}
    for split in ("test", "train"):
        source = data_lib.fashion_mnist_source(split=split, resolution=args.resolution)
        start = time.time()
        feats[split] = reference.reference_features(
            source, args.num, extractor=extractor, dataset="fashion_mnist", split=split,
            seed=0, directory=args.cache_dir)
        out[f"{split}_seconds"] = round(time.time() - start, 1)
    out.update(reference.compute_metrics(feats["train"], feats["test"]))
    line = json.dumps(out)
    print(line)
    if args.output_json:
        with open(args.output_json, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
