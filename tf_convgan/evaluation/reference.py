"""Reference features cached on disk, and the metrics of generated vs reference features."""
import hashlib
import io
import json
import os
import re

import numpy as np

from tf_convgan.evaluation import inception
from tf_convgan.evaluation import metrics as metrics_lib
from tf_convgan.evaluation.features import RESIZE_CONVENTION
from tf_convgan import run_dir

CACHE_ENV_VAR = "TF_CONVGAN_FID_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tf_convgan", "fid_stats")


# --------------------------------------------------------------------------- reference cache

def cache_dir(path=None):
    path = path or os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR
    return path if run_dir.is_url(path) else os.path.expanduser(path)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-")[:40] or "data"


def reference_key(*, dataset, split, resolution, num, seed=0, details=""):
    """The cache file name: dataset, split, resolution, resize convention, sample count, stream
    seed, and a digest of the details (the source's full description, channels, fit, weights file)."""
    digest = hashlib.sha1(f"{dataset}|{split}|{resolution}|{RESIZE_CONVENTION}|{num}|{seed}|"
                          f"{details}".encode()).hexdigest()[:10]
    return (f"{_slug(dataset)}_{_slug(split)}_{resolution}px_{RESIZE_CONVENTION}_n{num}_s{seed}_"
            f"{digest}")


def _weights_id(weights_path):
    path = inception.resolve_weights_path(weights_path)
    return f"{os.path.basename(path)}:{run_dir.files.getsize(path)}"


def reference_features(source, num, *, extractor, dataset=None, split=None, seed=0,
                       directory=None, weights_path=None):
    """Inception features of `num` examples of a data source, computed once and cached in
    `directory` (default $TF_CONVGAN_FID_CACHE or ~/.cache/tf_convgan/fid_stats) as <key>.npz with
    `features` (float32), `mu`, `sigma` (float64) and the key's fields in `meta_json`."""
    dataset = dataset or source.description
    split = split or getattr(source, "split", "all")
    details = (f"{source.description}|{source.channels}|{getattr(source, 'fit', '')}|"
               f"{_weights_id(weights_path)}")
    key = reference_key(dataset=dataset, split=split, resolution=source.resolution, num=num,
                        seed=seed, details=details)
    path = os.path.join(cache_dir(directory), key + ".npz")
    if run_dir.files.isfile(path):  # local or a URL (gs://...), as the whole module
        with np.load(io.BytesIO(run_dir.read_bytes(path)), allow_pickle=False) as f:
            return f["features"]
    features = extractor.features_of_source(source, num, seed=seed,
                                            description=f"reference {dataset}/{split}")
    mu, sigma = metrics_lib.gaussian_statistics(features)
    meta = {"dataset": dataset, "split": split, "resolution": source.resolution,
            "resize": RESIZE_CONVENTION, "num": num, "seed": seed, "details": details}
    with run_dir.atomic_file(path) as f:
        np.savez(f, features=features, mu=mu, sigma=sigma,
                 meta_json=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return features


# --------------------------------------------------------------------------- metrics

def compute_metrics(fake_features, real_features, *, kid=True, kid_subsets=100,
                    kid_subset_size=1000, precision_recall=False, seed=0):
    """FID (and KID mean/std, precision/recall) of fake vs real features: a dict of floats."""
    out = {"fid": metrics_lib.frechet_distance_of_features(fake_features, real_features)}
    if kid:
        out["kid"], out["kid_std"] = metrics_lib.kernel_inception_distance(
            fake_features, real_features, num_subsets=kid_subsets,
            subset_size=kid_subset_size, seed=seed)
    if precision_recall:
        out.update(metrics_lib.precision_recall(real_features, fake_features))
    return out
