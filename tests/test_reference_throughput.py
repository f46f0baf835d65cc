"""benchmarks/reference_throughput.py: it skips cleanly (exit 0, the reason) without a GAN_stability
checkout or without torch, and its interleaved timing and ratios are right (a fake clock)."""
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "reference_throughput.py")


def _load():
    from helpers import load_script
    return load_script(os.path.join("benchmarks", "reference_throughput.py"))


def _run(*args, env_path=None):
    env = {k: v for k, v in os.environ.items() if k != "GAN_STABILITY_PATH"}
    if env_path is not None:
        env["GAN_STABILITY_PATH"] = env_path
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _fake_checkout(path):
    for name in ("gan_training/models/resnet.py", "gan_training/train.py"):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("raise RuntimeError('a fake checkout is never imported')\n")
    return path


def test_skips_without_a_checkout(tmp_path):
    result = _run()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("skip: no GAN_stability checkout")
    assert "--gan_stability" in result.stdout and "GAN_STABILITY_PATH" in result.stdout
    for run in (_run("--gan_stability", str(tmp_path)), _run(env_path=str(tmp_path))):
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.startswith(f"skip: {tmp_path} is not a GAN_stability checkout")
        assert os.path.join("gan_training", "models", "resnet.py") in run.stdout
    assert "Traceback" not in result.stderr


def test_skips_without_torch(tmp_path):
    """A checkout but no torch: the reason is torch (checked after the checkout)."""
    module = _load()
    checkout = str(_fake_checkout(tmp_path))
    assert module.skip_reason(checkout, lambda: False).startswith("skip: torch cannot be imported")
    assert module.skip_reason(checkout, lambda: True) is None
    assert module.skip_reason(None, lambda: False).startswith("skip: no GAN_stability checkout")
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here: the command line would run the benchmark")
    result = _run("--gan_stability", checkout)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("skip: torch cannot be imported")


def test_interleaved_timing_and_ratios():
    """Blocks of every configuration in turn; per-iteration times, medians, and the ratio of
    PyTorch's time to this project's, with a clock that the fake steps advance."""
    module = _load()
    now = [0.0]
    order = []
    # Iteration times: PyTorch 0.3 s (none) / 0.5 s (r1), this project 0.2 / 0.25 s; block 2 of
    # PyTorch r1 is slow (0.9 s), which the median ignores.
    costs = {("pytorch", "none"): [0.3, 0.3, 0.3], ("pytorch", "r1"): [0.5, 0.9, 0.5],
             ("tf_convgan", "none"): [0.2, 0.2, 0.2], ("tf_convgan", "r1"): [0.25, 0.25, 0.25]}
    calls = {key: 0 for key in costs}

    def make(key, steps):
        def step():
            order.append(key)
            now[0] += costs[key][calls[key] // steps]
            calls[key] += 1
        return step

    steps = {key: make(key, 2) for key in costs}
    times = module.interleave(steps, blocks=3, steps=2, clock=lambda: now[0])
    assert order[:8] == [key for key in costs for _ in range(2)]  # block 1: each in turn
    assert times[("pytorch", "r1")] == pytest.approx([0.5, 0.9, 0.5])
    images, ratios = module.summarize(times, batch=64)
    assert images[("pytorch", "none")] == pytest.approx(64 / 0.3)
    assert images[("tf_convgan", "r1")] == pytest.approx(64 / 0.25)
    assert ratios["none"] == pytest.approx(1.5) and ratios["r1"] == pytest.approx(2.0)
    text = module.report(images, ratios, batch=64, resolution=32, blocks=3, steps=2)
    assert "| pytorch | r1 | 128.00 |" in text
    assert "r1: tf_convgan / PyTorch throughput = 2.00x" in text


@pytest.mark.slow
def test_this_projects_side_runs():
    """The tf_convgan half of the benchmark: the iteration of each penalty runs, on the networks
    whose parameter counts GAN_stability's ResNet has (tests/networks/test_resnet.py: 6,773,699 and
    2,579,649 at 32 px)."""
    module = _load()
    steps, counts = module.tf_convgan_steps(batch=2, resolution=32)
    assert sorted(steps) == [("tf_convgan", "none"), ("tf_convgan", "r1")]
    assert counts == (6_773_699, 2_579_649)
    for step in steps.values():
        step()
