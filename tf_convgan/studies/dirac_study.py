"""The Dirac-GAN study: every method x (simGD, altGD) -> a Markdown table and PNG figures.

`python run.py --gin_file gin_configs/dirac/all.gin` runs all methods (`run.main = @dirac_study`);
`gin_configs/dirac/<method>.gin` runs one. Written into model_dir:
  dirac_table.md        method | eigenvalues of J at the equilibrium | per simGD/altGD: spectral
                        radius rho of the update map's Jacobian at the equilibrium, distance to
                        (0, 0) after T steps from `start`, verdict from rho: the method converges
                        locally for this step size iff rho < 1 (the distance is a second column:
                        a method with rho just below 1 converges, slowly); for each method that
                        does not converge, where its iterates were over the last 100 steps
  dirac_results.json    the same numbers, machine-readable
  dirac_<method>.png    vector field + trajectories of one method; dirac_all.png: all panels
"""
import json
import os
import time

import gin
import numpy as np
import tensorflow as tf

from tf_convgan import run_dir
from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import outputs
from tf_convgan.studies import dirac
from tf_convgan.studies import plots

# What the study writes into model_dir (a local path or a URL: everything goes through
# run_dir.files, crash-safe), besides one dirac_<method>.png per method.
TABLE_MD = "dirac_table.md"
RESULTS_JSON = "dirac_results.json"
ALL_PNG = "dirac_all.png"

_LIMIT = 2.0
_GRID = 17
# rho within this of 1 is 1: the linearisation leaves it undecided (eigenvalues on the unit
# circle, e.g. altGD on the unregularized GAN), and the method is not called convergent.
RADIUS_MARGIN = 1e-9
_TAIL = 100


def locally_convergent(spectral_radius):
    """The verdict: the update map contracts near the equilibrium iff its Jacobian's spectral
    radius is < 1 (by more than RADIUS_MARGIN)."""
    return bool(np.isfinite(spectral_radius) and spectral_radius < 1.0 - RADIUS_MARGIN)


def _format_eigenvalues(values):
    def one(z):
        if abs(z.imag) < 1e-12:
            return f"{z.real:.4g}"
        return f"{z.real:.4g} {'+' if z.imag >= 0 else '-'} {abs(z.imag):.4g}i"
    return ", ".join(one(z) for z in values)


def analyse(method, *, learning_rate, num_steps, d_steps, start):
    """Numbers and figure data of one method."""
    jac = dirac.jacobian(method)
    row = {"method": method.name, "loss": method.loss.g_loss.__name__.replace("_g_loss", ""),
           "jacobian": jac.tolist(), "eigenvalues": dirac.eigenvalues(jac)}
    trajectories = {}
    for mode in ("sim", "alt"):
        points = dirac.trajectory(method, start, num_steps=num_steps, learning_rate=learning_rate,
                                  mode=mode, d_steps=d_steps)
        distance = float(np.linalg.norm(points[-1]))
        update = dirac.update_jacobian(method, learning_rate=learning_rate, mode=mode,
                                       d_steps=d_steps)
        radius = dirac.spectral_radius(update)
        tail = points[-_TAIL:]
        row[mode] = {"spectral_radius": radius, "distance": distance,
                     "converges": locally_convergent(radius),
                     "end": [float(v) for v in points[-1]],
                     "tail_range": [[float(tail[:, i].min()), float(tail[:, i].max())]
                                    for i in (0, 1)],
                     "theta_sign_changes": [int(i) + 1 for i in np.nonzero(
                         np.diff(np.sign(points[:, 0])))[0]]}
        trajectories[f"{mode}GD"] = points
    axis = np.linspace(-_LIMIT, _LIMIT, _GRID)
    theta, psi = np.meshgrid(axis, axis)
    field = dirac.field_on_grid(method, theta.ravel(), psi.ravel())
    panel = {"title": method.name, "grid": (theta, psi), "limit": _LIMIT,
             "field": tuple(f.reshape(theta.shape) for f in field), "trajectories": trajectories}
    return row, panel


def _where(name, m):
    (t0, t1), (p0, p1) = m["tail_range"]
    text = (f"{name}: last {_TAIL} steps theta in [{t0:.3g}, {t1:.3g}], psi in [{p0:.3g}, "
            f"{p1:.3g}]")
    changes = m["theta_sign_changes"]
    if changes:
        shown = ", ".join(str(c) for c in changes[:8]) + (", ..." if len(changes) > 8 else "")
        text += f"; theta changes sign at step {shown}"
    return text


