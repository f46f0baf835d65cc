"""The FID Inception weights: conversion into tf_convgan's .npz, and the first-use download.

Format (see ../shared/README.md): per conv layer NAME `NAME.weight` [out, in, kh, kw] (PyTorch
layout), `NAME.beta`, `NAME.mean`, `NAME.var` (the frozen batch norm, no scale), `__meta_json__`
(strides, paddings, pool types) and, when converted from the 2015 GraphDef, the logits layer
`softmax.weights` [2048, 1008] and `softmax.biases` [1008] (the graph's names).

Verification: the **content digest** (`content_sha256`, sha256 over the sorted arrays' names,
dtypes, shapes and bytes; an .npz file's own sha256 varies with zip timestamps) of the pool_3
arrays (everything but `softmax.*`) must be KNOWN_CONTENT_SHA256, the digest of the weights the
port is tested with (the port reproduces the reference pool_3 features to 8e-6). The logits layer
has no pinned digest: it is checked for shape and finiteness only.

First use (`ensure_weights`): when no weights file is given (argument, $TF_CONVGAN_FID_WEIGHTS) and
none is cached, the official graph GRAPH_URL (what TTUR and the original Inception Score code use)
is downloaded with a progress display, verified (its sha256 when GRAPH_ARCHIVE_SHA256 is known, the
converted content digest always), converted with the TensorFlow-only GraphDef reader (the graph is
parsed as a protobuf, never imported or run) and cached as
`<cache>/fid_inception_2015-12-05_<content digest[:16]>.npz`; <cache> is $TF_CONVGAN_CACHE, else
$XDG_CACHE_HOME/tf_convgan, else ~/.cache/tf_convgan. Offline, the archive can be placed at
`<cache>/inception-2015-12-05.tgz` by hand: it is verified and converted the same way. A download
or archive that fails verification is refused and nothing is cached.

`tools/convert_fid_weights.py` is the command line of the conversions (also the PyTorch port).
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request

import numpy as np

from tf_convgan.run_dir import files
from tf_convgan import run_dir

WEIGHTS_ENV_VAR = "TF_CONVGAN_FID_WEIGHTS"
CACHE_ENV_VAR = "TF_CONVGAN_CACHE"

# Content digest (see content_sha256) of ../shared/data/fid_inception/
# fid_inception_2015-12-05_pool3_weights.npz, the file the port is tested against; the pool_3
# arrays converted from the official GraphDef must have it too.
KNOWN_CONTENT_SHA256 = "9e3ab240fd6d888d1d9164120a39e1089e48125017b06663f30470c76d462481"
# sha256 of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (95,628,359 bytes), as pinned by
# several public projects that download it; it starts with the "6726825d" of the file name.
PTH_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

# The official 2015-12-05 Inception graph (TensorFlow's classify_image tutorial; TTUR's FID and the
# original Inception Score code download this file).
GRAPH_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
GRAPH_ARCHIVE = "inception-2015-12-05.tgz"
GRAPH_MEMBER = "classify_image_graph_def.pb"
# The archive's full sha256. NOT KNOWN HERE: this project was written without internet and no
# published digest of the archive could be established (TTUR and the original IS code do not
# check one). None = the archive's digest is printed but not checked; the download is still
# verified by the content digest of the converted pool_3 weights (KNOWN_CONTENT_SHA256). Fill it
# in (64 hex digits) once the digest of the official file has been checked.
GRAPH_ARCHIVE_SHA256 = None

LOGITS_WEIGHTS, LOGITS_BIASES = "softmax.weights", "softmax.biases"
NUM_LOGITS = 1008  # the 2015 graph's classes (1000 ImageNet classes + 8 unused)
FEATURE_DIM = 2048


class WeightsUnavailableError(FileNotFoundError):
    """The weights could not be found nor downloaded (one line: the URL, the file, where to put
    it)."""


class WeightsVerificationError(ValueError):
    """A downloaded or placed archive is not the official graph (digest, truncation, parse)."""


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


def pool3_content_sha256(arrays):
    """The content digest of the arrays up to pool_3 (all but the logits layer `softmax.*`)."""
    return content_sha256({k: v for k, v in arrays.items()
                           if not k.startswith("softmax.") and k != "__meta_json__"})


def has_logits(arrays):
    return LOGITS_WEIGHTS in arrays


def check_logits(arrays, origin):
    """The logits layer's shapes ([2048, 1008], [1008]) and finiteness; ValueError otherwise."""
    w, b = arrays.get(LOGITS_WEIGHTS), arrays.get(LOGITS_BIASES)
    if w is None or b is None:
        raise ValueError(f"{origin}: no logits layer ({LOGITS_WEIGHTS}, {LOGITS_BIASES})")
    if w.shape != (FEATURE_DIM, NUM_LOGITS) or b.shape != (NUM_LOGITS,):
        raise ValueError(f"{origin}: logits layer shapes {w.shape}, {b.shape}, expected "
                         f"({FEATURE_DIM}, {NUM_LOGITS}), ({NUM_LOGITS},)")
    if not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise ValueError(f"{origin}: the logits layer has non-finite values")


