"""Many at once: two training runs, a sweep and an evaluation started together on one machine,
each a process of its own writing its own directory, end exactly as each ends alone (the same
checkpoint bytes for the same seed, the same sweep results, the same metrics and reference
cache); and a run started on the directory a finished run left behind trains nothing and changes
nothing with the same command, or continues with a larger train.num_steps."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from fid_helpers import FID_WEIGHTS, needs_weights, run_evaluate, write_folder
from helpers import ROOT, TINY_GIN, copy_run, run_py_in_process, tiny_args, tree_bytes
import projection_features
from tf_convgan.cli import evaluate
from tf_convgan.cli import sweep as cli_sweep
from tf_convgan.studies import sweep as sweep_lib

# The session's trained_run (tests/conftest.py), trained alone in the test process, is the run
# every concurrent one must equal: tests/tiny.gin with these bindings.
RUN_PARAMS = ("train.num_steps = 4", "train.keep_last = 10")


def _run_all_at_once(commands, logs, timeout=900):
    """Starts every command (arguments of this Python, TensorFlow quiet) at once, its output in
    files (not pipes: nobody reads them until it ends), and waits for all; returns
    {name: (status, stdout, stderr)}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    processes, outputs = {}, []
    try:
        for name, args in commands.items():
            out, err = open(logs / f"{name}.out", "w"), open(logs / f"{name}.err", "w")
            outputs += [out, err]
            processes[name] = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT,
                                               env=env, stdout=out, stderr=err)
        deadline = time.time() + timeout
        for process in processes.values():
            process.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for f in outputs:
            f.close()
    return {name: (p.returncode, (logs / f"{name}.out").read_text(),
                   (logs / f"{name}.err").read_text()) for name, p in processes.items()}


def _sweep_file(tmp_path, npy, seeds=(0,)):
    """A sweep whose cells are tests/tiny.gin as trained_run, one cell per train.seed."""
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "gin_files": [TINY_GIN],
        "gin_params": [f"npy_source.path = '{npy}'", *RUN_PARAMS],
        "grid": [{"name": "seed", "binding": "train.seed", "values": list(seeds)}],
        "metric": "pixel", "num_samples": 8}))
    return str(path)


def _evaluate_args(model_dir, reference, cache_dir, output_json, weights):
    return ["--model_dir", model_dir, "--reference_dir", reference, "--num_samples", "4",
            "--batch_size", "4", "--kid_subsets", "2", "--kid_subset_size", "2",
            "--cache_dir", cache_dir, "--output_json", output_json, "--weights", weights]


def _cache_arrays(cache_dir):
    """{file name: {array name: values}} of a reference cache (its .npz files)."""
    found = {}
    for name in sorted(os.listdir(cache_dir)):
        with np.load(os.path.join(cache_dir, name)) as f:
            found[name] = {k: f[k] for k in f.files}
    return found


def _assert_same_arrays(got, want, what):
    assert got.keys() == want.keys(), what
    for name in want:
        assert got[name].keys() == want[name].keys(), (what, name)
        for key in want[name]:
            np.testing.assert_array_equal(got[name][key], want[name][key],
                                          err_msg=f"{what}: {name}/{key}")


