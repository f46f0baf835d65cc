"""The 2D convergence study: methods x problems x update rules x learning rates x seeds, trained by
plain gradient descent (the update rule of Mescheder et al.'s theory) through train() and the real
train step, measured by `tf_convgan.studies.toy2d_convergence` (W2 on a fixed evaluation set,
||v|| on a fixed batch with its noise level, parameter movement, the final Jacobian spectrum and
the update map's spectral radius).

    python scripts/toy2d_convergence.py OUT_DIR [--methods unregularized r1 ...]
        [--problems gaussian line circle four_lines] [--rules alternating,simultaneous]
        [--lrs 0.01,0.03,0.1] [--seeds 0,1,2,3,4] [--num_steps 3000] [--evals 10]
        [--batch_size 256] [--shard K/N] [--train_only | --report_only] [--lr_from SWEEP_DIR]

Every run is train() on gin_configs/toy2d/<problem>_unregularized.gin plus the method's bindings
(`toy2d_grid.METHODS`), `GAN.update_rule`, SGD for both players at the run's learning rate, the
batch size and `train.seed = s`, with `train.sample_writer = @toy2d_convergence_writer()`. Run
directories: OUT_DIR/runs/<problem>_<method>_<rule>_lr<lr>_seed<s>; a run whose grid_run.json
says it finished for this --num_steps is skipped (an interrupted one resumes from its
checkpoint). OUT_DIR/progress.json is rewritten after every run (done, total, seconds per run).
The report (OUT_DIR/toy2d_convergence_table.md, toy2d_convergence_results.json) is written from
the run directories at the end, or alone with --report_only. --lr_from SWEEP_DIR takes the one
learning rate from a finished learning-rate sweep's report (`toy2d_report.choose_lr`: the lr
where R1 converges in the most runs; it says why) in place of --lrs.
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
from tf_convgan.studies import toy2d_convergence as conv  # noqa: E402
from tf_convgan.studies import toy2d_grid as grid  # noqa: E402
from tf_convgan.studies import toy2d_report as report  # noqa: E402
from tf_convgan.training.loop import TrainingDivergedError, train  # noqa: E402

PAPER_PROBLEMS = ("gaussian", "line", "circle", "four_lines")
NUM_POINTS = 2000


def expand(methods, problems, rules, lrs, seeds):
    """(run, lr) pairs, seed by seed (an interrupted study has whole seeds), then by lr."""
    out = []
    for seed in seeds:
        for lr in lrs:
            out += [(r, lr) for r in grid.expand(methods, problems, rules, [seed])]
    return out


def run_name(run, lr):
    return f"{run.problem}_{run.method}_{run.rule}_lr{lr:g}_seed{run.seed}"


def bindings(run, lr, *, num_steps, evals, batch_size, steps_per_execution, extra=()):
    every = num_steps // evals
    return list(run.bindings) + [
        "GAN.g_optimizer = @g/sgd()", "GAN.d_optimizer = @d/sgd()", f"sgd.learning_rate = {lr}",
        f"train.batch_size = {batch_size}", f"train.seed = {run.seed}",
        f"train.num_steps = {num_steps}", f"train.sample_every = {every}",
        f"train.log_every = {num_steps}", f"train.checkpoint_every = {every * (evals // 2)}",
        f"train.steps_per_execution = {steps_per_execution}",
        "train.sample_writer = @toy2d_convergence_writer()",
        f"toy2d_convergence_writer.problem = '{run.problem}'",
        f"toy2d_convergence_writer.num_points = {NUM_POINTS}",
        f"toy2d_convergence_writer.final_step = {num_steps}", *extra]


def train_run(run, lr, model_dir, *, num_steps, evals, batch_size, steps_per_execution=50,
              extra=()):
    """Trains one run (resuming) and records its status; returns 'done' or 'diverged'."""
    b = bindings(run, lr, num_steps=num_steps, evals=evals, batch_size=batch_size,
                 steps_per_execution=steps_per_execution, extra=extra)
    gin.clear_config()
    config.parse([run.gin_file], b)
    try:
        return grid.train_and_record(model_dir, lambda: train(model_dir=model_dir),
                                     diverged=TrainingDivergedError, num_steps=num_steps,
                                     bindings=b, learning_rate=lr)
    finally:
        gin.clear_config()


def _chosen_lr(sweep_dir):
    """The sweep's chosen learning rate (toy2d_report.choose_lr), with its reasons printed."""
    path = os.path.join(sweep_dir, report.RESULTS)
    if not os.path.exists(path):
        raise ValueError(f"--lr_from: no {report.RESULTS} in {sweep_dir} (run the sweep with "
                         f"--report_only first)")
    with open(path) as f:
        lr, table = report.choose_lr(json.load(f))
    for value, (conv_n, base_n, excess, n) in table.items():
        print(f"lr {value:g}: r1 converged {conv_n}/{n}, unregularized {base_n}/{n}, r1 median "
              f"W2 above the floor {excess:.3f}" + ("  <- chosen" if value == lr else ""),
              flush=True)
    return lr


