"""Model directories on gs://, through TensorFlow's own GCS filesystem, against a local Google
Cloud Storage emulator (gcp-storage-emulator behind a TLS proxy on 127.0.0.1: tests/gcs_emulator.py
says how TensorFlow is pointed at it). What ram:// stands in for in tests/training/test_gfile.py,
here on the real client: the library's file functions, a run killed with kill -9 and resumed
(equal to the run trained alone), export, sampling, evaluation and a sweep with every output on
gs://, each checked in the emulator's own listing and bytes."""
import json
import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
import tensorflow as tf

import gcs_emulator
from helpers import ROOT, TINY_GIN, check_file_functions_on_url, train_in_process
from tf_convgan import run_dir
from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import checkpoints, files, images

BUCKET = "tf-convgan-test"
_MISSING = gcs_emulator.available()
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"GCS emulator: {_MISSING}")


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with gcs_emulator.start(tmp_path_factory.mktemp("gcs"), BUCKET) as emulator:
        yield emulator


@pytest.fixture
def on_gcs(gcs, monkeypatch):
    """This process's gs:// goes to the emulator; yields it."""
    for key, value in gcs.env.items():
        monkeypatch.setenv(key, value)
    return gcs


def _url(name):
    return f"gs://{BUCKET}/{name}_{uuid.uuid4().hex[:8]}"


def test_the_librarys_file_functions_on_gcs(on_gcs):
    directory = _url("files")
    path = check_file_functions_on_url(directory)
    assert on_gcs.object_bytes(path) == b"two"  # in the emulator, not anywhere else
    assert [n.rsplit("/", 2)[-2:] for n in on_gcs.names(directory)
            if not n.endswith("/")] == [["sub", "a.txt"]]  # no temporary object left
    tf.io.gfile.rename(path, f"{directory}/sub/b.txt")
    assert on_gcs.object_bytes(path) is None
    assert on_gcs.object_bytes(f"{directory}/sub/b.txt") == b"two"
    run_dir.write_text(path, "four")
    with pytest.raises(tf.errors.AlreadyExistsError):  # no silent replacement by a rename
        tf.io.gfile.rename(path, f"{directory}/sub/b.txt")
    assert on_gcs.object_bytes(f"{directory}/sub/b.txt") == b"two"
    run_dir.write_text(f"{directory}/export/notes.txt", "mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        run_dir.check_export_dir(f"{directory}/export")


def test_a_run_on_gcs_in_process(on_gcs, npy_path):
    model_dir = _url("run")
    train_in_process(model_dir, npy_path, "train.num_steps = 2", "train.export_at_end = False")
    ckpt_dir = run_dir.checkpoint_dir(model_dir)
    assert checkpoints.checkpoint_steps(ckpt_dir) == [1, 2]
    assert tf.train.latest_checkpoint(ckpt_dir) == f"{ckpt_dir}/ckpt-2"
    names = on_gcs.names(model_dir)
    prefix = model_dir[len(f"gs://{BUCKET}/"):]
    for name in ["checkpoints/ckpt-2.index", "checkpoints/checkpoint", run_dir.OPERATIVE_CONFIG,
                 "samples/step_0000002.png", "samples.png"]:
        assert f"{prefix}/{name}" in names, names
    assert not [n for n in names if n.endswith((".tmp", ".old"))], names
    assert images.read_png(f"{model_dir}/samples.png").shape[-1] == 3


# -- the commands, each a process of its own, with every path on gs:// -----------------------

RUN_PARAMS = ("train.num_steps = 4", "train.keep_last = 10")  # as the session's trained_run


def _command(gcs, *args, **popen):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **gcs.env)
    return subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _finish(process, what, timeout=900):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{what}: status {process.returncode}\n{err[-3000:]}"
    return out


def _run_py_args(model_dir, data):
    return [os.path.join(ROOT, "run.py"), "--gin_file", TINY_GIN, "--model_dir", model_dir,
            "--gin_param", f"npy_source.path = '{data}'",
            *[a for p in RUN_PARAMS for a in ("--gin_param", p)]]


def _variables(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in name}


def _assert_same_variables(got, want, what):
    assert sorted(got) == sorted(want), what
    differ = [name for name in want if not np.array_equal(got[name], want[name])]
    assert not differ, f"{what}: {differ[:10]} differ"


