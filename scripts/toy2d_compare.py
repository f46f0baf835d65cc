"""R1 vs unregularized on the 2D problems, several seeds: a Markdown table and a figure.

    python scripts/toy2d_compare.py [OUT_DIR] [--seeds 0 1 2] [--problems ring8 circle ...]
                                    [--num_steps 2000] [--methods unregularized r1 roth]

Every run is `train()` on gin_configs/toy2d/<problem>_<method>.gin (the same configs as run.py)
with `train.seed = s` (the run's one seed: weights, data order and every draw of the step); the
distance is the exact W2 of 1000 samples of the trained G to 1000 data points at the last step
(metrics.csv). The floor is the W2 between those 1000 data points and 1000 other, independent
data points (`toy2d.data_floor`, per seed): the score of a generator that samples the data itself.
The first seed is trained in stages (at 1/8, 1/4, 1/2 and all of num_steps, resuming from its
checkpoint, which gives the uninterrupted run's weights) to draw samples and D's contours over time.
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

NUM_STEPS = 2000  # gin_configs/toy2d/base.gin's train.num_steps
NUM_POINTS = 1000  # toy2d_writer's num_points


def stages(num_steps):
    """The first seed's stages: 1/8, 1/4, 1/2 and all of num_steps (250, 500, 1000, 2000)."""
    return tuple(num_steps // d for d in (8, 4, 2, 1))


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
        num_steps=NUM_STEPS):
    """{problem: {method: [final W2 per seed], "floor": [data floor per seed]}} (and the ring's
    mode coverage), plus the files."""
    tick = time.time()
    results, coverage = {}, {}
    steps_of_first_seed = stages(num_steps)
    for problem in problems:
        source = toy2d.PointSource(problem)
        results[problem] = {"floor": [toy2d.data_floor(source, num_points=NUM_POINTS, seed=s)
                                      for s in seeds]}
        frames = []
        for method in methods:
            gin_file = os.path.join("toy2d", f"{problem}_{method}.gin")
            for seed in seeds:
                model_dir = os.path.join(out_dir, "runs", f"{problem}_{method}_seed{seed}")
                steps = steps_of_first_seed if seed == seeds[0] else (num_steps,)
                for step in steps:
                    gan, _ = _train(gin_file, model_dir, [
                        f"train.seed = {seed}", f"train.num_steps = {step}",
                        f"train.sample_every = {steps_of_first_seed[1]}",
                        f"toy2d_writer.num_points = {NUM_POINTS}"])
                    if seed == seeds[0]:
                        frames.append(_frame(gan, problem, method, step))
                last = toy2d.read_csv(os.path.join(model_dir, toy2d.METRICS_CSV))[-1]
                assert last["step"] == num_steps, (model_dir, last)
                results[problem].setdefault(method, []).append(last["w2"])
                if "modes" in last:
                    coverage.setdefault(method, []).append((last["modes"], last["high_quality"]))
                print(f"{problem} {method} seed {seed}: W2 {last['w2']:.4f}", flush=True)
        plots.toy2d_figure(frames, os.path.join(out_dir, f"toy2d_{problem}.png"),
                           cols=len(steps_of_first_seed), limit=toy2d.PLOT_LIMIT.get(problem, 2.0))
    table = markdown(results, coverage, seeds=seeds, num_steps=num_steps,
                     seconds=time.time() - tick)
    with open(os.path.join(out_dir, "toy2d_table.md"), "w") as f:
        f.write(table)
    print(table)
    return results


def markdown(results, coverage, *, seeds, num_steps, seconds=None):
    methods = [m for m in next(iter(results.values())) if m != "floor"]
    lines = [f"Exact W2 distance to the data after {num_steps} steps ({NUM_POINTS} samples vs "
             f"{NUM_POINTS} data points), per seed {list(seeds)} and mean; lower is better. "
             f"Floor: W2 between those data points and {NUM_POINTS} independent data points "
             f"(mean over the seeds), the score of a perfect generator.", "",
             "| problem | floor | " + " | ".join(f"{m} (per seed) | {m} mean" for m in methods)
             + " |",
             "|---|---|" + "---|---|" * len(methods)]
    for problem, per_method in results.items():
        cells = [f"{np.mean(per_method['floor']):.3f}"]
        for m in methods:
            cells += [", ".join(f"{v:.3f}" for v in per_method[m]),
                      f"**{np.mean(per_method[m]):.3f}**"]
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    if coverage:
        lines += ["", "ring8, mean over seeds: " + "; ".join(
            f"{m}: {100 * np.mean([c[0] for c in v]):.0f}% of the modes covered, "
            f"{100 * np.mean([c[1] for c in v]):.1f}% high-quality samples"
            for m, v in coverage.items())]
    if len(methods) == 2:
        a, b = methods
        means = {m: {p: np.mean(r[m]) for p, r in results.items()} for m in methods}
        lower = [p for p in results if means[b][p] < means[a][p]]
        lines += ["", f"{b} below {a} on {len(lower)} of {len(results)} problems "
                  f"({', '.join(lower) or 'none'}); mean over the problems: {b} "
                  f"{np.mean(list(means[b].values())):.3f}, {a} "
                  f"{np.mean(list(means[a].values())):.3f}, floor "
                  f"{np.mean([np.mean(r['floor']) for r in results.values()]):.3f}."]
    if seconds is not None:
        runs = len(results) * len(methods) * len(seeds)
        lines += ["", f"{runs} runs in {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=os.path.join("runs", "toy2d_compare"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--problems", nargs="+", default=list(toy2d.PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=["unregularized", "r1"],
                        help="gin_configs/toy2d/<problem>_<method>.gin for each (also: roth)")
    parser.add_argument("--num_steps", type=int, default=NUM_STEPS,
                        help="steps per run (a multiple of 8)")
    args = parser.parse_args()
    if args.num_steps < 8 or args.num_steps % 8:
        parser.error(f"--num_steps must be a positive multiple of 8, got {args.num_steps}")
    tick = time.time()
    run(args.out_dir, problems=args.problems, methods=tuple(args.methods),
        seeds=tuple(args.seeds), num_steps=args.num_steps)
    print(f"toy2d comparison: {time.time() - tick:.0f} s -> {args.out_dir}")


if __name__ == "__main__":
    main()
