"""tools/convert_fid_weights.py, as far as it can be tested offline: a PyTorch-port state dict and a
2015-graph GraphDef synthesised from the shared weights convert back to the same content digest and
meta (the real .pth / .pb need a download)."""
import json
import os
import sys

import numpy as np
import pytest

from fid_graph import layer_arrays as _layer, synthetic_graph_def, synthetic_softmax
from fid_helpers import FID_WEIGHTS, needs_weights
from torch_files import Call, Global, Tensor, write_legacy, write_zip

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "tools"))
import convert_fid_weights as convert  # noqa: E402


@pytest.fixture(scope="module")
def shared():
    with np.load(FID_WEIGHTS) as f:
        arrays = {k: f[k] for k in f.files if k != "__meta_json__"}
        meta = json.loads(bytes(f["__meta_json__"]).decode())
    return arrays, meta


@needs_weights
def test_known_digest_and_meta_are_those_of_the_shared_weights(shared):
    arrays, meta = shared
    assert convert.content_sha256(arrays) == convert.KNOWN_CONTENT_SHA256
    layers = {k[len("net.layers."):-len(".weight")]: v for k, v in arrays.items()
              if k.endswith(".weight")}
    assert convert.build_meta(layers) == meta


def _port_state_dict(arrays):
    """pytorch-fid's state dict (FIDInceptionA..E: conv + BatchNorm2d with scale 1) of the
    shared weights."""
    state = {"fc.weight": np.zeros((1008, 2048), np.float32),
             "fc.bias": np.zeros(1008, np.float32)}
    for prefix, ours in convert.torch_names().items():
        w, beta, mean, var = _layer(arrays, ours)
        state.update({f"{prefix}.conv.weight": w, f"{prefix}.bn.weight": np.ones_like(beta),
                      f"{prefix}.bn.bias": beta, f"{prefix}.bn.running_mean": mean,
                      f"{prefix}.bn.running_var": var,
                      f"{prefix}.bn.num_batches_tracked": np.array(0, np.int64)})
    return state


@needs_weights
def test_state_dict_round_trip(shared, tmp_path):
    arrays, meta = shared
    state = _port_state_dict(arrays)
    out_arrays, out_meta = convert.from_state_dict(state)
    assert convert.content_sha256(out_arrays) == convert.KNOWN_CONTENT_SHA256
    assert out_meta == meta
    path = str(tmp_path / "w.npz")
    convert.save_npz(path, out_arrays, out_meta)
    assert convert.verify(path)
    state["Mixed_5b.branch1x1.bn.weight"] = state["Mixed_5b.branch1x1.bn.weight"] * 2
    with pytest.raises(ValueError, match="not 1"):
        convert.from_state_dict(state)


@needs_weights
def test_graph_def_round_trip(shared):
    """The graph's pattern: Const kernel [kh, kw, in, out] -> Conv2D -> BatchNormWithGlobal-
    Normalization(conv, mean, variance, beta, gamma)."""
    arrays, meta = shared
    graph = synthetic_graph_def(arrays, meta)
    out_arrays, out_meta = convert.from_graph_def(graph)
    assert convert.content_sha256(out_arrays) == convert.KNOWN_CONTENT_SHA256
    assert out_meta == meta
    assert not convert.has_logits(out_arrays)


@needs_weights
def test_graph_def_with_logits_layer(shared, tmp_path):
    """softmax/weights and softmax/biases become softmax.weights / softmax.biases; the pool_3
    digest is unchanged, the script's --graph path writes and verifies them."""
    arrays, meta = shared
    w, b = synthetic_softmax()
    graph = synthetic_graph_def(arrays, meta, softmax=(w, b))
    out_arrays, out_meta = convert.from_graph_def(graph)
    assert out_meta == meta
    np.testing.assert_array_equal(out_arrays["softmax.weights"], w)
    np.testing.assert_array_equal(out_arrays["softmax.biases"], b)
    assert convert.pool3_content_sha256(out_arrays) == convert.KNOWN_CONTENT_SHA256
    assert convert.content_sha256(out_arrays) != convert.KNOWN_CONTENT_SHA256
    pb = tmp_path / "classify_image_graph_def.pb"
    pb.write_bytes(graph.SerializeToString())
    out = tmp_path / "w.npz"
    assert convert.main(["--graph", str(pb), "--out", str(out)]) == 0
    saved, _ = convert.read_npz(str(out))
    np.testing.assert_array_equal(saved["softmax.weights"], w)


def test_official_pth_digest_is_the_full_sha256():
    assert len(convert.PTH_SHA256) == 64 and int(convert.PTH_SHA256, 16) >= 0
    assert convert.PTH_SHA256.startswith("6726825d")  # the prefix in the official file name


@needs_weights
@pytest.mark.parametrize("writer", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_pth_file_is_read_without_torch_and_checked(shared, tmp_path, writer):
    """A .pth written in PyTorch's layouts converts to the tested weights; the full sha256 is
    checked before reading, and a file with a pickled global other than a tensor's is refused
    without running it."""
    arrays, meta = shared
    state = {name: Tensor.of(value, str(i))
             for i, (name, value) in enumerate(_port_state_dict(arrays).items())}
    pth = str(tmp_path / "pt_inception.pth")
    writer(pth, state)
    digest = convert.file_sha256(pth)
    out_arrays, out_meta = convert.from_state_dict(convert.load_pth(pth, expected_sha256=digest))
    assert convert.content_sha256(out_arrays) == convert.KNOWN_CONTENT_SHA256
    assert out_meta == meta
    with pytest.raises(ValueError, match="is not that of the official"):
        convert.load_pth(pth)  # not the official file's digest
    # A digest that differs only after the 8 characters of the name's prefix is refused too.
    with pytest.raises(ValueError, match="is not that of the official"):
        convert.load_pth(pth, expected_sha256=digest[:8] + "0" * 56)

    marker = tmp_path / "marker"
    state["payload"] = Call(Global("os", "system"), (f"touch {marker}",))
    writer(pth, state)
    with pytest.raises(ValueError, match="refusing to load the pickled global os.system"):
        convert.load_pth(pth, expected_sha256=convert.file_sha256(pth))
    assert not marker.exists()
    assert convert.main(["--pth", pth, "--out", str(tmp_path / "w.npz")]) == 2
    assert not (tmp_path / "w.npz").exists()
