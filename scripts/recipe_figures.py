"""The figures of a training run with in-training FID: FID against training time, and its samples.

    python scripts/recipe_figures.py --model_dir runs/fashion_mnist_r1_fast \
        --steps_per_second 6.5 --out_prefix docs/fashion_mnist_r1_fast \
        [--fid10k_json F ...] [--floor_json F]

Writes `<out_prefix>_fid.png`: the FID of every in-training evaluation (`metrics.csv`) against
training minutes = step / `--steps_per_second` (the config's quiet throughput, measured with
benchmarks/recipe_throughput.py: time spent evaluating, and other jobs sharing the CPU, are not
training time), with the step on the top axis; each `--fid10k_json` (the `--output_json` of
`python -m tf_convgan.evaluate`, which names its checkpoint) adds a point at its step, and
`--floor_json` (scripts/fid_floor.py) a line. Copies the run's newest sample grid (the EMA
generator's 8x8 grid for fixed z) to `<out_prefix>_samples.png`. Prints the table of the curve.
"""
import argparse
import glob
import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tf_convgan import run_dir  # noqa: E402
from tf_convgan.evaluation.hook import read_metrics_csv  # noqa: E402


def _step_of_checkpoint(path):
    match = re.search(r"ckpt-(\d+)", path or "")
    if not match:
        raise SystemExit(f"error: --fid10k_json: cannot tell the step of checkpoint {path!r}")
    return int(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--steps_per_second", type=float, required=True)
    parser.add_argument("--out_prefix", required=True)
    parser.add_argument("--fid10k_json", action="append", default=[])
    parser.add_argument("--floor_json", default=None)
    args = parser.parse_args()
    if args.steps_per_second <= 0:
        parser.error(f"--steps_per_second: must be > 0, got {args.steps_per_second}")
    table = read_metrics_csv(os.path.join(args.model_dir, run_dir.METRICS_CSV))
    minutes = table["step"] / args.steps_per_second / 60
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    ax.plot(minutes, table["fid"], marker="o", label="FID, 2,000 samples vs 2,000 test images")
    print("| step | training minutes | FID (2k) |")
    print("|---|---|---|")
    for step, minute, fid in zip(table["step"], minutes, table["fid"]):
        print(f"| {int(step)} | {minute:.1f} | {fid:.1f} |")
    for i, path in enumerate(args.fid10k_json):
        with open(path) as f:
            result = json.load(f)
        step = _step_of_checkpoint(result.get("checkpoint"))
        ax.plot(step / args.steps_per_second / 60, result["fid"], "s", color="C3",
                label="FID, 10,000 samples vs the 10,000 test images" if i == 0 else None)
        print(f"FID@{result['num_samples']} at step {step}: {result['fid']:.2f}")
    if args.floor_json:
        with open(args.floor_json) as f:
            floor = json.load(f)
        ax.axhline(floor["fid"], color="gray", ls="--",
                   label=f"{floor['num']:,} train vs test images: {floor['fid']:.1f}")
    ax.set_yscale("log")
    ax.set_xlabel(f"training minutes on 2 CPU cores (step / {args.steps_per_second:g} steps/s)")
    ax.set_ylabel("FID (EMA generator)")
    top = ax.secondary_xaxis("top", functions=(lambda m: m * 60 * args.steps_per_second,
                                                lambda s: s / 60 / args.steps_per_second))
    top.set_xlabel("step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out_prefix + "_fid.png")
    plt.close(fig)
    grids = sorted(glob.glob(os.path.join(args.model_dir, "samples", "step_*.png")))
    if grids:
        shutil.copyfile(grids[-1], args.out_prefix + "_samples.png")
        print(f"samples: {grids[-1]} -> {args.out_prefix}_samples.png")


if __name__ == "__main__":
    main()
