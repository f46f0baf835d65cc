"""FID / KID evaluation: Inception features in batches under a strategy, reference statistics
cached on disk, image sources (data sources, image folders; generators of run directories and
SavedModels come from run_dir.generators), and the in-training evaluator.

Image convention (fixed; TTUR's): images become uint8 first ([-1, 1] floats are mapped by
`images.to_uint8`, i.e. round((x + 1) * 127.5), as writing a PNG would), grey images are replicated
to 3 channels, then the uint8 values (as float32) are resized to 299x299 with TF1's bilinear resize
(`ResizeBilinear`, align_corners=False, half_pixel_centers=False: the op inside the 2015 graph that
TTUR feeds), then mapped to (x - 128) / 128. Images already 299x299 are not resized. This is
`RESIZE_CONVENTION`, part of every cache key.
"""
import csv
import hashlib
import json
import os
import re
import sys
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from tf_convgan import data as data_lib
from tf_convgan.run_dir import images as images_lib
from tf_convgan.evaluation import inception
from tf_convgan.evaluation import metrics as metrics_lib
from tf_convgan import run_dir
from tf_convgan.run_dir.checkpoints import CheckpointKeeper

RESIZE_CONVENTION = "tf1bilinear"  # ResizeBilinear(align_corners=False, half_pixel_centers=False)
CACHE_ENV_VAR = "TF_CONVGAN_FID_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "tf_convgan", "fid_stats")


# --------------------------------------------------------------------------- preprocessing

def to_uint8(images):
    """uint8 images unchanged; float images in [-1, 1] -> uint8 by round((x + 1) * 127.5)."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return images
    return images_lib.to_uint8(tf.cast(images, tf.float32))


def resize_bilinear_tf1(images, size=inception.INPUT_SIZE):
    """TF1's bilinear resize (align_corners=False, legacy pixel centers), float32 in and out."""
    return tf.raw_ops.ResizeBilinear(images=images, size=[size, size], align_corners=False,
                                     half_pixel_centers=False)


def inception_inputs(images):
    """uint8 (or [-1, 1] float) NHWC images of any size, 1 or 3 channels -> the network's input:
    float32 [N, 299, 299, 3], (resize(uint8) - 128) / 128."""
    x = tf.cast(to_uint8(images), tf.float32)
    if x.shape[-1] == 1:
        x = tf.tile(x, [1, 1, 1, 3])
    elif x.shape[-1] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    if tuple(x.shape[1:3]) != (inception.INPUT_SIZE, inception.INPUT_SIZE):
        x = resize_bilinear_tf1(x)
    return (x - 128.0) / 128.0


# --------------------------------------------------------------------------- feature extraction

class _Progress:
    def __init__(self, total, description, verbose):
        self.verbose = verbose
        self.interactive = sys.stdout.isatty()
        self.total, self.description = total, description
        self.start = time.time()
        self.done = 0
        if verbose and self.interactive:
            print(description, flush=True)
            self.bar = keras.utils.Progbar(total, unit_name="image")

    def update(self, done):
        self.done = done
        if not self.verbose:
            return
        if self.interactive:
            self.bar.update(done)
        elif done == self.total:
            rate = done / max(time.time() - self.start, 1e-9)
            print(f"{self.description}: {done} images, {rate:.1f} images/s", flush=True)


