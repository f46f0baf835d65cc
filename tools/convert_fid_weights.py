"""Convert the FID Inception weights into tf_convgan's .npz format (see ../shared/README.md).

Sources (download them on a machine with internet):
  * the PyTorch port used by pytorch-fid:
      https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    (read without PyTorch by tf_convgan.torch_pickle, which refuses anything but tensors and
    containers; the file's full sha256 must be PTH_SHA256, whose prefix "6726825d" is in the
    name)
        python tools/convert_fid_weights.py --pth pt_inception-2015-12-05-6726825d.pth --out W.npz
  * the official 2015 TensorFlow graph (what TTUR uses):
      http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz
        python tools/convert_fid_weights.py --graph inception-2015-12-05.tgz --out W.npz
    (the .tgz or the extracted classify_image_graph_def.pb)

The output is verified: its content digest (sha256 over the sorted arrays' names, dtypes, shapes
and bytes; the .npz file's own sha256 varies with zip timestamps) is printed and compared with
KNOWN_CONTENT_SHA256, the digest of the weights this project is tested with; with
--reference_io the converted network's pool_3 features are compared with the reference features.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

import numpy as np

# Content digest (see content_sha256) of ../shared/data/fid_inception/
# fid_inception_2015-12-05_pool3_weights.npz, the file the port is tested against.
KNOWN_CONTENT_SHA256 = "9e3ab240fd6d888d1d9164120a39e1089e48125017b06663f30470c76d462481"
# sha256 of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (95,628,359 bytes), as pinned by
# several public projects that download it; it starts with the "6726825d" of the file name.
PTH_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

# ---------------------------------------------------------------------------------- structure

_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
         "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_BLOCK_A = {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
            "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
            "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"}
_BLOCK_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
            "branch3x3dbl_3": "tower.conv_2"}
_BLOCK_C = {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
            "branch7x7_3": "tower.conv_2", "branch_pool": "tower_2.conv",
            **{f"branch7x7dbl_{i + 1}": f"tower_1.conv{'' if i == 0 else f'_{i}'}"
               for i in range(5)}}
_BLOCK_D = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
            **{f"branch7x7x3_{i + 1}": f"tower_1.conv{'' if i == 0 else f'_{i}'}"
               for i in range(4)}}
_BLOCK_E = {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
            "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
            "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
            "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"}
_BLOCKS = {"Mixed_5b": ("mixed", _BLOCK_A), "Mixed_5c": ("mixed_1", _BLOCK_A),
           "Mixed_5d": ("mixed_2", _BLOCK_A), "Mixed_6a": ("mixed_3", _BLOCK_B),
           "Mixed_6b": ("mixed_4", _BLOCK_C), "Mixed_6c": ("mixed_5", _BLOCK_C),
           "Mixed_6d": ("mixed_6", _BLOCK_C), "Mixed_6e": ("mixed_7", _BLOCK_C),
           "Mixed_7a": ("mixed_8", _BLOCK_D), "Mixed_7b": ("mixed_9", _BLOCK_E),
           "Mixed_7c": ("mixed_10", _BLOCK_E)}
_POOLS = {"pool0": "MaxPool2d", "pool1": "MaxPool2d", "pool2": "AvgPool2d",
          "mixed_3.pool": "MaxPool2d", "mixed_8.pool": "MaxPool2d",
          "mixed_9.tower_2_pool": "AvgPool2d", "mixed_10.tower_2_pool": "MaxPool2d",
          **{f"{b}.tower_2.pool": "AvgPool2d" for b in
             ("mixed", "mixed_1", "mixed_2", "mixed_4", "mixed_5", "mixed_6", "mixed_7")}}
# Convolutions with stride 2 (all others stride 1); padding is (kh // 2, kw // 2) for stride-1
# convs that the graph pads 'SAME' and 0 for the 'VALID' ones listed here.
_STRIDE_2 = {"conv", "mixed_3.conv", "mixed_3.tower.conv_2", "mixed_8.tower.conv_1",
             "mixed_8.tower_1.conv_3"}
_VALID_STRIDE_1 = {"conv_1", "conv_3", "conv_4"}


def torch_names():
    """{pytorch-fid state-dict prefix: npz layer name (without 'net.layers.')}."""
    names = dict(_STEM)
    for block, (ours, table) in _BLOCKS.items():
        names.update({f"{block}.{k}": f"{ours}.{v}" for k, v in table.items()})
    return names


def conv_meta(name, kernel_hw):
    stride = 2 if name in _STRIDE_2 else 1
    if stride == 2 or name in _VALID_STRIDE_1:
        padding = 0
    else:
        kh, kw = kernel_hw
        padding = kh // 2 if kh == kw else [kh // 2, kw // 2]
    return {"stride": stride, "padding": padding}


def build_meta(layers):
    """The __meta_json__ for conv layers {name: weight [out, in, kh, kw]} plus the pools."""
    meta = {f"net.layers.{n}": conv_meta(n, w.shape[2:]) for n, w in layers.items()}
    meta.update({f"net.layers.{n}": {"type": t} for n, t in _POOLS.items()})
    return meta


def content_sha256(arrays):
    """sha256 over the sorted arrays' names, dtypes, shapes and bytes (zip-timestamp free)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _finish(arrays_by_layer):
    """{layer: (weight OIHW, beta, mean, var)} -> (arrays for np.savez, meta)."""
    arrays = {}
    for name, (w, beta, mean, var) in arrays_by_layer.items():
        prefix = f"net.layers.{name}"
        arrays.update({f"{prefix}.weight": w, f"{prefix}.beta": beta, f"{prefix}.mean": mean,
                       f"{prefix}.var": var})
    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    meta = build_meta({n: v[0] for n, v in arrays_by_layer.items()})
    return arrays, meta


