"""Augmentations: closed forms (shift = roll with a zeroed border, flip, cutout area, Gaussian
noise), gradients, replica invariance of the per-example draws, XLA."""
import numpy as np
import pytest
import tensorflow as tf

import helpers

from tf_convgan import noise
from tf_convgan.objectives import augment
from tf_convgan.errors import ConfigError

RNG = np.random.default_rng(0)
X = tf.constant(RNG.uniform(0.5, 1.5, size=(6, 8, 10, 3)), tf.float32)  # no zeros in x
SEED = tf.constant([4, 9], tf.int64)


def _manual_shift(x, dy, dx):
    """out[h, w] = x[h - dy, w - dx], 0 outside: numpy roll with the wrapped part zeroed."""
    out = np.roll(x, (dy, dx), axis=(0, 1)).copy()
    if dy > 0:
        out[:dy] = 0
    elif dy < 0:
        out[dy:] = 0
    if dx > 0:
        out[:, :dx] = 0
    elif dx < 0:
        out[:, dx:] = 0
    return out


def test_shift_by_known_offsets_equals_manual_roll():
    dy = np.array([0, 1, -2, 3, -3, 2], np.int32)
    dx = np.array([0, -1, 2, 3, 1, -3], np.int32)
    out = augment.shift(X, dy, dx, max_shift=3).numpy()
    for i in range(6):
        np.testing.assert_array_equal(out[i], _manual_shift(X.numpy()[i], dy[i], dx[i]))


NINE = tf.constant(np.arange(1.0, 10.0).reshape(1, 3, 3, 1), tf.float32)  # rows 123 / 456 / 789


@pytest.mark.parametrize("dy,dx,padding,expected", [
    # out[h, w] = x[h - dy, w - dx]: reflect mirrors about the border without repeating it
    # (x[-1] = x[1], x[3] = x[1], x[4] = x[0]), as StudioGAN's F.pad(mode='reflect').
    (1, -1, "reflect", [[5, 6, 5], [2, 3, 2], [5, 6, 5]]),
    (-2, 2, "reflect", [[9, 8, 7], [6, 5, 4], [3, 2, 1]]),
    (1, -1, "zeros", [[0, 0, 0], [2, 3, 0], [5, 6, 0]]),
])
def test_shift_fills_vacated_pixels_by_reflection_or_zeros(dy, dx, padding, expected):
    """A 3x3 image 1..9 shifted by hand-computed offsets (max_shift 2)."""
    out = augment.shift(NINE, np.array([dy]), np.array([dx]), 2, padding=padding).numpy()
    np.testing.assert_array_equal(out[0, :, :, 0], np.array(expected, np.float32))


def test_shift_flip_with_reflect_padding_has_no_constant_border():
    """With reflection every output pixel is a pixel of the input (no 0 appears in x > 0), and
    the same draws as zero padding: the two agree wherever zero padding kept the image."""
    reflected = augment.shift_flip(X, SEED, max_shift=3, padding="reflect").numpy()
    zeros = augment.shift_flip(X, SEED, max_shift=3).numpy()
    assert reflected.min() > 0 and zeros.min() == 0
    kept = zeros != 0
    np.testing.assert_array_equal(reflected[kept], zeros[kept])


def test_flip_reverses_the_width_axis_where_asked():
    mask = np.array([True, False, True, False, False, True])
    out = augment.flip(X, mask).numpy()
    for i in range(6):
        expected = X.numpy()[i, :, ::-1] if mask[i] else X.numpy()[i]
        np.testing.assert_array_equal(out[i], expected)


def test_shift_flip_is_a_random_shift_and_flip_per_example():
    """Every output example is exactly one of the (2 max_shift + 1)^2 x 2 transforms of its input,
    the transforms differ between examples, and the same seed gives the same batch."""
    x = tf.constant(RNG.uniform(0.5, 1.5, size=(16, 8, 8, 3)), tf.float32)
    out = augment.shift_flip(x, SEED, max_shift=2).numpy()
    found = []
    for i in range(16):
        def candidate(dy, dx, f):
            shifted = _manual_shift(x.numpy()[i], dy, dx)
            return shifted[:, ::-1] if f else shifted
        matches = [(dy, dx, f) for dy in range(-2, 3) for dx in range(-2, 3) for f in (0, 1)
                   if np.array_equal(out[i], candidate(dy, dx, f))]
        assert matches, f"example {i} is no shift/flip of its input"
        found.append(matches[0])
    assert len(set(found)) > 4 and {f for _, _, f in found} == {0, 1}
    np.testing.assert_array_equal(out, augment.shift_flip(x, SEED, max_shift=2).numpy())
    assert not np.array_equal(out, augment.shift_flip(x, SEED + 1, max_shift=2).numpy())


def _clipped_area(c, size, n):
    top = c - size // 2
    return max(0, min(top + size, n) - max(top, 0))


