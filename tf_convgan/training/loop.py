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

import gin
import keras
import numpy as np
import tensorflow as tf

from tf_convgan import data as data_lib
from tf_convgan import run_dir
from tf_convgan.errors import ConfigError, check_int, check_seed, is_int
from tf_convgan.gan.model import GAN
from tf_convgan.networks import build
from tf_convgan.run_dir import checkpoints as checkpoints_lib
from tf_convgan.serving import export as export_lib
from tf_convgan.training.distributed import distribute_pipeline, make_step_fn
from tf_convgan.training.hooks import Periodic, SampleWriter, ScalarLogger, StepContext, every
from tf_convgan.training.strategy import per_replica_batch_size

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


def build_gan(generator_fn, discriminator_fn, strategy, *, seed=0, gan_cls=GAN):
    """Builds G, D, the EMA copy of G and the GAN model (gin supplies the GAN's other args).

    `seed` (train() passes train.seed) becomes GAN.seed, the seed of every random draw of the
    training step. A run has one seed: GAN.seed is not a gin parameter (binding it is refused
    when the config is parsed)."""
    with strategy.scope():
        generator = build(generator_fn())
        discriminator = build(discriminator_fn())
        generator_ema = build(generator_fn())
        return gan_cls(generator, discriminator, generator_ema, seed=seed)


def check_data_fits_networks(element_spec, generator):
    shape = element_spec[0].shape  # [B, d_steps, H, W, C] (or [B, d_steps, *data_shape])
    expected = tuple(getattr(generator, "data_shape", None)
                     or (generator.resolution, generator.resolution, 3))
    if tuple(shape[2:]) != expected:
        raise ConfigError(
            f"the data's images are {tuple(shape[2:])} but the generator makes {expected}: set "
            f"the data source's `resolution` (and channels=3) to match the networks'")


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
        checkpoint_dir, lambda path: checkpoints_lib.restore_gan(gan, path),
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


def _hooks(start_step, *, log_every, sample_writer, sample_every, num_samples, seed, evaluator,
           eval_every):
    """The periodic hooks of a run: scalars (every worker), sample grids and the evaluator."""
    hooks = [Periodic(ScalarLogger(start_step), log_every, chief_only=False),
             Periodic(SampleWriter(sample_writer, num_samples=num_samples, seed=seed),
                      sample_every)]
    if evaluator is not None:
        hooks.append(Periodic(evaluator, eval_every))
    return hooks


