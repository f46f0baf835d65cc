"""The run directory: crash-safe writes, the writer lock, the writability check, and reading a
run's configuration as data (no code runs, gin's global state is untouched)."""
import glob
import os
import signal
import subprocess
import sys
import textwrap

import gin
import numpy as np
import pytest

from helpers import copy_run, ram_url, tree_bytes
from tf_convgan import run_dir
from tf_convgan.cli import config
from tf_convgan.cli import evaluate
from tf_convgan.cli import export
from tf_convgan.run_dir import images
from tf_convgan.cli import sampling
from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import files, generators
from tf_convgan.run_dir.lock import url_lock_warning
from tf_convgan.networks import count_params
from tf_convgan.run_dir import run_config as run_dir_config
from tf_convgan.run_dir.run_config import RunConfigError, parse_run_config

# -- crash-safe writes ------------------------------------------------------------------------


def test_a_write_never_follows_a_symbolic_link_at_a_temporary_path(tmp_path):
    """Fixed temporary names (`samples.png.tmp`, `checkpoint.tmp`) let a planted symbolic link
    redirect the write into any file; the temporary names are unpredictable and created with
    O_EXCL, and the rename replaces a link at the target itself."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    model_dir = tmp_path / "run"
    (model_dir / "checkpoints").mkdir(parents=True)
    for name in ("samples.png.tmp", ".samples.png.tmp", "checkpoints/checkpoint.tmp",
                 "operative_config.gin.tmp"):
        os.symlink(victim, model_dir / name)
    os.symlink(victim, model_dir / "fid.png")  # a link at the target: replaced, not written to
    images.write_png(str(model_dir / "samples.png"), np.zeros((4, 4, 3), np.uint8))
    run_dir.write_text(str(model_dir / "checkpoints" / "checkpoint"), "state\n")
    run_dir.write_text(str(model_dir / "operative_config.gin"), "train.num_steps = 1\n")
    run_dir.write_bytes(str(model_dir / "fid.png"), b"png")
    assert victim.read_text() == "keep me"
    assert not os.path.islink(model_dir / "fid.png")
    assert (model_dir / "fid.png").read_bytes() == b"png"
    assert images.read_png(str(model_dir / "samples.png")).shape == (4, 4, 3)
    assert sorted(os.listdir(model_dir)) == [  # no temporary files left
        ".samples.png.tmp", "checkpoints", "fid.png", "operative_config.gin",
        "operative_config.gin.tmp", "samples.png", "samples.png.tmp"]
    assert sorted(os.listdir(model_dir / "checkpoints")) == ["checkpoint", "checkpoint.tmp"]


def test_a_write_is_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append(
        ("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")), real_fsync(fd)))
    monkeypatch.setattr(files.os, "replace", lambda a, b: (events.append(("replace", b)),
                                                           real_replace(a, b)))
    path = str(tmp_path / "checkpoint")
    run_dir.write_text(path, "x")
    assert events == [("fsync", "file"), ("replace", path), ("fsync", "dir")]
    with open(path) as f:
        assert f.read() == "x"


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "metrics.csv"
    run_dir.append_csv_row(str(path), 1, {"fid": 2.0})
    with pytest.raises(RuntimeError):
        with run_dir.atomic_file(str(path)) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    run_dir.append_csv_row(str(path), 2, {"fid": 1.5})
    assert path.read_text() == "step,fid\n1,2\n2,1.5\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


# -- the writer lock and the writability check ------------------------------------------------

def test_a_second_writer_is_refused_and_a_killed_writer_leaves_no_lock(tmp_path):
    model_dir = tmp_path / "run"
    with run_dir.writer_lock(str(model_dir)):
        with pytest.raises(run_dir.RunDirectoryBusyError, match="is in use: another process"):
            with run_dir.writer_lock(str(model_dir)):
                pass
        (model_dir / "kept").write_text("x")
    # Another process holds it (flock) and is killed with SIGKILL: the kernel drops the lock.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, os, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(600)
        """), str(model_dir / run_dir.LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_dir.RunDirectoryBusyError):
            with run_dir.writer_lock(str(model_dir)):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_dir.writer_lock(str(model_dir)):
        pass


