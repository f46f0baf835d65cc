"""The in-training evaluator (`fid_evaluator`): FID/KID of the EMA generator every
`train.eval_every` steps, logged to TensorBoard (eval/<metric>), model_dir/metrics.csv and
model_dir/fid.png, with the best checkpoint so far in model_dir/best/.

It is a training hook: the loop calls `hook(context)`, where the context has the attributes
  gan         the GAN model (.generator, .discriminator, .generator_ema)
  step        completed steps (int); num_steps: the steps of the whole run
  model_dir   the run directory (str); writer: its tf.summary writer
  strategy    a tf.distribute strategy, or None: evaluate on the chief's own device
  data        the training ImageSource
  checkpoint  a tf.train.Checkpoint of the full training state (what best/ saves)
"""
import csv
import io
import json
import os
import time

import gin
import numpy as np
import tensorflow as tf

from tf_convgan.evaluation import inception
from tf_convgan.evaluation.features import FeatureExtractor, generator_fn
from tf_convgan.evaluation.reference import compute_metrics, reference_summary
from tf_convgan import run_dir
from tf_convgan.run_dir.checkpoints import CheckpointKeeper


class EvaluationHook:
    """An evaluation as a training hook. Subclasses define
    `evaluate(generator_ema, step, *, strategy=None, data=None)` -> {metric: float}; calling the
    hook with the loop's context evaluates the context's EMA generator and records the values."""

    def evaluate(self, generator_ema, step, *, strategy=None, data=None):
        raise NotImplementedError

    def __call__(self, context):
        """Evaluates context.gan.generator_ema at context.step (on context.strategy, with
        context.data), logs to TensorBoard (eval/<metric>), appends to model_dir/metrics.csv,
        re-plots model_dir/fid.png, and when the FID is the lowest so far saves
        context.checkpoint in model_dir/best/ (CheckpointManager, 1 kept) with best/best.json.
        Returns the values."""
        step, model_dir, writer = context.step, context.model_dir, context.writer
        start = time.time()
        values = dict(self.evaluate(context.gan.generator_ema, step, strategy=context.strategy,
                                    data=context.data))
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
                saved = CheckpointKeeper(context.checkpoint, best_dir, keep_last=1).save(step)
                run_dir.write_text(os.path.join(best_dir, run_dir.BEST_JSON), json.dumps(
                    {"step": int(step), "checkpoint": os.path.basename(saved),
                     **{k: float(v) for k, v in values.items()}}, indent=1))
        text = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"eval step {step}: {text} ({seconds:.0f}s)", flush=True)
        return values


@gin.configurable("fid_evaluator")
class FIDEvaluator(EvaluationHook):
    """FID/KID of the EMA generator against a data source, for `train.evaluator`.

    A training hook: `evaluator(context)` evaluates and records (EvaluationHook).
    `evaluator.evaluate(generator_ema, step, strategy=..., data=...)` -> {'fid', 'kid', 'kid_std'}
    only computes. Reference features (of `data`, default: the training data) are computed once
    and cached; the generator's samples are the same z for every evaluation (a function of
    `seed`). Features are streamed: FID uses the statistics of all the images, KID and
    precision/recall the first min(N, `max_feature_rows`) of each set."""

    def __init__(self, *, num_samples=10000, num_reference=None, data=None, batch_size=50,
                 kid=True, kid_subsets=100, kid_subset_size=1000, precision_recall=False,
                 seed=0, cache_dir=None, weights_path=None, jit_compile=False, verbose=True,
                 max_feature_rows=50000):
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size),
                            ("max_feature_rows", max_feature_rows)):
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
        self.max_feature_rows = max_feature_rows
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

    def evaluate(self, generator_ema, step, *, strategy=None, data=None):
        extractor = self.extractor(strategy)
        if self._real is None:
            source = self.data or data
            if source is None:
                raise ValueError("fid_evaluator.data is not set and no training data was given")
            self._real = reference_summary(
                source, self.num_reference, extractor=extractor,
                max_rows=self.max_feature_rows, seed=self.seed,
                directory=self.cache_dir, weights_path=self.weights_path)
        if self._generate is None or self._generate[0] is not generator_ema:
            self._generate = (generator_ema, generator_fn(generator_ema))  # traced once
        fake = extractor.features_of_generator(
            self._generate[1], num=self.num_samples, z_dim=generator_ema.z_dim,
            num_classes=generator_ema.num_classes, seed=self.seed,
            description=f"FID samples at step {step}",
            sink=extractor.summary(self.num_samples, max_rows=self.max_feature_rows))
        return compute_metrics(fake, self._real, kid=self.kid, kid_subsets=self.kid_subsets,
                               kid_subset_size=self.kid_subset_size,
                               precision_recall=self.precision_recall, seed=self.seed)


def read_metrics_csv(path):
    """{column: np.array} of a metrics CSV; a step logged twice (a resumed run) keeps its last
    row."""
    rows = list(csv.DictReader(io.StringIO(run_dir.read_text(path), newline="")))
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
    if not run_dir.files.isfile(path):
        return None
    return json.loads(run_dir.read_text(path))
