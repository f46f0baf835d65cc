"""Reference features cached on disk (their statistics and first rows), and the metrics of
generated vs reference features."""
import hashlib
import io
import json
import os
import re

import numpy as np

from tf_convgan.evaluation import inception
from tf_convgan.evaluation import metrics as metrics_lib
from tf_convgan.evaluation import streaming
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


def _cache_path(source, num, *, dataset, split, seed, directory, weights_path):
    dataset = dataset or source.description
    split = split or getattr(source, "split", "all")
    details = (f"{source.description}|{source.channels}|{getattr(source, 'fit', '')}|"
               f"{_weights_id(weights_path)}")
    key = reference_key(dataset=dataset, split=split, resolution=source.resolution, num=num,
                        seed=seed, details=details)
    meta = {"dataset": dataset, "split": split, "resolution": source.resolution,
            "resize": RESIZE_CONVENTION, "num": num, "seed": seed, "details": details}
    return os.path.join(cache_dir(directory), key + ".npz"), meta


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}


def _first_rows(npz, name, rows):
    """The first `rows` rows of the 2-D array `name` of an open npz, reading only those bytes
    (a cache written for a larger count costs no more memory); None if it has fewer."""
    with npz.zip.open(name + ".npy") as member:
        version = np.lib.format.read_magic(member)
        reader = _HEADER_READERS.get(version)
        header = reader(member) if reader else None
        if header is None or header[1] or len(header[0]) != 2 or header[2].hasobject:
            array = npz[name]  # an unusual layout: read it whole
            return array[:rows] if len(array) >= rows else None
        shape, _, dtype = header
        if shape[0] < rows:
            return None
        data = member.read(rows * shape[1] * dtype.itemsize)
        return np.frombuffer(data, dtype).reshape(rows, shape[1]).astype(np.float32)


def _read_cached(path, num, rows):
    """The cached summary of `path` with its first `rows` feature rows, or None when it holds
    fewer rows (written with a smaller max_rows)."""
    if run_dir.is_url(path):
        handle = io.BytesIO(run_dir.read_bytes(path))
    else:
        handle = open(path, "rb")
    with handle, np.load(handle, allow_pickle=False) as f:
        kept = _first_rows(f, "features", rows)
        if kept is None:
            return None
        return streaming.FeatureSummary.of_statistics(f["mu"], f["sigma"], kept, num)


def reference_summary(source, num, *, extractor, max_rows, dataset=None, split=None, seed=0,
                      directory=None, weights_path=None):
    """The streaming.FeatureSummary of `num` examples of a data source (statistics of all of
    them, their first min(num, max_rows) feature rows), computed once and cached in `directory`
    (default $TF_CONVGAN_FID_CACHE or ~/.cache/tf_convgan/fid_stats) as <key>.npz with
    `features` (float32, the first rows kept), `mu`, `sigma` (float64, of all `num`) and the
    key's fields in `meta_json` (`rows`: how many feature rows the file holds). A file with
    fewer rows than asked is computed again; one with more (e.g. every row, as files written
    before streaming) serves the first rows, read alone."""
    path, meta = _cache_path(source, num, dataset=dataset, split=split, seed=seed,
                             directory=directory, weights_path=weights_path)
    rows = min(num, max_rows)
    if run_dir.files.isfile(path):  # local or a URL (gs://...), as the whole module
        cached = _read_cached(path, num, rows)
        if cached is not None:
            return cached
    summary = extractor.features_of_source(
        source, num, seed=seed, description=f"reference {meta['dataset']}/{meta['split']}",
        sink=extractor.summary(num, max_rows=max_rows))
    mu, sigma = summary.statistics()
    meta["rows"] = rows
    with run_dir.atomic_file(path) as f:
        np.savez(f, features=summary.rows, mu=mu, sigma=sigma,
                 meta_json=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return summary


def reference_features(source, num, *, extractor, dataset=None, split=None, seed=0,
                       directory=None, weights_path=None):
    """The [num, 2048] features of `reference_summary` (every row kept: memory grows with
    `num`; the metrics stream with reference_summary)."""
    return reference_summary(source, num, extractor=extractor, max_rows=max(num, 2),
                             dataset=dataset, split=split, seed=seed, directory=directory,
                             weights_path=weights_path).rows


# --------------------------------------------------------------------------- metrics

def _summary(features):
    if isinstance(features, streaming.FeatureSummary):
        return features
    return streaming.FeatureSummary.of_array(features)


def compute_metrics(fake_features, real_features, *, kid=True, kid_subsets=100,
                    kid_subset_size=1000, precision_recall=False, seed=0):
    """FID (and KID mean/std, precision/recall) of fake vs real: a dict of floats.

    Each set is a [N, D] array or a streaming.FeatureSummary: FID uses the statistics of all
    N, KID and precision/recall the summary's kept rows (the first min(N, max_rows))."""
    fake, real = _summary(fake_features), _summary(real_features)
    out = {"fid": metrics_lib.frechet_distance(*fake.statistics(), *real.statistics())}
    if kid:
        out["kid"], out["kid_std"] = metrics_lib.kernel_inception_distance(
            fake.rows, real.rows, num_subsets=kid_subsets,
            subset_size=kid_subset_size, seed=seed)
    if precision_recall:
        out.update(metrics_lib.precision_recall(real.rows, fake.rows))
    return out
