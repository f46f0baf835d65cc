"""Training throughput of the full step (D step with its penalty, G step, EMA).

    python benchmarks/train_throughput.py [--resolutions 32,64] [--penalties none,r1,lazy_r1]
                                          [--xla off,on] [--blocks 5] [--steps 3]

GAN_stability's ResNet (the CIFAR-10 configuration: nf 64, G nf_max 512, D nf_max 1024, z 256),
non-saturating loss, RMSprop, batch 64, synthetic data (the input pipeline is not timed). Every
configuration is built and compiled first; then `blocks` rounds each time `steps` iterations of
every configuration in turn (lazy R1 over a whole cycle of 16 iterations), so that all of them
share the machine's noise. Printed per configuration: the median images/s over the blocks, the
median over blocks of the ratio of its step time to the unregularized step's time in the same
block, the FLOPs of one iteration (convolutions and matrix multiplications, forward and backward,
counted from the traced step's ops and their static shapes) and the achieved GFLOP/s.
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

from tf_convgan.objectives import losses  # noqa: E402
from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from tf_convgan.gan.model import GAN  # noqa: E402
from tf_convgan.networks import build, resnet_discriminator, resnet_generator  # noqa: E402

# name -> GAN keyword arguments (the penalty weights do not change the cost).
PENALTIES = {
    "none": {},
    "r1": {"penalty": penalties.r1},
    "r2": {"penalty": penalties.r2},
    "r1_r2": {"penalty": penalties.r1_r2},
    "wgan_gp": {"penalty": penalties.wgan_gp},
    "dragan": {"penalty": penalties.dragan},
}
# Lazy R1: R1 on every 16th D step, with weight 16 (Karras et al. 2020).
LAZY_INTERVAL = 16
PENALTIES["lazy_r1"] = {"penalty": penalties.r1, "lazy_interval": LAZY_INTERVAL}

_FLOP_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMulV2",
             "BatchMatMul")


def make_gan(resolution, penalty):
    keras.utils.set_random_seed(0)
    kwargs = dict(resolution=resolution, z_dim=256, embed_size=256, num_classes=1, nf=64)
    generator = build(resnet_generator(nf_max=512, **kwargs))
    generator_ema = build(resnet_generator(nf_max=512, **kwargs))
    discriminator = build(resnet_discriminator(resolution=resolution, num_classes=1, nf=64,
                                               nf_max=1024))
    return GAN(generator, discriminator, generator_ema, loss=losses.non_saturating(),
               g_optimizer=optimizers.rmsprop(), d_optimizer=optimizers.rmsprop(),
               **PENALTIES[penalty])


def _ops(graph):
    """The graph's ops and those of the functions it calls (gradients may live in those)."""
    yield from graph.get_operations()
    for function in graph._functions.values():  # noqa: SLF001  (the graph's function library)
        if hasattr(function, "graph"):
            yield from _ops(function.graph)


def _op_flops(op):
    """2 x multiply-adds of one convolution or matmul op (forward or backward), else 0."""
    def shape(tensor):
        return tensor.shape.as_list()

    if op.type == "Conv2D":  # input [N,H,W,Ci], filter [kh,kw,Ci,Co] -> output [N,Ho,Wo,Co]
        kh, kw, ci, _ = shape(op.inputs[1])
        return 2 * int(np.prod(shape(op.outputs[0]))) * kh * kw * ci
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):  # as the forward conv
        out_backprop = shape(op.inputs[2])
        filter_shape = (shape(op.inputs[1]) if op.type == "Conv2DBackpropInput"
                        else shape(op.outputs[0]))
        kh, kw, ci, _ = filter_shape
        return 2 * int(np.prod(out_backprop)) * kh * kw * ci
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMul"):
        a = shape(op.inputs[0])
        transpose_a = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        k = a[-2] if transpose_a else a[-1]
        return 2 * int(np.prod(shape(op.outputs[0]))) * k
    return 0


def count_flops(step, batch):
    """FLOPs (2 x multiply-adds) of the convolutions and matmuls of one traced (non-XLA) step,
    forward and backward, counted from the ops' static shapes."""
    return sum(_op_flops(op) for op in _ops(step.get_concrete_function(batch).graph))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--penalties", default="none,r1,lazy_r1")
    parser.add_argument("--xla", default="off,on")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed iterations per block")
    args = parser.parse_args()
    names = args.penalties.split(",")
    for name in names:
        if name not in PENALTIES:
            parser.error(f"--penalties: {name!r} is not one of {sorted(PENALTIES)}")
    if "none" not in names:
        names.insert(0, "none")

    configs = []
    for resolution in [int(r) for r in args.resolutions.split(",")]:
        rng = np.random.default_rng(0)
        batch = (tf.constant(rng.uniform(-1, 1, (args.batch, 1, resolution, resolution, 3)),
                             tf.float32), tf.zeros([args.batch, 1], tf.int32))
        for xla in args.xla.split(","):
            for name in names:
                gan = make_gan(resolution, name)
                step = tf.function(gan.train_step, jit_compile=(xla == "on"))
                flops = count_flops(tf.function(gan.train_step), batch)
                if name == "lazy_r1":  # the penalty branch runs on one D step in 16
                    eager = count_flops(tf.function(make_gan(resolution, "r1").train_step), batch)
                    plain = count_flops(tf.function(make_gan(resolution, "none").train_step),
                                        batch)
                    flops = plain + (eager - plain) / LAZY_INTERVAL
                t0 = time.perf_counter()
                step(batch)  # compile
                step(batch)
                print(f"built {resolution}px {name:8s} xla={xla}: compile+2 steps "
                      f"{time.perf_counter() - t0:.1f} s, {flops / args.batch / 1e9:.2f} "
                      f"GFLOP/image", flush=True)
                configs.append(dict(resolution=resolution, xla=xla, name=name, step=step,
                                    batch=batch, flops=flops, times=[]))

    for block in range(args.blocks):
        for c in configs:
            # Lazy R1 is timed over whole cycles of 16 steps (one of them with the penalty).
            steps = (-(-args.steps // LAZY_INTERVAL) * LAZY_INTERVAL if c["name"] == "lazy_r1"
                     else args.steps)
            t0 = time.perf_counter()
            for _ in range(steps):
                logs = c["step"](c["batch"])
            float(logs["d_loss"])  # wait for the last step
            c["times"].append((time.perf_counter() - t0) / steps)
        print(f"block {block + 1}/{args.blocks} done", flush=True)

    print(f"\nbatch {args.batch}, {args.blocks} blocks x {args.steps} iterations, medians")
    print("| res | XLA | penalty | images/s | time / unregularized | GFLOP / image | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for c in configs:
        base = next(b for b in configs if b["resolution"] == c["resolution"]
                    and b["xla"] == c["xla"] and b["name"] == "none")
        ratio = statistics.median(t / b for t, b in zip(c["times"], base["times"]))
        seconds = statistics.median(c["times"])
        print(f"| {c['resolution']} | {c['xla']} | {c['name']} | {args.batch / seconds:.2f} | "
              f"{ratio:.3f} | {c['flops'] / args.batch / 1e9:.2f} | "
              f"{c['flops'] / seconds / 1e9:.1f} |")


if __name__ == "__main__":
    main()
