"""Cost of one spectrum evaluation (tf_convgan.spectrum) relative to a training step.

    python benchmarks/spectrum_cost.py [--resolutions 32,64] [--batch_size 64] [--repeats 7]
                                       [--k 6] [--which LR] [--maxiter 20] [--xla off,on]

The narrow GAN_stability ResNet of gin_configs/quickstart.gin (nf 16, nf_max 128, z 64, Keras
init), non-saturating loss with R1 (gamma 10), Adam, synthetic data in [-1, 1]. Per resolution:
the median seconds of one training step (GAN.train_step in a tf.function: D step with R1, G step,
EMA), of one field evaluation v, one JVP (J u, forward-over-reverse) and one VJP (J^T w,
reverse-over-reverse), timed in interleaved rounds (one call of each per round, so that all share
the machine's load), and the median over rounds of each one's ratio to the step's time in the
same round; then one spectrum evaluation (k eigenvalues of J by `which`, with residuals) at the
initial weights: the JVPs it used, JVPs per eigenvalue, and its time in training steps. Every
function is compiled (one call) before it is timed.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_convgan.gan import optimizers  # noqa: E402
from tf_convgan.gan.model import GAN  # noqa: E402
from tf_convgan.objectives import losses, penalties  # noqa: E402
from tf_convgan.studies import spectrum  # noqa: E402
from tf_convgan.networks import build, resnet_discriminator, resnet_generator  # noqa: E402


def make_gan(resolution):
    keras.utils.set_random_seed(0)
    g_fn = lambda: resnet_generator(resolution=resolution, nf=16, nf_max=128, z_dim=64,  # noqa
                                    embed_size=1, num_classes=1, init="keras")
    d_fn = lambda: resnet_discriminator(resolution=resolution, nf=16, nf_max=128,  # noqa: E731
                                        num_classes=1, init="keras")
    adam = lambda: optimizers.adam(learning_rate=3e-4, beta_1=0.0, beta_2=0.99)  # noqa: E731
    return GAN(build(g_fn()), build(d_fn()), build(g_fn()), loss=losses.non_saturating(),
               penalty=lambda d, r, f, seed=None: penalties.r1(d, r, f, seed, gamma=10.0),
               g_optimizer=adam(), d_optimizer=adam())


def interleaved(fns, rounds):
    """Median seconds of each function and median ratio of each to the first: every function
    is compiled (one call) first, then `rounds` rounds call each once in turn, so that all of
    them share the machine's load (the ratios are per round)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    first = next(iter(fns))
    return ({name: statistics.median(t) for name, t in times.items()},
            {name: statistics.median(a / b for a, b in zip(t, times[first]))
             for name, t in times.items()})


def measure(resolution, args, xla):
    gan = make_gan(resolution)
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, size=(args.batch_size, 1, resolution, resolution, 3)).astype(
        np.float32)
    labels = np.zeros((args.batch_size, 1), np.int32)
    operator = spectrum.game_operator(gan=gan, real=real, labels=labels)
    step_fn = tf.function(gan.train_step, jit_compile=xla)  # the products are never XLA
    batch = (tf.constant(real), tf.constant(labels))
    u = rng.normal(size=operator.n)
    seconds, ratios = interleaved({
        "step": lambda: [t.numpy() for t in step_fn(batch).values()],
        "field": lambda: operator.field(), "jvp": lambda: operator.jvp(u),
        "vjp": lambda: operator.vjp(u)}, args.repeats)
    row = {"resolution": resolution, "xla": xla, "n": operator.n, "n_g": operator.n_g,
           "n_d": operator.n_d, "seconds": seconds, "ratios": ratios}
    if args.k:
        result = spectrum.spectrum(operator=operator, k=args.k, which=tuple(args.which),
                                   blocks=False, maxiter=args.maxiter, tol=args.tol)
        jvps = result.counts["jvp"]
        row.update(spectrum_s=result.seconds, jvps=jvps, jvps_per_eigenvalue=jvps / (
            args.k * len(args.which)), max_real=result.max_real,
            max_residual=max(float(r.max()) for r in result.residuals.values()),
            notes="; ".join(result.notes))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="32")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, help="rounds of interleaved timing")
    parser.add_argument("--k", type=int, default=6, help="0: no spectrum evaluation")
    parser.add_argument("--which", default="LR", type=lambda s: s.split(","))
    parser.add_argument("--maxiter", type=int, default=None)
    parser.add_argument("--tol", type=float, default=None)
    parser.add_argument("--xla", default="off")
    args = parser.parse_args()
    for resolution in [int(r) for r in args.resolutions.split(",")]:
        for xla in [x == "on" for x in args.xla.split(",")]:
            row = measure(resolution, args, xla)
            t, r = row["seconds"], row["ratios"]
            print(f"{resolution}px xla={'on' if xla else 'off'} n={row['n']} "
                  f"(G {row['n_g']}, D {row['n_d']}) batch {args.batch_size}: "
                  f"step {t['step']:.3f} s | field {t['field']:.3f} s ({r['field']:.2f} steps) | "
                  f"JVP {t['jvp']:.3f} s ({r['jvp']:.2f} steps) | VJP {t['vjp']:.3f} s "
                  f"({r['vjp']:.2f} steps)", flush=True)
            if "jvps" in row:
                print(f"  spectrum k={args.k} {','.join(args.which)}: {row['jvps']} JVPs "
                      f"({row['jvps_per_eigenvalue']:.1f} per eigenvalue), "
                      f"{row['spectrum_s']:.1f} s = {row['spectrum_s'] / t['step']:.0f} steps; "
                      f"max Re {row['max_real']:.4g}, max residual {row['max_residual']:.2g}"
                      + (f"; {row['notes']}" if row["notes"] else ""), flush=True)


if __name__ == "__main__":
    main()