class FeatureExtractor:
    """The FID Inception network under a strategy: pool_3 features of images, in batches.

    `batch_size` is the global batch (split over the replicas); the last batch is padded and the
    padding dropped. The per-replica work (making images, preprocessing, the network) runs in one
    tf.function (XLA with `jit_compile=True`), so on GPUs/TPUs it stays on the device."""

    def __init__(self, *, weights_path=None, strategy=None, batch_size=50, jit_compile=False,
                 verbose=True):
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if batch_size < 1 or batch_size % replicas:
            raise ValueError(f"batch_size must be a positive multiple of the {replicas} replicas, "
                             f"got {batch_size}")
        self.batch_size = batch_size
        self.jit_compile = jit_compile
        self.verbose = verbose
        with self.strategy.scope():
            self.model = inception.fid_inception(weights_path)
        self._steps = {}

    def _step_fn(self, produce, key):
        if key in self._steps:
            return self._steps[key]
        model = self.model

        def replica_fn(inputs):
            return model(inception_inputs(produce(inputs)), training=False)

        replica_fn = tf.function(replica_fn, jit_compile=self.jit_compile)
        strategy = self.strategy

        @tf.function
        def step(dist_inputs):
            return strategy.gather(strategy.run(replica_fn, args=(dist_inputs,)), axis=0)

        self._steps[key] = step
        return step

    def _run(self, dataset, num, produce, key, description):
        """dataset: unbatched elements (at least `num`); produce: replica batch -> images."""
        bs = self.batch_size

        def pad(*batch):
            n = tf.shape(tf.nest.flatten(batch)[0])[0]
            return tuple(tf.ensure_shape(
                tf.pad(t, [[0, bs - n]] + [[0, 0]] * (t.shape.rank - 1)),
                [bs] + t.shape[1:].as_list())
                for t in batch)

        ds = dataset.take(num).batch(bs).map(pad).prefetch(2)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA
        ds = self.strategy.experimental_distribute_dataset(ds.with_options(options))
        step = self._step_fn(lambda inputs: produce(*inputs), key)
        out = np.empty((num, inception.FEATURE_DIM), np.float32)
        done = 0
        progress = _Progress(num, description, self.verbose)
        for batch in ds:
            features = step(batch).numpy()
            take = min(bs, num - done)
            out[done:done + take] = features[:take]
            done += take
            progress.update(done)
        if done != num:
            raise ValueError(f"{description}: the data gave {done} images, {num} were asked")
        return out

    def features_of_images(self, images, *, description="images"):
        """Features of an array / tensor of images [N, H, W, C] (uint8, or float in [-1, 1])."""
        images = np.asarray(images)
        ds = tf.data.Dataset.from_tensor_slices((images,))
        return self._run(ds, len(images), lambda x: x, ("array", images.dtype.name,
                                                       images.shape[1:]), description)

    def features_of_source(self, source, num, *, seed=0, description=None):
        """Features of the first `num` examples of a tf_convgan.data source's stream(seed): for
        index-addressable sources, `num` distinct examples (a random subset, without replacement,
        when num < the dataset size)."""
        if source.num_examples is not None and num > source.num_examples:
            raise ValueError(f"{source.description}: {num} samples asked but the source has "
                             f"{source.num_examples} examples")
        ds = source.dataset(seed=seed).map(lambda image, label: (to_uint8(image),))
        return self._run(ds, num, lambda x: x, ("uint8", source.resolution, source.channels),
                         description or source.description)

    def features_of_generator(self, generate, *, num, z_dim, num_classes=1, seed=0,
                              description="generator"):
        """Features of `num` generated images. Example i has z_i = stateless_normal(seed=[seed, i])
        and label i % num_classes, so the set does not depend on batch size or replicas.
        generate(z [B, z_dim] float32, labels [B] int32) -> images (uint8 or [-1, 1] floats)."""
        def example(i):
            z = tf.random.stateless_normal([z_dim], seed=tf.stack([tf.cast(seed, tf.int64), i]))
            return z, tf.cast(i % num_classes, tf.int32)

        ds = tf.data.Dataset.range(num).map(example)
        return self._run(ds, num, generate, ("generator", id(generate)), description)


def generator_fn(generator):
    """A tf_convgan generator (keras) -> generate(z, labels) for `features_of_generator`."""
    return lambda z, labels: to_uint8(generator(z, labels, training=False))


# --------------------------------------------------------------------------- reference cache

def cache_dir(path=None):
    path = path or os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR
    return os.path.expanduser(path)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-")[:40] or "data"


