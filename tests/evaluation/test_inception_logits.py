"""The 2015 graph's logits layer (Inception Score): converted from a GraphDef synthesised from the
shared weights plus a stand-in softmax layer (tests/fid_graph.py), run by the Keras port, and the
`evaluate --inception_score` command."""
import json

import numpy as np
import pytest

from tf_convgan import data
from tf_convgan.evaluation import features, inception, metrics, weights
from fid_graph import synthetic_graph_def, synthetic_softmax
from fid_helpers import (FID_REFERENCE_IO, FID_WEIGHTS, needs_reference_io, run_evaluate,
                               write_folder)

pytestmark = needs_reference_io


@pytest.fixture(scope="module")
def softmax():
    return synthetic_softmax()


@pytest.fixture(scope="module")
def logits_weights(tmp_path_factory, softmax):
    """Weights converted from the synthesised GraphDef, with the logits layer."""
    arrays, meta = weights.read_npz(FID_WEIGHTS)
    out_arrays, out_meta = weights.from_graph_def(
        synthetic_graph_def(arrays, meta, softmax=softmax))
    path = str(tmp_path_factory.mktemp("logits") / "w.npz")
    weights.save_npz(path, out_arrays, out_meta)
    return path


def test_port_logits_are_pool3_times_softmax_weights(logits_weights, softmax):
    """pool_3 is still the reference's; logits = pool_3 @ softmax/weights (no bias, as the
    original IS code), + softmax/biases with logits_bias."""
    reference = np.load(FID_REFERENCE_IO)
    x = np.transpose(reference["x"], (0, 2, 3, 1))
    model = inception.fid_inception(logits_weights, logits=True, logits_bias=True)
    pool3, logits = (t.numpy() for t in model(x, training=False))
    assert logits.shape == (4, weights.NUM_LOGITS)
    assert np.abs(pool3 - reference["pool3"]).max() < 1e-4
    w, b = softmax
    expected = pool3.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(logits, expected + b, rtol=1e-4, atol=1e-4)
    unbiased = inception.fid_inception(logits_weights, logits=True)
    np.testing.assert_allclose(unbiased(x, training=False)[1].numpy(), expected,
                               rtol=1e-4, atol=1e-4)


def test_weights_without_logits_are_refused_for_the_inception_score(capsys, tmp_path):
    with pytest.raises(ValueError, match="no logits layer"):
        inception.fid_inception(FID_WEIGHTS, logits=True)
    folder = write_folder(tmp_path / "images", np.zeros((2, 8, 8, 3), np.uint8))
    status, out, err = run_evaluate(capsys, "--image_dir", folder, "--reference_dir", folder,
                                    "--weights", FID_WEIGHTS, "--inception_score", "--is_splits", "2")
    assert status == 2 and out == ""
    assert err.startswith("error: --weights: ") and "no logits layer" in err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_inception_score(logits_weights, capsys, tmp_path):
    """--inception_score adds IS over --is_splits splits of the evaluated images' logits, the
    same as metrics.inception_score of the extractor's logits of those images (in the folder
    source's order, which sets the splits)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), np.uint8)
    folder = write_folder(tmp_path / "images", images)
    status, out, err = run_evaluate(
        capsys, "--image_dir", folder, "--reference_dir", folder, "--weights", logits_weights,
        "--inception_score", "--is_splits", "2", "--batch_size", "4", "--kid_subset_size", "4",
        "--cache_dir", str(tmp_path / "stats"))
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    extractor = features.FeatureExtractor(weights_path=logits_weights, batch_size=4,
                                          verbose=False, logits=True)
    source = data.image_folder_source(directory=folder, resolution=16)  # what the command reads
    feats, logits = extractor.features_of_source(source, 4, seed=0, return_logits=True)
    assert feats.shape == (4, 2048) and logits.shape == (4, weights.NUM_LOGITS)
    score, std = metrics.inception_score(logits, num_splits=2)
    print(result)
    assert result["is_splits"] == 2
    assert result["inception_score"] == pytest.approx(score, rel=1e-4)
    assert result["inception_score_std"] == pytest.approx(std, rel=1e-3, abs=1e-6)
    assert result["fid"] == pytest.approx(0.0, abs=1e-2)  # the same folder as reference
    status, _, err = run_evaluate(capsys, "--image_dir", folder, "--reference_dir", folder,
                                  "--weights", logits_weights, "--inception_score",
                                  "--is_splits", "5")
    assert status == 2 and "--is_splits" in err