def test_a_url_gets_no_lock_and_says_so_in_one_line(tmp_path, capsys):
    """On an object store (ram:// here) nothing refuses a second writer: writer_lock creates the
    directory and prints one line saying so; a local directory's lock prints nothing."""
    model_dir = ram_url("locked")
    with run_dir.writer_lock(model_dir, name="--model_dir"):
        assert run_dir.files.isdir(model_dir)
        with run_dir.writer_lock(model_dir, name="--model_dir"):  # not refused
            pass
    err = capsys.readouterr().err
    line = url_lock_warning(model_dir, "--model_dir")
    assert err == f"{line}\n{line}\n"
    assert line.startswith(f"warning: --model_dir {model_dir} ") and "NOT refused" in line
    with run_dir.writer_lock(str(tmp_path / "local")):
        pass
    assert capsys.readouterr().err == ""


def test_a_lock_on_a_new_directory_that_stays_empty_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="bad input"):
        with run_dir.writer_lock(str(tmp_path / "a" / "b")):
            raise ValueError("bad input")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", ["a_file", "under_a_file", "proc"])
def test_an_unusable_model_dir_is_named_and_nothing_is_created(tmp_path, case):
    (tmp_path / "file").write_text("x")
    model_dir = {"a_file": tmp_path / "file", "under_a_file": tmp_path / "file" / "run",
                 "proc": "/proc/tf_convgan_run"}[case]
    before = tree_bytes(tmp_path)
    with pytest.raises(ConfigError, match=r"^--model_dir '.*' (is a file|cannot be created)"):
        run_dir.check_writable(str(model_dir), name="--model_dir")
    assert tree_bytes(tmp_path) == before and not os.path.exists("/proc/tf_convgan_run")


def _assert_every_reader_refuses(model_dir, tmp_path, capsys, *, prefix, marker=None):
    """sampling, export and evaluate on the run each exit with status 2 and one line
    `error: <flag>: <prefix>...`, run nothing (`marker` not created), write nothing."""
    before = tree_bytes(model_dir)
    commands = [
        (sampling.main, ["--model", str(model_dir), "--out_dir", str(tmp_path / "samples")],
         "--model"),
        (export.main, ["--model_dir", str(model_dir)], "--model_dir"),
        (evaluate.main, ["--model_dir", str(model_dir), "--weights", "/nonexistent.npz"],
         "--model_dir"),
    ]
    for main, args, flag in commands:
        status = main(["command", *args])
        err = capsys.readouterr().err
        assert status == 2 and err.startswith(f"error: {flag}: {prefix}"), err
        assert len(err.splitlines()) == 1, err
        assert marker is None or not marker.exists(), main
    assert tree_bytes(model_dir) == before
    assert not (tmp_path / "samples").exists()


# -- the operative config read as data --------------------------------------------------------

_HOSTILE = {  # case: (text, whether the run's own bindings follow it)
    # gin would import this module, which creates the marker file
    "import": ("import tf_convgan_hostile_module\n", True),
    # gin would call os.system('touch <marker>') to build the generator
    "dynamic_registration": (textwrap.dedent("""\
        from __gin__ import dynamic_registration
        import os
        import tf_convgan.training.loop
        os.system.command = 'touch {marker}'
        tf_convgan.training.loop.train.generator_fn = @os.system
        """), False),
    # no import at all: a reference to something that is not tf_convgan's
    "foreign_reference": ("train.generator_fn = @print\n", True),
}


@pytest.mark.parametrize("case", sorted(_HOSTILE))
def test_a_hostile_operative_config_runs_nothing(trained_run, tmp_path, monkeypatch, capsys,
                                                 case):
    """sampling, export and evaluate refuse it with one line naming the file and line; the
    marker file the code would create does not exist afterwards; nothing in the run changes."""
    marker = tmp_path / "marker"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "tf_convgan_hostile_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(modules))
    model_dir = copy_run(trained_run.model_dir, tmp_path / "run")
    config_path = model_dir / "operative_config.gin"
    text, keep_rest = _HOSTILE[case]
    config_path.write_text(text.format(marker=marker) +
                           (config_path.read_text() if keep_rest else ""))
    _assert_every_reader_refuses(model_dir, tmp_path, capsys, prefix=f"{config_path}:",
                                 marker=marker)