def reference_key(*, dataset, split, resolution, num, seed=0, details=""):
    """The cache file name: dataset, split, resolution, resize convention, sample count, stream
    seed, and a digest of the details (the source's full description, channels, fit, weights file)."""
    digest = hashlib.sha1(f"{dataset}|{split}|{resolution}|{RESIZE_CONVENTION}|{num}|{seed}|"
                          f"{details}".encode()).hexdigest()[:10]
    return (f"{_slug(dataset)}_{_slug(split)}_{resolution}px_{RESIZE_CONVENTION}_n{num}_s{seed}_"
            f"{digest}")


def _weights_id(weights_path):
    path = inception.resolve_weights_path(weights_path)
    return f"{os.path.basename(path)}:{os.path.getsize(path)}"


def reference_features(source, num, *, extractor, dataset=None, split=None, seed=0,
                       directory=None, weights_path=None):
    """Inception features of `num` examples of a data source, computed once and cached in
    `directory` (default $TF_CONVGAN_FID_CACHE or ~/.cache/tf_convgan/fid_stats) as <key>.npz with
    `features` (float32), `mu`, `sigma` (float64) and the key's fields in `meta_json`."""
    dataset = dataset or source.description
    split = split or getattr(source, "split", "all")
    details = (f"{source.description}|{source.channels}|{getattr(source, 'fit', '')}|"
               f"{_weights_id(weights_path)}")
    key = reference_key(dataset=dataset, split=split, resolution=source.resolution, num=num,
                        seed=seed, details=details)
    path = os.path.join(cache_dir(directory), key + ".npz")
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as f:
            return f["features"]
    features = extractor.features_of_source(source, num, seed=seed,
                                            description=f"reference {dataset}/{split}")
    mu, sigma = metrics_lib.gaussian_statistics(features)
    meta = {"dataset": dataset, "split": split, "resolution": source.resolution,
            "resize": RESIZE_CONVENTION, "num": num, "seed": seed, "details": details}
    with run_dir.atomic_file(path) as f:
        np.savez(f, features=features, mu=mu, sigma=sigma,
                 meta_json=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return features


# --------------------------------------------------------------------------- metrics

def compute_metrics(fake_features, real_features, *, kid=True, kid_subsets=100,
                    kid_subset_size=1000, precision_recall=False, seed=0):
    """FID (and KID mean/std, precision/recall) of fake vs real features: a dict of floats."""
    out = {"fid": metrics_lib.frechet_distance_of_features(fake_features, real_features)}
    if kid:
        out["kid"], out["kid_std"] = metrics_lib.kernel_inception_distance(
            fake_features, real_features, num_subsets=kid_subsets,
            subset_size=kid_subset_size, seed=seed)
    if precision_recall:
        out.update(metrics_lib.precision_recall(real_features, fake_features))
    return out


# --------------------------------------------------------------------------- sources

def image_folder_resolution(directory):
    """The size of the first image file under `directory` (sorted), for image_folder_source,
    and the number of image files."""
    probe = data_lib.image_folder_source(directory=directory, resolution=8)
    image = tf.io.decode_image(tf.io.read_file(os.path.join(directory, probe.files[0])),
                               expand_animations=False)
    return int(min(image.shape[0], image.shape[1])), probe.num_examples


# --------------------------------------------------------------------------- during training

@gin.configurable("fid_evaluator")
class FIDEvaluator:
    """FID/KID of the EMA generator against a data source, for `train.evaluator`.

    `evaluator(generator_ema, step, strategy=..., data=...)` -> {'fid', 'kid', 'kid_std'}.
    Reference features (of `data`, default: the training data) are computed once and cached;
    the generator's samples are the same z for every evaluation (a function of `seed`)."""

    def __init__(self, *, num_samples=10000, num_reference=None, data=None, batch_size=50,
                 kid=True, kid_subsets=100, kid_subset_size=1000, precision_recall=False,
                 seed=0, cache_dir=None, weights_path=None, jit_compile=False, verbose=True):
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"fid_evaluator.{name} must be an integer >= 2, got {value!r}")
        self.num_samples = num_samples
        self.num_reference = num_reference or num_samples
        self.data = data
        self.batch_size = batch_size
        self.kid, self.kid_subsets, self.kid_subset_size = kid, kid_subsets, kid_subset_size
        self.precision_recall = precision_recall
        self.seed = seed
        self.cache_dir = cache_dir
        self.weights_path = weights_path
        self.jit_compile = jit_compile
        self.verbose = verbose
        inception.resolve_weights_path(weights_path)  # fail before training starts
        self._extractor = None
        self._real = None
        self._generate = None

    def extractor(self, strategy=None):
        if self._extractor is None:
            self._extractor = FeatureExtractor(
                weights_path=self.weights_path, strategy=strategy, batch_size=self.batch_size,
                jit_compile=self.jit_compile, verbose=self.verbose)
        return self._extractor

    def __call__(self, generator_ema, step, *, strategy=None, data=None):
        extractor = self.extractor(strategy)
        if self._real is None:
            source = self.data or data
            if source is None:
                raise ValueError("fid_evaluator.data is not set and no training data was given")
            self._real = reference_features(
                source, self.num_reference, extractor=extractor, seed=self.seed,
                directory=self.cache_dir, weights_path=self.weights_path)
        if self._generate is None or self._generate[0] is not generator_ema:
            self._generate = (generator_ema, generator_fn(generator_ema))  # traced once
        fake = extractor.features_of_generator(
            self._generate[1], num=self.num_samples, z_dim=generator_ema.z_dim,
            num_classes=generator_ema.num_classes, seed=self.seed,
            description=f"FID samples at step {step}")
        return compute_metrics(fake, self._real, kid=self.kid, kid_subsets=self.kid_subsets,
                               kid_subset_size=self.kid_subset_size,
                               precision_recall=self.precision_recall, seed=self.seed)


