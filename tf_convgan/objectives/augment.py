"""Image augmentations T(x) for consistency regularization (Zhang et al. 2020, sec. 3 and 4.5).

Every augmentation has the signature

    augment(x, seed, *, <hyperparameters>) -> x'      x, x': [B, H, W, C] of the same static shape

and is pure: the randomness (one draw per example) is a stateless function of `seed` (int [2]),
drawn for the GLOBAL batch through `tf_convgan.noise` with each replica keeping its own rows, so
that the augmented batch does not depend on the number of replicas. Shapes are static and the ops
are XLA-compilable (no tf.image ops): a shift is padding + a per-example crop by `tf.gather`
(batch_dims=1), a flip is `tf.where`, cutout multiplies by a mask built from index comparisons.
Every op is differentiable in x (gather, where and a mask multiply pass gradients through).

  identity:          T(x) = x (CR with it is exactly 0; a test and a baseline).
  gaussian_noise:    x + sigma * eps, eps ~ N(0, I).
  shift_flip:        random translation by (dy, dx) in {-max_shift..max_shift}^2 and a horizontal
                     flip with probability 1/2: the paper's default and best augmentation
                     ("flipping horizontally and shifting by a few pixels"). The vacated pixels:
                     padding='zeros' (0, mid-grey for images in [-1, 1]) or 'reflect' (mirrored
                     about the border row / column, which is not repeated: StudioGAN's CR,
                     `F.pad(..., mode='reflect')` in src/utils/cr.py).
  cutout:            a square of side `size` (DeVries & Taylor 2017; its centre uniform over the
                     image, clipped at the borders) set to 0.
  shift_flip_cutout: shift_flip, then cutout.

Defaults (max_shift = 4, cutout size = 16 for 32x32, sigma = 0.1) are ours for 32x32 images; the
papers state the augmentation types, not every one of these numbers.
"""
import gin
import tensorflow as tf

from tf_convgan import noise
from tf_convgan.errors import ConfigError, check_int, check_nonnegative

# Purposes folded into an augmentation's seed.
_SHIFT, _FLIP, _CUTOUT, _NOISE = 0, 1, 2, 3


def _check_images(x):
    if x.shape.rank != 4 or not x.shape.is_fully_defined():
        raise ConfigError(f"augmentations expect images [batch, H, W, C] of static shape, got "
                          f"{x.shape}")


def _random_ints(batch, seed, low, high):
    """[batch] int32 uniform in {low, ..., high}, drawn for the global batch (replica rows)."""
    u = noise.uniform([batch], seed)
    return low + tf.minimum(tf.cast(tf.floor(u * float(high - low + 1)), tf.int32), high - low)


@gin.configurable
def identity(x, seed=None):
    """T(x) = x."""
    del seed
    return tf.convert_to_tensor(x)


@gin.configurable
def gaussian_noise(x, seed, *, sigma=0.1):
    """x + sigma * eps with eps ~ N(0, I) of x's shape."""
    check_nonnegative("gaussian_noise.sigma", sigma)
    x = tf.convert_to_tensor(x)
    return x + sigma * noise.normal(x.shape.as_list(), noise.fold_in(seed, _NOISE), x.dtype)


PADDINGS = ("zeros", "reflect")


def check_padding(name, padding, max_shift, height, width):
    """`padding` one of PADDINGS; reflection needs max_shift < H and < W (one mirror image)."""
    if padding not in PADDINGS:
        raise ConfigError(f"{name}.padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "reflect" and max_shift >= min(height, width):
        raise ConfigError(f"{name}.padding = 'reflect' needs max_shift < the image's height and "
                          f"width ({height}x{width}), got max_shift = {max_shift}")


def shift(x, dy, dx, max_shift, padding="zeros"):
    """Translates example i by (dy[i], dx[i]) pixels (|d| <= max_shift): out[i, h, w] =
    x[i, h - dy, w - dx] where that is inside the image; outside it, 0 (padding='zeros') or the
    pixel mirrored about the border without repeating it (padding='reflect': x[i, -k] is x[i, k],
    x[i, H - 1 + k] is x[i, H - 1 - k], as tf.pad's and PyTorch's 'REFLECT'). Padding + a
    per-example crop by gather (exact, differentiable, XLA-friendly)."""
    x = tf.convert_to_tensor(x)
    _check_images(x)
    batch, height, width, _ = x.shape.as_list()
    check_padding("shift", padding, max_shift, height, width)
    if max_shift == 0:
        return x
    p = max_shift
    padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]],
                    mode="REFLECT" if padding == "reflect" else "CONSTANT")
    rows = tf.range(height)[None, :] + (p - tf.cast(dy, tf.int32))[:, None]  # [B, H] into H + 2p
    cols = tf.range(width)[None, :] + (p - tf.cast(dx, tf.int32))[:, None]   # [B, W] into W + 2p
    out = tf.gather(padded, rows, axis=1, batch_dims=1)      # [B, H, W + 2p, C]
    return tf.gather(out, cols, axis=2, batch_dims=1)        # [B, H, W, C]


