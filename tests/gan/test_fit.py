"""GAN.compile / GAN.fit (tf_convgan.gan.keras_api): Keras' fit runs the loop's train_step, so
it equals the library's train() and a run on one device; Keras' callbacks see the step's logs;
bad arguments are one clear ConfigError."""
import csv
import warnings

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import (assert_close_per_tensor, make_gan, run_eager_steps, two_cpu_strategy,
                     weights)
from tf_convgan.errors import ConfigError
from tf_convgan.gan.keras_networks import gan_from_keras
from tf_convgan.networks import mlp_discriminator, mlp_generator
from tf_convgan.objectives import penalties
from tf_convgan.studies.toy2d import PointSource
from tf_convgan.training.loop import train


def _mlp():
    """make_gan's network pair: MLPs on 2D points (unconditional, no batch norm), fast."""
    return (lambda c: mlp_generator(z_dim=4, width=16, depth=2, num_classes=c),
            lambda c: mlp_discriminator(width=16, depth=2, num_classes=c))


def _points(n_batches, batch=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n_batches * batch, 2)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(x).batch(batch, drop_remainder=True)


def _no_samples(gan, model_dir, step, writer, **kwargs):
    del gan, model_dir, step, writer, kwargs


def _train(model_dir, num_steps):
    """train() on the ring of 8 Gaussians: MLPs, R1, d_steps = 2, batch 8, seed 3."""
    gin.clear_config()
    gin.bind_parameter("GAN.penalty", penalties.r1)
    gin.bind_parameter("GAN.d_steps", 2)
    gin.bind_parameter("GAN.ema_beta", 0.9)
    try:
        return train(model_dir=str(model_dir), data=PointSource("ring8"), batch_size=8,
                     generator_fn=lambda: mlp_generator(z_dim=4, width=16, depth=2),
                     discriminator_fn=lambda: mlp_discriminator(width=16, depth=2),
                     num_steps=num_steps, seed=3, checkpoint_every=100, log_every=100,
                     sample_writer=_no_samples, export_at_end=False)
    finally:
        gin.clear_config()


def test_fit_equals_the_training_loop(tmp_path):
    """fit for 3 steps on the stream the loop's pipeline reads (source.dataset(seed) in batches
    of batch_size * d_steps) equals train() for 3 steps from the same seed: every weight of G, D
    and EMA G, with R1 and d_steps = 2. Fit on other data does not."""
    trained = _train(tmp_path / "loop", 3)
    stream = PointSource("ring8").dataset(seed=3).batch(16, drop_remainder=True)
    for data, equal in ((stream, True), (stream.map(lambda x, y: (x * 0.5, y)), False)):
        gan = _train(tmp_path / f"fit_{equal}", 0)  # built from the seed, not trained
        gan.compile()
        history = gan.fit(data, epochs=1, steps_per_epoch=3, verbose=0)
        assert int(gan.step.numpy()) == 3 and len(history.history["d_loss"]) == 1
        if equal:
            assert_close_per_tensor(weights(gan), weights(trained), rtol=1e-5, atol=1e-7)
        else:
            assert max(np.abs(a - b).max() for a, b in zip(weights(gan), weights(trained))) > 1e-4


def test_fit_on_two_replicas_equals_one_device_and_the_step():
    """fit under MirroredStrategy on 2 logical CPUs equals train_step run eagerly on one
    device (MLPs, R1, d_steps = 2, 2 steps): each replica takes contiguous rows of [B, d],
    and D's sub-step k the points j * d + k of a batch."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(2, 8, 2, 2)).astype(np.float32)  # steps, B, d, point
    labels = np.zeros((2, 8, 2), np.int32)
    make = lambda strategy=None: make_gan(  # noqa: E731
        _mlp(), strategy=strategy, penalty=penalties.r1, d_steps=2, ema_beta=0.9)
    reference = make()
    run_eager_steps(reference, list(zip(real, labels)))
    dataset = tf.data.Dataset.from_tensor_slices(
        (real.reshape(-1, 2), labels.reshape(-1))).batch(16, drop_remainder=True)
    gan = make(two_cpu_strategy())
    gan.compile()
    gan.fit(dataset, epochs=1, verbose=0)
    assert int(gan.step.numpy()) == 2
    assert_close_per_tensor(weights(gan), weights(reference), rtol=1e-5, atol=1e-7)


def test_backup_and_restore_resumes_bit_identically(tmp_path):
    """An interrupted fit resumed by BackupAndRestore (weights, both optimizers and the step
    counter that seeds the draws) ends with exactly the weights of an uninterrupted one."""
    data = _points(2)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    def fit(callbacks):
        gan = make_gan(_mlp(), penalty=penalties.r1, seed=1)
        gan.compile()
        gan.fit(data, epochs=2, verbose=0, callbacks=callbacks)
        return gan

    uninterrupted = fit([])
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        fit([keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False), Interrupt()])
    resumed = fit([keras.callbacks.BackupAndRestore(backup)])
    assert int(resumed.step.numpy()) == 4
    for a, b in zip(weights(resumed), weights(uninterrupted)):
        np.testing.assert_array_equal(a, b)


def test_csv_logger_tensorboard_and_checkpoint_write_the_step_logs(tmp_path):
    """CSVLogger writes the epoch's logs (the step's terms and `loss`), TensorBoard the same
    scalars as events, ModelCheckpoint(save_weights_only) weights that load back into a GAN."""
    data = _points(2)
    gan = make_gan(_mlp())
    gan.compile()
    history = gan.fit(data, epochs=2, verbose=0, callbacks=[
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq="epoch"),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"),
                                        save_weights_only=True)])
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for name in ("d_loss", "g_loss", "d_total", "loss"):
        np.testing.assert_allclose([float(r[name]) for r in rows], history.history[name],
                                   rtol=1e-6)
    np.testing.assert_allclose(history.history["loss"], np.add(history.history["d_total"],
                                                                history.history["g_loss"]),
                               rtol=1e-6)
    tags = {}
    for path in (tmp_path / "tb" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(
                    float(tf.make_ndarray(value.tensor)))
    np.testing.assert_allclose(tags["epoch_g_loss"], history.history["g_loss"], rtol=1e-6)
    np.testing.assert_allclose(tags["epoch_d_loss"], history.history["d_loss"], rtol=1e-6)
    restored = make_gan(_mlp(), seed=7)
    restored.load_weights(str(tmp_path / "ckpt.weights.h5"))
    assert int(restored.step.numpy()) == 4
    for a, b in zip(weights(restored), weights(gan)):
        np.testing.assert_array_equal(a, b)


def test_terminate_on_nan_stops_at_a_non_finite_loss():
    """A NaN point makes D's loss NaN at the second step: TerminateOnNaN stops fit there."""
    x = np.zeros((3 * 4, 2), np.float32)
    x[4:] = np.nan
    gan = make_gan(_mlp())
    gan.compile()
    seen = []
    data = tf.data.Dataset.from_tensor_slices(x).batch(4, drop_remainder=True)
    gan.fit(data, epochs=1, verbose=0, callbacks=[
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: seen.append(logs["loss"]))])
    assert int(gan.step.numpy()) == 2 and np.isfinite(seen[0]) and np.isnan(seen[1])


