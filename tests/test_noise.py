"""The noise source: bits -> floats in closed form, the same numbers under XLA, the right
distributions, replica rows, and the source scope."""
import threading

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from helpers import two_cpu_strategy
from tf_convgan import noise

SEED = tf.constant([3, 11], tf.int64)


def _bits(shape, seed=SEED):
    return noise.random_bits(shape, seed).numpy().astype(np.uint64)


def test_uniform_is_the_top_bits_of_philox_words():
    """uniform = floor(bits / 2^(32 - p)) / 2^p with p = 24 (float32), 11 (float16), 8
    (bfloat16), 32 (float64): exact, and < 1 also for the largest word."""
    bits = _bits([1000])
    for dtype, p in ((tf.float32, 24), (tf.float16, 11), (tf.bfloat16, 8), (tf.float64, 32)):
        got = noise.uniform([1000], SEED, dtype).numpy().astype(np.float64)
        np.testing.assert_array_equal(got, (bits >> (32 - p)) / 2.0 ** p)
        top = noise.uniform_from_bits(tf.constant([2 ** 32 - 1], tf.uint32), dtype)
        assert float(tf.cast(top, tf.float64)[0]) == 1.0 - 2.0 ** -p


def test_normal_is_box_muller_of_philox_words():
    """normal [n] = Box-Muller of words [2, ceil(n / 2)], the float64 NumPy formula to
    3e-7 max(r, 1) (float32 rounding of theta, r and z); the extreme words give |z| <= 6.76."""
    n = 1001
    bits = _bits([2, (n + 1) // 2])
    r = np.sqrt(-2 * np.log((bits[0] + 0.5) / 2.0 ** 32))
    theta = np.pi * (2 * (bits[1] >> 8) / 2.0 ** 24 - 1)
    expected = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n]
    got = noise.normal([n], SEED).numpy()
    bound = 3e-7 * np.maximum(np.concatenate([r, r])[:n], 1.0)
    assert np.all(np.abs(got - expected) <= bound), np.max(np.abs(got - expected) / bound)
    np.testing.assert_array_equal(noise.normal([7, 11, 13], SEED).numpy().ravel(),
                                  noise.normal([7 * 11 * 13], SEED).numpy())
    # words k = 0, 2^32 - 1, 2^31 (u1 = 2^-33, 1 - 2^-33, ~1/2); theta = 0, -pi, 0
    words = tf.constant([[0, 2 ** 32 - 1, 2 ** 31], [2 ** 31, 0, 2 ** 31]], tf.uint32)
    extremes = noise.normal_from_bits(words).numpy()
    r_max, r_min = np.sqrt(66 * np.log(2)), np.sqrt(-2 * np.log1p(-2.0 ** -33))
    np.testing.assert_allclose(extremes, [r_max, -r_min, np.sqrt(2 * np.log(2)), 0.0, 0.0, 0.0],
                               rtol=1e-6, atol=1e-9)


def test_distributions():
    """400,000 draws: Kolmogorov-Smirnov against N(0, 1) and U[0, 1), mean, std, and the
    correlation of the two halves of the pairs (cos and sin of the same r)."""
    z = noise.normal([400000], SEED).numpy().astype(np.float64)
    u = noise.uniform([400000], noise.fold_in(SEED, 1)).numpy().astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.std() - 1) < 5e-3
    assert abs(np.corrcoef(z[:200000], z[200000:])[0, 1]) < 5 / np.sqrt(200000)
    assert abs(np.corrcoef(z[:200000] ** 2, z[200000:] ** 2)[0, 1]) < 5 / np.sqrt(200000)
    assert u.min() >= 0 and u.max() < 1


def test_draws_depend_on_the_seed():
    a = noise.normal([64], SEED).numpy()
    assert not np.allclose(a, noise.normal([64], noise.fold_in(SEED, 0)).numpy())
    np.testing.assert_array_equal(a, noise.normal([64], SEED).numpy())


def test_xla_draws_the_same_numbers():
    """jit_compile=True equals the graph function: uniforms exactly, normals to float rounding of
    log/cos/sin."""
    def draws(seed):
        return (noise.uniform([300, 5], noise.fold_in(seed, 4)), noise.normal([301, 5], seed),
                noise.normal([64], seed, tf.float16))

    graph = [t.numpy() for t in tf.function(draws)(SEED)]
    xla = [t.numpy() for t in tf.function(draws, jit_compile=True)(SEED)]
    np.testing.assert_array_equal(xla[0], graph[0])
    np.testing.assert_allclose(xla[1], graph[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(xla[2], graph[2], rtol=1e-3)


@pytest.mark.parametrize("draw", [noise.normal, noise.uniform], ids=["normal", "uniform"])
def test_two_replicas_tile_the_one_device_draw(draw):
    strategy = two_cpu_strategy()
    per_replica = strategy.run(tf.function(lambda: draw([3, 4], SEED)))
    parts = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    assert not np.allclose(parts[0], parts[1])
    np.testing.assert_array_equal(np.concatenate(parts), draw([6, 4], SEED).numpy())


class _Constant:
    def __init__(self, value):
        self.value = value

    def normal(self, shape, seed, dtype=tf.float32):
        return tf.fill(shape, tf.constant(self.value, dtype))

    uniform = normal


def test_source_scope_nests_and_is_per_thread():
    assert isinstance(noise.active_source(), noise.PhiloxNoise)
    with noise.source_scope(_Constant(1.0)):
        with noise.source_scope(_Constant(2.0)):
            np.testing.assert_array_equal(noise.uniform([2], SEED).numpy(), [2.0, 2.0])
            seen = []
            thread = threading.Thread(target=lambda: seen.append(noise.active_source()))
            thread.start()
            thread.join()
            assert isinstance(seen[0], noise.PhiloxNoise)
        np.testing.assert_array_equal(noise.normal([2], SEED).numpy(), [1.0, 1.0])
    with pytest.raises(RuntimeError):
        with noise.source_scope(_Constant(3.0)):
            raise RuntimeError("inside")
    assert isinstance(noise.active_source(), noise.PhiloxNoise)


def test_non_float_dtype_is_rejected():
    with pytest.raises(ValueError, match="int32"):
        noise.uniform([2], SEED, tf.int32)
