"""The training loop: strategy, networks, checkpoints, TensorBoard, sample grids, progress bar.

`train()` is gin-configurable; `run.py` parses the gin files and calls it. Everything it writes
goes into `model_dir`:
  checkpoints/               tf.train.CheckpointManager (G, D, EMA G, both optimizers; the step
                             counter lives in G's optimizer, and every random draw of training
                             is a function of (seed, step), so a restored run continues exactly)
  events.out.tfevents.*      TensorBoard: every loss term, the penalty, D's logits, gradient
                             norms of G and D, steps/s; sample grids of the EMA generator
  samples/step_XXXXXXX.png   sample grids of the EMA generator; samples.png is the latest
  operative_config.gin       the gin bindings this run used
  metrics.csv, fid.png, best/  with `train.evaluator` (e.g. @fid_evaluator()): FID/KID every
                             `eval_every` steps (also TensorBoard eval/*), the best-FID checkpoint
Nothing is written before the first step has run, so bad input leaves the directory untouched.
"""
import os
import sys
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from tf_convgan import data as data_lib
from tf_convgan import images as images_lib
from tf_convgan.errors import ConfigError
from tf_convgan.gan import GAN
from tf_convgan.networks import build
from tf_convgan.strategy import per_replica_batch_size

OPERATIVE_CONFIG = "operative_config.gin"
CHECKPOINT_SUBDIR = "checkpoints"
SAMPLES_SUBDIR = "samples"


def build_gan(generator_fn, discriminator_fn, strategy, gan_cls=GAN):
    """Builds G, D, the EMA copy of G and the GAN model (gin supplies the GAN's other args)."""
    with strategy.scope():
        generator = build(generator_fn())
        discriminator = build(discriminator_fn())
        generator_ema = build(generator_fn())
        return gan_cls(generator, discriminator, generator_ema)


def make_checkpoint(gan):
    return tf.train.Checkpoint(
        generator=gan.generator, discriminator=gan.discriminator,
        generator_ema=gan.generator_ema, g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer)


def restore_latest(gan, directory):
    """Restores the latest checkpoint in `directory`, if any; every object must match."""
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        return None
    make_checkpoint(gan).restore(latest).assert_existing_objects_matched()
    return latest


def sample_grid(generator, *, num_samples, seed):
    """uint8 grid of generator samples for fixed z; conditional models get one class per row."""
    cols = int(np.ceil(np.sqrt(num_samples)))
    z = tf.random.stateless_normal([num_samples, generator.z_dim], seed=[seed, 7])
    labels = tf.constant((np.arange(num_samples) // cols) % generator.num_classes, tf.int32)
    images = images_lib.to_uint8(generator(z, labels, training=False))
    return images_lib.make_grid(images.numpy(), cols=cols)


def check_data_fits_networks(element_spec, generator):
    shape = element_spec[0].shape  # [B, d_steps, H, W, C]
    expected = (generator.resolution, generator.resolution, 3)
    if tuple(shape[2:]) != expected:
        raise ConfigError(
            f"the data's images are {tuple(shape[2:])} but the generator makes {expected}: set "
            f"the data source's `resolution` (and channels=3) to match the networks'")


def _make_step_fn(gan, strategy, jit_compile):
    replica_step = tf.function(gan.train_step, jit_compile=jit_compile)

    @tf.function
    def distributed_step(iterator):
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
          max_checkpoints=3,
          log_every=50,
          sample_every=500,
          num_samples=64,
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
      evaluator: None, or e.g. @fid_evaluator(): called with the EMA generator every `eval_every`
        steps and at the end (see tf_convgan.evaluation.evaluate_during_training).
    Returns the GAN model.
    """
    strategy = strategy or tf.distribute.get_strategy()
    per_replica_batch_size(batch_size, strategy)
    for name, value in (("num_steps", num_steps), ("checkpoint_every", checkpoint_every),
                        ("log_every", log_every), ("sample_every", sample_every),
                        ("num_samples", num_samples), ("max_checkpoints", max_checkpoints),
                        ("eval_every", eval_every)):
        if not isinstance(value, int) or value < (0 if name == "num_steps" else 1):
            raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")

    if not isinstance(data, data_lib.ImageSource):
        raise ConfigError(
            f"train.data must be an image source such as @fashion_mnist_source() (note the "
            f"parentheses), got {data!r}")
    keras.utils.set_random_seed(seed)  # the initial weights are a function of the seed
    gan = build_gan(generator_fn, discriminator_fn, strategy)
    num_classes = gan.generator.num_classes
    if gan.conditional and data.num_classes is not None and data.num_classes != num_classes:
        raise ConfigError(
            f"the networks have num_classes={num_classes} but the data has "
            f"{data.num_classes} classes")
    checkpoint_dir = os.path.join(model_dir, CHECKPOINT_SUBDIR)
    restored = restore_latest(gan, checkpoint_dir)
    start_step = int(gan.step.numpy())
    if restored:
        print(f"restored {restored} at step {start_step}", flush=True)

    pipeline = data_lib.make_input_pipeline(
        data, global_batch_size=batch_size, d_steps=gan.d_steps, seed=seed,
        start_step=start_step)
    check_data_fits_networks(pipeline.element_spec, gan.generator)
    iterator = iter(strategy.experimental_distribute_dataset(pipeline))
    step_fn = _make_step_fn(gan, strategy, jit_compile)

    manager = None
    writer = None
    progress = _Progress(num_steps, start_step, log_every)
    step = start_step
    tick, tick_step = time.time(), step
    while step < num_steps:
        logs = {k: float(v) for k, v in step_fn(iterator).items()}
        step += 1
        if manager is None:  # first step done: nothing was written before it succeeded
            os.makedirs(model_dir, exist_ok=True)
            write_operative_config(model_dir)
            writer = tf.summary.create_file_writer(model_dir)
            manager = tf.train.CheckpointManager(
                make_checkpoint(gan), checkpoint_dir, max_to_keep=max_checkpoints,
                step_counter=gan.step, checkpoint_interval=checkpoint_every)
        progress.update(step, logs)
        if step % log_every == 0 or step == num_steps:
            now = time.time()
            logs["steps_per_second"] = (step - tick_step) / max(now - tick, 1e-9)
            tick, tick_step = now, step
            with writer.as_default(step=step):
                for name, value in logs.items():
                    tf.summary.scalar(f"train/{name}", value)
        if step % sample_every == 0 or step == num_steps:
            write_samples(gan, model_dir, step, writer, num_samples=num_samples, seed=seed)
        if evaluator is not None and (step % eval_every == 0 or step == num_steps):
            from tf_convgan.evaluation import evaluate_during_training
            evaluate_during_training(evaluator, generator_ema=gan.generator_ema,
                                     checkpoint=make_checkpoint(gan), step=step,
                                     model_dir=model_dir, writer=writer, strategy=strategy,
                                     data=data)
        manager.save(checkpoint_number=step, check_interval=step != num_steps)
    if writer is not None:
        writer.flush()
    return gan


def write_samples(gan, model_dir, step, writer, *, num_samples, seed):
    grid = sample_grid(gan.generator_ema, num_samples=num_samples, seed=seed)
    images_lib.write_png(os.path.join(model_dir, SAMPLES_SUBDIR, f"step_{step:07d}.png"), grid)
    images_lib.write_png(os.path.join(model_dir, "samples.png"), grid)
    with writer.as_default(step=step):
        tf.summary.image("samples_ema", grid[None])
