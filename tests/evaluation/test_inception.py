"""The Keras FID Inception port against the reference features, and the error for missing
weights."""
import numpy as np
import pytest

from tf_convgan.evaluation import inception
from fid_helpers import FID_REFERENCE_IO, needs_reference_io


@needs_reference_io
def test_port_reproduces_reference_pool3(extractor):
    reference = np.load(FID_REFERENCE_IO)
    x = np.transpose(reference["x"], (0, 2, 3, 1))  # NCHW -> NHWC, already (uint8 - 128) / 128
    features = extractor.model(x, training=False).numpy()
    error = np.abs(features - reference["pool3"]).max()
    print(f"max |pool3 - reference| = {error:.2e} (features up to {reference['pool3'].max():.2f})")
    assert features.shape == (4, 2048)
    assert error < 1e-4  # observed 8e-6


def test_missing_weights_error_names_path_and_remedy(tmp_path, monkeypatch):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as e:
        inception.fid_inception(str(missing))
    assert str(missing) in str(e.value) and "TF_CONVGAN_FID_WEIGHTS" in str(e.value)
    assert "convert_fid_weights" in str(e.value)
    monkeypatch.setenv("TF_CONVGAN_FID_WEIGHTS", str(missing))
    with pytest.raises(FileNotFoundError, match="TF_CONVGAN_FID_WEIGHTS"):
        inception.resolve_weights_path()


def test_default_weights_path_is_relative_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONVGAN_FID_WEIGHTS", raising=False)
    monkeypatch.setenv("TF_CONVGAN_CACHE", str(tmp_path / "cache"))  # no cached conversion
    monkeypatch.chdir(tmp_path)  # not the repository: the project root is still searched
    import os
    expected = os.path.join(inception.PROJECT_ROOT, inception.DEFAULT_WEIGHTS)
    if os.path.isfile(expected):
        assert inception.resolve_weights_path() == expected
    else:
        with pytest.raises(FileNotFoundError, match="project root"):
            inception.resolve_weights_path(download=False)