def _finish(arrays_by_layer, extra=None):
    """{layer: (weight OIHW, beta, mean, var)} (+ extra arrays) -> (arrays for np.savez, meta)."""
    arrays = {}
    for name, (w, beta, mean, var) in arrays_by_layer.items():
        prefix = f"net.layers.{name}"
        arrays.update({f"{prefix}.weight": w, f"{prefix}.beta": beta, f"{prefix}.mean": mean,
                       f"{prefix}.var": var})
    arrays.update(extra or {})
    arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    meta = build_meta({n: v[0] for n, v in arrays_by_layer.items()})
    return arrays, meta


# ---------------------------------------------------------------------------------- PyTorch

def from_state_dict(state):
    """pytorch-fid's FIDInceptionA..E state dict (numpy arrays) -> (arrays, meta), pool_3 only.

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


file_sha256 = files.file_sha256


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
    false) gives a layer; the Conv2D's filter is a Const [kh, kw, in, out]. The logits layer's
    Consts `softmax/weights` [2048, 1008] and `softmax/biases` [1008] become `softmax.weights`
    and `softmax.biases` when the graph has them."""
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
    extra = {}
    if "softmax/weights" in nodes and "softmax/biases" in nodes:
        extra = {LOGITS_WEIGHTS: const("softmax/weights"), LOGITS_BIASES: const("softmax/biases")}
        check_logits(extra, "softmax")
    return _finish(layers, extra)


def parse_graph_def(data):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    return graph_def