def _progress(out_dir, **info):
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f"progress.json.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, f"progress_{os.getpid()}.json"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--methods", nargs="+", default=["unregularized", "r1"])
    parser.add_argument("--problems", nargs="+", default=list(PAPER_PROBLEMS))
    parser.add_argument("--rules", default=",".join(grid.RULES))
    parser.add_argument("--lrs", default="0.01,0.03,0.1")
    parser.add_argument("--lr_from", default=None, metavar="SWEEP_DIR",
                        help="the learning rate chosen from a finished sweep's "
                             f"{report.RESULTS} (toy2d_report.choose_lr), in place of --lrs")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--num_steps", type=int, default=3000)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps_per_execution", type=int, default=50)
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="extra gin bindings after the run's own (e.g. smaller networks)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--train_only", action="store_true")
    mode.add_argument("--report_only", action="store_true")
    args = parser.parse_args(argv)
    split = lambda text, cast=str: tuple(cast(v) for v in text.split(",") if v)  # noqa: E731
    try:
        methods = grid.select_methods(args.methods)
        lrs, seeds, rules = split(args.lrs, float), split(args.seeds, int), split(args.rules)
        if args.lr_from is not None:
            lrs = (_chosen_lr(args.lr_from),)
        shard = tuple(int(v) for v in args.shard.split("/"))
        runs = expand(methods, tuple(args.problems), rules, lrs, seeds)
        for p in args.problems:
            toy2d.PointSource(p)
    except Exception as e:  # noqa: BLE001 - a bad flag: one line, exit status 2
        parser.error(str(e))
    every = args.num_steps // max(args.evals, 1)
    if args.evals < conv.WINDOW + 1 or args.num_steps % args.evals or \
            every % args.steps_per_execution:
        parser.error(f"--num_steps must be a multiple of --evals (>= {conv.WINDOW + 1}), and "
                     f"num_steps / evals a multiple of --steps_per_execution")
    tick, trained, mine = time.time(), 0, [i for i in range(len(runs)) if i % shard[1] == shard[0]]
    if not args.report_only:
        for i in mine:
            run, lr = runs[i]
            model_dir = os.path.join(args.out_dir, "runs", run_name(run, lr))
            if grid.is_finished(model_dir, args.num_steps):
                continue
            t = time.time()
            outcome = train_run(run, lr, model_dir, num_steps=args.num_steps, evals=args.evals,
                                batch_size=args.batch_size,
                                steps_per_execution=args.steps_per_execution,
                                extra=tuple(args.gin_param))
            trained += 1
            print(f"[{i + 1}/{len(runs)}] {run_name(run, lr)}: {outcome} in "
                  f"{time.time() - t:.0f} s", flush=True)
            _progress(args.out_dir, shard=args.shard, trained=trained, total_mine=len(mine),
                      finished_mine=sum(grid.is_finished(os.path.join(
                          args.out_dir, "runs", run_name(*runs[j])), args.num_steps)
                          for j in mine),
                      last=run_name(run, lr), last_seconds=round(time.time() - t, 1),
                      elapsed=round(time.time() - tick), argv=sys.argv[1:])
    if not args.train_only:
        report.write(args.out_dir, runs, run_name, num_steps=args.num_steps,
                     num_points=NUM_POINTS, seconds=time.time() - tick)
    print(f"toy2d convergence: {trained} runs trained, {time.time() - tick:.0f} s -> "
          f"{args.out_dir}", flush=True)
    return trained


if __name__ == "__main__":
    main()