def _variables(prefix):
    """{name: value} of every variable of a checkpoint or a SavedModel's variables."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in name}


def _run_outputs(model_dir):
    """What two runs of the same config and seed must write alike: the values of every
    checkpoint and of the export (compared as values: the files name the Keras layers, whose
    names depend on what the process built before), and the sample grids."""
    checkpoints = model_dir / "checkpoints"
    outputs = {prefix.stem: _variables(checkpoints / prefix.stem)
               for prefix in sorted(checkpoints.glob("ckpt-*.index"))}
    outputs["export"] = _variables(model_dir / "export" / "variables" / "variables")
    outputs["samples"] = tree_bytes(model_dir / "samples")
    outputs["samples"]["samples.png"] = (model_dir / "samples.png").read_bytes()
    return outputs


def _assert_run_equals(got_dir, want_dir, what):
    want, got = _run_outputs(want_dir), _run_outputs(got_dir)
    assert sorted(got) == sorted(want), what
    assert len(want) == 6  # ckpt-1 ... ckpt-4, export, samples
    for part in want:
        assert sorted(got[part]) == sorted(want[part]), (what, part)
        differ = [name for name in want[part] if not np.array_equal(got[part][name],
                                                                    want[part][name])]
        assert not differ, f"{what}: {part}: {differ[:10]} differ"


def _progress_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("step ")]


def _many_at_once(trained_run, tmp_path, monkeypatch, capsys, *, runs, seeds, evaluations,
                  inception):
    """Starts `runs` trainings of trained_run's config, a sweep of one cell per seed of `seeds`
    and `evaluations` evaluations of trained_run (sharing one fresh reference cache) at once;
    checks each against the same work done alone (trained_run; the sweep's metrics and table,
    and an evaluation, computed in this process)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    reference = write_folder(tmp_path / "reference", np.random.default_rng(1).integers(
        0, 256, size=(4, 32, 32, 3), dtype=np.uint8))
    if inception:
        weights, evaluate_module = FID_WEIGHTS, ["-m", "tf_convgan.evaluate"]
    else:
        weights = projection_features.write_weights(tmp_path / "projection.npz")
        evaluate_module = [os.path.join(ROOT, "tests", "projection_features.py")]
    sweep_file = _sweep_file(tmp_path, trained_run.npy, seeds)

    commands = {f"run_{i}": [os.path.join(ROOT, "run.py"),
                             *tiny_args(tmp_path / f"run_{i}", trained_run.npy, *RUN_PARAMS)]
                for i in range(runs)}
    commands["sweep"] = ["-m", "tf_convgan.sweep", "--sweep", sweep_file,
                         "--out_dir", tmp_path / "sweep"]
    for i in range(evaluations):
        commands[f"evaluate_{i}"] = [*evaluate_module, *_evaluate_args(
            trained_run.model_dir, reference, tmp_path / "cache",
            tmp_path / f"evaluate_{i}" / "metrics.json", weights)]
    done = _run_all_at_once(commands, logs)
    for name, (status, out, err) in done.items():
        assert status == 0, f"{name}: status {status}\n{err[-3000:]}"

    # Training: every run (and the sweep's cell of seed 0) equals the run trained alone.
    progress = _progress_lines(done["run_0"][1])
    assert len(progress) == 4
    for i in range(runs):
        _assert_run_equals(tmp_path / f"run_{i}", trained_run.model_dir, f"run_{i}")
        assert _progress_lines(done[f"run_{i}"][1]) == progress  # the same losses, step by step

    # The sweep: its cells' results and its table, as computed alone.
    sweep = sweep_lib.load_sweep(sweep_file)
    cells = sweep_lib.expand(sweep)
    _assert_run_equals(tmp_path / "sweep" / cells[0].name, trained_run.model_dir, "sweep cell")
    if len(cells) > 1:  # the comparison tells runs apart: another seed is another run
        with pytest.raises(AssertionError, match="differ"):
            _assert_run_equals(tmp_path / "sweep" / cells[1].name, trained_run.model_dir, "")
    alone = {cell.name: cli_sweep.cell_metrics(sweep, cell, str(tmp_path / "sweep" / cell.name))
             for cell in cells}  # each cell's generator loaded from its run, in this process
    assert alone[cells[0].name] == cli_sweep.cell_metrics(sweep, cells[0],
                                                          str(trained_run.model_dir))
    for cell in cells:
        got = sweep_lib.read_result(tmp_path / "sweep" / cell.name)
        assert got == {k: float(v) for k, v in alone[cell.name].items()}, cell.name
    table = tmp_path / "alone_table.md"
    sweep_lib.write_table(str(table), sweep, {name: {k: float(v) for k, v in values.items()}
                                              for name, values in alone.items()})
    assert (tmp_path / "sweep" / sweep_lib.TABLE_MD).read_text() == table.read_text()

    # The evaluations: the metrics and the reference cache of one evaluation alone.
    if not inception:
        monkeypatch.setattr(evaluate, "_extractor", lambda f: projection_features.
                            projection_extractor(weights_path=f.weights, batch_size=f.batch_size))
    status, out, err = run_evaluate(capsys, *_evaluate_args(
        str(trained_run.model_dir), reference, str(tmp_path / "alone_cache"),
        str(tmp_path / "alone.json"), weights))
    assert status == 0, err
    want = json.loads((tmp_path / "alone.json").read_text())
    for i in range(evaluations):
        got = json.loads((tmp_path / f"evaluate_{i}" / "metrics.json").read_text())
        assert got == want, f"evaluate_{i}"
        assert json.loads(done[f"evaluate_{i}"][1].splitlines()[-1]) == want
    _assert_same_arrays(_cache_arrays(tmp_path / "cache"), _cache_arrays(tmp_path / "alone_cache"),
                        "reference cache")
    leftovers = [n for n in os.listdir(tmp_path / "cache") if not n.endswith(".npz")]
    assert not leftovers  # no temporary of a concurrent writer stays behind


