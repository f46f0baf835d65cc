"""What an evaluation leaves: a plain-text table, TensorBoard scalars, and a history (JSON) of
every evaluation whose eigenvalues are re-plotted in the complex plane (colour = step) into one
PNG. The history's directory may be local or a URL (run_dir.files)."""
import json
import os

import numpy as np
import tensorflow as tf

HISTORY_JSON = "spectrum_history.json"
PLOT_PNG = "spectrum.png"


def format_table(result):
    """A plain-text table of a result."""
    lines = [f"step {result.step}: n = {result.n} (G {result.n_g}, D {result.n_d}), "
             f"{result.dtype} products, {result.method}, ||v|| = {result.field_norm:.4g}"]
    for name, values in result.eigenvalues.items():
        order = "largest modulus" if name == "LM" else "largest real part"
        lines.append(f"eigenvalues of J, {name} ({order}):")
        lines.append(f"  {'#':>3} {'real':>13} {'imag':>13} {'|lambda|':>11} {'residual':>10} "
                     f"{'G share':>8}")
        shares = result.g_fraction.get(name, np.full(len(values), np.nan))
        for i, (value, res, share) in enumerate(zip(values, result.residuals[name], shares)):
            lines.append(f"  {i:>3} {value.real:>13.6g} {value.imag:>13.6g} {abs(value):>11.5g} "
                         f"{res:>10.2g} {share:>8.3f}")
    scalars = result.scalars()
    lines.append(f"largest real part {scalars['max_real']:.6g}, largest |imag| "
                 f"{scalars['max_abs_imag']:.6g}")
    radii = [f"of simGD (I + hJ) {result.sim_radius:.10g}"] if result.sim_radius is not None \
        else []
    if result.alt_radius is not None:
        radii.append(f"of altGD ({result.d_steps} D step(s), then G) {result.alt_radius:.10g}")
    if radii:
        lines.append(f"h = {result.learning_rate:g}: spectral radius " + ", ".join(radii))
    if result.d_hessian_eigenvalues is not None:
        lines.append("D's Hessian grad^2_psi L_D (both ends): " +
                     ", ".join(f"{v:.5g}" for v in result.d_hessian_eigenvalues))
    if result.coupling_dg is not None:
        lines.append("singular values of J_DG: " + ", ".join(f"{v:.5g}" for v in
                                                           result.coupling_dg))
        lines.append("singular values of J_GD: " + ", ".join(f"{v:.5g}" for v in
                                                           result.coupling_gd))
    lines.append(f"{result.counts.get('jvp', 0)} JVPs, {result.counts.get('vjp', 0)} VJPs, "
                 f"{result.seconds:.1f} s")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def write_summaries(result, *, writer, prefix="spectrum"):
    """TensorBoard scalars <prefix>/max_real, max_abs_imag, sim_radius, alt_radius at the
    result's step."""
    with writer.as_default(step=result.step):
        for name, value in result.scalars().items():
            tf.summary.scalar(f"{prefix}/{name}", value)
    writer.flush()


def read_history(out_dir):
    """The evaluations recorded in out_dir/spectrum_history.json (a local path or a URL); []
    when there is none."""
    from tf_convgan import run_dir
    path = os.path.join(out_dir, HISTORY_JSON)
    if not run_dir.files.isfile(path):
        return []
    return json.loads(run_dir.read_text(path))


def draw_history(ax, history, *, norm, cmap, title="Leading eigenvalues of the game Jacobian"):
    """Scatters every evaluation's eigenvalues of `history` on a matplotlib axis, coloured by
    step through `norm` and `cmap`."""
    for entry in history:
        re = [x for values in entry["eigenvalues"].values() for x in values["re"]]
        im = [x for values in entry["eigenvalues"].values() for x in values["im"]]
        ax.scatter(re, im, s=14, color=cmap(norm(entry["step"])), alpha=0.8, lw=0)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel("Re lambda")
    ax.set_ylabel("Im lambda")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_history(history, path):
    """Eigenvalues of every evaluation in `history` in the complex plane, colour = step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tf_convgan import run_dir

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    steps = [entry["step"] for entry in history]
    norm = matplotlib.colors.Normalize(vmin=min(steps), vmax=max(max(steps), min(steps) + 1))
    cmap = matplotlib.colormaps["viridis"]
    draw_history(ax, history, norm=norm, cmap=cmap)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="step")
    fig.tight_layout()
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def _is_history_dir(directory):
    """A spectrum directory written before the library marked its output directories: its
    history is a JSON list of evaluations."""
    from tf_convgan import run_dir
    path = os.path.join(directory, HISTORY_JSON)
    try:
        history = json.loads(run_dir.read_bytes(path))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(history, list) and all(isinstance(e, dict) and "step" in e
                                             for e in history)


def check_out_dir(out_dir, *, name="spectrum_evaluator.out_dir"):
    """Raises ConfigError naming `name` unless the spectrum may write its history and PNG into
    `out_dir` (run_dir.outputs: not in a run's checkpoints, not a directory of the user's)."""
    from tf_convgan.run_dir import outputs
    outputs.check_output_dir(out_dir, name=name, command="spectrum",
                             names=(HISTORY_JSON, PLOT_PNG), own=_is_history_dir)


def record(result, *, out_dir=None, writer=None):
    """Appends `result` to out_dir/spectrum_history.json (an evaluation of the same step
    replaces the earlier one) and re-plots out_dir/spectrum.png from the whole history; writes
    TensorBoard scalars when `writer` (a tf.summary writer) is given. Returns the PNG's path."""
    if writer is not None:
        write_summaries(result, writer=writer)
    if out_dir is None:
        return None
    from tf_convgan import run_dir
    check_out_dir(out_dir)
    run_dir.outputs.claim_output_dir(out_dir, "spectrum")
    history = [e for e in read_history(out_dir) if e["step"] != result.step]
    history = sorted(history + [result.to_json()], key=lambda e: e["step"])
    run_dir.write_text(os.path.join(out_dir, HISTORY_JSON), json.dumps(history))
    path = os.path.join(out_dir, PLOT_PNG)
    plot_history(history, path)
    return path
