"""The training loop's periodic work, behind one interface.

A hook is a callable `hook(context)` run by the loop after the steps at which it is due
(`every(step, n, num_steps)`: every n steps and at the last step). The context holds what a hook
may need:

  gan         the GAN model (.generator, .discriminator, .generator_ema, .step)
  step        completed training steps
  num_steps   the steps the run trains in total
  model_dir   the run directory
  writer      the run's TensorBoard writer (a no-op writer on workers other than the chief)
  strategy    the training strategy, or None where work must stay on the chief's own device
              (multi-worker: the chief evaluates alone)
  data        the training data source
  checkpoint  a tf.train.Checkpoint of the full training state (what best/ keeps)
  logs        the last step's logs (floats by name)

The loop's own hooks log the step's scalars and write sample grids; `train.evaluator` (e.g.
@fid_evaluator()) is a hook too, run every `train.eval_every` steps on the chief.
"""
import dataclasses
import time
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tf_convgan import run_dir
from tf_convgan.run_dir import images as images_lib


def every(step: int, n: int, num_steps: int) -> bool:
    """Whether work of period n is due after `step`: every n steps and at the last step."""
    return step % n == 0 or step == num_steps


@dataclasses.dataclass
class StepContext:
    gan: Any
    step: int
    num_steps: int
    model_dir: str
    writer: Any
    strategy: Optional[tf.distribute.Strategy]
    data: Any
    checkpoint: tf.train.Checkpoint
    logs: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Periodic:
    """`hook` every `period` steps (and at the last step); `chief_only`: on the chief alone."""
    hook: Callable[[StepContext], Any]
    period: int
    chief_only: bool = True

    def due(self, step: int, num_steps: int, is_chief: bool) -> bool:
        return (is_chief or not self.chief_only) and every(step, self.period, num_steps)


class ScalarLogger:
    """TensorBoard `train/<name>` for every logged value, and `train/steps_per_second` over the
    steps since the previous call."""

    def __init__(self, start_step: int):
        self._tick, self._tick_step = time.time(), start_step

    def __call__(self, context: StepContext):
        now = time.time()
        logs = dict(context.logs, steps_per_second=(context.step - self._tick_step)
                    / max(now - self._tick, 1e-9))
        self._tick, self._tick_step = now, context.step
        with context.writer.as_default(step=context.step):
            for name, value in logs.items():
                tf.summary.scalar(f"train/{name}", value)


def sample_grid(generator, *, num_samples, seed):
    """uint8 grid of generator samples for fixed z; conditional models get one class per row."""
    cols = int(np.ceil(np.sqrt(num_samples)))
    z = tf.random.stateless_normal([num_samples, generator.z_dim], seed=[seed, 7])
    labels = tf.constant((np.arange(num_samples) // cols) % generator.num_classes, tf.int32)
    images = images_lib.to_uint8(generator(z, labels, training=False))
    return images_lib.make_grid(images.numpy(), cols=cols)


def write_samples(gan, model_dir, step, writer, *, num_samples, seed):
    """The default `train.sample_writer`: the EMA generator's grid for fixed z as
    samples/step_XXXXXXX.png and samples.png, and TensorBoard `samples_ema`."""
    grid = sample_grid(gan.generator_ema, num_samples=num_samples, seed=seed)
    for path in run_dir.sample_grid_paths(model_dir, step):
        images_lib.write_png(path, grid)
    with writer.as_default(step=step):
        tf.summary.image("samples_ema", grid[None])


class SampleWriter:
    """Runs a `train.sample_writer`, called as `sample_writer(gan, model_dir, step, writer,
    num_samples=, seed=)` (default `write_samples`; 2D problems use @toy2d_writer())."""

    def __init__(self, sample_writer=None, *, num_samples: int, seed: int):
        self.sample_writer = sample_writer or write_samples
        self.num_samples = num_samples
        self.seed = seed

    def __call__(self, context: StepContext):
        self.sample_writer(context.gan, context.model_dir, context.step, context.writer,
                           num_samples=self.num_samples, seed=self.seed)