def flip(x, mask):
    """Horizontal flip of the examples where mask [B] (bool) is True."""
    x = tf.convert_to_tensor(x)
    _check_images(x)
    return tf.where(tf.reshape(mask, [-1, 1, 1, 1]), tf.reverse(x, axis=[2]), x)


def cutout_mask(shape, cy, cx, size):
    """[B, H, W, 1] float mask, 0 on the square of side `size` centred at (cy[i], cx[i]) (rows
    cy - size//2 .. cy - size//2 + size - 1, clipped at the borders), 1 elsewhere."""
    batch, height, width = shape[0], shape[1], shape[2]
    top = tf.cast(cy, tf.int32)[:, None] - size // 2
    left = tf.cast(cx, tf.int32)[:, None] - size // 2
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = (rows >= top) & (rows < top + size)          # [B, H]
    in_cols = (cols >= left) & (cols < left + size)        # [B, W]
    inside = in_rows[:, :, None] & in_cols[:, None, :]     # [B, H, W]
    del batch
    return 1.0 - tf.cast(inside, tf.float32)[..., None]


@gin.configurable
def shift_flip(x, seed, *, max_shift=4, flip_prob=0.5, padding="zeros"):
    """Random shift by up to `max_shift` pixels in each direction (vacated pixels: `padding`,
    'zeros' or 'reflect', see `shift`) and horizontal flip with probability `flip_prob`,
    independently per example."""
    check_int("shift_flip.max_shift", max_shift, minimum=0)
    if not 0.0 <= float(flip_prob) <= 1.0:
        raise ConfigError(f"shift_flip.flip_prob must be in [0, 1], got {flip_prob!r}")
    x = tf.convert_to_tensor(x)
    _check_images(x)
    batch = x.shape[0]
    check_padding("shift_flip", padding, max_shift, x.shape[1], x.shape[2])
    dy = _random_ints(batch, noise.fold_in(seed, _SHIFT, 0), -max_shift, max_shift)
    dx = _random_ints(batch, noise.fold_in(seed, _SHIFT, 1), -max_shift, max_shift)
    flips = noise.uniform([batch], noise.fold_in(seed, _FLIP)) < float(flip_prob)
    return flip(shift(x, dy, dx, max_shift, padding), flips)


@gin.configurable
def cutout(x, seed, *, size=16):
    """Cutout: a size x size square per example, centre uniform over the image, set to 0."""
    check_int("cutout.size", size, minimum=1)
    x = tf.convert_to_tensor(x)
    _check_images(x)
    batch, height, width, _ = x.shape.as_list()
    cy = _random_ints(batch, noise.fold_in(seed, _CUTOUT, 0), 0, height - 1)
    cx = _random_ints(batch, noise.fold_in(seed, _CUTOUT, 1), 0, width - 1)
    return x * tf.cast(cutout_mask(x.shape, cy, cx, size), x.dtype)


@gin.configurable
def shift_flip_cutout(x, seed, *, max_shift=4, flip_prob=0.5, size=16, padding="zeros"):
    """shift_flip followed by cutout (independent draws)."""
    x = shift_flip(x, noise.fold_in(seed, 10), max_shift=max_shift, flip_prob=flip_prob,
                   padding=padding)
    return cutout(x, noise.fold_in(seed, 11), size=size)