@pytest.mark.slow  # five processes of TensorFlow (a few minutes on 2 cores)
def test_kill_9_resume_export_evaluate_and_a_sweep_on_gcs(on_gcs, trained_run, tmp_path,
                                                          capsys):
    """run.py killed with kill -9 after step 2 and run again ends with checkpoints and an export
    equal to the session's trained_run (the same config trained alone on the local disk); the
    export command, the evaluate command and the sweep command write to gs:// what they write
    locally. The data, the reference images, the reference cache and every output are on gs://."""
    from fid_helpers import FID_WEIGHTS, run_evaluate, write_folder
    from tf_convgan.cli import sweep as cli_sweep
    from tf_convgan.serving import sampling
    from tf_convgan.studies import sweep as sweep_lib
    import yaml

    root = _url("commands")
    data = f"{root}/images.npy"
    tf.io.gfile.makedirs(root)
    tf.io.gfile.copy(trained_run.npy, data)

    # kill -9 in the middle of the run, then the same command again.
    model_dir = f"{root}/run"
    process = _command(on_gcs, *_run_py_args(model_dir, data))
    for line in process.stdout:
        if line.startswith("step 2/"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    ckpt_dir = run_dir.checkpoint_dir(model_dir)
    resumed_from = checkpoints.checkpoint_steps(ckpt_dir)[-1]
    assert resumed_from in (1, 2)  # ckpt-2 done or not when the kill came
    out = _finish(_command(on_gcs, *_run_py_args(model_dir, data)), "rerun")
    assert f"at step {resumed_from}" in out
    local = trained_run.model_dir
    for step in (1, 2, 3, 4):
        _assert_same_variables(_variables(f"{ckpt_dir}/ckpt-{step}"),
                               _variables(str(local / "checkpoints" / f"ckpt-{step}")),
                               f"ckpt-{step}")
    _assert_same_variables(
        _variables(f"{run_dir.export_dir(model_dir)}/variables/variables"),
        _variables(str(local / "export" / "variables" / "variables")), "export")
    assert not [n for n in on_gcs.names(model_dir) if n.endswith((".tmp", ".old"))]

    # The export command, into a directory of its own.
    export_dir = f"{root}/export_ckpt_4"
    _finish(_command(on_gcs, "-m", "tf_convgan.export", "--model_dir", model_dir,
                     "--checkpoint", "ckpt-4", "--export_dir", export_dir), "export")
    np.testing.assert_array_equal(sampling.Sampler.load(export_dir).sample(4, seed=1),
                                  sampling.Sampler.load(str(local / "export")).sample(4, seed=1))

    # The evaluate command: its metrics, its reference cache and its JSON on gs://.
    if os.path.isfile(FID_WEIGHTS):
        reference = np.random.default_rng(1).integers(0, 256, size=(4, 32, 32, 3),
                                                      dtype=np.uint8)
        args = ["--num_samples", "4", "--batch_size", "4", "--kid_subsets", "2",
                "--kid_subset_size", "2", "--weights", FID_WEIGHTS]
        _finish(_command(on_gcs, "-m", "tf_convgan.evaluate", "--model_dir", model_dir,
                         "--reference_dir", write_folder(f"{root}/reference", reference),
                         "--cache_dir", f"{root}/cache", "--output_json",
                         f"{root}/metrics.json", *args), "evaluate")
        status, _, err = run_evaluate(
            capsys, "--model_dir", str(local), "--reference_dir",
            write_folder(tmp_path / "reference", reference), "--cache_dir",
            str(tmp_path / "cache"), "--output_json", str(tmp_path / "metrics.json"), *args)
        assert status == 0, err
        got = json.loads(run_dir.read_text(f"{root}/metrics.json"))
        want = json.loads((tmp_path / "metrics.json").read_text())
        assert got.pop("checkpoint") == f"{ckpt_dir}/ckpt-4"  # the paths differ, nothing else
        assert got.pop("reference") == f"image_folder:{root}/reference"
        want.pop("checkpoint"), want.pop("reference")
        assert got == want and "fid" in got
        assert [n for n in on_gcs.names(f"{root}/cache") if n.endswith(".npz")]

    # The sweep command: one cell, the trained_run's config; its result and table on gs://.
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "gin_files": [TINY_GIN], "gin_params": [f"npy_source.path = '{data}'", *RUN_PARAMS],
        "grid": [{"name": "seed", "binding": "train.seed", "values": [0]}],
        "metric": "pixel", "num_samples": 8}))
    out_dir = f"{root}/sweep"
    _finish(_command(on_gcs, "-m", "tf_convgan.sweep", "--sweep", sweep_file,
                     "--out_dir", out_dir), "sweep")
    sweep = sweep_lib.load_sweep(str(sweep_file))
    (cell,) = sweep_lib.expand(sweep)
    want = {k: float(v) for k, v in cli_sweep.cell_metrics(sweep, cell, str(local)).items()}
    assert sweep_lib.read_result(f"{out_dir}/{cell.name}") == want
    assert files.isfile(f"{out_dir}/{sweep_lib.TABLE_MD}")
