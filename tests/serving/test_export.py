"""SavedModel export: the export loads without tf_convgan and equals the EMA generator; training
exports at the end, the command line exports any checkpoint and replaces only a previous export."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import ROOT, copy_run, make_gan, random_batch, run_steps, tree_bytes
from tf_convgan.cli import export
from tf_convgan.run_dir import images as images_lib
from tf_convgan.cli import sampling as sampling_cli
from tf_convgan.serving import sampling
from tf_convgan.run_dir.checkpoints import CheckpointMismatchError
from tf_convgan.serving.export import export_generator
from tf_convgan.run_dir.generators import load_generator_ema

# Loads the SavedModel in a process where tf_convgan cannot be imported (-I: no script
# directory, no PYTHONPATH, run from a directory without the project).
_LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    try:
        import tf_convgan
        sys.exit("tf_convgan is importable")
    except ImportError:
        pass
    export_dir, inputs, outputs = sys.argv[1:]
    model = tf.saved_model.load(export_dir)
    data = dict(np.load(inputs))
    served = model.signatures["serving_default"](**{k: tf.constant(v) for k, v in data.items()})
    sampled = model.sample(n=tf.constant(5), seed=tf.constant(11, tf.int64))
    np.savez(outputs, z_dim=model.z_dim.numpy(), num_classes=model.num_classes.numpy(),
             **{k: v.numpy() for k, v in served.items()},
             **{"sample_" + k: v.numpy() for k, v in sampled.items()})
""")


def _load_without_tf_convgan(export_dir, inputs, tmp_path):
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-I", "-c", _LOAD_SCRIPT, str(export_dir), str(tmp_path / "inputs.npz"),
         str(tmp_path / "outputs.npz")], cwd=str(tmp_path), env=env, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(tmp_path / "outputs.npz"))


@pytest.mark.parametrize("num_classes", [1, 3])
def test_exported_generator_equals_the_in_process_ema_generator(tmp_path, num_classes):
    gan = make_gan(num_classes=num_classes, ema_beta=0.5)
    run_steps(gan, [random_batch(4, num_classes=num_classes)])  # EMA differs from G and init
    export_dir = export_generator(gan.generator_ema, str(tmp_path / "export"),
                                  operative_config="train.num_steps = 1\n")
    assert open(os.path.join(export_dir, "operative_config.gin")).read() == "train.num_steps = 1\n"

    rng = np.random.default_rng(0)
    inputs = {"z": rng.normal(size=(6, gan.generator.z_dim)).astype(np.float32)}
    if num_classes > 1:
        inputs["labels"] = np.array([0, 1, 2, 2, 1, 0], np.int32)
    got = _load_without_tf_convgan(export_dir, inputs, tmp_path)

    want = gan.generator_ema(inputs["z"], inputs.get("labels"), training=False).numpy()
    assert not np.allclose(want, gan.generator(inputs["z"], inputs.get("labels"),
                                               training=False).numpy(), atol=1e-4)
    np.testing.assert_allclose(got["images_float"], want, atol=1e-5)
    np.testing.assert_array_equal(got["images"], images_lib.to_uint8(want).numpy())
    assert got["images"].dtype == np.uint8 and got["images"].shape == (6, 32, 32, 3)
    assert int(got["z_dim"]) == gan.generator.z_dim and int(got["num_classes"]) == num_classes

    # sample(n, seed) is the library's deterministic sampler, also outside the library.
    sampler = sampling.Sampler.from_generator(gan.generator_ema)
    np.testing.assert_allclose(got["sample_images_float"], sampler.sample(5, 11), atol=1e-5)
    np.testing.assert_array_equal(got["sample_labels"], np.arange(5) % num_classes)


def test_saved_model_cli_lists_the_signatures(tmp_path):
    gan = make_gan(num_classes=3)
    export_dir = export_generator(gan.generator_ema, str(tmp_path / "export"))
    cli = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable),
                                                          "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", export_dir], capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for expected in ("signature_def['serving_default']", "inputs['z']", "inputs['labels']",
                     "outputs['images']", "outputs['images_float']", "DT_UINT8",
                     "signature_def['sample']", "inputs['n']", "inputs['seed']"):
        assert expected in out, expected


@pytest.fixture
def model_dir(trained_run):
    """The session's tiny training directory (4 steps, every checkpoint kept, exported)."""
    return trained_run.model_dir


