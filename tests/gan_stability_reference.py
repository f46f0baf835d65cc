"""The GAN_stability oracle (golden outputs of the original PyTorch code; see its README.md):
where it lives ($TF_CONVGAN_GAN_STABILITY_REFERENCE, default ../shared/reference/gan_stability),
a skip marker, and loading its npz files with NumPy alone."""
import json
import os

import numpy as np
import pytest

REFERENCE_DIR = os.environ.get(
    "TF_CONVGAN_GAN_STABILITY_REFERENCE",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference",
                 "gan_stability"))

needs_reference = pytest.mark.skipif(
    not os.path.isfile(os.path.join(REFERENCE_DIR, "forward_resnet.npz")),
    reason=f"GAN_stability oracle not found in {REFERENCE_DIR} "
           f"(set TF_CONVGAN_GAN_STABILITY_REFERENCE)")


def load(name):
    """{key: array} of `<REFERENCE_DIR>/<name>` plus its decoded `config` (a dict)."""
    with np.load(os.path.join(REFERENCE_DIR, name), allow_pickle=False) as f:
        arrays = {key: f[key] for key in f.files}
    arrays["config"] = json.loads(bytes(arrays.pop("config_json")).decode())
    return arrays


def sub_state(arrays, prefix):
    """The state dict stored under `<prefix>/` (e.g. 'G', 'it1/G_ema'), prefix removed."""
    prefix = prefix.rstrip("/") + "/"
    return {k[len(prefix):]: v for k, v in arrays.items()
            if isinstance(k, str) and k.startswith(prefix) and "/" not in k[len(prefix):]}
