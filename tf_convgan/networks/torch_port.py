"""GAN_stability (PyTorch) state dicts <-> the Keras networks of the resnet family.

A state dict is a mapping from GAN_stability's parameter names (exactly as its modules'
`state_dict()` names them, e.g. `resnet.2.conv_s.weight`) to NumPy arrays in PyTorch layout:

| layer | PyTorch | Keras |
|---|---|---|
| conv | weight [out, in, kh, kw], bias [out] | kernel [kh, kw, in, out] (HWIO), bias |
| linear | weight [out, in], bias [out] | kernel [in, out], bias |
| embedding | weight [num_classes, embed_size] | embeddings, same layout |

The networks name their layers through `torch_layers()`: a list of (state-dict prefix, layer)
where a layer is a Conv2D, Dense, Embedding or a block with its own `torch_layers()`. Their
dense layers already see and produce features in PyTorch's (C, H, W) flatten order, so no
permutation beyond the transposes above is needed.

`load_state_dict` is strict: every key the network expects must be present with its exact shape
and no other key may appear; otherwise nothing is assigned and `StateDictMismatchError` names the
keys (and both shapes). A leading `module.` on every key (what `nn.DataParallel` adds, as in
GAN_stability's checkpoints) is stripped.
"""
from collections.abc import Mapping

import keras
import numpy as np

from tf_convgan.errors import ConfigError

from .common import build

_DATA_PARALLEL_PREFIX = "module."


class StateDictMismatchError(ConfigError):
    """A state dict whose keys or shapes do not fit the network."""


def _params(model):
    """[(torch name, keras variable, to_torch, from_torch)] of every parameter, in the
    network's `torch_layers()` order."""
    if not hasattr(model, "torch_layers"):
        raise TypeError(f"{type(model).__name__} has no GAN_stability counterpart "
                        f"(no torch_layers()); PyTorch state dicts fit the resnet family only")
    if not model.built or not model.weights:
        build(model)
    out = []

    def visit(prefix, layer):
        if hasattr(layer, "torch_layers"):
            for name, sub in layer.torch_layers():
                visit(f"{prefix}.{name}" if prefix else name, sub)
        elif isinstance(layer, keras.layers.Conv2D):
            out.append((f"{prefix}.weight", layer.kernel,
                        lambda k: np.transpose(k, (3, 2, 0, 1)),
                        lambda w: np.transpose(w, (2, 3, 1, 0))))
            if layer.use_bias:
                out.append((f"{prefix}.bias", layer.bias, _same, _same))
        elif isinstance(layer, keras.layers.Dense):
            out.append((f"{prefix}.weight", layer.kernel, np.transpose, np.transpose))
            if layer.use_bias:
                out.append((f"{prefix}.bias", layer.bias, _same, _same))
        elif isinstance(layer, keras.layers.Embedding):
            out.append((f"{prefix}.weight", layer.embeddings, _same, _same))
        else:
            raise TypeError(f"{prefix}: no PyTorch layout for {type(layer).__name__}")

    for name, layer in model.torch_layers():
        visit(name, layer)
    return out


def _same(x):
    return x


def _torch_shape(variable, to_torch):
    return tuple(to_torch(np.empty(tuple(variable.shape), np.float32)).shape)


def state_dict(model):
    """The network's weights as a GAN_stability state dict: {name: float32 array, PyTorch layout}."""
    return {name: np.ascontiguousarray(to_torch(np.asarray(var.numpy(), np.float32)))
            for name, var, to_torch, _ in _params(model)}


def _strip_data_parallel(state):
    stripped = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise StateDictMismatchError(f"state dict keys must be strings, got {key!r}")
        name = key[len(_DATA_PARALLEL_PREFIX):] if key.startswith(_DATA_PARALLEL_PREFIX) else key
        if name in stripped:
            raise StateDictMismatchError(
                f"state dict has {name!r} both with and without the {_DATA_PARALLEL_PREFIX!r} prefix")
        stripped[name] = value
    return stripped


def load_state_dict(model, state):
    """Copies a GAN_stability state dict into `model` (built first if needed); returns `model`.

    Raises StateDictMismatchError (a ConfigError) naming the missing, unexpected or misshapen
    keys; nothing is assigned unless every key fits."""
    if not isinstance(state, Mapping):
        raise StateDictMismatchError(f"a state dict must be a mapping of names to arrays, "
                                     f"got {type(state).__name__}")
    state = _strip_data_parallel(state)
    params = _params(model)
    expected = {name for name, *_ in params}
    missing = [name for name, *_ in params if name not in state]
    unexpected = sorted(set(state) - expected)
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    values = []
    for name, var, to_torch, from_torch in params:
        if name not in state:
            continue
        value = np.asarray(state[name])
        want = _torch_shape(var, to_torch)
        if value.shape != want:
            problems.append(f"{name!r} has shape {list(value.shape)}, the network's is {list(want)}")
            continue
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            problems.append(f"{name!r} has dtype {value.dtype}, expected floats")
            continue
        values.append((var, from_torch(value.astype(np.float32))))
    if problems:
        raise StateDictMismatchError(
            f"state dict does not fit {type(model).__name__}: " + "; ".join(problems))
    for var, value in values:
        var.assign(value)
    return model


__all__ = ["StateDictMismatchError", "load_state_dict", "state_dict"]
