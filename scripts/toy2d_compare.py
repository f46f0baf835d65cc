"""R1 vs unregularized on the 2D problems, several seeds: a Markdown table and a figure.

    python scripts/toy2d_compare.py [OUT_DIR] [--seeds 0 1 2] [--problems ring8 circle ...]

Every run is `train()` on gin_configs/toy2d/<problem>_<method>.gin (the same configs as run.py)
with `train.seed = s`; the distance is the exact W2 of 1000 samples of the trained G to 1000 data
points at the last step (metrics.csv). Seed 0 is trained in stages (resuming from its checkpoint,
which gives the uninterrupted run's weights) to draw samples and D's contours over time.
Writes OUT_DIR/toy2d_table.md and OUT_DIR/toy2d_<problem>.png.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402
import numpy as np  # noqa: E402

import tf_convgan  # noqa: E402,F401
from tf_convgan.cli import config  # noqa: E402
from tf_convgan.studies import plots
from tf_convgan.studies import toy2d
from tf_convgan.training.loop import train  # noqa: E402

STAGES = (250, 500, 1000, 2000)


def _train(gin_file, model_dir, bindings):
    gin.clear_config()
    config.parse([gin_file], bindings)
    try:
        return train(model_dir=model_dir), gin.query_parameter("train.num_steps")
    finally:
        gin.clear_config()


def _frame(gan, problem, method, step):
    source = toy2d.PointSource(problem)
    limit = toy2d.PLOT_LIMIT.get(problem, 2.0)
    metrics, fake, real = toy2d.evaluate(gan.generator, source)
    return {"title": f"{method} step {step}: W2 {metrics['w2']:.3f}", "real": real, "fake": fake,
            "d_grid": toy2d.discriminator_grid(gan.discriminator, limit=limit)}


def run(out_dir, *, problems=toy2d.PROBLEMS, methods=("unregularized", "r1"), seeds=(0, 1, 2),
        stages=STAGES):
    """{problem: {method: [final W2 per seed]}} (and the ring's mode coverage), plus files."""
    results, coverage = {}, {}
    for problem in problems:
        frames = []
        for method in methods:
            gin_file = os.path.join("toy2d", f"{problem}_{method}.gin")
            for seed in seeds:
                model_dir = os.path.join(out_dir, "runs", f"{problem}_{method}_seed{seed}")
                steps = stages if seed == seeds[0] else stages[-1:]
                for step in steps:
                    gan, _ = _train(gin_file, model_dir, [
                        f"train.seed = {seed}", f"train.num_steps = {step}",
                        "train.sample_every = 500"])
                    if seed == seeds[0]:
                        frames.append(_frame(gan, problem, method, step))
                last = toy2d.read_csv(os.path.join(model_dir, toy2d.METRICS_CSV))[-1]
                results.setdefault(problem, {}).setdefault(method, []).append(last["w2"])
                if "modes" in last:
                    coverage.setdefault(method, []).append((last["modes"], last["high_quality"]))
                print(f"{problem} {method} seed {seed}: W2 {last['w2']:.4f}", flush=True)
        plots.toy2d_figure(frames, os.path.join(out_dir, f"toy2d_{problem}.png"), cols=len(stages),
                         limit=toy2d.PLOT_LIMIT.get(problem, 2.0))
    table = markdown(results, coverage, seeds=seeds, num_steps=stages[-1])
    with open(os.path.join(out_dir, "toy2d_table.md"), "w") as f:
        f.write(table)
    print(table)
    return results


def markdown(results, coverage, *, seeds, num_steps):
    methods = list(next(iter(results.values())))
    lines = [f"Exact W2 distance to the data after {num_steps} steps (1000 samples vs 1000 data "
             f"points), per seed {list(seeds)} and mean; lower is better.", "",
             "| problem | " + " | ".join(f"{m} (per seed) | {m} mean" for m in methods) + " |",
             "|---|" + "---|---|" * len(methods)]
    for problem, per_method in results.items():
        cells = []
        for m in methods:
            cells += [", ".join(f"{v:.3f}" for v in per_method[m]), f"**{np.mean(per_method[m]):.3f}**"]
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    if coverage:
        lines += ["", "ring8, mean over seeds: " + "; ".join(
            f"{m}: {100 * np.mean([c[0] for c in v]):.0f}% of the modes covered, "
            f"{100 * np.mean([c[1] for c in v]):.1f}% high-quality samples"
            for m, v in coverage.items())]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=os.path.join("runs", "toy2d_compare"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--problems", nargs="+", default=list(toy2d.PROBLEMS))
    args = parser.parse_args()
    tick = time.time()
    run(args.out_dir, problems=args.problems, seeds=tuple(args.seeds))
    print(f"toy2d comparison: {time.time() - tick:.0f} s -> {args.out_dir}")


if __name__ == "__main__":
    main()