def test_training_exports_at_the_end_and_the_cli_exports_any_checkpoint(model_dir, tmp_path):
    sampler_end = sampling.Sampler.load(str(model_dir / "export"))
    sampler_ckpt = sampling.Sampler.load(str(model_dir))
    np.testing.assert_allclose(sampler_end.sample(4, 0), sampler_ckpt.sample(4, 0), atol=1e-5)
    assert os.path.exists(model_dir / "export" / "operative_config.gin")

    export_dir = tmp_path / "ckpt2"
    result = subprocess.run(
        [sys.executable, "-m", "tf_convgan.export", "--model_dir", str(model_dir),
         "--checkpoint", "ckpt-2", "--export_dir", str(export_dir)], cwd=ROOT,
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    generator_2, _ = load_generator_ema(str(model_dir), checkpoint="ckpt-2")
    at_2 = sampling.Sampler.from_generator(generator_2).sample(4, 0)
    np.testing.assert_allclose(sampling.Sampler.load(str(export_dir)).sample(4, 0), at_2,
                               atol=1e-5)
    assert not np.allclose(at_2, sampler_end.sample(4, 0), atol=1e-4)  # really another step


def test_a_missing_checkpoint_or_changed_generator_is_a_clear_error(model_dir, tmp_path, capsys):
    status = export.main(["export", "--model_dir", str(model_dir), "--checkpoint", "ckpt-99"])
    assert status == 2 and "no checkpoint found" in capsys.readouterr().err
    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    with open(changed / "operative_config.gin", "a") as f:
        f.write("\nresnet_generator.nf = 8\n")
    with pytest.raises(CheckpointMismatchError, match="does not fit the configured networks"):
        load_generator_ema(str(changed))


def test_export_replaces_only_a_previous_export(model_dir, tmp_path, monkeypatch, capsys):
    """Not the run directory, its checkpoints, a file, the working directory, or a SavedModel
    with anything else beside it: one line naming --export_dir, status 2, nothing touched. A
    previous export is replaced by a complete new one."""
    run = copy_run(model_dir, tmp_path / "run")
    other = tmp_path / "other"
    other.mkdir()
    (other / "saved_model.pb").write_bytes(b"not mine to delete")
    (other / "notes.txt").write_text("mine")
    monkeypatch.chdir(other)
    before = {path: tree_bytes(path) for path in (run, other)}
    for target in (run, run / "checkpoints", run / "samples.png", ".", other):
        status = export.main(["export", "--model_dir", str(run), "--export_dir", str(target)])
        err = capsys.readouterr().err
        assert status == 2 and len(err.splitlines()) == 1, err
        assert err.startswith("error: --export_dir: "), err
        assert ("is not a previous export" in err or "the checkpoints of a run" in err), err
    assert {path: tree_bytes(path) for path in (run, other)} == before

    assert export.main(["export", "--model_dir", str(run), "--checkpoint", "ckpt-2"]) == 0
    assert sorted(os.listdir(run)) == sorted(os.listdir(model_dir))  # no temporary leftovers
    generator_2, _ = load_generator_ema(str(run), checkpoint="ckpt-2")
    np.testing.assert_allclose(sampling.Sampler.load(str(run / "export")).sample(3, 0),
                               sampling.Sampler.from_generator(generator_2).sample(3, 0),
                               atol=1e-5)


def test_an_export_removes_the_stale_temporaries_of_killed_exports_and_nothing_else(
        model_dir, tmp_path):
    """A kill -9 during an export leaves `.export.<random>.tmp` (the SavedModel being written)
    or `.export.<random>.old` (the export being replaced). The next export removes those that
    no live process holds (each export holds an flock on its temporaries), and nothing else:
    not a live export's, not another name's, not one that holds anything but a SavedModel."""
    import fcntl
    run = copy_run(model_dir, tmp_path / "run")
    stale_tmp, stale_old = run / ".export.k2j4_x9q.tmp", run / ".export.a0b1c2d3.old"
    (stale_tmp / "variables").mkdir(parents=True)
    (stale_tmp / "variables" / "variables.index").write_bytes(b"partial")
    shutil.copytree(run / "export", stale_old)
    live = run / ".export.live5678.tmp"
    live.mkdir()
    kept = {run / ".export.mine.tmp": None, run / ".export.file1234.tmp": "a file",
            run / ".export.user1234.tmp": "notes.txt", run / ".samples.k2j4_x9q.tmp": None}
    for path, what in kept.items():
        if what == "a file":
            path.write_text("mine")
        else:
            path.mkdir()
            if what:
                (path / what).write_text("mine")
    before = {path: tree_bytes(path) if path.is_dir() else path.read_bytes()
              for path in [*kept, live]}
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # an export in progress holds it
        assert export.main(["export", "--model_dir", str(run), "--checkpoint", "ckpt-2"]) == 0
    finally:
        os.close(fd)
    assert not stale_tmp.exists() and not stale_old.exists()
    assert {path: tree_bytes(path) if path.is_dir() else path.read_bytes()
            for path in [*kept, live]} == before


def test_a_model_dir_that_is_a_file_or_missing_is_named_as_such(tmp_path, capsys):
    """Not `<file>/operative_config.gin does not exist`: what --model_dir is, and what it should
    be (sampling --model reads a run the same way)."""
    (tmp_path / "notes.txt").write_text("x")
    for main, flag, path, problem in [
            (export.main, "--model_dir", tmp_path / "notes.txt", "is a file"),
            (export.main, "--model_dir", tmp_path / "missing", "does not exist"),
            (sampling_cli.main, "--model", tmp_path / "notes.txt", "is a file")]:
        extra = ["--out_dir", str(tmp_path / "out")] if main is sampling_cli.main else []
        status = main(["command", flag, str(path), *extra])
        err = capsys.readouterr().err
        assert status == 2 and err == (f"error: {flag}: '{path}' {problem}: it should be a "
                                       f"training directory written by run.py\n"), err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
