"""Evaluation in bounded memory (tf_convgan/evaluation/streaming.py): FID's statistics and the
Inception Score gathered batch by batch equal those of all the features at once, KID and
precision/recall see the first `max_rows` rows, and the peak memory of an evaluation does not
grow with the number of images."""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT
from tf_convgan.evaluation import metrics, reference, streaming
from fid_helpers import FixedFeatureExtractor

UNEVEN = [1, 7, 50, 3, 2, 64, 13, 60]  # 200 rows in batches of uneven sizes


def _batches(array, sizes):
    start = 0
    for size in sizes:
        yield array[start:start + size]
        start += size
    assert start == len(array)


@pytest.mark.parametrize("dim, offset", [(5, 0.0), (2048, 0.0), (64, 1e3)])
def test_streamed_statistics_equal_numpy_cov(dim, offset):
    """mean and covariance from running float64 sums over uneven batches equal numpy's
    mean / np.cov of all the rows to 1e-10 relative (also with a mean far from 0, where a sum of
    raw outer products would lose digits: the sums are of x minus the first batch's mean)."""
    rng = np.random.default_rng(dim)
    features = (offset + rng.gamma(2.0, 1.0, (sum(UNEVEN), dim))
                * rng.uniform(0.1, 3.0, dim)).astype(np.float32)
    accumulator = streaming.GaussianAccumulator(dim)
    for batch in _batches(features, UNEVEN):
        accumulator.add(batch)
    mu, sigma = accumulator.statistics()
    want = features.astype(np.float64)
    scale = np.abs(np.cov(want, rowvar=False)).max()
    np.testing.assert_allclose(mu, want.mean(axis=0), rtol=1e-10, atol=0)
    np.testing.assert_allclose(sigma, np.cov(want, rowvar=False), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(np.diag(sigma), np.var(want, axis=0, ddof=1), rtol=1e-10)


def test_streamed_inception_score_equals_inception_score():
    """IS from per-split sums, the logits coming in uneven batches that straddle the splits
    (np.array_split of 200 into 7), equals metrics.inception_score of all the logits."""
    logits = np.random.default_rng(1).normal(0.0, 3.0, (sum(UNEVEN), 11))
    accumulator = streaming.InceptionScoreAccumulator(len(logits), 7)
    for batch in _batches(logits, UNEVEN):
        accumulator.add(batch)
    want = metrics.inception_score(logits, num_splits=7)
    np.testing.assert_allclose(accumulator.score(), want, rtol=1e-10)


def test_capped_summary_fid_uses_all_rows_kid_and_precision_recall_the_first():
    """A FeatureSummary with max_rows=60 of 200 rows: FID equals that of all 200 rows of each
    set, KID and precision/recall equal those of the first 60 rows; with max_rows >= N
    every metric equals compute_metrics of the arrays."""
    rng = np.random.default_rng(2)
    fake = rng.normal(0.0, 1.0, (200, 16)).astype(np.float32)
    real = rng.normal(0.3, 1.2, (200, 16)).astype(np.float32)

    def summary(features, max_rows):
        s = streaming.FeatureSummary(len(features), feature_dim=16, max_rows=max_rows)
        for batch in _batches(features, UNEVEN):
            s.add(batch)
        return s

    kwargs = dict(kid_subsets=5, kid_subset_size=40, precision_recall=True)
    capped = reference.compute_metrics(summary(fake, 60), summary(real, 60), **kwargs)
    first = reference.compute_metrics(fake[:60], real[:60], **kwargs)
    assert capped["fid"] == pytest.approx(metrics.frechet_distance_of_features(fake, real),
                                          rel=1e-9)
    assert capped["fid"] != pytest.approx(first["fid"], rel=1e-3)
    for key in ("kid", "kid_std", "precision", "recall"):
        assert capped[key] == first[key], key
    whole = reference.compute_metrics(summary(fake, 500), summary(real, 500), **kwargs)
    arrays = reference.compute_metrics(fake, real, **kwargs)
    assert whole["fid"] == pytest.approx(arrays["fid"], rel=1e-9)
    for key in ("kid", "kid_std", "precision", "recall"):
        assert whole[key] == arrays[key], key


class _FakeFeatureNetwork:
    """A stand-in for the FID Inception network: relu of a fixed projection of the image's
    64 values (the test patches the preprocessing to a plain cast of the 8x8 images)."""

    def __init__(self, dim=2048):
        import tensorflow as tf
        self.weights = tf.constant(np.random.default_rng(0).normal(0.0, 0.2, (64, dim)),
                                   tf.float32)

    def __call__(self, images, training=False):
        import tensorflow as tf
        return tf.nn.relu(tf.reshape(images, [tf.shape(images)[0], 64]) @ self.weights)


def _fake_extractor(monkeypatch_setattr, batch_size=40):
    import tensorflow as tf
    from tf_convgan.evaluation import features, inception
    monkeypatch_setattr(inception, "fid_inception", lambda *a, **k: _FakeFeatureNetwork())
    monkeypatch_setattr(features, "inception_inputs", lambda images: tf.cast(images, tf.float32))
    return features.FeatureExtractor(batch_size=batch_size, verbose=False)


def _generate(z, labels):
    import tensorflow as tf
    return tf.reshape(z[:, :64], [-1, 8, 8, 1])


def test_extractor_streams_into_a_summary_what_it_returns_as_an_array(monkeypatch):
    """features_of_generator with a sink: statistics equal those of the returned array, kept
    rows equal its first rows (the batches end inside the last, padded batch)."""
    extractor = _fake_extractor(monkeypatch.setattr)
    array = extractor.features_of_generator(_generate, num=130, z_dim=64, seed=3)
    summary = extractor.features_of_generator(_generate, num=130, z_dim=64, seed=3,
                                              sink=extractor.summary(130, max_rows=50))
    np.testing.assert_array_equal(summary.rows, array[:50])
    mu, sigma = summary.statistics()
    want_mu, want_sigma = metrics.gaussian_statistics(array)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma, want_sigma, rtol=0,
                               atol=1e-10 * np.abs(want_sigma).max())


