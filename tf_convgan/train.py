"""The training loop: strategy, networks, checkpoints, TensorBoard, sample grids, progress bar.

`train()` is gin-configurable; `run.py` parses the gin files and calls it. Everything it writes
goes into `model_dir`:
  checkpoints/               ckpt-<step>: G, D, EMA G, both optimizers and the step counter
                             (every random draw of training is a function of (seed, step), so a
                             restored run continues exactly); see
                             checkpoints.py for retention and crash safety
  export/                    the EMA generator as a SavedModel (at the end; see export.py)
  events.out.tfevents.*      TensorBoard: every loss term, the penalty, D's logits, gradient
                             norms of G and D, steps/s; sample grids of the EMA generator
  samples/step_XXXXXXX.png   sample grids of the EMA generator; samples.png is the latest
  operative_config.gin       the gin bindings this run used
  metrics.csv, fid.png, best/  with `train.evaluator` (e.g. @fid_evaluator()): FID/KID every
                             `eval_every` steps (also TensorBoard eval/*), the best-FID checkpoint
Nothing is written before the first step has run, so bad input leaves the directory untouched.
A non-finite loss, gradient norm or weight stops training before anything of that step is saved;
SIGTERM (preemption) finishes the current step, writes its checkpoint and stops.
"""
import math
import os
import signal
import sys
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from tf_convgan import checkpoints as checkpoints_lib
from tf_convgan import data as data_lib
from tf_convgan import export as export_lib
from tf_convgan import images as images_lib
from tf_convgan.errors import ConfigError
from tf_convgan.gan import GAN
from tf_convgan.networks import build
from tf_convgan.strategy import per_replica_batch_size

OPERATIVE_CONFIG = "operative_config.gin"
CHECKPOINT_SUBDIR = "checkpoints"
SAMPLES_SUBDIR = "samples"
EXPORT_SUBDIR = "export"
_LOSS_TERMS = ("d_loss", "penalty", "d_total", "g_loss")
MIXED_PRECISION_POLICIES = (None, "mixed_float16", "mixed_bfloat16")


class TrainingDivergedError(RuntimeError):
    """A loss term, gradient norm or weight became NaN or infinite."""


class Preempted(Exception):
    """SIGTERM arrived; a checkpoint of the current step was written. Rerun to resume."""

    def __init__(self, step, path):
        super().__init__(f"SIGTERM: wrote checkpoint {path} at step {step}; rerun the same "
                         f"command to resume")
        self.step = step
        self.path = path


def build_gan(generator_fn, discriminator_fn, strategy, gan_cls=GAN):
    """Builds G, D, the EMA copy of G and the GAN model (gin supplies the GAN's other args)."""
    with strategy.scope():
        generator = build(generator_fn())
        discriminator = build(discriminator_fn())
        generator_ema = build(generator_fn())
        return gan_cls(generator, discriminator, generator_ema)


