"""The full 2D comparison: every method of the Dirac-GAN table x the 2D problems x simGD / altGD x
seeds, through train() and the real train_step; a Markdown table with verdicts and figure grids.

    python scripts/toy2d_grid.py OUT_DIR [--methods unregularized r1 ...] [--problems ring8 ...]
        [--rules alternating,simultaneous] [--seeds 0,1] [--num_steps 2000] [--evals 8]
        [--steps_per_execution 1] [--shard K/N]

Every run is `train()` on gin_configs/toy2d/<problem>_unregularized.gin (base.gin: MLP G and D,
RMSprop lr 1e-3, batch 64) plus the method's bindings (`tf_convgan.studies.toy2d_grid.METHODS`:
loss, penalty, d_steps, clipping, noise, ConOpt), `GAN.update_rule` and `train.seed = s` (the run's
one seed: weights, data order and every draw of the step). Each run has its own model directory
OUT_DIR/runs/<problem>_<method>_<rule>_seed<s> (checkpoints, metrics.csv, samples.npz, TensorBoard
events); a run is finished when its grid_run.json says so for this --num_steps, and a rerun skips
it (an interrupted run resumes from its checkpoint). A run that stops on a non-finite value is
recorded as diverged. The table and figures are written from the model directories:
OUT_DIR/toy2d_grid_table.md, toy2d_grid_results.json, toy2d_grid_<rule>.png (methods x problems,
final samples over D's contours, first seed; ConOpt's own step in both).
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402

import tf_convgan  # noqa: E402,F401
from tf_convgan.cli import config  # noqa: E402
from tf_convgan.studies import toy2d  # noqa: E402
from tf_convgan.studies import toy2d_grid as grid  # noqa: E402
from tf_convgan.training.loop import TrainingDivergedError, train  # noqa: E402

NUM_STEPS = 2000
NUM_POINTS = 1000


def train_run(run, model_dir, *, num_steps, evals, steps_per_execution=1, extra_bindings=()):
    """Trains one run to num_steps (resuming if its directory has a checkpoint) and records its
    status; returns 'done' or 'diverged'. extra_bindings come last (tests: smaller networks)."""
    every = num_steps // evals
    bindings = list(run.bindings) + [
        f"train.seed = {run.seed}", f"train.num_steps = {num_steps}",
        f"train.sample_every = {every}", f"train.log_every = {num_steps}",
        f"train.checkpoint_every = {num_steps // 2}",
        f"train.steps_per_execution = {steps_per_execution}",
        f"toy2d_writer.num_points = {NUM_POINTS}", "toy2d_writer.plot = False",
        *extra_bindings]
    gin.clear_config()
    config.parse([run.gin_file], bindings)
    try:
        return grid.train_and_record(model_dir, lambda: train(model_dir=model_dir),
                                     diverged=TrainingDivergedError, num_steps=num_steps,
                                     bindings=bindings)
    finally:
        gin.clear_config()


def floors(problems, seeds):
    return {(p, s): toy2d.data_floor(toy2d.PointSource(p), num_points=NUM_POINTS, seed=s)
            for p in problems for s in seeds}


def run(out_dir, *, methods=None, problems=toy2d.PROBLEMS, rules=grid.RULES, seeds=(0, 1),
        num_steps=NUM_STEPS, evals=8, steps_per_execution=1, shard=(0, 1), train_fn=train_run,
        log=print):
    """Trains what is not finished, then writes the table and the figures from the model
    directories. Returns (results, number of runs trained by this call). shard (k, n): this
    process trains only runs k, k + n, k + 2n, ... (several processes share a grid; each writes
    the table of what has finished, labelled partial while runs are missing)."""
    tick = time.time()
    kept = grid.select_methods(methods)
    runs = grid.expand(kept, problems, rules, seeds)
    log(f"{len(runs)} runs: {len(kept)} methods x {len(problems)} problems x rules {list(rules)}"
        f" x seeds {list(seeds)} (ConOpt once per problem and seed, its own step)")
    trained = 0
    for i, r in enumerate(runs):
        model_dir = os.path.join(out_dir, "runs", r.name)
        if i % shard[1] != shard[0] or grid.is_finished(model_dir, num_steps):
            continue
        t = time.time()
        outcome = train_fn(r, model_dir, num_steps=num_steps, evals=evals,
                           steps_per_execution=steps_per_execution)
        trained += 1
        log(f"[{i + 1}/{len(runs)}] {r.name}: {outcome} in {time.time() - t:.0f} s "
            f"(total {time.time() - tick:.0f} s)")
    results = write_outputs(out_dir, runs, kept, problems=problems, rules=rules,
                            seeds=seeds, num_steps=num_steps, seconds=time.time() - tick)
    return results, trained


def write_outputs(out_dir, runs, methods, *, problems, rules, seeds, num_steps,
                  seconds=None):
    results = grid.collect(out_dir, runs, floors(problems, seeds), num_steps)
    partial = any(r["verdict"] == "missing" for r in results)
    table = grid.markdown(results, num_steps=num_steps, seeds=seeds, problems=problems,
                          seconds=seconds, partial=partial)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "toy2d_grid_table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(out_dir, "toy2d_grid_results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    for rule in rules:
        grid.figure(out_dir, results, os.path.join(out_dir, f"toy2d_grid_{rule}.png"), rule=rule,
                    seed=seeds[0], methods=[m.name for m in methods], problems=problems)
    return results


def _csv(text, cast=str):
    return tuple(cast(v) for v in text.replace(" ", ",").split(",") if v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--methods", nargs="+", default=None,
                        help=f"default: all registered of {list(grid.METHODS)}")
    parser.add_argument("--problems", nargs="+", default=list(toy2d.PROBLEMS))
    parser.add_argument("--rules", default=",".join(grid.RULES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--num_steps", type=int, default=NUM_STEPS)
    parser.add_argument("--evals", type=int, default=8, help="W2 evaluations per run")
    parser.add_argument("--steps_per_execution", type=int, default=1,
                        help="train.steps_per_execution (must divide num_steps / evals)")
    parser.add_argument("--shard", default="0/1",
                        help="K/N: train only every N-th run starting at K (parallel processes)")
    args = parser.parse_args(argv)
    shard = tuple(int(v) for v in args.shard.split("/"))
    every = args.num_steps // max(args.evals, 1)
    if args.evals < grid.WINDOW or args.num_steps % args.evals or every % args.steps_per_execution:
        parser.error(f"--num_steps must be a multiple of --evals (>= {grid.WINDOW}), and "
                     f"num_steps / evals a multiple of --steps_per_execution")
    tick = time.time()
    _, trained = run(args.out_dir, methods=args.methods, problems=tuple(args.problems),
                     rules=_csv(args.rules), seeds=_csv(args.seeds, int),
                     num_steps=args.num_steps, evals=args.evals,
                     steps_per_execution=args.steps_per_execution, shard=shard,
                     log=lambda m: print(m, flush=True))
    print(f"toy2d grid: {trained} runs trained, {time.time() - tick:.0f} s -> {args.out_dir}",
          flush=True)


if __name__ == "__main__":
    main()
