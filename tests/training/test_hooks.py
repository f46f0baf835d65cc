"""tf_convgan.training.hooks: when periodic work is due (every n steps and at the last step, on the
chief alone where asked), the TensorBoard scalars ScalarLogger writes (train/<name> and
steps_per_second, read back from the event file), SampleWriter's call of the sample writer."""
import glob
import types

import tensorflow as tf

from tf_convgan.training import hooks


def _context(tmp_path, step, *, writer=None, logs=None, gan=None):
    return hooks.StepContext(gan=gan, step=step, num_steps=10, model_dir=str(tmp_path),
                             writer=writer, strategy=None, data=None, checkpoint=None,
                             logs=dict(logs or {}))


def test_every_is_due_at_the_multiples_and_at_the_last_step():
    assert [s for s in range(1, 11) if hooks.every(s, 3, 10)] == [3, 6, 9, 10]
    assert [s for s in range(1, 11) if hooks.every(s, 5, 10)] == [5, 10]
    assert [s for s in range(1, 8) if hooks.every(s, 1, 7)] == list(range(1, 8))
    assert [s for s in range(1, 11) if hooks.every(s, 20, 10)] == [10]


def test_periodic_chief_only_is_never_due_on_a_non_chief():
    chief_only = hooks.Periodic(hook=lambda context: None, period=4)
    everywhere = hooks.Periodic(hook=lambda context: None, period=4, chief_only=False)
    due = lambda periodic, is_chief: [s for s in range(1, 11)  # noqa: E731
                                      if periodic.due(s, 10, is_chief)]
    assert due(chief_only, True) == [4, 8, 10]
    assert due(chief_only, False) == []
    assert due(everywhere, False) == due(everywhere, True) == [4, 8, 10]


def _scalars(log_dir):
    """{(tag, step): value} of every scalar in the event files under log_dir."""
    found = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    return found


def test_scalar_logger_writes_every_log_and_the_steps_per_second(tmp_path, monkeypatch):
    clock = iter([100.0, 105.0, 111.0])  # construction, first call, second call
    monkeypatch.setattr(hooks, "time", types.SimpleNamespace(time=lambda: next(clock)))
    writer = tf.summary.create_file_writer(str(tmp_path / "logs"))
    logger = hooks.ScalarLogger(start_step=0)
    logger(_context(tmp_path, 10, writer=writer, logs={"d_loss": 0.5, "g_loss": -1.25}))
    logger(_context(tmp_path, 16, writer=writer, logs={"d_loss": 0.25, "g_loss": 3.0}))
    writer.close()
    assert _scalars(tmp_path / "logs") == {
        ("train/d_loss", 10): 0.5, ("train/g_loss", 10): -1.25,
        ("train/steps_per_second", 10): 2.0,  # 10 steps in 5 s
        ("train/d_loss", 16): 0.25, ("train/g_loss", 16): 3.0,
        ("train/steps_per_second", 16): 1.0}  # 6 steps in the 6 s since the previous call


def test_sample_writer_calls_the_sample_writer_with_the_documented_arguments(tmp_path):
    calls = []

    def sample_writer(gan, model_dir, step, writer, *, num_samples, seed):
        calls.append((gan, model_dir, step, writer, num_samples, seed))

    gan, writer = object(), object()
    hook = hooks.SampleWriter(sample_writer, num_samples=9, seed=5)
    hook(_context(tmp_path, 7, writer=writer, gan=gan))
    assert calls == [(gan, str(tmp_path), 7, writer, 9, 5)]
    assert hooks.SampleWriter(num_samples=4, seed=0).sample_writer is hooks.write_samples