def test_cutout_mask_area_is_the_clipped_square():
    cy = np.array([4, 0, 7, 3], np.int32)
    cx = np.array([5, 0, 9, 1], np.int32)
    mask = augment.cutout_mask([4, 8, 10, 3], cy, cx, 4).numpy()[..., 0]
    for i in range(4):
        assert (mask[i] == 0).sum() == _clipped_area(cy[i], 4, 8) * _clipped_area(cx[i], 4, 10)
        rows, cols = np.nonzero(mask[i] == 0)
        assert rows.min() == max(cy[i] - 2, 0) and cols.min() == max(cx[i] - 2, 0)
    assert (mask[0] == 0).sum() == 16  # inside: the full square


def test_cutout_zeroes_a_square_per_example():
    out = augment.cutout(X, SEED, size=4).numpy()
    zero = (out == 0).all(axis=-1)
    for i in range(6):
        rows, cols = np.nonzero(zero[i])
        assert 0 < zero[i].sum() <= 16
        assert zero[i].sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        np.testing.assert_array_equal(out[i][~zero[i]], X.numpy()[i][~zero[i]])


def test_shift_flip_cutout_composes():
    out = augment.shift_flip_cutout(X, SEED, max_shift=2, size=4).numpy()
    sf = augment.shift_flip(X, noise.fold_in(SEED, 10), max_shift=2).numpy()
    keep = out != 0
    np.testing.assert_array_equal(out[keep], sf[keep])
    assert (~keep).any()


def test_gaussian_noise_and_identity():
    eps = noise.normal(X.shape, noise.fold_in(SEED, 3))
    np.testing.assert_allclose(augment.gaussian_noise(X, SEED, sigma=0.2).numpy(),
                               X.numpy() + 0.2 * eps.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(augment.identity(X, SEED).numpy(), X.numpy())


def test_shift_gradient_is_the_inverse_shift():
    """d/dx sum(shift(x, d) * r) = shift(r, -d) (zero padding both ways): exact."""
    dy = np.array([1, -2, 0, 3, -1, 2], np.int32)
    dx = np.array([-3, 2, 1, 0, 3, -1], np.int32)
    r = tf.constant(RNG.normal(size=X.shape), tf.float32)
    x = tf.Variable(X)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(augment.shift(x, dy, dx, 3) * r)
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(),
                                  augment.shift(r, -dy, -dx, 3).numpy())


def test_draws_do_not_depend_on_the_replica_split():
    tf.distribute.MirroredStrategy._collective_key_base += 100000
    strategy = helpers.two_cpu_strategy()
    single = augment.shift_flip_cutout(X, SEED, max_shift=2, size=4).numpy()
    halves = tf.split(X, 2)
    per_replica = strategy.run(
        tf.function(lambda: augment.shift_flip_cutout(
            halves[0] if tf.distribute.get_replica_context().replica_id_in_sync_group == 0
            else halves[1], SEED, max_shift=2, size=4)))
    parts = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    np.testing.assert_array_equal(np.concatenate(parts), single)


def test_compiles_with_xla_and_draws_the_same():
    """Compiled with XLA, the deterministic parts and the random augmentations (whose draws are
    uniforms from Philox bits, see tf_convgan.noise) equal the eager ops exactly."""
    dy = tf.constant([1, -2, 0, 3, -1, 2])
    dx = tf.constant([-3, 2, 1, 0, 3, -1])
    mask = tf.constant([True, False, True, False, False, True])

    def fn(x):
        return augment.flip(augment.shift(x, dy, dx, 3), mask) * augment.cutout_mask(
            x.shape, dy + 4, dx + 5, 3)

    np.testing.assert_array_equal(tf.function(fn, jit_compile=True)(X).numpy(), fn(X).numpy())
    random_fn = lambda x, s: augment.shift_flip_cutout(x, s, max_shift=2, size=3)  # noqa: E731
    out = tf.function(random_fn, jit_compile=True)(X, SEED).numpy()
    np.testing.assert_array_equal(out, random_fn(X, SEED).numpy())
    assert (out == 0).all(axis=-1).any()
    noisy = lambda x, s: augment.gaussian_noise(x, s, sigma=0.2)  # noqa: E731
    np.testing.assert_allclose(tf.function(noisy, jit_compile=True)(X, SEED).numpy(),
                               noisy(X, SEED).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("call,param", [
    (lambda: augment.shift_flip(X, SEED, max_shift=-1), "shift_flip.max_shift"),
    (lambda: augment.shift_flip(X, SEED, flip_prob=2.0), "shift_flip.flip_prob"),
    (lambda: augment.cutout(X, SEED, size=0), "cutout.size"),
    (lambda: augment.gaussian_noise(X, SEED, sigma=-1.0), "gaussian_noise.sigma"),
    (lambda: augment.shift_flip(tf.zeros([2, 3]), SEED), "images"),
    (lambda: augment.shift_flip(X, SEED, padding="wrap"), r"shift_flip\.padding must be one of"),
    (lambda: augment.shift_flip(X, SEED, max_shift=8, padding="reflect"),
     r"shift_flip\.padding = 'reflect' needs max_shift < the image's height"),
])
def test_bad_hyperparameters_raise_by_name(call, param):
    with pytest.raises(ConfigError, match=param):
        call()