# ---------------------------------------------------------------------------------- PyTorch

def from_state_dict(state):
    """pytorch-fid's FIDInceptionA..E state dict (numpy arrays) -> (arrays, meta).

    BasicConv2d = conv (no bias) + BatchNorm2d(eps=1e-3); the port's BN scale is 1 (the 2015
    graph has none): a scale that is not 1 is an error."""
    layers = {}
    for prefix, ours in torch_names().items():
        weight = np.asarray(state[f"{prefix}.conv.weight"])
        scale = np.asarray(state.get(f"{prefix}.bn.weight", np.ones(weight.shape[0])))
        if not np.allclose(scale, 1.0):
            raise ValueError(f"{prefix}.bn.weight is not 1: not the FID Inception port")
        layers[ours] = (weight, state[f"{prefix}.bn.bias"], state[f"{prefix}.bn.running_mean"],
                        state[f"{prefix}.bn.running_var"])
    return _finish(layers)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_pth(path, expected_sha256=PTH_SHA256):
    """pytorch-fid's state dict as {name: numpy array}: the file's sha256 is checked first, then
    it is read with tf_convgan.torch_pickle (no PyTorch; no pickled code runs)."""
    digest = file_sha256(path)
    if digest != expected_sha256:
        raise ValueError(f"{path}: sha256 {digest} is not that of the official "
                         f"pt_inception-2015-12-05-6726825d.pth ({expected_sha256})")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tf_convgan.gan_stability import torch_pickle

    state = torch_pickle.load(path)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state


# ---------------------------------------------------------------------------------- TF graph

def _graph_layer_name(node_name):
    """'mixed_9/tower_1/mixed/conv_1' -> 'mixed_9.tower_1_mixed_conv_1'; 'mixed/tower/conv' ->
    'mixed.tower.conv'; 'conv_2' -> 'conv_2'."""
    parts = node_name.split("/")
    if parts[0] in ("mixed_9", "mixed_10"):
        return parts[0] + "." + "_".join(parts[1:])
    return ".".join(parts)