def load_graph_def(path):
    """The GraphDef of inception-2015-12-05.tgz (its classify_image_graph_def.pb; any gzipped
    file is read as that archive) or of a .pb."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped or str(path).endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(GRAPH_MEMBER)), None)
            if member is None:
                raise ValueError(f"{path}: the archive has no {GRAPH_MEMBER}")
            data = tar.extractfile(member).read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return parse_graph_def(data)


# ---------------------------------------------------------------------------------- output

def save_npz(path, arrays, meta):
    """Writes the .npz atomically (a crash leaves no partial file)."""
    with run_dir.atomic_file(path) as f:
        np.savez(f, __meta_json__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)


def _npz(path):
    """np.load of a local .npz, or of one on any TensorFlow filesystem (gs://...)."""
    return np.load(io.BytesIO(files.read_bytes(path)) if files.is_url(path) else path,
                   allow_pickle=False)


def read_npz(path):
    """(arrays without __meta_json__, meta) of a weights file."""
    with _npz(path) as f:
        arrays = {k: f[k] for k in f.files}
    if "__meta_json__" not in arrays:
        raise ValueError(f"{path}: not an FID Inception weights file (no __meta_json__)")
    return arrays, json.loads(bytes(arrays.pop("__meta_json__")).decode("utf-8"))


def file_has_logits(path):
    """Whether a weights .npz holds the logits layer (reads the zip directory only)."""
    with _npz(path) as f:
        return LOGITS_WEIGHTS in f.files


# ---------------------------------------------------------------------------------- first use

def cache_root(directory=None):
    """`directory`, else $TF_CONVGAN_CACHE, else $XDG_CACHE_HOME/tf_convgan, else
    ~/.cache/tf_convgan."""
    if directory:
        return os.path.expanduser(os.fspath(directory))
    if os.environ.get(CACHE_ENV_VAR):
        return os.path.expanduser(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return os.path.join(os.path.expanduser(base), "tf_convgan")


def cached_weights_path(directory=None, content_sha256=None):
    """Where the converted weights are cached: named with their pool_3 content digest."""
    digest = content_sha256 or KNOWN_CONTENT_SHA256
    return os.path.join(cache_root(directory), f"fid_inception_2015-12-05_{digest[:16]}.npz")


def placed_archive_path(directory=None):
    """Where an archive downloaded by hand is picked up."""
    return os.path.join(cache_root(directory), GRAPH_ARCHIVE)


def offline_help(directory=None, url=None):
    return (f"download {url or GRAPH_URL} ({GRAPH_ARCHIVE}) on a machine with internet and place "
            f"it at {placed_archive_path(directory)} (it is verified and converted on first "
            f"use), or set ${WEIGHTS_ENV_VAR} to converted weights "
            f"(tools/convert_fid_weights.py --graph {GRAPH_ARCHIVE} --out W.npz)")


def _one_line(text):
    return " ".join(str(text).split())


def _download(url, path, *, timeout, verbose):
    """Streams `url` into `path` with a progress display; (bytes, sha256). Raises
    WeightsUnavailableError when it cannot connect, WeightsVerificationError when the transfer
    is shorter than the announced Content-Length."""
    import keras

    digest, size = hashlib.sha256(), 0
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        remedy = offline_help(os.path.dirname(path), url)
        raise WeightsUnavailableError(_one_line(
            f"FID Inception weights: cannot download {url} ({reason}): {remedy}")) from None
    with response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        interactive = verbose and sys.stdout.isatty()
        if verbose:
            size_text = f" ({total / 1e6:.1f} MB)" if total else ""
            print(f"Downloading the FID Inception graph {url}{size_text}", file=sys.stderr,
                  flush=True)
        bar = keras.utils.Progbar(total, unit_name="byte") if interactive else None
        start = time.time()
        try:
            with open(path, "wb") as f:
                while True:
                    block = response.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    digest.update(block)
                    size += len(block)
                    if bar is not None:
                        bar.update(size)
        except OSError as e:  # connection dropped mid-way
            raise WeightsVerificationError(_one_line(
                f"download of {url} failed after {size} bytes ({e}); nothing was cached")) from None
    if verbose and not interactive:
        print(f"Downloaded {size} bytes in {time.time() - start:.0f} s", file=sys.stderr,
              flush=True)
    if total is not None and size != total:
        raise WeightsVerificationError(
            f"download of {url} is truncated ({size} of {total} bytes); nothing was cached")
    return size, digest.hexdigest()


def convert_archive(archive, out_path, *, archive_sha256=None, expected_sha256=None,
                    origin=None, archive_digest=None):
    """Verifies and converts inception-2015-12-05.tgz into `out_path` (written only when every
    check passes): its sha256 (when `archive_sha256` is known), the GraphDef, the pool_3 content
    digest (`expected_sha256`, default KNOWN_CONTENT_SHA256) and the logits layer."""
    origin = origin or archive
    expected_sha256 = expected_sha256 or KNOWN_CONTENT_SHA256
    digest = archive_digest or file_sha256(archive)
    if archive_sha256 and digest != archive_sha256:
        raise WeightsVerificationError(
            f"{origin}: sha256 {digest} is not that of the official {GRAPH_ARCHIVE} "
            f"({archive_sha256}): refused, nothing was cached")
    try:
        arrays, meta = from_graph_def(load_graph_def(archive))
    except Exception as e:  # a corrupted archive fails in gzip, tar, protobuf or the structure
        raise WeightsVerificationError(_one_line(
            f"{origin}: not a readable {GRAPH_ARCHIVE} ({type(e).__name__}: {e}): refused, "
            f"nothing was cached")) from None
    content = pool3_content_sha256(arrays)
    if content != expected_sha256:
        raise WeightsVerificationError(
            f"{origin}: the converted weights' content digest {content} is not that of the FID "
            f"Inception weights ({expected_sha256}): refused, nothing was cached")
    try:
        check_logits(arrays, origin)
    except ValueError as e:
        raise WeightsVerificationError(f"{e}: refused, nothing was cached") from None
    save_npz(out_path, arrays, meta)
    return digest


def ensure_weights(*, url=None, archive_sha256=None, expected_sha256=None, directory=None,
                   timeout=60, verbose=True):
    """The path of the converted 2015-graph weights (with the logits layer) in the cache; on
    first use they are made from an archive placed at `placed_archive_path()` or downloaded from
    `url` (default GRAPH_URL), verified and converted. `archive_sha256` defaults to
    GRAPH_ARCHIVE_SHA256, `expected_sha256` (the pool_3 content digest) to KNOWN_CONTENT_SHA256.
    Nothing is cached when a check fails."""
    url = url or GRAPH_URL
    archive_sha256 = archive_sha256 or GRAPH_ARCHIVE_SHA256
    target = cached_weights_path(directory, expected_sha256)
    if os.path.isfile(target):
        return target
    root = cache_root(directory)
    os.makedirs(root, exist_ok=True)
    placed = placed_archive_path(directory)
    if os.path.isfile(placed):
        if verbose:
            print(f"Converting {placed} (FID Inception weights)", file=sys.stderr, flush=True)
        convert_archive(placed, target, archive_sha256=archive_sha256,
                        expected_sha256=expected_sha256)
        return target
    part = os.path.join(root, f".{GRAPH_ARCHIVE}.{os.getpid()}.part")
    try:
        _, digest = _download(url, part, timeout=timeout, verbose=verbose)
        digest = convert_archive(part, target, archive_sha256=archive_sha256,
                                 expected_sha256=expected_sha256, origin=f"download of {url}",
                                 archive_digest=digest)
    finally:
        if os.path.exists(part):
            os.remove(part)
    if verbose:
        known = "matches the pinned digest" if archive_sha256 else "no pinned digest to compare"
        print(f"{GRAPH_ARCHIVE}: sha256 {digest} ({known}); converted weights verified and "
              f"cached at {target}", file=sys.stderr, flush=True)
    return target