@pytest.mark.parametrize("call,match", [
    (lambda g: g.fit(_points(1), verbose=0), r"GAN\.compile\(\) first"),
    (lambda g: g.compile(optimizer="adam"), r"optimizer.*g_optimizer=, d_optimizer="),
    (lambda g: g.compile(g_optimizer="adam"), r"g_optimizer=.*keras\.optimizers\.Optimizer"),
    (lambda g: g.compile(loss="bce"), r"loss=.*GANLoss"),
    (lambda g: (g.compile(), g.fit(np.zeros((4, 2)))), r"tf\.data\.Dataset"),
    (lambda g: (g.compile(), g.fit(_points(1).unbatch().batch(3))), r"drop_remainder=True"),
    (lambda g: (g.compile(), g.fit(_points(1).map(lambda x: x[:, :1]))), r"\[N, 2\]"),
    (lambda g: (g.compile(), g.fit(_points(1), y=np.zeros(4))), r"does not take y"),
])
def test_bad_arguments_are_one_clear_error(call, match):
    gan = make_gan(_mlp())
    with pytest.raises(ConfigError, match=match):
        call(gan)
    assert int(gan.step.numpy()) == 0


def _keras_g(activation="tanh", z_dim=4):
    return keras.Sequential([keras.Input((z_dim,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(2, activation=activation)])


def _keras_d(units=1):
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(units)])


def test_own_keras_networks_train_with_r1_in_one_argument():
    """Sequential G and D wrapped by gan_from_keras train under fit with R1 (penalty logged),
    and the EMA copy starts as G."""
    keras.utils.set_random_seed(0)
    gan = gan_from_keras(_keras_g(), _keras_d(), penalty=penalties.r1, seed=5)
    np.testing.assert_array_equal(weights(gan)[0], gan.generator_ema.weights[0].numpy())
    gan.compile(g_optimizer=keras.optimizers.Adam(1e-3), d_optimizer=keras.optimizers.Adam(1e-3))
    before = [w.copy() for w in weights(gan)]
    history = gan.fit(_points(2), epochs=1, verbose=0)
    assert history.history["penalty"][0] > 0 and int(gan.step.numpy()) == 2
    assert all(np.abs(a - b).max() > 0 for a, b in zip(weights(gan), before))


@pytest.mark.parametrize("make,match", [
    (lambda: (_keras_g(activation=None), _keras_d()), r"\[-1, 1\].*tanh"),
    (lambda: (_keras_g(), _keras_d(units=3)), r"one logit per example.*\(2, 3\)"),
    (lambda: (_keras_g(), keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])),
     r"discriminator must take the generator's images \[N, 2\]"),
    (lambda: (keras.Sequential([keras.layers.Dense(2)]), _keras_d()), r"declared inputs"),
])
def test_networks_off_the_contract_are_one_clear_error(make, match):
    keras.utils.set_random_seed(0)
    g, d = make()
    with pytest.raises(ConfigError, match=match):
        gan_from_keras(g, d)


@pytest.mark.parametrize("options,rtol", [
    ({"steps_per_execution": 2}, 1e-6),
    pytest.param({"jit_compile": True}, 1e-5, marks=pytest.mark.slow),  # XLA: ~60 s on 2 cores
], ids=["steps_per_execution", "xla"])
def test_steps_per_execution_and_xla_give_the_same_weights(options, rtol):
    """compile(steps_per_execution=2) (two steps per call) and compile(jit_compile=True) (XLA
    train_step, as the loop compiles it) train the weights of one uncompiled step per call."""
    results = []
    for opts in ({}, options):
        gan = make_gan(_mlp(), penalty=penalties.r1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. Keras' "doesn't support jit_compile=True"
            gan.compile(**opts)
        gan.fit(_points(4), epochs=1, verbose=0)
        assert int(gan.step.numpy()) == 4
        results.append(weights(gan))
    assert_close_per_tensor(results[1], results[0], rtol=rtol, atol=rtol * 1e-2)
