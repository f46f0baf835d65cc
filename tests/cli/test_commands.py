"""Every command's --help (in process; `python -m` for one), and the installed package: a venv
with `pip install .` runs every console script's --help and a one-step training run from an
unrelated directory (.ci/run runs this slow test too)."""
import os
import shutil
import subprocess
import sys
import venv

import pytest

from helpers import ROOT
from tf_convgan.cli import evaluate
from tf_convgan.gan_stability import importer
from tf_convgan.serving import export, sampling

SCRIPTS = {"tf-convgan-train": "--gin_file", "tf-convgan-evaluate": "--saved_model",
           "tf-convgan-sample": "--interpolate", "tf-convgan-export": "--export_dir",
           "tf-convgan-import-gan-stability": "--checkpoint"}


@pytest.mark.parametrize("main, flag", [(evaluate.main, "--saved_model"),
                                        (sampling.main, "--interpolate"),
                                        (export.main, "--export_dir"),
                                        (importer.main, "--checkpoint")])
@pytest.mark.parametrize("arg", ["--help", "-h"])
def test_help_prints_usage_and_flags(capsys, main, flag, arg):
    with pytest.raises(SystemExit) as info:
        main(["prog", arg])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m tf_convgan." in out and "flags:" in out and flag in out


def test_train_help(capsys):
    from tf_convgan.cli import train
    with pytest.raises(SystemExit) as info:
        train.run(["tf-convgan-train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "tf-convgan-train" in out and "--gin_file" in out and "--model_dir" in out


def test_python_m_evaluate_help():
    result = subprocess.run([sys.executable, "-m", "tf_convgan.evaluate", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--saved_model" in result.stdout


def test_importer_requires_its_flags(capsys):
    assert importer.main(["prog", "--config", "c.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "error: --checkpoint: is required"


@pytest.mark.slow
def test_installed_console_scripts(tmp_path):
    """`pip install --no-deps --no-build-isolation .` (no network: the dependencies are the
    system's) into a venv; every console script's --help works from another directory, and
    a packaged gin config resolves by name."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    shutil.copytree(os.path.join(ROOT, "tf_convgan"), source / "tf_convgan",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(os.path.join(ROOT, "gin_configs"), source / "gin_configs")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = str(env_dir / "bin" / "python")
    result = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps",
                             "--no-build-isolation", "--no-index", str(source)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for script, flag in SCRIPTS.items():
        result = subprocess.run([str(env_dir / "bin" / script), "--help"], cwd=elsewhere,
                                env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (script, result.stderr[-3000:])
        assert flag in result.stdout and "flags:" in result.stdout, script
    # A training run of the packaged base config from an unrelated directory (one step of a
    # tiny network on a .npy array), with its outputs in that directory.
    import numpy as np
    np.save(elsewhere / "images.npy",
            np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    shutil.copy(os.path.join(ROOT, "tests", "tiny.gin"), elsewhere / "tiny.gin")
    result = subprocess.run(
        [str(env_dir / "bin" / "tf-convgan-train"), "--gin_file", "tiny.gin",
         "--model_dir", "run", "--gin_param", "npy_source.path = 'images.npy'",
         "--gin_param", "train.num_steps = 1", "--gin_param", "train.export_at_end = False"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (elsewhere / "run" / "checkpoints" / "ckpt-1.index").exists()
    assert (elsewhere / "run" / "operative_config.gin").exists()
    check = ("import tf_convgan, os; from tf_convgan.cli import config; "
             "p = config.resolve_gin_file('quickstart.gin'); "
             "assert p.startswith(os.path.dirname(tf_convgan.__file__)), p; "
             "assert 'site-packages' in p, p; print(p)")
    result = subprocess.run([python, "-c", check], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_pyproject_lists_every_package():
    """pyproject.toml names the packages explicitly (gin_configs/ is mapped into the package):
    a new package left out would be missing from an installed copy."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(d, ROOT).replace(os.sep, ".")
             for d, _, files in os.walk(os.path.join(ROOT, "tf_convgan"))
             if "__init__.py" in files}
    assert listed == found | {"tf_convgan.gin_configs"}