def test_reference_cache_keeps_statistics_and_first_rows(tmp_path, monkeypatch):
    """The cache key is unchanged (files written before streaming, with every row, still
    serve); a file with more rows than asked serves the first ones, one with fewer is
    computed again; mu / sigma are those of all `num` features."""
    from tf_convgan import data
    monkeypatch.setattr(reference, "_weights_id", lambda path: "weights.npz:1")
    images = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    source = data.array_source(images=images, resolution=8)
    extractor = FixedFeatureExtractor()
    kwargs = dict(extractor=extractor, dataset="toy", split="train", directory=str(tmp_path))
    everything = np.random.default_rng(30).normal(size=(30, 8)).astype(np.float32)
    first = reference.reference_summary(source, 30, max_rows=10, **kwargs)
    assert extractor.calls == 1
    np.testing.assert_array_equal(first.rows, everything[:10])
    (path,) = tmp_path.glob("toy_train_8px_tf1bilinear_n30_s0_*.npz")
    with np.load(path) as f:
        assert f["features"].shape == (10, 8)
        np.testing.assert_allclose(f["mu"], everything.astype(np.float64).mean(0), rtol=1e-10)
        np.testing.assert_allclose(f["sigma"], np.cov(everything.astype(np.float64),
                                                      rowvar=False), rtol=1e-9)
    again = reference.reference_summary(source, 30, max_rows=4, **kwargs)  # fewer: from the file
    assert extractor.calls == 1
    np.testing.assert_array_equal(again.rows, everything[:4])
    np.testing.assert_array_equal(again.statistics()[1], first.statistics()[1])
    more = reference.reference_summary(source, 30, max_rows=20, **kwargs)  # more: computed
    assert extractor.calls == 2
    np.testing.assert_array_equal(more.rows, everything[:20])
    # a file as written before streaming (every row, no `rows` in meta) under the same key
    np.savez(path, features=everything, mu=np.zeros(8), sigma=np.eye(8),
             meta_json=np.frombuffer(b'{"num": 30}', np.uint8))
    old = reference.reference_summary(source, 30, max_rows=30, **kwargs)
    assert extractor.calls == 2
    np.testing.assert_array_equal(old.rows, everything)
    np.testing.assert_array_equal(old.statistics()[1], np.eye(8))
    np.testing.assert_array_equal(
        reference.reference_features(source, 30, **kwargs), everything)


