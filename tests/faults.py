"""Fault injection for the end-to-end tests, loaded from gin with `import tests.faults`."""
import os
import signal
import time

import gin
import tensorflow as tf

from tf_convgan.objectives import losses
from tf_convgan.training.hooks import write_samples


@gin.configurable
def nan_d_loss():
    """The non-saturating loss with a NaN discriminator loss (as a diverged run would have)."""
    base = losses.non_saturating()
    return losses.GANLoss(
        d_loss=lambda d_real_logits, d_fake_logits: base.d_loss(d_real_logits, d_fake_logits)
        * tf.constant(float("nan")),
        g_loss=base.g_loss)


@gin.configurable
def sample_writer_waiting_for(*, path, at_step):
    """A `train.sample_writer` that, at `at_step`, waits until `path` exists (the test's go-ahead)
    before writing the samples: the run keeps its model directory meanwhile."""
    def write(gan, model_dir, step, writer, **kwargs):
        deadline = time.time() + 600
        while step == at_step and not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        write_samples(gan, model_dir, step, writer, **kwargs)
    return write


@gin.configurable
def sample_writer_interrupting(*, at_step, signum=int(signal.SIGINT)):
    """A `train.sample_writer` that sends `signum` (Ctrl-C's SIGINT) to its own process at
    `at_step`, in the middle of the step's work."""
    def write(gan, model_dir, step, writer, **kwargs):
        write_samples(gan, model_dir, step, writer, **kwargs)
        if step == at_step:
            os.kill(os.getpid(), signum)
    return write


@gin.configurable
def decreasing_fid_evaluator():
    """A `train.evaluator` without a feature network: FID = 10 - step (a new best at every
    evaluation), recorded as the FID evaluator's are (metrics.csv, fid.png, best/)."""
    from tf_convgan.evaluation.hook import EvaluationHook

    class Evaluator(EvaluationHook):
        def evaluate(self, generator_ema, step, *, strategy=None, data=None):
            return {"fid": 10.0 - step}

    return Evaluator()