def _run_steps(context, step_fn, iterator, *, hooks, keeper, is_chief, progress,
               steps_per_execution, checkpoint_every):
    """Steps from context.step to context.num_steps: each call's logs checked finite, then the
    hooks that are due, then a checkpoint when due or when a stop signal came (raising
    Preempted after it). Events are written only after a step has succeeded."""
    num_steps = context.num_steps
    with _StopSignals() as stop:
        while context.step < num_steps:
            context.logs = {k: float(v) for k, v in step_fn(iterator).items()}
            context.step += steps_per_execution
            _check_finite(context.logs, context.step, keeper)
            if context.writer is None:  # nothing is written before a step has succeeded
                context.writer = _start_writing(context.model_dir, is_chief)
            progress.update(context.step, context.logs)
            for hook in hooks:
                if hook.due(context.step, num_steps, is_chief):
                    hook.hook(context)
            if every(context.step, checkpoint_every, num_steps) or stop.signal:
                _check_finite_weights(context.gan, context.step)
                path = keeper.save(context.step)
                if stop.signal:
                    context.writer.flush()
                    raise Preempted(context.step, path, stop.signal)


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
        GAN.seed). GAN.seed is not a gin parameter: binding it, to any value, is refused when
        the config is parsed (cli.config.parse: one line naming train.seed).
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
      evaluator: None, or a hook such as @fid_evaluator() (tf_convgan.evaluation.hook), run on the
        chief every `eval_every` steps and at the end (see training.hooks for the context).
    Returns the GAN model.
    Raises:
      TrainingDivergedError: a loss term, gradient norm or weight became non-finite; nothing
        of that step is saved, the last good checkpoint stays the latest.
      Preempted: after SIGTERM or SIGINT, once the checkpoint of the current step is written.
    """
    strategy = strategy or tf.distribute.get_strategy()
    _check_types(model_dir=model_dir, batch_size=batch_size, seed=seed, jit_compile=jit_compile,
                 export_at_end=export_at_end)
    _check_arguments(data=data, batch_size=batch_size, strategy=strategy,
                     steps_per_execution=steps_per_execution, mixed_precision=mixed_precision,
                     keep_every=keep_every, num_steps=num_steps, checkpoint_every=checkpoint_every,
                     log_every=log_every, sample_every=sample_every, num_samples=num_samples,
                     keep_last=keep_last, eval_every=eval_every)
    checkpoint_dir = run_dir.checkpoint_dir(model_dir)
    is_chief, save_dir = _worker_role(strategy, checkpoint_dir)
    if is_chief:
        _check_outputs(model_dir, export_at_end)
    # One writer per run directory: the chief holds the lock until it returns (workers write
    # only their own copies of the checkpoints).
    with run_dir.writer_lock(model_dir) if is_chief else contextlib.nullcontext():
        gan = _build(generator_fn, discriminator_fn, strategy, seed=seed,
                     mixed_precision=mixed_precision, data=data)
        start_step = _resume(gan, checkpoint_dir, is_chief=is_chief, num_steps=num_steps)
        pipeline = data_lib.make_input_pipeline(data, global_batch_size=batch_size,
                                                d_steps=gan.d_steps, seed=seed,
                                                start_step=start_step)
        check_data_fits_networks(pipeline.element_spec, gan.generator)
        iterator = iter(distribute_pipeline(strategy, lambda: pipeline))
        step_fn = make_step_fn(gan, strategy, jit_compile, pipeline.element_spec,
                               steps_per_execution)
        keeper = checkpoints_lib.CheckpointKeeper(
            checkpoints_lib.make_checkpoint(gan), save_dir, keep_last=keep_last,
            keep_every=keep_every)
        hooks = _hooks(start_step, log_every=log_every, sample_writer=sample_writer,
                       sample_every=sample_every, num_samples=num_samples, seed=seed,
                       evaluator=evaluator, eval_every=eval_every)
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        context = StepContext(  # multi-worker: the chief's hooks run on its own device
            gan=gan, step=start_step, num_steps=num_steps, model_dir=model_dir, writer=None,
            strategy=None if multi_worker else strategy, data=data,
            checkpoint=checkpoints_lib.make_checkpoint(gan))
        _run_steps(context, step_fn, iterator, hooks=hooks, keeper=keeper, is_chief=is_chief,
                   progress=_Progress(num_steps, start_step, log_every),
                   steps_per_execution=steps_per_execution, checkpoint_every=checkpoint_every)
        if context.writer is not None:
            context.writer.flush()
        if is_chief and export_at_end and context.step == num_steps and num_steps > 0:
            export_lib.export_generator(
                gan.generator_ema, run_dir.export_dir(model_dir),
                operative_config=run_dir.read_text(run_dir.operative_config_path(model_dir)))
    return gan


def _check_types(*, model_dir, batch_size, seed, jit_compile, export_at_end):
    """The types of train()'s scalar arguments (a gin binding such as `train.batch_size = 'eight'`
    would otherwise raise a TypeError deep inside): ConfigError naming the binding."""
    if not isinstance(model_dir, (str, os.PathLike)) or not os.fspath(model_dir):
        raise ConfigError(f"train.model_dir must be a non-empty path, got {model_dir!r}")
    check_int("train.batch_size", batch_size)
    check_seed("train.seed", seed)
    for name, value in (("jit_compile", jit_compile), ("export_at_end", export_at_end)):
        if not isinstance(value, bool):
            raise ConfigError(f"train.{name} must be True or False, got {value!r}")


def _check_arguments(*, data, batch_size, strategy, steps_per_execution, mixed_precision,
                     keep_every, **intervals):
    """train()'s arguments, checked before anything is built or written."""
    per_replica_batch_size(batch_size, strategy)
    for name, value in intervals.items():
        if not is_int(value) or value < (0 if name == "num_steps" else 1):
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
    if not isinstance(steps_per_execution, int) or steps_per_execution < 1:
        raise ConfigError(f"train.steps_per_execution must be a positive integer, got "
                          f"{steps_per_execution!r}")
    for name in ("num_steps", "checkpoint_every", "log_every", "sample_every"):
        if intervals[name] % steps_per_execution:
            raise ConfigError(f"train.{name} ({intervals[name]}) must be a multiple of "
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


def _check_outputs(model_dir, export_at_end):
    """The chief can write model_dir and, at the end, its export/ (before anything runs); a
    directory that is not empty and not a run's is refused (run_dir.check_training_dir)."""
    run_dir.check_writable(model_dir)
    run_dir.check_training_dir(model_dir)
    if export_at_end:
        try:
            run_dir.check_export_dir(run_dir.export_dir(model_dir))
        except ConfigError as e:
            raise ConfigError(f"train.export_at_end: {e}") from None


def _build(generator_fn, discriminator_fn, strategy, *, seed, mixed_precision, data):
    """The GAN, with initial weights that are a function of the seed, under the configured
    dtype policy; checked against the data's classes."""
    keras.utils.set_random_seed(seed)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    try:
        gan = build_gan(generator_fn, discriminator_fn, strategy, seed=seed)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    num_classes = gan.generator.num_classes
    if gan.conditional and data.num_classes is not None and data.num_classes != num_classes:
        raise ConfigError(f"the networks have num_classes={num_classes} but the data has "
                          f"{data.num_classes} classes")
    return gan


def _start_writing(model_dir, is_chief):
    """After the first step: the operative config and the TensorBoard writer (the chief's;
    a no-op writer elsewhere)."""
    if not is_chief:
        return tf.summary.create_noop_writer()
    run_dir.files.makedirs(model_dir)
    run_dir.write_text(run_dir.operative_config_path(model_dir), gin.operative_config_str())
    return tf.summary.create_file_writer(model_dir)


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
