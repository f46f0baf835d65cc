"""The game Jacobian's leading eigenvalues on real Fashion-MNIST, without and with R1.

    python scripts/spectrum_fashion_mnist.py OUT_DIR [--steps 300] [--every 100] [--k 6]
        [--spectrum_batch 32] [--tol 1e-3] [--maxiter 15] [--ncv 30]

Trains the narrow GAN_stability ResNet of gin_configs/quickstart.gin (32x32, nf 16, non-saturating
loss, Adam 3e-4 (0, 0.99), batch 64) twice with train(): `unregularized` (GAN.penalty = None) and
`r1` (R1, gamma 10, the quickstart's), `--steps` steps each, a checkpoint every `--every` steps.
At every checkpoint the run directory is read back as `python -m tf_convgan.spectrum` reads it
(spectrum.load_run: networks from the run config, weights from the checkpoint) and the k
eigenvalues of J with the largest real part ('LR') are computed matrix-free on one fixed batch of
`--spectrum_batch` real images (the first of the training stream of seed 0: the same for both
runs), with the draws of the checkpoint's step. Float32 products, ARPACK tolerance `--tol`.
With `--final 1` the last checkpoint is evaluated once more with the share of every eigenvector
in G's coordinates and the k extreme eigenvalues of D's Hessian (eigsh, both ends) into
OUT_DIR/<method>/spectrum_final/. Writes OUT_DIR/<method>/spectrum/ (history and PNG per run) and
OUT_DIR/spectrum_table.md and OUT_DIR/spectrum_fashion_mnist.png (both runs); a rerun resumes training and skips evaluations already in the
histories.
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
from tf_convgan.studies import spectrum  # noqa: E402
from tf_convgan.training.loop import train  # noqa: E402

METHODS = {"unregularized": ["GAN.penalty = None"], "r1": []}  # the quickstart has R1 (gamma 10)


def _train(model_dir, steps, every, bindings):
    gin.clear_config()
    config.parse([os.path.join(ROOT, "gin_configs", "quickstart.gin")], [
        f"train.num_steps = {steps}", f"train.checkpoint_every = {every}",
        f"train.sample_every = {every}", "train.log_every = 50", "train.keep_last = 100",
        "train.export_at_end = False", *bindings])
    try:
        train(model_dir=model_dir)
    finally:
        gin.clear_config()


def _evaluate(model_dir, step, args, *, subdir="spectrum", blocks=False):
    out_dir = os.path.join(model_dir, subdir)
    done = {e["step"]: e for e in spectrum.read_history(out_dir)}
    if step in done:
        return done[step]
    gan, path, source, notes = spectrum.load_run(model_dir, checkpoint=f"ckpt-{step}")
    real, labels = spectrum.real_batch(source, batch_size=args.spectrum_batch, seed=0)
    operator = spectrum.game_operator(gan=gan, real=real, labels=labels)
    result = spectrum.spectrum(operator=operator, k=args.k, which=("LR",), blocks=blocks,
                               tol=args.tol, maxiter=args.maxiter, ncv=args.ncv)
    result.notes = tuple(notes) + result.notes
    spectrum.record(result, out_dir=out_dir)
    print(spectrum.format_table(result), flush=True)
    return result.to_json()


def plot_runs(out_dir, methods, path):
    """Both runs' LR eigenvalues side by side (shared axes, colour = step)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    histories = [spectrum.read_history(os.path.join(out_dir, m, "spectrum")) for m in methods]
    steps = [e["step"] for h in histories for e in h]
    norm = matplotlib.colors.Normalize(vmin=min(steps), vmax=max(steps))
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods) + 1, 3.6), dpi=100,
                             sharex=True, sharey=True)
    for ax, method, history in zip(np.atleast_1d(axes), methods, histories):
        spectrum.draw_history(ax, history, norm=norm, cmap=cmap,
                              title=f"{method}: largest Re lambda")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="step")
    fig.savefig(path, format="png", bbox_inches="tight")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--spectrum_batch", type=int, default=32)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--maxiter", type=int, default=15)
    parser.add_argument("--ncv", type=int, default=30)
    parser.add_argument("--methods", default="unregularized,r1")
    parser.add_argument("--final", type=int, default=1,
                        help="1: at the last checkpoint also the eigenvectors' share in G's "
                             "coordinates and D's Hessian (both ends)")
    args = parser.parse_args()
    rows = []
    for method in args.methods.split(","):
        model_dir = os.path.join(args.out_dir, method)
        start = time.time()
        _train(model_dir, args.steps, args.every, METHODS[method])
        print(f"{method}: trained {args.steps} steps in {time.time() - start:.0f} s", flush=True)
        for step in range(args.every, args.steps + 1, args.every):
            start = time.time()
            entry = _evaluate(model_dir, step, args)
            re = np.array(entry["eigenvalues"]["LR"]["re"])
            im = np.array(entry["eigenvalues"]["LR"]["im"])
            residuals = np.array(entry["residuals"]["LR"])
            rows.append((method, step, entry["max_real"], re, im, residuals, entry["counts"],
                         entry["seconds"], entry["field_norm"]))
            print(f"{method} step {step}: max Re {entry['max_real']:.4g} "
                  f"({time.time() - start:.0f} s)", flush=True)
    lines = ["| method | step | largest Re lambda | 6 largest Re lambda (Re +- Im i) | max residual "
             "| JVPs | seconds | ||v|| |", "|---|---|---|---|---|---|---|---|"]
    for method, step, max_real, re, im, residuals, counts, seconds, field_norm in rows:
        values = ", ".join(f"{a:.3g}{'+-' + format(abs(b), '.2g') + 'i' if abs(b) > 1e-9 else ''}"
                           for a, b in zip(re, im))
        lines.append(f"| {method} | {step} | {max_real:.4g} | {values} | "
                     f"{residuals.max() if residuals.size else float('nan'):.1g} | "
                     f"{counts['jvp']} | {seconds:.0f} | {field_norm:.3g} |")
    if args.final:
        lines += ["", "At the last checkpoint: the LR eigenvalues with their eigenvector's share "
                  "in G's coordinates, and the extreme eigenvalues of D's Hessian "
                  "grad^2_psi L_D (= -J_DD).", "",
                  "| method | step | LR eigenvalues (G share) | D's Hessian (both ends) | JVPs "
                  "| seconds |", "|---|---|---|---|---|---|"]
        for method in args.methods.split(","):
            entry = _evaluate(os.path.join(args.out_dir, method), args.steps, args,
                              subdir="spectrum_final", blocks=("d_hessian",))
            lr = entry["eigenvalues"]["LR"]
            values = ", ".join(f"{a:.3g} ({share:.2f})" for a, share in
                               zip(lr["re"], entry["g_fraction"]["LR"]))
            hessian = ", ".join(f"{v:.3g}" for v in entry["d_hessian_eigenvalues"])
            lines.append(f"| {method} | {args.steps} | {values} | {hessian} | "
                         f"{entry['counts']['jvp']} | {entry['seconds']:.0f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out_dir, "spectrum_table.md"), "w", encoding="utf-8") as f:
        f.write(table)
    plot_runs(args.out_dir, args.methods.split(","),
              os.path.join(args.out_dir, "spectrum_fashion_mnist.png"))
    print(table)


if __name__ == "__main__":
    main()
