"""Every command parses its flags alike (errors.parse_flags): -h and --help print the same usage
paragraph then the flags, and bad input is one line `error: ...` naming the flag, status 2 (in
process, through each command's main and through each `python -m` entry module run as
__main__). The installed package: a venv with `pip install .` runs every console script's --help
and a one-step training run from an unrelated directory (.ci/run runs this slow test too)."""
import os
import runpy
import shutil
import subprocess
import sys
import venv

import pytest

from helpers import ROOT
from tf_convgan.cli import evaluate, sweep, train
from tf_convgan.cli import import_gan_stability as importer
from tf_convgan.cli import export, sampling
from tf_convgan.cli import spectrum

SCRIPTS = {"tf-convgan-train": "--gin_file", "tf-convgan-evaluate": "--saved_model",
           "tf-convgan-sample": "--interpolate", "tf-convgan-export": "--export_dir",
           "tf-convgan-import-gan-stability": "--checkpoint", "tf-convgan-sweep": "--max_cells",
           "tf-convgan-spectrum": "--which"}

# name: (main, taking argv with the program name first; how its usage says to call it; one of
# its flags; the `python -m` module or script that runs it)
COMMANDS = {
    "train": (train.run, "tf-convgan-train [--gin_file", "--gin_param", "run.py"),
    "evaluate": (evaluate.main, "python -m tf_convgan.evaluate", "--saved_model",
                 "tf_convgan.evaluate"),
    "sampling": (sampling.main, "python -m tf_convgan.sampling", "--interpolate",
                 "tf_convgan.sampling"),
    "export": (export.main, "python -m tf_convgan.export", "--export_dir", "tf_convgan.export"),
    "import_gan_stability": (importer.main, "python -m tf_convgan.import_gan_stability",
                             "--optimizer_state", "tf_convgan.import_gan_stability"),
    "sweep": (sweep.main, "python -m tf_convgan.sweep", "--max_cells", "tf_convgan.sweep"),
    "spectrum": (spectrum.main, "python -m tf_convgan.spectrum", "--which",
                 "tf_convgan.spectrum"),
}


def _status(main, argv):
    """The exit status of a command's main: its return value, or that of SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_and_h_print_the_same_usage_then_the_flags(capsys, name):
    main, invocation, flag, _ = COMMANDS[name]
    outputs = []
    for arg in ("--help", "-h"):
        assert _status(main, [name, arg]) in (0, None), arg
        captured = capsys.readouterr()
        assert captured.err == "", arg
        outputs.append(captured.out)
    assert outputs[0] == outputs[1]
    usage, separator, flags_help = outputs[0].partition("\nflags:\n")
    assert separator, outputs[0][:500]
    assert invocation in usage and len(usage.strip().splitlines()) >= 3
    assert flag[2:] in flags_help  # (a boolean flag is listed as --[no]name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_an_unknown_flag_is_one_line_naming_it_and_status_2(capsys, name):
    main = COMMANDS[name][0]
    assert _status(main, [name, "--no_such_flag=1"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --no_such_flag: unknown flag\n"
    assert captured.out == ""


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_positional_argument_is_refused_with_status_2(capsys, name):
    main = COMMANDS[name][0]
    assert _status(main, [name, "stray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected argument 'stray'") and err.count("\n") == 1


@pytest.mark.parametrize("name, args, message", [
    ("train", ["--model_dir"], "--model_dir: needs a value"),
    ("train", ["--gin_fle", "x.gin"], "--gin_fle: unknown flag (did you mean --gin_file?)"),
    ("evaluate", ["--checkpoint=newest"],
     "--checkpoint: invalid value 'newest' (should be latest, best or a checkpoint's name such "
     "as ckpt-2500)"),
    ("sampling", ["--interpolate=maybe"], "--interpolate: a boolean flag is given as "
                                          "--interpolate, --nointerpolate or "
                                          "--interpolate=true|false, not 'maybe'"),
    ("sampling", ["--num", "many"], "--num: invalid value 'many'"),
    ("import_gan_stability", ["--config", "c.yaml"], "--checkpoint: is required"),
    ("sweep", ["--max_cells=-1"], "--max_cells: invalid value '-1'"),
    ("sweep", ["--sweep", "s.yaml", "--out_dir", "o", "--print_commands", "--collect"],
     "--collect: cannot be combined with --print_commands"),
    ("sweep", ["--sweep", "no_such.yaml", "--out_dir", "o"],
     "--sweep: 'no_such.yaml' does not exist"),
    ("spectrum", ["--k", "0", "--model_dir", "x"], "--k: must be >= 1, got 0"),
])
def test_bad_values_are_one_line_naming_the_flag(capsys, name, args, message):
    assert _status(COMMANDS[name][0], [name, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize("name", ["sampling", "import_gan_stability", "spectrum"])
def test_boolean_flags_take_the_absl_forms(name):
    """--flag, --noflag and --flag=true|false, the same in every command (parse_flags)."""
    flag_values = {"sampling": sampling.FLAGS, "spectrum": spectrum.FLAGS,
                   "import_gan_stability": importer._flag_values()}[name]
    flag = {"sampling": "interpolate", "import_gan_stability": "export",
            "spectrum": "float64"}[name]
    from tf_convgan.errors import parse_flags
    for args, want in ([f"--{flag}"], True), ([f"--no{flag}"], False), (
            [f"--{flag}=false"], False), ([f"--{flag}=true"], True):
        parse_flags(flag_values, [name, *args], usage="")
        assert getattr(flag_values, flag) is want, args
    flag_values.unparse_flags()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_python_m_entry_points(capsys, monkeypatch, name):
    """`python -m tf_convgan.<name>` (run.py for train) runs the command's main on sys.argv:
    its --help and an unknown flag's status 2 (run as __main__ in this process)."""
    target, flag = COMMANDS[name][3], COMMANDS[name][2]
    run = ((lambda: runpy.run_path(os.path.join(ROOT, target), run_name="__main__"))
           if target.endswith(".py") else
           (lambda: runpy.run_module(target, run_name="__main__", alter_sys=False)))
    for args, status in (["--help"], 0), (["--no_such_flag"], 2):
        monkeypatch.setattr(sys, "argv", [target, *args])
        with pytest.raises(SystemExit) as info:
            run()
        assert (info.value.code or 0) == status, args
        captured = capsys.readouterr()
        if status == 0:
            assert flag[2:] in captured.out.partition("\nflags:\n")[2]
        else:
            assert captured.err == "error: --no_such_flag: unknown flag\n"


def test_python_m_evaluate_help():
    result = subprocess.run([sys.executable, "-m", "tf_convgan.evaluate", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--saved_model" in result.stdout


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


def test_every_console_script_is_declared_and_names_a_command_function():
    """pyproject.toml's [project.scripts] are exactly the scripts the venv test runs, and each
    names a function of tf_convgan.cli.commands (a typo would install a script that fails)."""
    import importlib
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        declared = tomllib.load(f)["project"]["scripts"]
    assert set(declared) == set(SCRIPTS)
    for script, target in declared.items():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), script