def sample_grid(generator, *, num_samples, seed):
    """uint8 grid of generator samples for fixed z; conditional models get one class per row."""
    cols = int(np.ceil(np.sqrt(num_samples)))
    z = tf.random.stateless_normal([num_samples, generator.z_dim], seed=[seed, 7])
    labels = tf.constant((np.arange(num_samples) // cols) % generator.num_classes, tf.int32)
    images = images_lib.to_uint8(generator(z, labels, training=False))
    return images_lib.make_grid(images.numpy(), cols=cols)


def check_data_fits_networks(element_spec, generator):
    shape = element_spec[0].shape  # [B, d_steps, H, W, C] (or [B, d_steps, *data_shape])
    expected = tuple(getattr(generator, "data_shape", None)
                     or (generator.resolution, generator.resolution, 3))
    if tuple(shape[2:]) != expected:
        raise ConfigError(
            f"the data's images are {tuple(shape[2:])} but the generator makes {expected}: set "
            f"the data source's `resolution` (and channels=3) to match the networks'")


def distribute_pipeline(strategy, make_pipeline):
    """Distributes a pipeline of global batches: replica r gets rows [r b, (r + 1) b) of every
    global batch (b = the per-replica batch), with static shapes, on any strategy.

    Every input pipeline (one per worker) builds the whole stream and keeps the rows of its own
    replicas, so R replicas on any number of workers see exactly the global batch of one device.
    (tf.data's auto-sharding would lose the static batch size, and its DATA policy would give
    workers interleaved rather than contiguous rows.)"""

    def dataset_fn(context):
        pipeline = make_pipeline()
        real_spec = pipeline.element_spec[0]
        rows = context.get_per_replica_batch_size(real_spec.shape[0])
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local * rows

        def split(real, labels):
            def mine(x):
                x = x[first:first + local * rows]
                return tf.reshape(x, [local, rows] + x.shape.as_list()[1:])
            return tf.data.Dataset.from_tensor_slices((mine(real), mine(labels)))

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return pipeline.flat_map(split).with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)


def _make_step_fn(gan, strategy, jit_compile, element_spec, steps_per_execution=1):
    """The distributed step: `steps_per_execution` training steps per call (one host round trip
    for several steps on TPU); `element_spec` is the global batch's (real, labels) spec. Returns
    the logs of the last step."""
    rows = per_replica_batch_size(element_spec[0].shape[0], strategy)
    shapes = [[rows] + spec.shape.as_list()[1:] for spec in element_spec]

    def replica_step(data):
        # Multi-worker input loses the static batch size (it could end with a partial batch);
        # ours never does (drop_remainder), and the step needs static shapes.
        return compiled_step(tuple(tf.ensure_shape(x, shape) for x, shape in zip(data, shapes)))

    # A nested tf.function only for XLA: MultiWorkerMirroredStrategy cannot all-reduce inside a
    # nested function (merge_call), and without XLA the outer tf.function is all that is needed.
    compiled_step = (tf.function(gan.train_step, jit_compile=True) if jit_compile
                     else gan.train_step)

    @tf.function
    def distributed_step(iterator):
        logs = strategy.run(replica_step, args=(next(iterator),))
        for _ in tf.range(steps_per_execution - 1):
            logs = strategy.run(replica_step, args=(next(iterator),))
        # Logs are all-reduced inside the step: every replica holds the same value.
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in logs.items()}

    return distributed_step


class _Progress:
    """A Keras progress bar on a terminal; a log line every `log_every` steps otherwise."""

    def __init__(self, num_steps, start_step, log_every):
        self.interactive = sys.stdout.isatty()
        self.log_every = log_every
        self.num_steps = num_steps
        if self.interactive:
            self.bar = keras.utils.Progbar(num_steps, stateful_metrics=None, unit_name="step")
            self.bar.update(start_step)

    def update(self, step, logs):
        if self.interactive:
            self.bar.update(step, [(k, v) for k, v in logs.items() if k in ("d_loss", "g_loss",
                                                                            "penalty")])
        elif step % self.log_every == 0 or step == self.num_steps:
            values = " ".join(f"{k}={v:.4g}" for k, v in sorted(logs.items()))
            print(f"step {step}/{self.num_steps} {values}", flush=True)


def write_operative_config(model_dir):
    path = os.path.join(model_dir, OPERATIVE_CONFIG)
    with open(path + ".tmp", "w") as f:
        f.write(gin.operative_config_str())
    os.replace(path + ".tmp", path)


