"""The scripts in examples/ run: a few steps of each, outputs checked."""
import numpy as np
import pytest

from fid_helpers import needs_fashion_mnist
from helpers import load_script
from tf_convgan.run_dir import images as images_lib


@needs_fashion_mnist
def test_keras_fit_example_trains_and_writes_a_sample_grid(tmp_path, capsys):
    """examples/keras_fit_fashion_mnist.py: 2 fit steps of its own G and D with R1 on
    Fashion-MNIST, then an 8x8 grid of 32x32 gray samples; an existing --out is refused."""
    example = load_script("examples/keras_fit_fashion_mnist.py")
    out = tmp_path / "grid.png"
    example.main(["--steps", "2", "--batch_size", "8", "--out", str(out)])
    grid = images_lib.read_png(str(out))
    assert grid.shape[0] >= 8 * 32 and grid.shape[1] >= 8 * 32 and grid.dtype == np.uint8
    assert grid.std() > 0  # samples, not a blank image
    before = out.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--steps", "2", "--out", str(out)])
    assert exit_info.value.code == 2 and "exists" in capsys.readouterr().err
    assert out.read_bytes() == before