def test_feature_rows_beyond_the_available_memory_are_refused(tmp_path, capsys, monkeypatch):
    """Keeping more feature rows than the available memory holds is one line naming the flag
    that asks for them (--max_feature_rows when it is the bound, else --num_samples), before
    the Inception network is loaded."""
    from fid_helpers import run_evaluate, write_folder
    images = np.zeros((3, 8, 8, 3), np.uint8)
    folder = write_folder(tmp_path / "images", images)
    monkeypatch.setattr(streaming, "available_memory_bytes", lambda: 5 * 10 ** 4)
    args = ["--image_dir", folder, "--reference_dir", folder, "--weights", "/nonexistent.npz"]
    status, _, err = run_evaluate(capsys, *args, "--max_feature_rows", "2")
    assert status == 2 and len(err.splitlines()) == 1, err
    # 2 rows x 2048 features x (4 + 8) bytes x 2 sets = 98,304 bytes
    assert err.startswith("error: --max_feature_rows: 2 feature rows per set need 0.0983 MB "
                          "for KID and precision/recall but 0.05 MB of memory is available"), err
    status, _, err = run_evaluate(capsys, *args, "--max_feature_rows", "0")
    assert status == 2 and err.startswith("error: --max_feature_rows: must be >= 1"), err
    monkeypatch.setattr(streaming, "available_memory_bytes", lambda: 10 ** 5)
    status, _, err = run_evaluate(capsys, *args, "--max_feature_rows", "5")  # 147,456 bytes
    assert status == 2 and err.startswith("error: --num_samples: 3 feature rows per set"), err
    monkeypatch.setattr(streaming, "available_memory_bytes", lambda: 10 ** 12)
    status, _, err = run_evaluate(capsys, *args, "--max_feature_rows", "5")
    assert status == 2 and err.startswith("error: --weights: "), err  # past the memory check


_MEASURE_EVALUATION = """
import resource, sys
import numpy as np
sys.path.insert(0, "tests")
from tests.evaluation import test_streaming as t
from tf_convgan.evaluation import metrics

def setattr_(obj, name, value):
    setattr(obj, name, value)

num = int(sys.argv[1])
extractor = t._fake_extractor(setattr_, batch_size=250)

def evaluate(num):  # what compute_metrics needs of N images: FID's statistics, KID's rows
    fake, real = (extractor.features_of_generator(
        t._generate, num=num, z_dim=64, seed=seed, sink=extractor.summary(num, max_rows=300))
        for seed in (0, 1))
    stats = [s.statistics() for s in (fake, real)]
    kid = metrics.kernel_inception_distance(fake.rows, real.rows, num_subsets=3,
                                            subset_size=100)
    pr = metrics.precision_recall(real.rows, fake.rows)
    return [float(stats[0][0].sum()), float(np.trace(stats[1][1])), *kid, *pr.values()]

evaluate(250)  # imported and traced
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = evaluate(num)
assert all(np.isfinite(v) for v in result), result
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""


def test_evaluation_memory_does_not_grow_with_num():
    """FID's statistics (streamed), KID and precision/recall (on the first 300 rows) of 1,000
    and of 4,000 images per set with a fake 2048-feature network: the peak resident memory
    added (ru_maxrss, KiB, in a fresh process) differs by less than 25 MB (holding the features
    of 2 x 3,000 more images would take 49 MB as float32, 98 MB more as float64). (The distance
    of the statistics, frechet_distance, is of 2048 x 2048 matrices whatever N.)"""
    grown = {}
    for num in (1000, 4000):
        result = subprocess.run([sys.executable, "-c", _MEASURE_EVALUATION, str(num)],
                                cwd=ROOT, capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert result.returncode == 0, result.stderr[-3000:]
        grown[num] = int(result.stdout.split()[-1])
    assert grown[4000] - grown[1000] < 25_000, grown
