"""Training throughput of a gin config as `train()` runs it: its networks, GAN, optimizers and
real input pipeline, the distributed step of the training loop.

    python benchmarks/recipe_throughput.py --gin_file gin_configs/fashion_mnist_r1_fast.gin \
        [--gin_param 'train.batch_size = 128'] [--variants xla,spe10] [--blocks 5] [--seconds 10]

Variants (each built and compiled first, then timed in turn within every block so that they share
the machine's noise): `base` (the config as it is), `xla` (train.jit_compile = True), `speN`
(train.steps_per_execution = N). Hooks (logging, samples, checkpoints, FID) are not timed.
Prints, per variant, the median and the best block's images/s and steps/s, and the load average
during the run: on a shared machine the best block is the closest to a quiet one.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gin  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_convgan  # noqa: E402,F401  (registers the configurables)
from tf_convgan import data as data_lib  # noqa: E402
from tf_convgan.cli import config  # noqa: E402
from tf_convgan.training.distributed import distribute_pipeline, make_step_fn  # noqa: E402
from tf_convgan.training.loop import build_gan  # noqa: E402


def _query(binding):
    return gin.query_parameter(binding).scoped_configurable_fn


def build_variant(name, batch_size):
    """(step function, iterator, steps per call) of the parsed config under variant `name`."""
    jit_compile = name == "xla"
    steps_per_call = int(name[3:]) if name.startswith("spe") else 1
    strategy = tf.distribute.get_strategy()
    gan = build_gan(_query("train.generator_fn"), _query("train.discriminator_fn"), strategy)
    source = _query("train.data")()
    pipeline = data_lib.make_input_pipeline(source, global_batch_size=batch_size,
                                            d_steps=gan.d_steps, seed=0, start_step=0)
    iterator = iter(distribute_pipeline(strategy, lambda: pipeline))
    step = make_step_fn(gan, strategy, jit_compile, pipeline.element_spec, steps_per_call)
    return step, iterator, steps_per_call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", required=True)
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--variants", default="base", help="comma-separated: base, xla, speN")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per variant and block")
    args = parser.parse_args()
    names = args.variants.split(",")
    for name in names:
        if name not in ("base", "xla") and not (name.startswith("spe") and name[3:].isdigit()
                                                and int(name[3:]) >= 1):
            parser.error(f"--variants: {name!r} is not base, xla or speN (N >= 1)")
    config.parse(args.gin_file, args.gin_param)
    batch_size = gin.query_parameter("train.batch_size")
    variants = {}
    for name in names:
        start = time.perf_counter()
        step, iterator, per_call = build_variant(name, batch_size)
        float(step(iterator)["d_loss"])  # trace and compile
        print(f"built {name}: {time.perf_counter() - start:.1f} s", flush=True)
        variants[name] = dict(step=step, iterator=iterator, per_call=per_call, rates=[])
    loads = []
    for block in range(args.blocks):
        for v in variants.values():
            steps, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                logs = v["step"](v["iterator"])
                steps += v["per_call"]
            float(logs["d_loss"])  # wait for the last call
            v["rates"].append(steps / (time.perf_counter() - start))
        loads.append(os.getloadavg()[0])
        print(f"block {block + 1}/{args.blocks}: load {loads[-1]:.1f}", flush=True)
    print(f"\n{' '.join(args.gin_file)} {' '.join(args.gin_param)}: batch {batch_size}, "
          f"{args.blocks} blocks x {args.seconds:g} s, load average {min(loads):.1f}-"
          f"{max(loads):.1f} on {os.cpu_count()} cores")
    print("| variant | steps/s (median) | images/s (median) | steps/s (best) | images/s (best) |")
    print("|---|---|---|---|---|")
    for name, v in variants.items():
        med, best = statistics.median(v["rates"]), max(v["rates"])
        print(f"| {name} | {med:.2f} | {med * batch_size:.0f} | {best:.2f} | "
              f"{best * batch_size:.0f} |")


if __name__ == "__main__":
    main()