def test_reading_a_run_leaves_gin_alone_and_builds_the_trained_generator(trained_run):
    gin.clear_config()
    config.parse([], ["train.num_steps = 7"], finalize=False)
    before = gin.config_str()
    try:
        generator, path = generators.load_generator_ema(str(trained_run.model_dir))
        assert gin.config_str() == before
    finally:
        gin.clear_config()
    assert path.endswith("ckpt-4") and generator.z_dim == 8
    exported = generators.SavedModelGenerator(str(trained_run.model_dir / "export"))
    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_allclose(exported(z), generator(z, None, training=False), atol=1e-5)


_UNBUILDABLE = {  # case: text appended to a trained run's operative config
    "macro_cycle": "A = %B\nB = %A\nresnet_generator.nf = %A\n",
    "deep_nesting": "train.num_steps = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "huge_network": "resnet_generator.nf = 4000000\nresnet_generator.nf_max = 4000000\n",
}


@pytest.mark.parametrize("case", sorted(_UNBUILDABLE))
def test_a_runs_config_that_cannot_be_built_is_one_line_before_anything_is_allocated(
        trained_run, tmp_path, capsys, case):
    """A macro cycle (resolving it never ends), brackets nested 100k deep (gin's parser would
    recurse past the stack) and channel numbers asking for 1e15 weights (building would allocate
    until memory runs out): sampling, export and evaluate refuse with one line naming the file,
    status 2, nothing written, the run unchanged."""
    model_dir = copy_run(trained_run.model_dir, tmp_path / "run")
    config_path = model_dir / "operative_config.gin"
    config_path.write_text(config_path.read_text() + _UNBUILDABLE[case])
    _assert_every_reader_refuses(model_dir, tmp_path, capsys, prefix=str(config_path))


def test_the_planned_size_of_a_network_is_its_built_size(trained_run):
    """check_network_size counts the weights without allocating them: the count equals the
    built networks' for the trained run, and the refusal names the key and the bound."""
    config = run_dir_config.read_run_config(str(trained_run.model_dir))
    for key in ("train.generator_fn", "train.discriminator_fn"):
        built = generators.build_network(config, key)
        assert generators.check_network_size(config, key) == count_params(built) > 1000
    with pytest.raises(RunConfigError, match=r"train.generator_fn asks for a network of "
                                             r"[0-9.e+]+ weights, more than the 1e\+03"):
        generators.check_network_size(config, "train.generator_fn", limit=1000)


@pytest.mark.parametrize("text, message", [
    ("include 'base/gan_stability.gin'\n", ":1: `include` is not accepted"),
    ("A = 1\nB = [%C]\nC = {'k': %D}\nD = %B\n", ":2: macro %B refers to itself "
                                                 r"\(%B -> %C -> %D -> %B\)"),
    ("X = %X\n", ":1: macro %X refers to itself"),
    ("train.num_steps = 3\nA = " + "(" * 65 + ")" * 65 + "\n",
     ":2: values nest deeper than 64 brackets"),
    ("train.num_steps = 3\nresnet_generator.nf = %NF\n", ":2: macro %NF is not defined"),
    ("resnet_generator.no_such_parameter = 1\n", ":1: resnet_generator has no parameter"),
    ("train.num_steps = open('x')\n", ":1: "),
    ("nan_d_loss.x = 1\n", ":1: 'nan_d_loss' is not a configurable of tf_convgan"),
])
def test_the_reader_refuses_with_the_file_and_line(text, message):
    with pytest.raises(RunConfigError, match=f"^run/operative_config.gin{message}"):
        parse_run_config(text, "run/operative_config.gin")


def test_every_gin_config_of_the_project_is_read():
    """The reader accepts what the project's own configs bind (no false refusals)."""
    for path in sorted(glob.glob(os.path.join(config.GIN_CONFIGS_DIR, "*.gin"))):
        gin.clear_config()
        try:
            config.parse([path], finalize=False)
            text = gin.config_str()
        finally:
            gin.clear_config()
        assert parse_run_config(text, path).value("train.generator_fn").selector.endswith(
            "_generator"), path
