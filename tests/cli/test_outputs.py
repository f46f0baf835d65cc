"""Every output path of every command: never inside a run's checkpoints/ or best/, never over a
file or into a directory of the user's (one line naming the flag, status 2, every byte kept, before
anything is computed); a command's own earlier outputs are replaced (run_dir.outputs)."""
import json
import os

import pytest
import yaml

from helpers import TINY_GIN, copy_run, run_py_in_process, tiny_args, tree_bytes
from tf_convgan import run_dir
from tf_convgan.cli import evaluate, sweep
from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import outputs
from tf_convgan.cli import export, sampling
from tf_convgan.cli import spectrum


def _sweep_file(tmp_path, npy):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "gin_files": [TINY_GIN], "gin_params": [f"npy_source.path = '{npy}'"],
        "grid": [{"name": "loss", "binding": "GAN.loss", "values": ["@hinge()"]}],
        "metric": "pixel", "heatmap": {"rows": "loss", "columns": "loss"}}))
    return str(path)


def _user_dir(tmp_path, *names):
    """A directory of the user's holding `names` (relative paths), each with its own bytes."""
    directory = tmp_path / "user"
    for name in names:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"the user's " + name.encode())
    return directory


def _case(case, tmp_path, run, npy):
    """(the command's main, its argv, the start of the expected error line)."""
    ckpt = run / "checkpoints"
    sweep_file = _sweep_file(tmp_path, npy)
    if case == "evaluate_output_json_is_a_checkpoint_file":  # the checkpoint was destroyed
        return (evaluate.main, ["--model_dir", str(run), "--output_json",
                                str(ckpt / "ckpt-4.index")], "error: --output_json: ")
    if case == "evaluate_output_json_new_in_checkpoints":
        return (evaluate.main, ["--model_dir", str(run), "--output_json",
                                str(ckpt / "metrics.json")], "error: --output_json: ")
    if case == "evaluate_output_json_is_a_user_file":
        user = _user_dir(tmp_path, "metrics.json")
        return (evaluate.main, ["--model_dir", str(run), "--output_json",
                                str(user / "metrics.json")], "error: --output_json: ")
    if case == "sampling_out_dir_is_checkpoints":
        return (sampling.main, ["--model", str(run / "export"), "--out_dir", str(ckpt)],
                "error: --out_dir: ")
    if case == "sampling_out_dir_below_checkpoints":
        return (sampling.main, ["--model", str(run / "export"), "--out_dir",
                                str(ckpt / "samples")], "error: --out_dir: ")
    if case == "sampling_out_dir_holds_user_files":
        user = _user_dir(tmp_path, "samples.png", "samples/sample_00000.png")
        return (sampling.main, ["--model", str(run / "export"), "--out_dir", str(user)],
                "error: --out_dir: ")
    if case == "spectrum_out_dir_is_checkpoints":
        return (spectrum.main, ["--model_dir", str(run), "--out_dir", str(ckpt)],
                "error: --out_dir: ")
    if case == "spectrum_out_dir_holds_user_files":
        user = _user_dir(tmp_path, "spectrum.png")
        return (spectrum.main, ["--model_dir", str(run), "--out_dir", str(user)],
                "error: --out_dir: ")
    if case == "spectrum_out_dir_is_a_file":
        user = _user_dir(tmp_path, "a_file")
        return (spectrum.main, ["--model_dir", str(run), "--out_dir", str(user / "a_file")],
                "error: --out_dir: ")
    if case == "sweep_collect_into_checkpoints":
        return (sweep.main, ["--sweep", sweep_file, "--out_dir", str(ckpt), "--collect"],
                "error: --out_dir: ")
    if case == "sweep_out_dir_holds_user_files":
        user = _user_dir(tmp_path, "sweep_results.md")
        return (sweep.main, ["--sweep", sweep_file, "--out_dir", str(user), "--collect"],
                "error: --out_dir: ")
    if case == "sweep_commands_file_is_the_state_file":
        return (sweep.main, ["--sweep", sweep_file, "--out_dir", str(tmp_path / "s"),
                             "--print_commands", "--commands_file", str(ckpt / "checkpoint")],
                "error: --commands_file: ")
    if case == "sweep_commands_file_is_a_user_file":
        user = _user_dir(tmp_path, "notes.txt")
        return (sweep.main, ["--sweep", sweep_file, "--out_dir", str(tmp_path / "s"),
                             "--print_commands", "--commands_file", str(user / "notes.txt")],
                "error: --commands_file: ")
    if case == "export_dir_below_checkpoints":
        return (export.main, ["--model_dir", str(run), "--export_dir", str(ckpt / "export")],
                "error: --export_dir: ")
    if case == "train_model_dir_holds_user_files":  # samples.png was replaced
        user = _user_dir(tmp_path, "samples.png", "samples/step_0000002.png")
        return None, tiny_args(user, npy), f"error: model_dir '{user}' is not empty and "
    if case == "train_model_dir_below_checkpoints":
        return None, tiny_args(ckpt / "run", npy), "error: model_dir "
    raise ValueError(case)


