"""A 2015-graph GraphDef synthesised from the shared FID weights (the pattern of the official
classify_image_graph_def.pb: Const kernel [kh, kw, in, out] -> Conv2D ->
BatchNormWithGlobalNormalization(conv, mean, variance, beta, gamma); optionally the logits layer
Consts softmax/weights [2048, 1008], softmax/biases [1008] -> MatMul -> BiasAdd -> Softmax), and
the inception-2015-12-05.tgz holding it."""
import io
import tarfile

import numpy as np
import tensorflow as tf

from tf_convgan.evaluation import weights

_E_NAMES = {"conv": "conv", "tower_conv": "tower/conv", "tower_mixed_conv": "tower/mixed/conv",
            "tower_mixed_conv_1": "tower/mixed/conv_1", "tower_1_conv": "tower_1/conv",
            "tower_1_conv_1": "tower_1/conv_1", "tower_1_mixed_conv": "tower_1/mixed/conv",
            "tower_1_mixed_conv_1": "tower_1/mixed/conv_1", "tower_2_conv": "tower_2/conv"}


def graph_name(ours):
    block, _, rest = ours.partition(".")
    if block in ("mixed_9", "mixed_10"):
        return f"{block}/{_E_NAMES[rest]}"
    return ours.replace(".", "/")


def layer_arrays(arrays, name):
    p = f"net.layers.{name}"
    return (arrays[f"{p}.weight"], arrays[f"{p}.beta"], arrays[f"{p}.mean"], arrays[f"{p}.var"])


def synthetic_softmax(seed=0):
    """A stand-in logits layer: (weights [2048, 1008], biases [1008]) float32."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.05, (2048, 1008)).astype(np.float32),
            rng.normal(0, 1.0, 1008).astype(np.float32))


def synthetic_graph_def(arrays, meta, softmax=None):
    graph = tf.compat.v1.GraphDef()

    def add(name, op, inputs=(), **attrs):
        node = graph.node.add(name=name, op=op)
        node.input.extend(inputs)
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        return node

    def const(name, value):
        add(name, "Const", value=tf.compat.v1.AttrValue(tensor=tf.make_tensor_proto(value)))

    for ours in weights.torch_names().values():
        g = graph_name(ours)
        w, beta, mean, var = layer_arrays(arrays, ours)
        cfg = meta[f"net.layers.{ours}"]
        const(f"{g}/conv2d_params", np.transpose(w, (2, 3, 1, 0)))
        for suffix, value in (("moving_mean", mean), ("moving_variance", var), ("beta", beta),
                              ("gamma", np.ones_like(beta))):
            const(f"{g}/batchnorm/{suffix}", value)
        s = cfg["stride"]
        add(f"{g}/Conv2D", "Conv2D", ["input", f"{g}/conv2d_params"],
            strides=tf.compat.v1.AttrValue(list=tf.compat.v1.AttrValue.ListValue(i=[1, s, s, 1])),
            padding=tf.compat.v1.AttrValue(s=b"VALID" if cfg["padding"] == 0 else b"SAME"))
        add(f"{g}/batchnorm", "BatchNormWithGlobalNormalization",
            [f"{g}/Conv2D", f"{g}/batchnorm/moving_mean", f"{g}/batchnorm/moving_variance",
             f"{g}/batchnorm/beta", f"{g}/batchnorm/gamma"],
            variance_epsilon=tf.compat.v1.AttrValue(f=0.001),
            scale_after_normalization=tf.compat.v1.AttrValue(b=False))
    if softmax is not None:
        w, b = softmax
        const("softmax/weights", w)
        const("softmax/biases", b)
        add("softmax/logits/MatMul", "MatMul", ["pool_3/_reshape", "softmax/weights"])
        add("softmax/logits", "BiasAdd", ["softmax/logits/MatMul", "softmax/biases"])
        add("softmax", "Softmax", ["softmax/logits"])
    return graph


def archive_bytes(pb_bytes, member=weights.GRAPH_MEMBER):
    """A .tgz holding `pb_bytes` as `member` (as the official archive, plus nothing else)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo(member)
        info.size = len(pb_bytes)
        tar.addfile(info, io.BytesIO(pb_bytes))
    return buffer.getvalue()
