"""2D data for the paper's small experiments (Mescheder et al. 2018, sec. 4.1 / appendix), and how
to measure and draw a 2D GAN: trained by the same GAN model and `train()` as images.

Problems (our parametrisation; the paper names the shapes but not all their sizes):
  gaussian    N(0, I)
  line        the segment {(t, t) : t ~ U[-1, 1]}
  circle      the unit circle, angle ~ U[0, 2 pi)
  four_lines  four parallel segments y in {-1.5, -0.5, 0.5, 1.5}, x ~ U[-1, 1] (a line drawn uniformly)
  ring8       8 Gaussians of std 0.02 on the circle of radius 2 (the usual 8-Gaussian ring)

`point_source(problem=...)` is a data source like the image sources: `dataset(seed=s, start=i)` is an
infinite stream of (point float32 [2], label 0) that is a pure function of (seed, start): chunk c
of 256 points is drawn with the stateless seed (seed, c), so resuming at `start` draws exactly the
points the uninterrupted stream had there.

Distance to the data: `wasserstein2(a, b)`, the exact 2-Wasserstein distance between two
equal-size point sets (optimal transport = an assignment, scipy's linear_sum_assignment).
`data_floor(source)`: W2 between two independent data samples of the evaluation's size, the
distance a perfect generator would get. Ring: `mode_coverage(points)`: the share of high-quality samples (within 3 std of a mode) and
the fraction of the 8 modes that received at least 1% of the samples as high-quality ones.
`toy2d_writer(problem=...)` is `train.sample_writer` for 2D: per sample step it writes a scatter
plot of G's samples over D's logit contours, logs W2 (and mode coverage) to TensorBoard and
appends them to metrics.csv (and keeps the latest frame as samples.npz).
"""
import csv
import io
import math
import os

import gin
import numpy as np
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

from tf_convgan import data as data_lib
from tf_convgan import run_dir
from tf_convgan.studies import plots
from tf_convgan.errors import ConfigError

PROBLEMS = ("gaussian", "line", "circle", "four_lines", "ring8")
RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.02
PLOT_LIMIT = {"gaussian": 3.5, "ring8": 2.5}
METRICS_CSV = run_dir.METRICS_CSV
FRAME_NPZ = "samples.npz"  # toy2d_writer's latest frame
_CHUNK = 256
_ALG = "philox"


def _check_problem(name, problem):
    if problem not in PROBLEMS:
        raise ConfigError(f"{name} must be one of {PROBLEMS}, got {problem!r}")


def ring_centres():
    angles = 2 * np.pi * np.arange(RING_MODES) / RING_MODES
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_points(problem, n, seed):
    """n points of `problem`, float32 [n, 2], a stateless function of seed (int64 [2])."""
    _check_problem("problem", problem)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2, alg=_ALG)

    def uniform(shape, s, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform(shape, s, minval=lo, maxval=hi, alg=_ALG)

    if problem == "gaussian":
        return tf.random.stateless_normal([n, 2], seeds[0], alg=_ALG)
    if problem == "line":
        t = uniform([n], seeds[0], -1.0, 1.0)
        return tf.stack([t, t], axis=1)
    if problem == "circle":
        a = uniform([n], seeds[0], 0.0, 2 * math.pi)
        return tf.stack([tf.cos(a), tf.sin(a)], axis=1)
    if problem == "four_lines":
        x = uniform([n], seeds[0], -1.0, 1.0)
        line = tf.random.stateless_uniform([n], seeds[1], 0, 4, dtype=tf.int32, alg=_ALG)
        return tf.stack([x, tf.cast(line, tf.float32) - 1.5], axis=1)
    centres = tf.constant(ring_centres(), tf.float32)
    mode = tf.random.stateless_uniform([n], seeds[0], 0, RING_MODES, dtype=tf.int32, alg=_ALG)
    return tf.gather(centres, mode) + RING_STD * tf.random.stateless_normal([n, 2], seeds[1],
                                                                             alg=_ALG)


class PointSource(data_lib.ImageSource):
    """Points of a 2D problem: the element structure of the image sources, (x [2], label 0).

    (A subclass of the sources' base class, so make_input_pipeline and train() take it as is.)"""

    num_classes = None
    data_shape = (2,)

    def __init__(self, problem):
        _check_problem("point_source.problem", problem)
        self.problem = problem
        self.description = f"toy2d:{problem}"
        self.resolution = self.channels = None

    def dataset(self, *, seed, start=0):
        first, offset = divmod(int(start), _CHUNK)
        problem = self.problem

        def chunk(c):
            points = sample_points(problem, _CHUNK, tf.stack([tf.constant(seed, tf.int64), c]))
            return points, tf.zeros([_CHUNK], tf.int32)

        ds = tf.data.Dataset.counter(first, dtype=tf.int64).map(chunk).unbatch().skip(offset)
        options = tf.data.Options()
        options.deterministic = True
        return ds.with_options(options)

    def sample(self, n, seed):
        """n evaluation points as numpy (seed stream (seed, -1): never a training chunk)."""
        return sample_points(self.problem, n, tf.constant([seed, -1], tf.int64)).numpy()

    @property
    def element_spec(self):
        return tf.TensorSpec([2], tf.float32), tf.TensorSpec([], tf.int32)


@gin.configurable
def point_source(*, problem=gin.REQUIRED):
    """The data source of a 2D problem (one of PROBLEMS)."""
    return PointSource(problem)


def wasserstein2(a, b):
    """Exact W2 between the empirical distributions of two [n, 2] point sets of equal size."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"wasserstein2 needs point sets of equal shape, got {a.shape}, {b.shape}")
    cost = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def mode_coverage(points, *, min_share=0.01):
    """(fraction of the 8 ring modes covered, share of high-quality samples): a sample is
    high-quality within 3 std of its nearest mode; a mode is covered when at least `min_share`
    of all samples are high-quality samples of it."""
    points = np.asarray(points, np.float64)
    dist = np.linalg.norm(points[:, None, :] - ring_centres()[None], axis=-1)
    nearest, close = dist.argmin(axis=1), dist.min(axis=1) < 3 * RING_STD
    counts = np.bincount(nearest[close], minlength=RING_MODES)
    return float(np.mean(counts >= min_share * len(points))), float(close.mean())


def evaluate(generator, source, *, num_points=1000, seed=0):
    """W2 (and mode coverage for ring8) of `num_points` generator samples against as many data
    points; fixed z and data for a given seed. Returns (metrics dict, fake, real)."""
    z = tf.random.stateless_normal([num_points, generator.z_dim], seed=[seed, 11])
    fake = generator(z, tf.zeros([num_points], tf.int32), training=False).numpy()
    real = source.sample(num_points, seed)
    metrics = {"w2": wasserstein2(fake, real)}
    if source.problem == "ring8":
        metrics["modes"], metrics["high_quality"] = mode_coverage(fake)
    return metrics, fake, real


def data_floor(source, *, num_points=1000, seed=0):
    """W2 between the evaluation's data points (`evaluate`'s, for this seed) and an independent
    sample of the data of the same size (stream (seed, -2)): what a perfect generator would score,
    the finite-sample floor of `evaluate`'s W2."""
    other = sample_points(source.problem, num_points, tf.constant([seed, -2], tf.int64)).numpy()
    return wasserstein2(source.sample(num_points, seed), other)


