"""The compiled training step (training.distributed.make_step_fn) traces the GAN's step without
AutoGraph (only its loop over steps_per_execution steps is converted). AutoGraph changes only the
Python that runs while tracing, never the ops of a step without tensor-dependent Python control
flow, so the updates must be the AutoGraph-converted step's bit for bit: the same ops on the same
inputs in the same order (float tolerance would hide a reordered or missing op)."""
import numpy as np
import pytest
import tensorflow as tf

from helpers import make_gan, weights
from tf_convgan.gan import optimizers
from tf_convgan.networks import mlp_discriminator, mlp_generator
from tf_convgan.objectives import losses, penalties
from tf_convgan.training.distributed import distribute_pipeline, make_step_fn

STEPS, BATCH = 4, 16
MLP = (lambda c: mlp_generator(z_dim=4, width=8, depth=2, num_classes=c),
       lambda c: mlp_discriminator(width=8, depth=2, num_classes=c))


def _gan(rule):
    return make_gan(MLP, seed=5, optimizer=lambda: optimizers.sgd(learning_rate=0.1),
                    loss=losses.minimax(), penalty=penalties.r1, update_rule=rule, ema_beta=0.9)


def _iterator():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((STEPS, BATCH, 1, 2)).astype(np.float32)
    labels = np.zeros((STEPS, BATCH, 1), np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((real, labels))
    return iter(distribute_pipeline(tf.distribute.get_strategy(), lambda: dataset)), dataset


def _converted_steps(gan, iterator):
    """The step as it was compiled before: the whole of it converted by AutoGraph."""
    strategy = tf.distribute.get_strategy()

    @tf.function
    def run(iterator):
        for _ in tf.range(STEPS):
            strategy.run(gan.train_step, args=(next(iterator),))
    run(iterator)


@pytest.mark.parametrize("rule", ["alternating", "simultaneous"])
def test_step_fn_equals_the_autograph_converted_step_bit_for_bit(rule):
    reference, new = _gan(rule), _gan(rule)
    assert all(np.array_equal(a, b) for a, b in zip(weights(reference), weights(new)))
    _converted_steps(reference, _iterator()[0])
    iterator, dataset = _iterator()
    step_fn = make_step_fn(new, tf.distribute.get_strategy(), False, dataset.element_spec,
                           steps_per_execution=STEPS)
    step_fn(iterator)
    assert int(new.step.numpy()) == int(reference.step.numpy()) == STEPS
    got, want = weights(new), weights(reference)
    assert not np.array_equal(want[0], weights(_gan(rule))[0])   # the steps changed the weights
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