def read_metrics_csv(path):
    """{column: np.array} of a metrics CSV; a step logged twice (a resumed run) keeps its last
    row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_step = {int(r["step"]): r for r in rows}
    steps = sorted(by_step)
    columns = rows[0].keys() if rows else ["step"]
    return {c: np.array([float(by_step[s][c]) for s in steps]) for c in columns}


def plot_metric(csv_path, png_path, column="fid"):
    """Plots `column` against step (matplotlib, Agg backend) into png_path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = read_metrics_csv(csv_path)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(table["step"], table[column], marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel(column.upper())
    ax.set_title(f"{column.upper()} of the EMA generator")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with run_dir.atomic_file(png_path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def read_best(model_dir):
    path = os.path.join(run_dir.best_dir(model_dir), run_dir.BEST_JSON)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def evaluate_during_training(evaluator, *, generator_ema, checkpoint, step, model_dir, writer,
                             strategy=None, data=None):
    """What train() does every `eval_every` steps: evaluate, log to TensorBoard (eval/<metric>),
    append to model_dir/metrics.csv, re-plot model_dir/fid.png, and when the FID is the lowest so
    far save `checkpoint` in model_dir/best/ (CheckpointManager, 1 kept) with best/best.json."""
    start = time.time()
    values = dict(evaluator(generator_ema, step, strategy=strategy, data=data))
    seconds = time.time() - start
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.scalar(f"eval/{name}", value)
    writer.flush()
    csv_path = os.path.join(model_dir, run_dir.METRICS_CSV)
    run_dir.append_csv_row(csv_path, step, {**values, "eval_seconds": seconds})
    if "fid" in values:
        plot_metric(csv_path, os.path.join(model_dir, run_dir.FID_PLOT), "fid")
        best = read_best(model_dir)
        if best is None or values["fid"] < best["fid"]:
            best_dir = run_dir.best_dir(model_dir)
            saved = CheckpointKeeper(checkpoint, best_dir, keep_last=1).save(step)
            run_dir.write_text(os.path.join(best_dir, run_dir.BEST_JSON), json.dumps(
                {"step": int(step), "checkpoint": os.path.basename(saved),
                 **{k: float(v) for k, v in values.items()}}, indent=1))
    text = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    print(f"eval step {step}: {text} ({seconds:.0f}s)", flush=True)
    return values
