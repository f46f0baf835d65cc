"""Preprocessing of images to the training format, and the checks of its arguments.

:func:`preprocess_image` converts to ``channels`` (gray -> RGB by tiling, RGBA / gray+alpha
drop alpha, RGB -> gray by BT.601 luminance 0.299 R + 0.587 G + 0.114 B) and fits to
``resolution`` with ``fit`` in :data:`FIT_MODES`. Integer images are scaled to ``[-1, 1]``
(uint8 ``x`` maps to ``x / 127.5 - 1``, so 0 -> -1 and 255 -> 1 exactly).

:func:`augment_image` is the optional random part, applied by the input pipeline after this
scaling: GAN_stability's horizontal flip and uniform dequantization noise.
"""
from __future__ import annotations

import tensorflow as tf

from tf_convgan.errors import ConfigError, check_nonnegative, is_int

FIT_MODES = ("resize", "resize_crop", "pad", "none")


# --------------------------------------------------------------------------- validation
# The public functions of the package check resolution, channels and fit once, on entry
# (check_image_args); the helpers they call trust their arguments.


def check_resolution(resolution) -> int:
    """`resolution` as an int; ConfigError unless it is a positive integer."""
    if not is_int(resolution) or int(resolution) <= 0:
        raise ConfigError(f"`resolution` must be a positive int, got {resolution!r}.")
    return int(resolution)


def check_channels(channels) -> int:
    """`channels` as an int; ConfigError unless it is 1 (gray) or 3 (RGB)."""
    if not is_int(channels) or int(channels) not in (1, 3):
        raise ConfigError(f"`channels` must be 1 or 3, got {channels!r}.")
    return int(channels)


def check_fit(fit) -> str:
    """`fit`; ConfigError unless it is one of FIT_MODES."""
    if fit not in FIT_MODES:
        raise ConfigError(f"`fit` must be one of {FIT_MODES}, got {fit!r}.")
    return fit


def check_image_args(resolution, channels, fit):
    """(resolution, channels, fit), checked: the output format that preprocess_image and
    every source take."""
    return check_resolution(resolution), check_channels(channels), check_fit(fit)


def check_static_fit(height: int, width: int, resolution: int, fit: str, what: str) -> None:
    """Errors that can be detected before building any dataset (known image size)."""
    if fit == "pad" and (height > resolution or width > resolution):
        raise ConfigError(
            f"fit='pad' needs {what} no larger than `resolution`={resolution}, but they are "
            f"{height}x{width}; use fit='resize' or 'resize_crop', or a larger resolution.")
    if fit == "none" and (height, width) != (resolution, resolution):
        raise ConfigError(
            f"fit='none' needs {what} of exactly `resolution`x`resolution`="
            f"{resolution}x{resolution}, but they are {height}x{width}; choose another `fit`.")


# --------------------------------------------------------------------------- preprocessing


def _to_unit_range(image: tf.Tensor) -> tf.Tensor:
    """Integer images: [0, dtype.max] -> [-1, 1] (uint8: x / 127.5 - 1). Floats unchanged."""
    if image.dtype.is_integer:
        half = float(image.dtype.max) / 2.0
        return tf.cast(image, tf.float32) / half - 1.0
    if image.dtype.is_floating:
        return tf.cast(image, tf.float32)
    raise ConfigError(f"`image` must have an integer or float dtype, got {image.dtype.name}.")


def _luminance(rgb: tf.Tensor) -> tf.Tensor:
    weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    return tf.reduce_sum(rgb[..., :3] * weights, axis=-1, keepdims=True)