@gin.configurable
def train(*, model_dir,
          generator_fn=gin.REQUIRED,
          discriminator_fn=gin.REQUIRED,
          data=gin.REQUIRED,
          batch_size=64,
          num_steps=10000,
          strategy=None,
          jit_compile=False,
          seed=0,
          checkpoint_every=1000,
          keep_last=3,
          keep_every=None,
          log_every=50,
          sample_every=500,
          num_samples=64,
          sample_writer=None,
          export_at_end=True,
          steps_per_execution=1,
          mixed_precision=None,
          evaluator=None,
          eval_every=5000):
    """Trains a GAN; reruns continue from the last checkpoint in `model_dir`.

    Args:
      model_dir: where checkpoints, events, samples and the operative config go.
      generator_fn, discriminator_fn: network factories, e.g. @resnet_generator.
      data: an image source from tf_convgan.data, e.g. @fashion_mnist_source().
      batch_size: the global batch of one D step (split over the replicas).
      num_steps: generator steps to train in total (a resumed run stops at the same step).
      strategy: a tf.distribute strategy (gin: @mirrored_strategy() etc.); default: one device.
      jit_compile: compile the step with XLA.
      seed: seeds the data order and every random draw of training.
      checkpoint_every: steps between checkpoints (the last step is always saved).
      keep_last, keep_every: retention: the last `keep_last` checkpoints, plus every one whose
        step is a multiple of `keep_every` (None: no others).
      sample_writer: what runs every `sample_every` steps, called as
        `sample_writer(gan, model_dir, step, writer, num_samples=, seed=)`; default
        `write_samples` (image grids); 2D problems use `@toy2d_writer()`.
      export_at_end: export the EMA generator as a SavedModel into model_dir/export at the end.
      steps_per_execution: training steps per call of the compiled step (TPU: fewer host round
        trips); num_steps and every interval must be multiples of it.
      mixed_precision: None (float32), 'mixed_float16' (GPU; with dynamic loss scaling) or
        'mixed_bfloat16' (TPU, recent CPUs/GPUs): the Keras dtype policy of the networks.
      evaluator: None, or e.g. @fid_evaluator(): called with the EMA generator every `eval_every`
        steps and at the end (see tf_convgan.evaluation.evaluate_during_training).
    Returns the GAN model.
    Raises:
      TrainingDivergedError: a loss term, gradient norm or weight became non-finite; nothing
        of that step is saved, the last good checkpoint stays the latest.
      Preempted: after SIGTERM, once the checkpoint of the current step is written.
    """
    strategy = strategy or tf.distribute.get_strategy()
    per_replica_batch_size(batch_size, strategy)
    for name, value in (("num_steps", num_steps), ("checkpoint_every", checkpoint_every),
                        ("log_every", log_every), ("sample_every", sample_every),
                        ("num_samples", num_samples), ("keep_last", keep_last),
                        ("eval_every", eval_every)):
        if not isinstance(value, int) or value < (0 if name == "num_steps" else 1):
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
    if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ConfigError(f"train.steps_per_execution must be a positive integer, got "
                          f"{steps_per_execution!r}")
    for name, value in (("num_steps", num_steps), ("checkpoint_every", checkpoint_every),
                        ("log_every", log_every), ("sample_every", sample_every)):
        if value % steps_per_execution:
            raise ConfigError(f"train.{name} ({value}) must be a multiple of "
                              f"train.steps_per_execution ({steps_per_execution})")
    if mixed_precision not in MIXED_PRECISION_POLICIES:
        raise ConfigError(f"train.mixed_precision must be one of {MIXED_PRECISION_POLICIES}, "
                          f"got {mixed_precision!r}")
    if keep_every is not None and (not isinstance(keep_every, int) or keep_every < 1):
        raise ConfigError(f"train.keep_every must be None or a positive integer, "
                          f"got {keep_every!r}")

    if not isinstance(data, data_lib.ImageSource):
        raise ConfigError(
            f"train.data must be an image source such as @fashion_mnist_source() (note the "
            f"parentheses), got {data!r}")
    keras.utils.set_random_seed(seed)  # the initial weights are a function of the seed
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    try:
        gan = build_gan(generator_fn, discriminator_fn, strategy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    num_classes = gan.generator.num_classes
    if gan.conditional and data.num_classes is not None and data.num_classes != num_classes:
        raise ConfigError(
            f"the networks have num_classes={num_classes} but the data has "
            f"{data.num_classes} classes")
    checkpoint_dir = os.path.join(model_dir, CHECKPOINT_SUBDIR)
    restored = checkpoints_lib.restore_latest(gan, checkpoint_dir)  # every worker: the chief's
    is_chief, save_dir = _worker_role(strategy, checkpoint_dir)
    # Multi-worker: the chief evaluates alone, on its own device (no collectives).
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    start_step = int(gan.step.numpy())
    if restored:
        print(f"restored {restored} at step {start_step}", flush=True)

    pipeline = data_lib.make_input_pipeline(
        data, global_batch_size=batch_size, d_steps=gan.d_steps, seed=seed,
        start_step=start_step)
    check_data_fits_networks(pipeline.element_spec, gan.generator)
    iterator = iter(distribute_pipeline(
        strategy, lambda: data_lib.make_input_pipeline(
            data, global_batch_size=batch_size, d_steps=gan.d_steps, seed=seed,
            start_step=start_step)))
    step_fn = _make_step_fn(gan, strategy, jit_compile, pipeline.element_spec,
                             steps_per_execution)

    keeper = checkpoints_lib.CheckpointKeeper(
        checkpoints_lib.make_checkpoint(gan), save_dir, keep_last=keep_last,
        keep_every=keep_every)
    writer = None
    progress = _Progress(num_steps, start_step, log_every)
    step = start_step
    tick, tick_step = time.time(), step
    with _SigtermFlag() as sigterm:
        while step < num_steps:
            logs = {k: float(v) for k, v in step_fn(iterator).items()}
            step += steps_per_execution
            _check_finite(logs, step, keeper)
            if writer is None:  # first step done: nothing was written before it succeeded
                if is_chief:
                    os.makedirs(model_dir, exist_ok=True)
                    write_operative_config(model_dir)
                    writer = tf.summary.create_file_writer(model_dir)
                else:
                    writer = tf.summary.create_noop_writer()
            progress.update(step, logs)
            if step % log_every == 0 or step == num_steps:
                now = time.time()
                logs["steps_per_second"] = (step - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, step
                with writer.as_default(step=step):
                    for name, value in logs.items():
                        tf.summary.scalar(f"train/{name}", value)
            if is_chief and (step % sample_every == 0 or step == num_steps):
                (sample_writer or write_samples)(gan, model_dir, step, writer,
                                                 num_samples=num_samples, seed=seed)
            if evaluator is not None and is_chief and (step % eval_every == 0 or
                                                       step == num_steps):
                from tf_convgan.evaluation import evaluate_during_training
                evaluate_during_training(evaluator, generator_ema=gan.generator_ema,
                                         checkpoint=checkpoints_lib.make_checkpoint(gan),
                                         step=step, model_dir=model_dir, writer=writer,
                                         strategy=None if multi_worker else strategy,
                                         data=data)
            if step % checkpoint_every == 0 or step == num_steps or sigterm.raised:
                _check_finite_weights(gan, step)
                path = keeper.save(step)
                if sigterm.raised:
                    writer.flush()
                    raise Preempted(step, path)
    if writer is not None:
        writer.flush()
    if is_chief and export_at_end and step == num_steps and os.path.isdir(model_dir):
        export_lib.export_generator(
            gan.generator_ema, os.path.join(model_dir, EXPORT_SUBDIR),
            operative_config=open(os.path.join(model_dir, OPERATIVE_CONFIG)).read())
    return gan


def _worker_role(strategy, checkpoint_dir):
    """(is_chief, where this worker saves checkpoints). With MultiWorkerMirroredStrategy every
    worker must save (saving may need collectives), but only the chief (worker 0) writes into
    model_dir; the others write their identical copies into checkpoints/worker_<i>/."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and
                                        "chief" not in resolver.cluster_spec().as_dict()):
        return True, checkpoint_dir
    return False, os.path.join(checkpoint_dir, f"{task_type}_{task_id}")


def _check_finite(logs, step, keeper):
    bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
    if bad:
        # Loss terms first, in the order the step computes them; derived values after.
        order = {name: i for i, name in enumerate(_LOSS_TERMS)}
        terms = ", ".join(f"{k}={v}" for k, v in sorted(
            bad.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
        latest = tf.train.latest_checkpoint(keeper.directory)
        last = os.path.basename(latest) if latest else "none yet"
        raise TrainingDivergedError(
            f"training diverged at step {step}: non-finite {terms}. Nothing of this step was "
            f"saved; the last good checkpoint ({last}) is kept")


def _check_finite_weights(gan, step):
    for name, model in (("generator", gan.generator), ("discriminator", gan.discriminator),
                        ("generator_ema", gan.generator_ema)):
        for w in model.weights:
            if not np.isfinite(w.numpy()).all():
                raise TrainingDivergedError(
                    f"training diverged at step {step}: weight {w.path} of the {name} is "
                    f"non-finite. Nothing of this step was saved")


class _SigtermFlag:
    """Within the block, SIGTERM sets `raised` instead of killing the process, so that the loop
    can finish its step and write a checkpoint (preemption on TPU and cloud VMs)."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def _handle(self, signum, frame):
        del signum, frame
        self.raised = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: signals cannot be caught here
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


def write_samples(gan, model_dir, step, writer, *, num_samples, seed):
    grid = sample_grid(gan.generator_ema, num_samples=num_samples, seed=seed)
    images_lib.write_png(os.path.join(model_dir, SAMPLES_SUBDIR, f"step_{step:07d}.png"), grid)
    images_lib.write_png(os.path.join(model_dir, "samples.png"), grid)
    with writer.as_default(step=step):
        tf.summary.image("samples_ema", grid[None])
