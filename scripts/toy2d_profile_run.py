"""Where the time of one run of the 2D convergence study goes: trains one run exactly as
scripts/toy2d_convergence.py does (same bindings, train(), the convergence writer) into a fresh
directory and prints the CPU seconds (time.process_time: all threads of this process, so the
figure does not depend on how busy a shared machine is) of each phase, and the wall seconds.

    python scripts/toy2d_profile_run.py OUT_DIR [--method r1] [--problem circle]
        [--rule alternating] [--lr 0.03] [--seed 0] [--num_steps 3000] [--evals 10]
        [--batch_size 256] [--steps_per_execution 50]

Phases: first_call (tracing the step and its first steps_per_execution steps), steps (the other
calls of the step), probe (||v|| and its noise level on the two fixed batches), w2 (the exact
assignments), spectrum (the final eigenvalues and update-map radius), checkpoint, frame (D's grid
and samples.npz), other (the rest: building, gin, metrics.csv). OUT_DIR must not exist.
"""
import argparse
import collections
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import toy2d_convergence as study  # noqa: E402
from tf_convgan.studies import toy2d  # noqa: E402
from tf_convgan.studies import toy2d_convergence as conv  # noqa: E402
from tf_convgan.studies import toy2d_grid as grid  # noqa: E402
from tf_convgan.training import loop  # noqa: E402

CPU = collections.defaultdict(float)


def _timed(owner, name, phase):
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            CPU[phase] += time.process_time() - start
    setattr(owner, name, wrapper)


def _timed_step_fn():
    make = loop.make_step_fn

    def make_timed(*args, **kwargs):
        step_fn, calls = make(*args, **kwargs), [0]

        def timed(iterator):
            start = time.process_time()
            logs = {k: v.numpy() for k, v in step_fn(iterator).items()}
            CPU["first_call" if calls[0] == 0 else "steps"] += time.process_time() - start
            calls[0] += 1
            return logs
        return timed
    loop.make_step_fn = make_timed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--method", default="r1")
    parser.add_argument("--problem", default="circle", choices=toy2d.PROBLEMS)
    parser.add_argument("--rule", default="alternating", choices=grid.RULES)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_steps", type=int, default=3000)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--steps_per_execution", type=int, default=50)
    args = parser.parse_args(argv)
    if os.path.exists(args.out_dir):
        parser.error(f"OUT_DIR {args.out_dir} exists: give a new directory")
    try:
        run = grid.expand(grid.select_methods([args.method]), (args.problem,), (args.rule,),
                          [args.seed])[0]
    except ValueError as e:
        parser.error(str(e))
    for owner, name, phase in ((conv.FieldProbe, "__call__", "probe"),
                               (toy2d, "wasserstein2", "w2"),
                               (conv, "final_spectrum", "spectrum"),
                               (loop.checkpoints_lib.CheckpointKeeper, "save", "checkpoint"),
                               (toy2d, "discriminator_grid", "frame"),
                               (toy2d, "save_frame", "frame")):
        _timed(owner, name, phase)
    _timed_step_fn()
    wall, cpu = time.time(), time.process_time()
    study.train_run(run, args.lr, args.out_dir, num_steps=args.num_steps, evals=args.evals,
                    batch_size=args.batch_size, steps_per_execution=args.steps_per_execution)
    wall, cpu = time.time() - wall, time.process_time() - cpu
    CPU["other"] = cpu - sum(CPU.values())
    print(f"{study.run_name(run, args.lr)}: {cpu:.1f} CPU s ({wall:.1f} s wall): " +
          ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in CPU.items()), flush=True)
    return dict(CPU, total=cpu, wall=wall)


if __name__ == "__main__":
    main()