def test_two_runs_a_sweep_and_an_evaluation_at_once_end_as_each_alone(
        trained_run, tmp_path, monkeypatch, capsys):
    """Four processes at once (the evaluation's features a fixed projection, not the Inception
    network: see tests/projection_features.py)."""
    _many_at_once(trained_run, tmp_path, monkeypatch, capsys, runs=2, seeds=(0,), evaluations=1,
                  inception=False)


@pytest.mark.slow
@needs_weights
def test_many_at_once_soak_with_the_inception_network_and_a_shared_reference_cache(
        trained_run, tmp_path, monkeypatch, capsys):
    """Six processes at once: three runs, a sweep of two cells, and two evaluations with the
    FID Inception network writing the same reference cache file at the same time."""
    _many_at_once(trained_run, tmp_path, monkeypatch, capsys, runs=3, seeds=(0, 1),
                  evaluations=2, inception=True)


# -- a run started on the directory a finished run left behind ---------------------------------

def test_the_same_command_on_a_finished_run_trains_nothing_and_changes_nothing(trained_run,
                                                                              tmp_path):
    """Only the export is written again, from the last checkpoint: the same variables (it also
    completes an export that a kill at the end interrupted)."""
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    before = tree_bytes(run)
    status, out, err = run_py_in_process(*tiny_args(run, trained_run.npy, *RUN_PARAMS))
    assert status == 0, err
    assert f"restored {run}/checkpoints/ckpt-4 at step 4: nothing left to train" in out
    assert not _progress_lines(out)
    after = tree_bytes(run)
    assert {k: v for k, v in after.items() if not k.startswith("export")} == \
        {k: v for k, v in before.items() if not k.startswith("export")}
    assert after["export/operative_config.gin"] == before["export/operative_config.gin"]
    want = _variables(trained_run.model_dir / "export" / "variables" / "variables")
    got = _variables(run / "export" / "variables" / "variables")
    assert sorted(got) == sorted(want) and len(want) > 20
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert "export/saved_model.pb" in after


def test_a_larger_num_steps_on_a_finished_run_continues_from_its_last_checkpoint(trained_run,
                                                                                tmp_path):
    """(That the continued run equals one trained straight to the larger num_steps:
    test_loop.py::test_resumed_run_equals_uninterrupted_run.)"""
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    before = tree_bytes(run / "checkpoints")
    status, out, err = run_py_in_process(*tiny_args(run, trained_run.npy, "train.num_steps = 5",
                                                    "train.keep_last = 10"))
    assert status == 0, err
    assert f"restored {run}/checkpoints/ckpt-4 at step 4\n" in out
    assert [line.split()[1] for line in _progress_lines(out)] == ["5/5"]
    after = tree_bytes(run / "checkpoints")
    assert {k: v for k, v in after.items() if k.startswith("ckpt-")} == {
        **{k: v for k, v in before.items() if k.startswith("ckpt-")},
        "ckpt-5.index": after["ckpt-5.index"],
        "ckpt-5.data-00000-of-00001": after["ckpt-5.data-00000-of-00001"]}
    assert 'model_checkpoint_path: "ckpt-5"' in after["checkpoint"].decode()
