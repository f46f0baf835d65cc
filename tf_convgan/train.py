"""The training loop: strategy, networks, checkpoints, TensorBoard, sample grids, progress bar.

`train()` is gin-configurable; `run.py` parses the gin files and calls it. Everything it writes
goes into `model_dir` (its layout: run_dir.layout):
  checkpoints/               ckpt-<step>: G, D, EMA G, both optimizers and the step counter
                             (every random draw of training is a function of (seed, step), so a
                             restored run continues exactly); see
                             checkpoints.py for retention, crash safety and resuming
  export/                    the EMA generator as a SavedModel (at the end; see export.py)
  events.out.tfevents.*      TensorBoard: every loss term, the penalty, D's logits, gradient
                             norms of G and D, steps/s; sample grids of the EMA generator
  samples/step_XXXXXXX.png   sample grids of the EMA generator; samples.png is the latest
  operative_config.gin       the gin bindings this run used
  metrics.csv, fid.png, best/  with `train.evaluator` (e.g. @fid_evaluator()): FID/KID every
                             `eval_every` steps (also TensorBoard eval/*), the best-FID checkpoint
The run holds the directory's writer lock (a second run on it is refused). Nothing is written
before the first step has run, so bad input leaves the directory untouched. A resumed run takes
the newest checkpoint that can be read, and the configured optimizer hyperparameters (it says
which differ from the checkpoint's). A non-finite loss, gradient norm or weight stops training
before anything of that step is saved; SIGTERM (preemption) and SIGINT (Ctrl-C; a second one
stops at once) finish the current step, write its checkpoint and stop.
"""
import contextlib
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
from tf_convgan import evaluation
from tf_convgan import export as export_lib
from tf_convgan import images as images_lib
from tf_convgan import run_dir
from tf_convgan.errors import ConfigError
from tf_convgan.gan import GAN
from tf_convgan.networks import build
from tf_convgan.strategy import per_replica_batch_size

_LOSS_TERMS = ("d_loss", "penalty", "d_total", "g_loss")
MIXED_PRECISION_POLICIES = (None, "mixed_float16", "mixed_bfloat16")


class TrainingDivergedError(RuntimeError):
    """A loss term, gradient norm or weight became NaN or infinite."""


