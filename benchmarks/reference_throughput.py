"""Side by side on one machine: GAN_stability's PyTorch training iteration and this project's.

    python benchmarks/reference_throughput.py --gan_stability PATH [--blocks 5] [--steps 3]
                                              [--batch 64] [--resolution 32] [--threads N]
    GAN_STABILITY_PATH=PATH python benchmarks/reference_throughput.py

PATH is a checkout of LMescheder/GAN_stability. Its modules are imported from there at run time
(PATH is put on sys.path; nothing of it is in this repository), with torch on the CPU:
`gan_training.models.resnet`'s Generator and Discriminator and `gan_training.train`'s Trainer,
whose iteration is that of GAN_stability's train.py: `discriminator_trainstep(x_real, y, z)` (R1
through its own `compute_grad2`, reg_type 'real', or reg_type 'none'), `generator_trainstep(y, z)`
and `update_average(G_ema, G, 0.999)`, with its RMSprop (lr 1e-4, alpha 0.99, eps 1e-8). This
project's iteration is `GAN.train_step` (D step with its penalty, G step, EMA) of
benchmarks/train_throughput.py's networks: the same ResNet (nf 64, G nf_max 512, D nf_max 1024,
z 256, embed 256, one class), batch 64, 32x32, synthetic data, not compiled with XLA (TensorFlow's
default on CPU). The parameter counts of the two implementations are printed side by side.

Every configuration (PyTorch / this project x unregularized / R1) is built and run twice first;
then `blocks` rounds time `steps` iterations of each in turn, so that all of them share the
machine's noise. Printed: the median images/s of each, and per penalty the median over blocks of
PyTorch's iteration time / this project's (> 1: this project is faster).

Without a checkout (no --gan_stability, no GAN_STABILITY_PATH, or a path without
gan_training/models/resnet.py and gan_training/train.py), or when torch cannot be imported, it
says why it skips and exits 0 (torch is not one of this project's requirements).
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_VAR = "GAN_STABILITY_PATH"
REQUIRED_FILES = (os.path.join("gan_training", "models", "resnet.py"),
                  os.path.join("gan_training", "train.py"))
PENALTIES = ("none", "r1")
IMPLEMENTATIONS = ("pytorch", "tf_convgan")
Z_DIM, EMBED_SIZE, NF, G_NF_MAX, D_NF_MAX = 256, 256, 64, 512, 1024
R1_PARAM = 10.0  # GAN_stability's reg_param (its CIFAR-10 configs); the weight does not change the cost
EMA_BETA = 0.999


def skip_reason(path, torch_importable):
    """Why the benchmark cannot run (a message), or None when it can."""
    if not path:
        return (f"skip: no GAN_stability checkout: pass --gan_stability PATH or set {ENV_VAR} "
                f"(a checkout of LMescheder/GAN_stability)")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        return (f"skip: {path} is not a GAN_stability checkout: {', '.join(missing)} not found")
    if not torch_importable():
        return ("skip: torch cannot be imported (install PyTorch for the CPU to run the side-by-side "
                "benchmark; it is not one of this project's requirements)")
    return None


def _torch_importable():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def interleave(steps_by_name, *, blocks, steps, clock=time.perf_counter):
    """{name: [seconds per iteration, one per block]}: each block runs `steps` iterations of every
    configuration in turn (each call of a step function is one iteration and returns only when it
    is done)."""
    times = {name: [] for name in steps_by_name}
    for _ in range(blocks):
        for name, step in steps_by_name.items():
            start = clock()
            for _ in range(steps):
                step()
            times[name].append((clock() - start) / steps)
    return times


def summarize(times, *, batch):
    """(images/s per (implementation, penalty), PyTorch time / this project's time per penalty):
    medians over the blocks; the ratio is the median of the per-block ratios."""
    images_per_second = {key: batch / statistics.median(seconds) for key, seconds in times.items()}
    ratios = {}
    for penalty in PENALTIES:
        pytorch, ours = times.get(("pytorch", penalty)), times.get(("tf_convgan", penalty))
        if pytorch and ours:
            ratios[penalty] = statistics.median(p / o for p, o in zip(pytorch, ours))
    return images_per_second, ratios


def report(images_per_second, ratios, *, batch, resolution, blocks, steps):
    lines = [f"batch {batch}, {resolution}x{resolution}, {blocks} blocks x {steps} iterations, "
             f"medians", "", "| implementation | penalty | images/s |", "|---|---|---|"]
    for (implementation, penalty), value in images_per_second.items():
        lines.append(f"| {implementation} | {penalty} | {value:.2f} |")
    lines.append("")
    for penalty, ratio in ratios.items():
        lines.append(f"{penalty}: tf_convgan / PyTorch throughput = {ratio:.2f}x "
                     f"(median over blocks of PyTorch's iteration time / tf_convgan's)")
    return "\n".join(lines)


def pytorch_steps(path, *, batch, resolution):
    """{('pytorch', penalty): one-iteration callable}, and the parameter counts of G and D."""
    import copy
    import torch
    sys.path.insert(0, os.path.abspath(path))
    from gan_training.models.resnet import Discriminator, Generator
    from gan_training.train import Trainer, update_average

    torch.manual_seed(0)
    x_real = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    y = torch.zeros(batch, dtype=torch.int64)
    steps, counts = {}, None
    for penalty in PENALTIES:
        generator = Generator(z_dim=Z_DIM, nlabels=1, size=resolution, embed_size=EMBED_SIZE,
                              nfilter=NF, nfilter_max=G_NF_MAX)
        discriminator = Discriminator(z_dim=Z_DIM, nlabels=1, size=resolution,
                                      embed_size=EMBED_SIZE, nfilter=NF, nfilter_max=D_NF_MAX)
        generator_ema = copy.deepcopy(generator)
        counts = tuple(sum(p.numel() for p in m.parameters()) for m in (generator, discriminator))
        g_optimizer, d_optimizer = (
            torch.optim.RMSprop(m.parameters(), lr=1e-4, alpha=0.99, eps=1e-8)
            for m in (generator, discriminator))
        trainer = Trainer(generator, discriminator, g_optimizer, d_optimizer, gan_type="standard",
                          reg_type="real" if penalty == "r1" else "none", reg_param=R1_PARAM)

        def step(trainer=trainer, generator=generator, generator_ema=generator_ema):
            trainer.discriminator_trainstep(x_real.detach().clone(), y, torch.randn(batch, Z_DIM))
            trainer.generator_trainstep(y, torch.randn(batch, Z_DIM))
            update_average(generator_ema, generator, beta=EMA_BETA)

        steps[("pytorch", penalty)] = step
    return steps, counts


def tf_convgan_steps(*, batch, resolution):
    """{('tf_convgan', penalty): one-iteration callable}, and the parameter counts of G and D."""
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from train_throughput import make_gan
    from tf_convgan.networks import count_params

    rng = np.random.default_rng(0)
    data = (tf.constant(rng.uniform(-1, 1, (batch, 1, resolution, resolution, 3)), tf.float32),
            tf.zeros([batch, 1], tf.int32))
    steps, counts = {}, None
    for penalty in PENALTIES:
        gan = make_gan(resolution, penalty)
        counts = (count_params(gan.generator), count_params(gan.discriminator))
        train_step = tf.function(gan.train_step)

        def step(train_step=train_step):
            float(train_step(data)["d_loss"])  # waits for the step

        steps[("tf_convgan", penalty)] = step
    return steps, counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan_stability", default=None,
                        help=f"a checkout of LMescheder/GAN_stability (default: ${ENV_VAR})")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed iterations per block")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of both frameworks (default: their own defaults)")
    args = parser.parse_args(argv)
    for name in ("batch", "resolution", "blocks", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    path = args.gan_stability or os.environ.get(ENV_VAR)
    reason = skip_reason(path, _torch_importable)
    if reason:
        print(reason, flush=True)
        return 0

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import tensorflow as tf
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    steps, torch_counts = pytorch_steps(path, batch=args.batch, resolution=args.resolution)
    ours, our_counts = tf_convgan_steps(batch=args.batch, resolution=args.resolution)
    steps.update(ours)
    print(f"parameters (G, D): PyTorch {torch_counts}, tf_convgan {our_counts}"
          + ("" if torch_counts == our_counts else "  <- NOT THE SAME NETWORKS"), flush=True)
    print(f"threads: torch {torch.get_num_threads()}, TensorFlow intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}", flush=True)
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()  # builds (TensorFlow traces the step)
        step()
        print(f"built {name[0]} {name[1]}: 2 iterations {time.perf_counter() - t0:.1f} s",
              flush=True)
    times = interleave(steps, blocks=args.blocks, steps=args.steps)
    images_per_second, ratios = summarize(times, batch=args.batch)
    print()
    print(report(images_per_second, ratios, batch=args.batch, resolution=args.resolution,
                 blocks=args.blocks, steps=args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