def discriminator_grid(discriminator, *, limit, size=60):
    axis = np.linspace(-limit, limit, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    logits = discriminator(points, np.zeros(len(points), np.int32), training=False)
    return x, y, np.asarray(logits).reshape(x.shape)


def save_frame(path, *, step, fake, real, grid, metrics):
    """The latest evaluation as an .npz, written crash-safe (run_dir.atomic_file: a local path
    or a URL)."""
    with run_dir.atomic_file(path) as f:
        np.savez(f, step=step, fake=fake, real=real, grid_x=grid[0], grid_y=grid[1],
                 logits=grid[2], **{f"metric_{k}": v for k, v in metrics.items()})


def load_frame(path):
    """{name: array} of a frame written by save_frame (a local path or a URL)."""
    with np.load(io.BytesIO(run_dir.read_bytes(path)), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def append_csv(path, step, metrics):
    run_dir.append_csv_row(path, step, {k: metrics[k] for k in sorted(metrics)})


def read_csv(path):
    """The rows of a metrics CSV (a local path or a URL) as dicts of floats."""
    text = run_dir.read_text(path)
    return [{k: float(v) for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text, newline=""))]


@gin.configurable
def toy2d_writer(*, problem=gin.REQUIRED, num_points=1000, plot=True):
    """A `train.sample_writer` for 2D problems (see the module docstring). It evaluates the
    trained generator (not the EMA copy): the convergence of the iterates is the question.

    Every sample step it also saves the latest frame (samples, data points, D's logit grid, step,
    metrics) as `samples.npz` in the model directory, so that figures can be drawn from a finished
    run without rebuilding it; plot=False skips the PNGs (samples/step_*.png, samples.png)."""
    source = PointSource(problem)
    limit = PLOT_LIMIT.get(problem, 2.0)

    def write(gan, model_dir, step, writer, *, num_samples=None, seed=0, extra=None):
        del num_samples
        metrics, fake, real = evaluate(gan.generator, source, num_points=num_points, seed=seed)
        metrics.update(extra or {})  # measured by the caller (toy2d_convergence's writer)
        grid = discriminator_grid(gan.discriminator, limit=limit)
        save_frame(os.path.join(model_dir, FRAME_NPZ), step=step, fake=fake, real=real,
                   grid=grid, metrics=metrics)
        if plot:
            frame = {"title": f"{problem} step {step}: W2 {metrics['w2']:.3f}", "real": real,
                     "fake": fake, "d_grid": grid}
            plots.toy2d_figure([frame], os.path.join(model_dir, "samples",
                                                     f"step_{step:07d}.png"), limit=limit)
            plots.toy2d_figure([frame], os.path.join(model_dir, "samples.png"), limit=limit)
        append_csv(os.path.join(model_dir, METRICS_CSV), step, metrics)
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"eval/{name}", value)
        return metrics

    return write