class Preempted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint of the current step was written. Rerun to
    resume."""

    def __init__(self, step, path, signum=signal.SIGTERM):
        super().__init__(f"{signal.Signals(signum).name}: wrote checkpoint {path} at step "
                         f"{step}; rerun the same command to resume")
        self.step = step
        self.path = path
        self.signum = int(signum)


def _gin_binding(name):
    """The value gin binds to `name` ('GAN.seed'), or None when it binds none."""
    try:
        return gin.query_parameter(name)
    except ValueError:
        return None


def _check_one_seed(seed):
    bound = _gin_binding("GAN.seed")
    if bound is not None and bound != seed:
        raise ConfigError(
            f"GAN.seed = {bound!r} and train.seed = {seed!r}: train.seed seeds the run (the data "
            f"order and every random draw of the step: it is passed on as GAN.seed); remove the "
            f"GAN.seed binding and set train.seed")


def build_gan(generator_fn, discriminator_fn, strategy, *, seed=None, gan_cls=GAN):
    """Builds G, D, the EMA copy of G and the GAN model (gin supplies the GAN's other args).

    `seed` (train() passes train.seed) becomes GAN.seed, the seed of every random draw of the
    training step; None leaves GAN.seed to gin (default 0). A run has one seed: a GAN.seed bound
    in gin to another value than `seed` is a ConfigError naming both."""
    kwargs = {}
    if seed is not None:
        _check_one_seed(seed)
        kwargs["seed"] = seed
    with strategy.scope():
        generator = build(generator_fn())
        discriminator = build(discriminator_fn())
        generator_ema = build(generator_fn())
        return gan_cls(generator, discriminator, generator_ema, **kwargs)


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


def _resume(gan, checkpoint_dir, *, is_chief, num_steps):
    """Restores the newest readable checkpoint (see checkpoints.restore_newest) and then the
    configured optimizer hyperparameters; says what it did, one line each. Returns the step."""
    configured = checkpoints_lib.optimizer_settings(
        {"g_optimizer": gan.g_optimizer, "d_optimizer": gan.d_optimizer})
    resumed = checkpoints_lib.restore_newest(  # every worker: the chief's
        checkpoint_dir, lambda path: checkpoints_lib.restore(checkpoints_lib.make_checkpoint(gan),
                                                             path),
        set_aside_unreadable=is_chief)
    for note in resumed.notes:
        print(f"warning: {note}", file=sys.stderr, flush=True)
    start_step = int(gan.step.numpy())
    if resumed.path is None:
        if num_steps == 0:
            print("train.num_steps = 0: the networks are built; nothing to train, nothing "
                  "written", flush=True)
        return start_step
    if num_steps < start_step:
        raise ConfigError(
            f"train.num_steps = {num_steps} is below the step of the checkpoint to resume from "
            f"({resumed.path}, step {start_step}): nothing to train; raise train.num_steps, use "
            f"another model_dir, or export that checkpoint with python -m tf_convgan.export")
    changed = checkpoints_lib.apply_optimizer_settings(configured)
    print(f"restored {resumed.path} at step {start_step}" +
          (": nothing left to train" if start_step == num_steps else ""), flush=True)
    if changed:
        print(f"optimizer hyperparameters differ from the checkpoint's; the configured ones "
              f"apply: {', '.join(changed)}", flush=True)
    return start_step


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
      seed: the run's one seed: the initial weights, the data order and every random draw of
        the step (z, penalties, augmentations, instance noise: it is passed on as
        GAN.seed). Binding GAN.seed in gin as well is a ConfigError unless the two are
        equal.
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
      Preempted: after SIGTERM or SIGINT, once the checkpoint of the current step is written.
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

    _check_one_seed(seed)
    if not isinstance(data, data_lib.ImageSource):
        raise ConfigError(
            f"train.data must be an image source such as @fashion_mnist_source() (note the "
            f"parentheses), got {data!r}")
    checkpoint_dir = run_dir.checkpoint_dir(model_dir)
    is_chief, save_dir = _worker_role(strategy, checkpoint_dir)
    if is_chief:
        run_dir.check_writable(model_dir)
        if export_at_end:
            try:
                run_dir.check_export_dir(run_dir.export_dir(model_dir))
            except ConfigError as e:
                raise ConfigError(f"train.export_at_end: {e}") from None
    # One writer per run directory: the chief holds the lock until it returns (workers write
    # only their own copies of the checkpoints).
    with run_dir.writer_lock(model_dir) if is_chief else contextlib.nullcontext():
        keras.utils.set_random_seed(seed)  # the initial weights are a function of the seed
        previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(mixed_precision or "float32")
        try:
            gan = build_gan(generator_fn, discriminator_fn, strategy, seed=seed)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        num_classes = gan.generator.num_classes
        if gan.conditional and data.num_classes is not None and data.num_classes != num_classes:
            raise ConfigError(
                f"the networks have num_classes={num_classes} but the data has "
                f"{data.num_classes} classes")
        start_step = _resume(gan, checkpoint_dir, is_chief=is_chief, num_steps=num_steps)

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
        # Multi-worker: the chief evaluates alone, on its own device (no collectives).
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

        keeper = checkpoints_lib.CheckpointKeeper(
            checkpoints_lib.make_checkpoint(gan), save_dir, keep_last=keep_last,
            keep_every=keep_every)
        writer = None
        progress = _Progress(num_steps, start_step, log_every)
        step = start_step
        tick, tick_step = time.time(), step
        with _StopSignals() as stop:
            while step < num_steps:
                logs = {k: float(v) for k, v in step_fn(iterator).items()}
                step += steps_per_execution
                _check_finite(logs, step, keeper)
                if writer is None:  # first step done: nothing was written before it succeeded
                    if is_chief:
                        os.makedirs(model_dir, exist_ok=True)
                        run_dir.write_text(run_dir.operative_config_path(model_dir),
                                           gin.operative_config_str())
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
                    evaluation.evaluate_during_training(
                        evaluator, generator_ema=gan.generator_ema,
                        checkpoint=checkpoints_lib.make_checkpoint(gan), step=step,
                        model_dir=model_dir, writer=writer,
                        strategy=None if multi_worker else strategy, data=data)
                if step % checkpoint_every == 0 or step == num_steps or stop.signal:
                    _check_finite_weights(gan, step)
                    path = keeper.save(step)
                    if stop.signal:
                        writer.flush()
                        raise Preempted(step, path, stop.signal)
        if writer is not None:
            writer.flush()
        if is_chief and export_at_end and step == num_steps and step > 0:
            with open(run_dir.operative_config_path(model_dir), encoding="utf-8") as f:
                operative_config = f.read()
            export_lib.export_generator(gan.generator_ema, run_dir.export_dir(model_dir),
                                        operative_config=operative_config)
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


class _StopSignals:
    """Within the block, SIGTERM (preemption on TPU and cloud VMs) and SIGINT (Ctrl-C) set
    `signal` instead of ending the process, so that the loop can finish its step and write a
    checkpoint. A second SIGINT interrupts at once (KeyboardInterrupt)."""

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal = None
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = self.signal or signum

    def __enter__(self):
        for signum in self._SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            if previous is not None:  # None: not installed from Python
                signal.signal(signum, previous)
        return False


def write_samples(gan, model_dir, step, writer, *, num_samples, seed):
    grid = sample_grid(gan.generator_ema, num_samples=num_samples, seed=seed)
    for path in run_dir.sample_grid_paths(model_dir, step):
        images_lib.write_png(path, grid)
    with writer.as_default(step=step):
        tf.summary.image("samples_ema", grid[None])
