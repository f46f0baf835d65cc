"""The `python -m tf_convgan.evaluate` command's input checks (tf_convgan/cli/evaluate.py): one
line naming the flag, status 2, before the Inception network is loaded."""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT
from fid_helpers import run_evaluate, write_folder


@pytest.mark.parametrize("args, flag", [
    ([], "--model_dir"),
    (["--image_dir", "a", "--saved_model", "b"], "--model_dir"),
    (["--image_dir", "/nonexistent-dir"], "--image_dir"),
    (["--saved_model", "/nonexistent-dir", "--weights", "/nonexistent.npz"], "--saved_model"),
    (["--model_dir", "/nonexistent-dir", "--weights", "/nonexistent.npz"], "--model_dir"),
    (["--image_dir", "x", "--num_samples", "0"], "--num_samples"),
    (["--image_dir", "x", "--no_such_flag"], "no_such_flag"),
    (["--image_dir", "x", "--fit", "bogus"], "--fit"),
    (["--image_dir", "x", "--resolution", "-5"], "--resolution"),
    (["--image_dir", "x", "--seed", str(2 ** 70)], "--seed"),
])
def test_command_line_errors_name_the_flag(capsys, args, flag):
    status, out, err = run_evaluate(capsys, *args)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and flag in err, err


def test_images_are_counted_and_checked_before_the_network_is_loaded(tmp_path, capsys):
    """Fewer than 2 images, a text file named .png and a truncated PNG are one line naming the
    flag and the file, before the Inception weights are even looked for."""
    images = np.zeros((2, 8, 8, 3), np.uint8)
    one = write_folder(tmp_path / "one", images[:1])
    two = write_folder(tmp_path / "two", images)
    text = write_folder(tmp_path / "text", images)
    (tmp_path / "text" / "0002.png").write_text("not an image")
    truncated = write_folder(tmp_path / "truncated", images)
    data = (tmp_path / "truncated" / "0001.png").read_bytes()
    (tmp_path / "truncated" / "0001.png").write_bytes(data[:len(data) // 2])
    no_weights = ["--weights", "/nonexistent.npz"]
    for args, expected in [
            (["--image_dir", one], "error: --image_dir: '%s' has 1 image" % one),
            (["--image_dir", two, "--reference_dir", one], "error: --reference_dir: "),
            (["--image_dir", text], "error: --image_dir: image file '%s/0002.png' is not a PNG"
             % text),
            (["--image_dir", two, "--reference_dir", truncated],
             "error: --reference_dir: image file '%s/0001.png' is a truncated PNG" % truncated),
            (["--image_dir", two, "--reference_dir", two], "error: --weights: ")]:
        status, out, err = run_evaluate(capsys, *args, *no_weights)
        assert status == 2 and err.startswith(expected) and len(err.splitlines()) == 1, err


def test_command_line_exit_status_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "tf_convgan.evaluate", "--image_dir", "a",
                             "--model_dir", "b"], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model_dir")
