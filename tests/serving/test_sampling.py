"""Sampling from an exported or checkpointed generator: deterministic samples per seed, class
grids, linear and spherical latent interpolation, the sampling command line and its errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, copy_run, make_gan, tree_bytes
from tf_convgan.run_dir import images as images_lib
from tf_convgan.cli import sampling as sampling_cli
from tf_convgan.serving import sampling


@pytest.fixture
def model_dir(trained_run):
    """The session's tiny training directory (4 steps, every checkpoint kept, exported)."""
    return trained_run.model_dir


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
        status = sampling_cli.main(["sampling", *args])
        err = capsys.readouterr().err
        assert status == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: {flag}: ") or err.startswith(f"error: flag {flag}="), err
    assert not os.path.exists(out) and tree_bytes(run) == before


def test_a_truncated_saved_model_is_one_line_naming_the_flag(model_dir, tmp_path, capsys):
    """A SavedModel whose variables.data is cut in half (TensorFlow raised IndexError "Read less
    bytes than requested"): sampling and `evaluate --saved_model` say so in one line naming the
    flag, status 2, nothing written."""
    from tf_convgan.cli import evaluate
    saved = copy_run(model_dir / "export", tmp_path / "export")
    data = saved / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    before = tree_bytes(saved)
    out = tmp_path / "out"
    for main, args, flag in [
            (sampling_cli.main, ["--model", str(saved), "--out_dir", str(out)], "--model"),
            (evaluate.main, ["--saved_model", str(saved), "--weights", "/nonexistent.npz"],
             "--saved_model")]:
        status = main(["command", *args])
        err = capsys.readouterr().err
        assert status == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: {flag}: SavedModel '{saved}' cannot be loaded: its files "
                              f"are damaged or incomplete"), err
    assert not out.exists() and tree_bytes(saved) == before


def test_a_request_too_large_names_num_and_one_that_cannot_fit_the_disk_is_refused(
        model_dir, tmp_path, capsys, monkeypatch):
    """`--num 99999999999999999999` blamed --out_dir; 100 million samples would have been held
    in memory, then written until the disk was full. Both are refused naming --num before
    anything is written (the free space is a filesystem's with 1 GB free and 4 KiB blocks)."""
    out = tmp_path / "out"
    export = str(model_dir / "export")
    status = sampling_cli.main(["sampling", "--model", export, "--out_dir", str(out),
                                "--num", "99999999999999999999"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: --num: invalid value '99999999999999999999' "
                                          "(99999999999999999999 is not an integer in the "
                                          "range [1, 2147483647])"), err
    statvfs = os.statvfs(str(tmp_path))
    fake = os.statvfs_result((4096, 4096, 10 ** 6, 2 ** 18, 2 ** 18, 10 ** 6, 10 ** 5, 10 ** 5,
                              statvfs.f_flag, statvfs.f_namemax))
    monkeypatch.setattr(sampling, "_free_space", lambda directory: fake)
    status = sampling_cli.main(["sampling", "--model", export, "--out_dir", str(out),
                                "--num", "100000000"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: --num: 100000000 samples need at least 410 GB in --out_dir "
                          f"'{out}' (at least 4096 bytes per PNG file) but its filesystem has "
                          f"1.07 GB free"), err
    status = sampling_cli.main(["sampling", "--model", export, "--out_dir", str(out),
                                "--num", "200000"])  # fits the space, not the 10**5 inodes
    err = capsys.readouterr().err
    assert status == 2 and "has 100000 free inodes" in err, err
    assert not out.exists()


@pytest.mark.parametrize("z_dim", [7, 8])
def test_the_samples_of_a_batch_are_those_of_the_whole_draw(z_dim):
    """sample_inputs_at(start, count) (Philox's counter advanced to the batch) equals rows
    start ... start + count - 1 of sample_inputs(n, seed) exactly, for any z_dim (also when a
    batch starts inside a group of 4 normals)."""
    from tf_convgan.serving.export import sample_inputs
    z, labels = sample_inputs(50, 12345, z_dim=z_dim, num_classes=3)
    for start, count in [(0, 9), (9, 9), (13, 1), (31, 19)]:
        z_at, labels_at = sampling.sample_inputs_at(start, count, 12345, z_dim=z_dim,
                                                    num_classes=3)
        np.testing.assert_array_equal(z_at, z[start:start + count])
        np.testing.assert_array_equal(labels_at, labels[start:start + count])


_MEASURE_SAMPLING = """
import os, resource, sys
import numpy as np
import tensorflow as tf
from tf_convgan.serving import sampling

def fn(z, labels):  # a tiny generator: 96 x 96 images from z
    return tf.reshape(tf.tanh(tf.tile(z[:, :3], [1, 96 * 96])), [-1, 96, 96, 3])

num, out = int(sys.argv[1]), sys.argv[2]
sampler = sampling.Sampler(tf.function(fn), z_dim=8, num_classes=1, batch_size=50)
sampling.write_samples(sampler, out, num=60, seed=0, grid_max=16)  # imported and traced
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sampling.write_samples(sampler, out, num=num, seed=0, grid_max=16)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
"""


def test_sampling_memory_does_not_grow_with_num(tmp_path):
    """write_samples streams: the peak resident memory it adds (ru_maxrss, KiB, in a fresh
    process) for 800 samples of 96 x 96 (88 MB as float32 images, which the old code held at
    once) is within 25 MB of that for 200; every file is written and complete. (The grid is
    bounded by grid_max: 16 here, GRID_MAX = 1024 by default.)"""
    grown = {}
    for num in (200, 800):
        out = tmp_path / f"out_{num}"
        result = subprocess.run([sys.executable, "-c", _MEASURE_SAMPLING, str(num), str(out)],
                                cwd=ROOT, capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert result.returncode == 0, result.stderr[-3000:]
        grown[num] = int(result.stdout.split()[-1])
        names = sorted(os.listdir(out / "samples"))
        assert names == [f"sample_{i:05d}.png" for i in range(num)]
    last = images_lib.read_png(str(out / "samples" / "sample_00799.png"))
    assert last.shape == (96, 96, 3)
    assert images_lib.read_png(str(out / "samples.png")).shape == (4 * 98 + 2, 4 * 98 + 2, 3)
    assert grown[800] - grown[200] < 25_000, grown


def test_sampling_is_deterministic_per_seed(model_dir, tmp_path):
    sampler = sampling.Sampler.load(str(model_dir / "export"))
    first = sampling.write_samples(sampler, str(tmp_path / "a"), num=5, seed=3)
    again = sampling.write_samples(sampler, str(tmp_path / "b"), num=5, seed=3)
    other = sampling.write_samples(sampler, str(tmp_path / "c"), num=5, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    whole = images_lib.to_uint8(sampler.sample(5, 3)).numpy()
    for i in range(5):
        a = (tmp_path / "a" / "samples" / f"sample_{i:05d}.png").read_bytes()
        assert a == (tmp_path / "b" / "samples" / f"sample_{i:05d}.png").read_bytes()
        np.testing.assert_array_equal(  # written batch by batch: those of the whole draw
            images_lib.read_png(str(tmp_path / "a" / "samples" / f"sample_{i:05d}.png")),
            whole[i])
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
