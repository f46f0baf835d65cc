"""The reference-feature cache."""
import glob
import json
import os

import numpy as np

from tf_convgan.evaluation import reference
from fid_helpers import FID_WEIGHTS, FixedFeatureExtractor, needs_weights


@needs_weights
def test_reference_features_are_cached_by_key(tmp_path):
    from tf_convgan import data

    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    source = data.array_source(images=images, resolution=8)
    extractor = FixedFeatureExtractor()
    kwargs = dict(extractor=extractor, dataset="toy", split="train", directory=str(tmp_path),
                  weights_path=FID_WEIGHTS)
    first = reference.reference_features(source, 10, **kwargs)
    again = reference.reference_features(source, 10, **kwargs)
    assert extractor.calls == 1
    np.testing.assert_array_equal(first, again)
    files = glob.glob(str(tmp_path / "*.npz"))
    assert len(files) == 1
    name = os.path.basename(files[0])
    assert name.startswith("toy_train_8px_tf1bilinear_n10_s0_")
    with np.load(files[0]) as f:
        np.testing.assert_allclose(f["mu"], first.mean(0), rtol=1e-6)
        assert json.loads(bytes(f["meta_json"]))["num"] == 10
    reference.reference_features(source, 11, **kwargs)  # another count: another key
    reference.reference_features(data.array_source(images=images, resolution=16), 10, **kwargs)
    reference.reference_features(source, 10, **{**kwargs, "split": "test"})
    assert extractor.calls == 4 and len(glob.glob(str(tmp_path / "*.npz"))) == 4