def markdown_table(rows, *, learning_rate, num_steps, d_steps):
    lines = [
        f"Dirac-GAN, h = {learning_rate}, T = {num_steps} steps, {d_steps} D step(s) per G step in "
        f"altGD; rho = spectral radius (largest eigenvalue modulus) of the update map's Jacobian "
        f"at the equilibrium (0, 0); converges (locally, for this h) iff rho < 1; distance = "
        f"distance to (0, 0) after T steps.",
        "",
        "| method | loss | eigenvalues of J | simGD rho | simGD distance | simGD | altGD rho "
        "| altGD distance | altGD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["method"], r["loss"], _format_eigenvalues(r["eigenvalues"])]
        for mode in ("sim", "alt"):
            m = r[mode]
            cells += [f"{m['spectral_radius']:.6g}", f"{m['distance']:.3g}",
                      "converges" if m["converges"] else "**does not converge**"]
        lines.append("| " + " | ".join(cells) + " |")
    others = [r for r in rows if not (r["sim"]["converges"] and r["alt"]["converges"])]
    if others:
        lines += ["", "Where the methods that do not converge were:", ""]
        lines += [f"- {r['method']}: " + "; ".join(
            _where(f"{mode}GD", r[mode]) for mode in ("sim", "alt")) for r in others]
    if any(r["method"] in ("wgan_gp", "dragan") for r in rows):
        lines += ["", "WGAN-GP and DRAGAN: (||grad D|| - 1)^2 = (|psi| - 1)^2 has a kink at psi = 0; "
                  "the library's sqrt(||g||^2 + 1e-12) smooths it, so autodiff finds an eigenvalue "
                  "~gamma / 1e-6 there and (0, 0) repels."]
    return "\n".join(lines) + "\n"


@gin.configurable
def dirac_study(*, model_dir, methods=dirac.METHODS, learning_rate=0.1, num_steps=1000,
                d_steps=1, start=(1.0, 1.0)):
    """Runs the Dirac-GAN analysis of `methods` (hyperparameters: gin `dirac_method.*`).

    Returns the table's rows (dicts)."""
    if isinstance(methods, str) or not methods:
        raise ConfigError(f"dirac_study.methods must be a non-empty list of names from "
                          f"{dirac.METHODS}, got {methods!r}")
    if len(start) != 2:
        raise ConfigError(f"dirac_study.start must be (theta, psi), got {start!r}")
    built = [dirac.dirac_method(name) for name in methods]  # validates every name first
    outputs.check_output_dir(  # a directory of the user's is refused before anything runs
        model_dir, name="model_dir", command="dirac_study", names=(TABLE_MD, RESULTS_JSON,
                                                                   "dirac_*.png"),
        own=lambda d: outputs.json_object_with(os.path.join(d, RESULTS_JSON), ("settings",
                                                                                "rows")))
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ConfigError(f"dirac_study.num_steps must be an integer >= 1, got {num_steps!r}")
    settings = dict(learning_rate=learning_rate, num_steps=num_steps, d_steps=d_steps)
    tf.get_logger().setLevel("ERROR")  # one small tf.function per method: retracing is expected
    tick = time.time()
    rows, panels = [], []
    for method in built:
        row, panel = analyse(method, start=tuple(float(s) for s in start), **settings)
        rows.append(row)
        panels.append(panel)
        print(f"{method.name}: eigenvalues {_format_eigenvalues(row['eigenvalues'])}; "
              f"simGD rho {row['sim']['spectral_radius']:.6g} distance "
              f"{row['sim']['distance']:.3g}, altGD rho {row['alt']['spectral_radius']:.6g} "
              f"distance {row['alt']['distance']:.3g}", flush=True)
    outputs.claim_output_dir(model_dir, "dirac_study")
    table = markdown_table(rows, **settings)
    run_dir.write_text(os.path.join(model_dir, TABLE_MD), table)
    for panel in panels:
        plots.dirac_figure([panel], os.path.join(model_dir, f"dirac_{panel['title']}.png"), cols=1)
    if len(panels) > 1:
        plots.dirac_figure(panels, os.path.join(model_dir, ALL_PNG))
    serializable = [dict(r, eigenvalues=[[z.real, z.imag] for z in r["eigenvalues"]]) for r in rows]
    run_dir.write_text(os.path.join(model_dir, RESULTS_JSON),
                       json.dumps({"settings": settings, "rows": serializable}, indent=1))
    print(table)
    print(f"Dirac-GAN study: {len(rows)} methods in {time.time() - tick:.1f} s -> {model_dir}")
    return rows
