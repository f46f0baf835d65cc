"""SavedModel export (loads without tf_convgan), sampling and latent interpolation."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, copy_run, make_gan, random_batch, run_steps, tree_bytes
from tf_convgan.serving import export
from tf_convgan.run_dir import images as images_lib
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


def test_a_missing_checkpoint_or_changed_generator_is_a_clear_error(model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tf_convgan.export", "--model_dir", str(model_dir),
         "--checkpoint", "ckpt-99"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2 and "no checkpoint found" in result.stderr
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
        assert err.startswith("error: --export_dir: ") and "is not a previous export" in err, err
    assert {path: tree_bytes(path) for path in (run, other)} == before

    assert export.main(["export", "--model_dir", str(run), "--checkpoint", "ckpt-2"]) == 0
    assert sorted(os.listdir(run)) == sorted(os.listdir(model_dir))  # no temporary leftovers
    generator_2, _ = load_generator_ema(str(run), checkpoint="ckpt-2")
    np.testing.assert_allclose(sampling.Sampler.load(str(run / "export")).sample(3, 0),
                               sampling.Sampler.from_generator(generator_2).sample(3, 0),
                               atol=1e-5)


def test_sampling_errors_name_their_flag_before_anything_is_written(model_dir, tmp_path,
                                                                    capsys):
    run = copy_run(model_dir, tmp_path / "run")
    before = tree_bytes(run)
    out = str(tmp_path / "out")
    for args, flag in [
            (["--model", str(tmp_path / "missing"), "--out_dir", out], "--model"),
            (["--model", str(run), "--checkpoint", "ckpt-99", "--out_dir", out], "--checkpoint"),
            (["--model", str(run / "export"), "--checkpoint", "ckpt-1", "--out_dir", out],
             "--checkpoint"),
            (["--model", str(run), "--out_dir", out, "--interpolate", "--nzs", "1"], "--nzs"),
            (["--model", str(run), "--out_dir", out, "--seed", str(2 ** 64)], "--seed"),
            (["--model", str(run / "export"), "--out_dir", str(run)], "--out_dir")]:
        status = sampling.main(["sampling", *args])
        err = capsys.readouterr().err
        assert status == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: {flag}: ") or err.startswith(f"error: flag {flag}="), err
    assert not os.path.exists(out) and tree_bytes(run) == before


def test_sampling_is_deterministic_per_seed(model_dir, tmp_path):
    sampler = sampling.Sampler.load(str(model_dir / "export"))
    first = sampling.write_samples(sampler, str(tmp_path / "a"), num=5, seed=3)
    again = sampling.write_samples(sampler, str(tmp_path / "b"), num=5, seed=3)
    other = sampling.write_samples(sampler, str(tmp_path / "c"), num=5, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    for i in range(5):
        a = (tmp_path / "a" / "samples" / f"sample_{i:05d}.png").read_bytes()
        assert a == (tmp_path / "b" / "samples" / f"sample_{i:05d}.png").read_bytes()
        np.testing.assert_array_equal(images_lib.read_png(str(tmp_path / "a" / "samples" /
                                                              f"sample_{i:05d}.png")), first[i])
    assert (tmp_path / "a" / "samples.png").read_bytes() == (tmp_path / "b" /
                                                             "samples.png").read_bytes()


def test_sampling_cli_writes_samples_and_interpolations(model_dir, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tf_convgan.sampling", "--model", str(model_dir / "export"),
         "--out_dir", str(out), "--num", "3", "--interpolate", "--nzs", "3", "--nsubsteps", "4",
         "--chains", "2", "--method", "linear"], cwd=ROOT, capture_output=True, text=True,
        timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out / "samples")) == [f"sample_{i:05d}.png" for i in range(3)]
    strip = images_lib.read_png(str(out / "interpolation_linear.png"))
    assert strip.shape == (2 * 34 + 2, 12 * 34 + 2, 3)  # 2 chains x 12 frames of 32 px
    with Image.open(out / "interpolation_linear.gif") as gif:
        assert gif.n_frames == 3 * 4
        assert gif.size == (2 * 34 + 2, 34 + 2)


def test_class_grid_has_one_row_per_class():
    gan = make_gan(num_classes=3)
    sampler = sampling.Sampler.from_generator(gan.generator_ema)
    z, labels = sampler.class_grid_inputs(per_class=4, seed=0)
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 4))
    images = sampler(z, labels)
    for c in range(3):
        row = slice(4 * c, 4 * c + 4)
        np.testing.assert_allclose(images[row], gan.generator_ema(
            z[row], np.full([4], c, np.int32), training=False).numpy(), atol=1e-6)
        wrong = gan.generator_ema(z[row], np.full([4], (c + 1) % 3, np.int32), training=False)
        assert not np.allclose(images[row], wrong.numpy(), atol=1e-4)


def test_linear_interpolation_passes_through_the_key_points_and_loops():
    latents = sampling.interpolation_latents(z_dim=5, nzs=3, nsubsteps=4, seed=0,
                                             method="linear", chains=2)
    assert latents.shape == (12, 2, 5)
    keys = latents[::4]
    np.testing.assert_allclose(latents[2], 0.5 * (keys[0] + keys[1]), atol=1e-6)
    np.testing.assert_allclose(latents[10], 0.5 * (keys[2] + keys[0]), atol=1e-6)  # closes


def test_spherical_interpolation_follows_the_great_circle():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=(2, 16))
    z1 *= 2.0 * np.linalg.norm(z0) / np.linalg.norm(z1)  # |z1| = 2 |z0|
    for t in (0.0, 0.25, 0.5, 1.0):
        z = sampling.slerp(z0, z1, t)
        # Norm interpolated linearly; the angle to z0 grows linearly in t; in span(z0, z1).
        assert np.linalg.norm(z) == pytest.approx((1 + t) * np.linalg.norm(z0), rel=1e-9)
        angle = np.arccos(z0 @ z1 / np.linalg.norm(z0) / np.linalg.norm(z1))
        got = np.arccos(np.clip(z @ z0 / np.linalg.norm(z) / np.linalg.norm(z0), -1, 1))
        assert got == pytest.approx(t * angle, abs=1e-6)
        coefficients = np.linalg.lstsq(np.stack([z0, z1], 1), z, rcond=None)[0]
        np.testing.assert_allclose(np.stack([z0, z1], 1) @ coefficients, z, atol=1e-9)
    np.testing.assert_allclose(sampling.slerp(z0, 3 * z0, 0.5), 2 * z0, atol=1e-9)  # parallel


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="cubic"), "interpolation method must be one of"),
    (dict(nzs=1), "nzs must be an integer >= 2, got 1"),
    (dict(nsubsteps=0), "nsubsteps must be an integer >= 1, got 0"),
])
def test_interpolation_rejects_bad_arguments(kwargs, message):
    args = dict(z_dim=4, nzs=3, nsubsteps=2, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sampling.interpolation_latents(**args)
