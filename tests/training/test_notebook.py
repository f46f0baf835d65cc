"""notebooks/tpu_colab.ipynb runs end to end on a CPU (default strategy) at a tiny size."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from fid_helpers import FASHION_MNIST_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join(ROOT, "notebooks", "tpu_colab.ipynb")

# Executes the notebook's code cells in order in one namespace, as a kernel would; IPython's
# display is replaced by a recorder, so the test sees which images the notebook showed.
_RUNNER = textwrap.dedent("""
    import json, sys, types
    shown = []
    display_module = types.ModuleType("IPython.display")
    display_module.Image = lambda filename: filename
    display_module.display = shown.append
    sys.modules["IPython"] = types.ModuleType("IPython")
    sys.modules["IPython"].get_ipython = lambda: None  # not in a kernel (matplotlib asks)
    sys.modules["IPython.display"] = display_module
    namespace = {"__name__": "__main__"}
    for cell in json.load(open(sys.argv[1]))["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "<cell>", "exec"), namespace)
    json.dump(shown, open(sys.argv[2], "w"))
""")


def test_notebook_runs_end_to_end_on_cpu(tmp_path):
    if not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"Fashion-MNIST not found at {FASHION_MNIST_DIR} "
                    f"(set TF_CONVGAN_FASHION_MNIST_DIR)")
    model_dir = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONVGAN_NOTEBOOK_TINY="1",
               TF_CONVGAN_NOTEBOOK_MODEL_DIR=str(model_dir),
               TF_CONVGAN_FASHION_MNIST_DIR=FASHION_MNIST_DIR, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", _RUNNER, NOTEBOOK, str(tmp_path / "shown.json")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no TPU: default strategy" in result.stdout
    assert "trained to step 4" in result.stdout
    assert "'images': ('uint8', [4, 32, 32, 3])" in result.stdout
    shown = json.load(open(tmp_path / "shown.json"))
    assert [os.path.basename(p) for p in shown] == ["samples.png", "samples.png",
                                                    "interpolation_spherical.gif"]
    with Image.open(shown[2]) as gif:
        assert gif.n_frames == 4 * 8
    assert os.path.exists(model_dir / "checkpoints" / "ckpt-4.index")