def _to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """[..., H, W, C] with C in 1..4 (gray, gray+alpha, RGB, RGBA) -> [..., H, W, channels]."""
    c = image.shape[-1]
    if c is not None:  # static channel count: plain Python branching
        if c not in (1, 2, 3, 4):
            raise ConfigError(f"`image` must have 1 to 4 channels, got {c}.")
        if c in (2, 4):  # drop alpha
            image = image[..., :c - 1]
            c -= 1
        if c == channels:
            return image
        if channels == 3:
            return tf.concat([image, image, image], axis=-1)
        return _luminance(image)
    # Dynamic channel count (e.g. tf.io.decode_image(channels=0)).
    c = tf.shape(image)[-1]
    check = tf.debugging.assert_less_equal(
        c, 4, message="`image` must have 1 to 4 channels (gray, gray+alpha, RGB, RGBA)")
    with tf.control_dependencies([check]):
        c = tf.where(c % 2 == 0, c - 1, c)  # 2 -> 1, 4 -> 3: drop alpha
    if channels == 3:
        return tf.cond(c == 1, lambda: tf.concat([image[..., :1]] * 3, axis=-1),
                       lambda: image[..., :3])
    return tf.cond(c == 1, lambda: image[..., :1], lambda: _luminance(image))


def _maximum(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return tf.maximum(a, b)


def _spatial_dims(image: tf.Tensor):
    """(height, width) of [..., H, W, C]: Python ints when static, else int32 tensors."""
    h, w = image.shape[-3], image.shape[-2]
    if h is None or w is None:
        dynamic = tf.shape(image)
        h = h if h is not None else dynamic[-3]
        w = w if w is not None else dynamic[-2]
    return h, w


def _fit(image: tf.Tensor, resolution: int, fit: str) -> tf.Tensor:
    """[..., H, W, C] (one image or a batch) -> [..., r, r, C]."""
    r = resolution
    h, w = _spatial_dims(image)
    static = isinstance(h, int) and isinstance(w, int)
    if fit == "none":
        if static:
            check_static_fit(h, w, r, fit, "the images")
            return image
        check = tf.debugging.assert_equal(
            tf.stack([h, w]), tf.constant([r, r]),
            message=f"fit='none': image size differs from `resolution`={r}")
        with tf.control_dependencies([check]):
            return tf.identity(image)
    if fit == "pad":
        if static:
            check_static_fit(h, w, r, fit, "the images")
        else:
            check = tf.debugging.assert_less_equal(
                tf.maximum(h, w), r,
                message=f"fit='pad': image is larger than `resolution`={r}")
            with tf.control_dependencies([check]):
                image = tf.identity(image)
        top, left = (r - h) // 2, (r - w) // 2
        paddings = ([[0, 0]] * (image.shape.rank - 3)
                    + [[top, r - h - top], [left, r - w - left], [0, 0]])
        return tf.pad(image, paddings, constant_values=-1.0)
    if fit == "resize":
        if static and (h, w) == (r, r):
            return image
        # antialias only changes anything when downscaling (upscaling is plain bilinear).
        resized = tf.image.resize(image, [r, r], method="bilinear", antialias=True)
        return tf.clip_by_value(resized, -1.0, 1.0)
    # fit == "resize_crop": short side -> r (round half up), then centre crop r x r.
    short = min(h, w) if static else tf.minimum(h, w)
    new_h = _maximum(r, (h * r + short // 2) // short)
    new_w = _maximum(r, (w * r + short // 2) // short)
    if not (static and (new_h, new_w) == (h, w)):
        image = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear",
                                antialias=True)
        image = tf.clip_by_value(image, -1.0, 1.0)
    top, left = (new_h - r) // 2, (new_w - r) // 2
    return image[..., top:top + r, left:left + r, :]


def preprocess_image(image, *, resolution: int, channels: int = 3,
                     fit: str = "resize") -> tf.Tensor:
    """One image ``[H, W]`` or ``[H, W, C]`` -> float32 ``[resolution, resolution, channels]``.

    Integer images are scaled from ``[0, dtype.max]`` to ``[-1, 1]`` (uint8: ``x/127.5 - 1``);
    float images are assumed to be in ``[-1, 1]`` already. Channels: gray -> 3 by tiling,
    gray+alpha / RGBA drop alpha, 3 -> 1 by BT.601 luminance. ``fit``:

    * ``'resize'``: bilinear resize to ``resolution x resolution`` (antialiased when
      downscaling; the aspect ratio is not kept);
    * ``'resize_crop'``: resize the short side to ``resolution`` then centre crop;
    * ``'pad'``: pad symmetrically with the background value -1 (an odd difference puts
      the extra pixel at the bottom/right); the image must not be larger than resolution;
    * ``'none'``: the image must already be ``resolution x resolution``.

    Size errors raise :class:`~tf_convgan.errors.ConfigError` (a ``ValueError``) when the image
    shape is static, and ``tf.errors.InvalidArgumentError`` at run time otherwise (e.g. decoded
    files).
    """
    resolution, channels, fit = check_image_args(resolution, channels, fit)
    return _preprocess_image(image, resolution, channels, fit)


def _preprocess_image(image, resolution: int, channels: int, fit: str) -> tf.Tensor:
    """:func:`preprocess_image` with checked arguments."""
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[:, :, tf.newaxis]
    if image.shape.rank != 3:
        raise ConfigError(
            f"`image` must have shape [H, W] or [H, W, C], got {image.shape}.")
    return _preprocess(image, resolution, channels, fit)


def _preprocess(images: tf.Tensor, resolution: int, channels: int, fit: str) -> tf.Tensor:
    """[..., H, W, C] -> float32 [..., resolution, resolution, channels] (validated args)."""
    images = _to_unit_range(images)
    images = _to_channels(images, channels)
    images = _fit(images, resolution, fit)
    return tf.ensure_shape(images, images.shape[:-3] + [resolution, resolution, channels])


# --------------------------------------------------------------------------- augmentation
# GAN_stability's input transform (gan_training/inputs.py, torchvision): Resize, CenterCrop,
# RandomHorizontalFlip (p = 1/2), ToTensor (x / 255), Normalize(0.5, 0.5) (so x / 127.5 - 1, as
# here), then x + 1/128 * torch.rand(x.size()): noise U[0, 1/128) on every value in the [-1, 1]
# scale, whose lattice step is 2/255 (the noise covers 255/256 of a step; mean shift 1/256).


def check_augmentation(random_flip, dequantization_noise):
    """(random_flip, dequantization_noise) checked: a bool, and a finite number >= 0."""
    if not isinstance(random_flip, bool):
        raise ConfigError(f"`random_flip` must be True or False, got {random_flip!r}.")
    if isinstance(dequantization_noise, bool):
        raise ConfigError(f"`dequantization_noise` must be a finite number >= 0, got "
                          f"{dequantization_noise!r}.")
    check_nonnegative("`dequantization_noise`", dequantization_noise)
    return random_flip, float(dequantization_noise)


def augment_image(image, seed, *, random_flip: bool, dequantization_noise: float) -> tf.Tensor:
    """One image ``[H, W, C]`` (already in ``[-1, 1]``) -> the image mirrored left-right with
    probability 1/2 when ``random_flip``, then plus ``w * U[0, 1)`` independently on every value,
    ``w = dequantization_noise`` (0: none), in GAN_stability's order (flip, then noise). A pure
    function of ``seed`` (a stateless key, int64 ``[2]``): the flip and the noise use its two
    halves of ``stateless_split``. Output values lie in ``[x, x + w]`` (``x + w`` only through
    float32 rounding), so up to ``1 + w``; nothing is clipped, as in GAN_stability."""
    image = tf.convert_to_tensor(image, tf.float32)
    flip_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if random_flip:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.where(flip, tf.reverse(image, axis=[-2]), image)
    if dequantization_noise:
        image = image + dequantization_noise * tf.random.stateless_uniform(
            tf.shape(image), noise_seed)
    return image