def from_graph_def(graph_def):
    """The 2015 graph's GraphDef -> (arrays, meta). Each BatchNormWithGlobalNormalization node
    `<layer>/batchnorm` (inputs: Conv2D, mean, variance, beta, gamma; scale_after_normalization
    false) gives a layer; the Conv2D's filter is a Const [kh, kw, in, out]."""
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}

    def const(name):
        node = nodes[name.split(":")[0].lstrip("^")]
        while node.op == "Identity":  # follow Identity nodes to the Const
            node = nodes[node.input[0].split(":")[0]]
        return tf.make_ndarray(node.attr["value"].tensor)

    layers = {}
    for node in graph_def.node:
        if node.op != "BatchNormWithGlobalNormalization":
            continue
        if node.attr["scale_after_normalization"].b:
            raise ValueError(f"{node.name}: scale_after_normalization is set: not the FID graph")
        eps = node.attr["variance_epsilon"].f
        if abs(eps - 1e-3) > 1e-9:
            raise ValueError(f"{node.name}: variance_epsilon {eps}, expected 0.001")
        conv = nodes[node.input[0].split(":")[0]]
        kernel = const(conv.input[1])
        name = _graph_layer_name(node.name.rsplit("/", 1)[0])
        layers[name] = (np.transpose(kernel, (3, 2, 0, 1)), const(node.input[3]),
                        const(node.input[1]), const(node.input[2]))
        strides = list(conv.attr["strides"].list.i)
        padding = conv.attr["padding"].s.decode()
        expected = conv_meta(name, kernel.shape[:2])
        if strides[1] != expected["stride"] or (padding == "VALID") != (expected["padding"] == 0):
            raise ValueError(f"{conv.name}: strides {strides} padding {padding} differ from the "
                             f"FID Inception structure ({expected})")
    return _finish(layers)


def load_graph_def(path):
    import tensorflow as tf

    if path.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as tar:
            member = next(m for m in tar.getmembers()
                          if m.name.endswith("classify_image_graph_def.pb"))
            data = tar.extractfile(member).read()
    else:
        data = open(path, "rb").read()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    return graph_def


# ---------------------------------------------------------------------------------- output

def save_npz(path, arrays, meta):
    buffer = io.BytesIO()
    np.savez(buffer, __meta_json__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with open(path + ".tmp", "wb") as f:
        f.write(buffer.getvalue())
    os.replace(path + ".tmp", path)


def verify(path, reference_io=None):
    """Content digest vs KNOWN_CONTENT_SHA256; pool_3 vs the reference io file when given."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "__meta_json__"}
    digest = content_sha256(arrays)
    ok = digest == KNOWN_CONTENT_SHA256
    print(f"{path}: content sha256 {digest} "
          f"({'matches' if ok else 'DIFFERS from'} the tested weights {KNOWN_CONTENT_SHA256})")
    if reference_io:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tf_convgan.evaluation.inception import fid_inception

        ref = np.load(reference_io)
        features = fid_inception(path)(np.transpose(ref["x"], (0, 2, 3, 1))).numpy()
        error = float(np.abs(features - ref["pool3"]).max())
        print(f"pool_3 vs {reference_io}: max abs error {error:.2e}")
        ok = ok and error < 1e-4
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pth", help="pt_inception-2015-12-05-6726825d.pth")
    source.add_argument("--graph", help="inception-2015-12-05.tgz or classify_image_graph_def.pb")
    source.add_argument("--verify", help="only verify an existing .npz")
    parser.add_argument("--out", help="output .npz")
    parser.add_argument("--reference_io", help="fid_inception_reference_io_seed0.npz to check "
                        "pool_3 against")
    args = parser.parse_args(argv)
    if args.verify:
        return 0 if verify(args.verify, args.reference_io) else 1
    if not args.out:
        parser.error("--out is required")
    try:
        if args.pth:
            arrays, meta = from_state_dict(load_pth(args.pth))
        else:
            arrays, meta = from_graph_def(load_graph_def(args.graph))
    except (ValueError, FileNotFoundError) as e:  # bad input: one line, status 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_npz(args.out, arrays, meta)
    return 0 if verify(args.out, args.reference_io) else 1


if __name__ == "__main__":
    sys.exit(main())
