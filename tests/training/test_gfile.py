"""Model directories on a URL (gs://, s3://, ...): everything goes through tf.io.gfile.

TensorFlow's in-memory filesystem (ram://) stands in for an object store: a full run (train,
checkpoint, resume, export, sample, metrics CSV and FID plot) on a ram:// model directory, with
every local file function made to fail on a path that holds 'ram:' (the fixture
`no_local_disk_for_ram` of tests/conftest.py) and the working directory checked to stay empty."""
import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers import check_file_functions_on_url, ram_url, train_in_process
from tf_convgan import run_dir
from tf_convgan.errors import ConfigError
from tf_convgan.evaluation import hook
from tf_convgan.run_dir import checkpoints, files, images
from tf_convgan.run_dir.lock import url_lock_warning
from tf_convgan.serving import sampling


def _onram_url(npy_path):
    """The tiny data as a ram:// file (written before the guard is in place)."""
    path = ram_url("data") + "/images.npy"
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    tf.io.gfile.copy(npy_path, path)
    return path


@pytest.fixture
def ram_npy(npy_path):
    return _onram_url(npy_path)


def test_a_run_on_an_in_memory_filesystem_never_touches_the_local_disk(
        ram_npy, no_local_disk_for_ram, capsys):
    npy_path = ram_npy  # the data on the in-memory filesystem too
    model_dir = ram_url("run")
    train_in_process(model_dir, npy_path, "train.num_steps = 2", "train.export_at_end = False")
    # No writer lock on an object store: the run says so in one line when it starts.
    err = capsys.readouterr().err.splitlines()
    assert err.count(url_lock_warning(model_dir)) == 1, err
    ckpt_dir = run_dir.checkpoint_dir(model_dir)
    assert tf.train.latest_checkpoint(ckpt_dir) == f"{ckpt_dir}/ckpt-2"
    assert files.isfile(run_dir.operative_config_path(model_dir))
    assert files.isfile(f"{model_dir}/samples/step_0000002.png")

    # Resumed by a second call: continues from step 2; retention keeps the last 3.
    gan = train_in_process(model_dir, npy_path, "train.num_steps = 5")
    assert int(gan.step_counter.numpy()) == 5
    assert checkpoints.checkpoint_steps(ckpt_dir) == [3, 4, 5]
    assert tf.train.latest_checkpoint(ckpt_dir) == f"{ckpt_dir}/ckpt-5"
    state = run_dir.read_text(f"{ckpt_dir}/checkpoint")
    assert 'model_checkpoint_path: "ckpt-5"' in state
    names = tf.io.gfile.listdir(ckpt_dir)
    assert not [n for n in names if n.endswith((".tmp", ".old"))], names
    assert images.read_png(f"{model_dir}/samples.png").shape[-1] == 3

    # The export at the end, and sampling from it and from the run directory.
    export = run_dir.export_dir(model_dir)
    assert tf.saved_model.contains_saved_model(export)
    assert files.isfile(f"{export}/{run_dir.OPERATIVE_CONFIG}")
    from_export = sampling.Sampler.load(export).sample(4, seed=1)
    from_run = sampling.Sampler.load(model_dir).sample(4, seed=1)
    np.testing.assert_allclose(from_export, from_run, atol=1e-5)
    out_dir = ram_url("samples")
    sampling.write_samples(sampling.Sampler.load(export), out_dir, num=4, seed=0)
    # (ram://'s listdir matches name prefixes: samples/ also lists '.png' of samples.png)
    assert all(files.isfile(f"{out_dir}/samples/sample_{i:05d}.png") for i in range(4))
    assert files.isfile(f"{out_dir}/samples.png")

    # A second export replaces the first, leaving nothing beside it.
    from tf_convgan.serving import export as export_lib
    export_lib.export_model_dir(model_dir, checkpoint="ckpt-4")
    assert tf.saved_model.contains_saved_model(export)
    assert sorted(n.rstrip("/") for n in tf.io.gfile.listdir(model_dir)
                  if n.startswith(".")) == []

    # What the evaluator writes: metrics.csv rows and the FID plot.
    csv_path = f"{model_dir}/{run_dir.METRICS_CSV}"
    run_dir.append_csv_row(csv_path, 1, {"fid": 3.0})
    run_dir.append_csv_row(csv_path, 2, {"fid": 2.0})
    assert hook.read_metrics_csv(csv_path)["fid"].tolist() == [3.0, 2.0]
    hook.plot_metric(csv_path, f"{model_dir}/{run_dir.FID_PLOT}")
    assert images.read_png(f"{model_dir}/{run_dir.FID_PLOT}").ndim == 3


def test_resume_sets_aside_an_unreadable_checkpoint_on_a_url(no_local_disk_for_ram, npy_path):
    npy_path = str(npy_path)
    model_dir = ram_url("damaged")
    train_in_process(model_dir, npy_path, "train.num_steps = 2", "train.export_at_end = False")
    ckpt_dir = run_dir.checkpoint_dir(model_dir)
    data = [p for p in tf.io.gfile.glob(f"{ckpt_dir}/ckpt-2.data-*")][0]
    raw = run_dir.read_bytes(data)
    run_dir.write_bytes(data, raw[:len(raw) // 2])
    gan = train_in_process(model_dir, npy_path, "train.num_steps = 3",
                           "train.export_at_end = False")
    assert int(gan.step_counter.numpy()) == 3
    moved = tf.io.gfile.listdir(f"{ckpt_dir}/unreadable/ckpt-2")
    assert sorted(moved) == sorted(n for n in ["ckpt-2.index", os.path.basename(data)])
    assert checkpoints.checkpoint_steps(ckpt_dir) == [1, 2, 3]  # ckpt-2 written again


def test_gfile_writes_replace_or_leave_the_target(no_local_disk_for_ram):
    directory = ram_url("files")
    path = check_file_functions_on_url(directory)
    assert run_dir.file_sha256(path) == hashlib.sha256(b"two").hexdigest()
    assert tf.io.gfile.listdir(f"{directory}/sub") == ["a.txt"]  # no temporary left
    with pytest.raises(FileNotFoundError):
        run_dir.file_sha256(f"{directory}/missing.txt")


def test_check_export_dir_on_a_url(no_local_disk_for_ram):
    directory = ram_url("exp")
    run_dir.check_export_dir(f"{directory}/export")  # missing: fine
    run_dir.write_text(f"{directory}/export/notes.txt", "mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        run_dir.check_export_dir(f"{directory}/export")
    with pytest.raises(ConfigError, match="is a file"):
        run_dir.check_export_dir(f"{directory}/export/notes.txt")
    with pytest.raises(ConfigError, match="is a file"):
        run_dir.check_writable(f"{directory}/export/notes.txt")
    assert run_dir.is_inside(f"{directory}/export", directory)
    assert not run_dir.is_inside(f"{directory}x/export", directory)


def test_data_sources_read_urls(no_local_disk_for_ram):
    from tf_convgan.data import sources
    directory = ram_url("folder")
    rng = np.random.default_rng(0)
    for i, label in enumerate(["a", "a", "b"]):
        image = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        images.write_png(f"{directory}/{label}/{i}.png", image)
    source = sources.image_folder_source(directory=directory, resolution=8,
                                         labels_from_subdirs=True)
    assert source.num_classes == 2
    path = f"{directory}/x.npy"
    buffer = __import__("io").BytesIO()
    np.save(buffer, rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8))
    run_dir.write_bytes(path, buffer.getvalue())
    assert sources.npy_source(path=path, resolution=8).resolution == 8