CASES = [
    "evaluate_output_json_is_a_checkpoint_file", "evaluate_output_json_new_in_checkpoints",
    "evaluate_output_json_is_a_user_file", "sampling_out_dir_is_checkpoints",
    "sampling_out_dir_below_checkpoints", "sampling_out_dir_holds_user_files",
    "spectrum_out_dir_is_checkpoints", "spectrum_out_dir_holds_user_files",
    "spectrum_out_dir_is_a_file", "sweep_collect_into_checkpoints",
    "sweep_out_dir_holds_user_files", "sweep_commands_file_is_the_state_file",
    "sweep_commands_file_is_a_user_file", "export_dir_below_checkpoints",
    "train_model_dir_holds_user_files", "train_model_dir_below_checkpoints"]


@pytest.mark.parametrize("case", CASES)
def test_no_command_writes_into_checkpoints_or_over_what_it_did_not_write(
        trained_run, tmp_path, capsys, case):
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    main, args, expected = _case(case, tmp_path, run, trained_run.npy)
    before = tree_bytes(tmp_path)
    if main is None:
        status, out, err = run_py_in_process(*args)
    else:
        status = main(["command", *args])
        err = capsys.readouterr().err
    assert status == 2 and err.startswith(expected) and len(err.splitlines()) == 1, err
    assert tree_bytes(tmp_path) == before


def test_a_command_replaces_only_its_own_earlier_outputs(trained_run, tmp_path, capsys):
    """Sampling twice into the same directory writes the same files; a directory the library
    marked keeps the user's other files; a user's file at one of its names is refused."""
    out = tmp_path / "out"
    args = ["sampling", "--model", str(trained_run.model_dir / "export"), "--out_dir", str(out),
            "--num", "2"]
    assert sampling.main(args) == 0
    first = tree_bytes(out)
    (out / "notes.txt").write_text("mine")
    assert sampling.main(args) == 0
    assert tree_bytes(out) == {**first, "notes.txt": b"mine"}
    (out / "classes.png").write_text("mine too")  # a name sampling writes (conditional models)
    assert outputs.claimed(str(out)) == ["sampling"]
    with pytest.raises(ConfigError, match="classes.png"):
        outputs.check_output_dir(str(out), name="--out_dir", command="spectrum",
                                 names=["classes.png"])


def test_evaluate_s_json_is_recognised_and_nothing_else(tmp_path):
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"fid": 1.0, "kid": 0.1, "kid_std": 0.0, "num_samples": 2,
                               "num_reference": 2, "reference": "x", "resize": "y"}) + "\n")
    outputs.check_output_file(str(own), name="--output_json", own=evaluate.is_own_output)
    for text in ['{"fid": 1.0}', "not json", json.dumps([1, 2])]:
        other = tmp_path / "other.json"
        other.write_text(text)
        with pytest.raises(ConfigError, match="--output_json"):
            outputs.check_output_file(str(other), name="--output_json",
                                      own=evaluate.is_own_output)


@pytest.mark.parametrize("inside", ["checkpoints", "best", "checkpoints/worker_1",
                                    "checkpoints/unreadable/ckpt-4"])
def test_a_run_s_checkpoint_directories_are_never_an_output(tmp_path, inside):
    run = tmp_path / "run"
    (run / inside).mkdir(parents=True)
    (run / run_dir.OPERATIVE_CONFIG).write_text("")
    for path in (run / inside, run / inside / "x.json", run / inside / "new" / "x.json"):
        assert outputs.checkpoint_area(str(path)) is not None, path
    assert outputs.checkpoint_area(str(run / "samples")) is None
    loose = tmp_path / "loose"  # a checkpoint directory outside a run: its state file says so
    loose.mkdir()
    (loose / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    assert outputs.checkpoint_area(str(loose / "x.json")) == str(loose)
    link = tmp_path / "link"
    os.symlink(run / "checkpoints", link)
    assert outputs.checkpoint_area(str(link / "x.json")) is not None
