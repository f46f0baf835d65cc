"""Shared helpers for the network modules: argument validation, small ops, `build`."""
import keras
import numpy as np
from keras import ops

from tf_convgan.errors import is_int


# ----------------------------------------------------------------------------- validation

def check_int(name, value, *, minimum=1):
    """Raise ValueError unless `value` is an int >= minimum."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_power_of_two(name, value, *, minimum, maximum):
    """Raise ValueError unless `value` is a power of two in [minimum, maximum]."""
    if (not is_int(value) or value < minimum or value > maximum
            or (value & (value - 1)) != 0):
        raise ValueError(f"{name} must be a power of two between {minimum} and {maximum}, "
                         f"got {value!r}")
    return int(value)


def check_multiple(name, value, *, of, minimum):
    """Raise ValueError unless `value` is a multiple of `of` and >= minimum."""
    if not is_int(value) or value < minimum or value % of != 0:
        raise ValueError(f"{name} must be a multiple of {of} that is >= {minimum}, "
                         f"got {value!r}")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# ----------------------------------------------------------------------------- small ops

def lrelu(x, slope=0.2):
    return ops.leaky_relu(x, negative_slope=slope)


def upsample_nearest_2x(x):
    """Nearest-neighbour 2x upsampling of an NHWC tensor."""
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)


def loss_logits(logits):
    """A discriminator's logits in the dtype its loss is computed in: float32 from a float32 or
    mixed-precision (float16 / bfloat16) network, float64 from a float64 one (kept exact, e.g.
    for the game Jacobian's float64 products)."""
    if keras.backend.standardize_dtype(logits.dtype) == "float64":
        return logits
    return ops.cast(logits, "float32")


def default_labels(labels, batch_like):
    """int32 [N] labels; None -> zeros of the batch size of `batch_like`."""
    if labels is None:
        return ops.zeros((ops.shape(batch_like)[0],), dtype="int32")
    return ops.cast(labels, "int32")


# ----------------------------------------------------------------------------- build

def build(model, batch_size=2):
    """Create `model`'s weights by calling it once on zeros (training=False, so no
    state update). Generators are recognised by a `z_dim` attribute, discriminators
    are fed [batch_size, resolution, resolution, 3] images (or [batch_size, *data_shape] when
    the model has a `data_shape`). Returns the model."""
    labels = np.zeros((batch_size,), np.int32)
    if hasattr(model, "z_dim"):
        inputs = np.zeros((batch_size, model.z_dim), np.float32)
    elif hasattr(model, "data_shape"):
        inputs = np.zeros((batch_size,) + tuple(model.data_shape), np.float32)
    else:
        inputs = np.zeros((batch_size, model.resolution, model.resolution, 3), np.float32)
    model(inputs, labels, training=False)
    return model


def count_params(model):
    """Number of scalars in all of the model's weights (trainable or not)."""
    return int(sum(np.prod(w.shape) for w in model.weights))


def planned_params(make_model, batch_size=2):
    """The number of scalars in the weights of the model `make_model()` returns, found without
    allocating them: the model is made and called on symbolic inputs (as `build` feeds) inside
    a Keras StatelessScope, where variables only record their shapes (their initialisation is
    dropped afterwards). So a configuration asking for an impossibly large network can be
    refused before anything is allocated."""
    from keras.src.backend.common import global_state

    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = make_model()
            labels = keras.KerasTensor((batch_size,), dtype="int32")
            if hasattr(model, "z_dim"):
                shape = (batch_size, model.z_dim)
            elif hasattr(model, "data_shape"):
                shape = (batch_size,) + tuple(model.data_shape)
            else:
                shape = (batch_size, model.resolution, model.resolution, 3)
            model(keras.KerasTensor(shape, dtype="float32"), labels, training=False)
            return count_params(model)
    finally:  # the recorded (never initialised) variables are dropped with the model
        global_state.set_global_attribute("uninitialized_variables", pending)


__all__ = ["build", "count_params", "planned_params"]


# ----------------------------------------------------------------------------- checkpoints

class CheckpointListsMixin:
    """Exposes layers held in list attributes (`self.blocks = [...]`) to tf.train.Checkpoint.

    Keras 3 tracks such lists for `weights` but does not hand them to tf.train.Checkpoint as
    children, so without this their variables are missing from checkpoints (the EMA generator's
    blocks, which no optimizer references, were not saved at all). Children are named
    `<attribute>_<index>`, e.g. `blocks_0`."""

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        children = super()._trackable_children(save_type, **kwargs)
        if save_type != "checkpoint":  # Keras converts the lists itself for SavedModels
            return children
        for attr in getattr(self, "_tracked", ()):
            value = getattr(self, attr, None)
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if hasattr(item, "_trackable_children"):
                        children.setdefault(f"{attr}_{i}", item)
        return children
