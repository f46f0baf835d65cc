"""The Dirac-GAN study: every method x (simGD, altGD) -> a Markdown table and PNG figures.

`python run.py --gin_file gin_configs/dirac/all.gin` runs all methods (`run.main = @dirac_study`);
`gin_configs/dirac/<method>.gin` runs one. Written into model_dir:
  dirac_table.md        method | eigenvalues of J at the equilibrium | per simGD/altGD: spectral
                        radius of the update map's Jacobian, distance to (0, 0) after T steps,
                        verdict (converges iff that distance < tolerance)
  dirac_results.json    the same numbers, machine-readable
  dirac_<method>.png    vector field + trajectories of one method; dirac_all.png: all panels
"""
import json
import os
import time

import gin
import numpy as np
import tensorflow as tf

from tf_convgan.studies import dirac
from tf_convgan.studies import plots
from tf_convgan.errors import ConfigError

_LIMIT = 2.0
_GRID = 17


def _format_eigenvalues(values):
    def one(z):
        if abs(z.imag) < 1e-12:
            return f"{z.real:.4g}"
        return f"{z.real:.4g} {'+' if z.imag >= 0 else '-'} {abs(z.imag):.4g}i"
    return ", ".join(one(z) for z in values)


def analyse(method, *, learning_rate, num_steps, d_steps, start, tolerance):
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
        row[mode] = {"spectral_radius": dirac.spectral_radius(update), "distance": distance,
                     "converges": bool(np.isfinite(distance) and distance < tolerance)}
        trajectories[f"{mode}GD"] = points
    axis = np.linspace(-_LIMIT, _LIMIT, _GRID)
    theta, psi = np.meshgrid(axis, axis)
    field = dirac.field_on_grid(method, theta.ravel(), psi.ravel())
    panel = {"title": method.name, "grid": (theta, psi), "limit": _LIMIT,
             "field": tuple(f.reshape(theta.shape) for f in field), "trajectories": trajectories}
    return row, panel


def markdown_table(rows, *, learning_rate, num_steps, d_steps, tolerance):
    lines = [
        f"Dirac-GAN, h = {learning_rate}, T = {num_steps} steps, {d_steps} D step(s) per G step in "
        f"altGD; converges = distance to (0, 0) after T steps < {tolerance:g}; rho = largest "
        f"eigenvalue modulus of the update map's Jacobian at the equilibrium.",
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
    if any(r["method"] in ("wgan_gp", "dragan") for r in rows):
        lines += ["", "WGAN-GP and DRAGAN: (||grad D|| - 1)^2 = (|psi| - 1)^2 has a kink at psi = 0; "
                  "the library's sqrt(||g||^2 + 1e-12) smooths it, so autodiff finds an eigenvalue "
                  "~gamma / 1e-6 there: (0, 0) repels, psi goes to +-1 and theta keeps circling."]
    return "\n".join(lines) + "\n"


@gin.configurable
def dirac_study(*, model_dir, methods=dirac.METHODS, learning_rate=0.1, num_steps=1000,
                d_steps=1, start=(1.0, 1.0), tolerance=1e-3):
    """Runs the Dirac-GAN analysis of `methods` (hyperparameters: gin `dirac_method.*`).

    Returns the table's rows (dicts)."""
    if isinstance(methods, str) or not methods:
        raise ConfigError(f"dirac_study.methods must be a non-empty list of names from "
                          f"{dirac.METHODS}, got {methods!r}")
    if len(start) != 2:
        raise ConfigError(f"dirac_study.start must be (theta, psi), got {start!r}")
    if not float(tolerance) > 0:
        raise ConfigError(f"dirac_study.tolerance must be > 0, got {tolerance!r}")
    built = [dirac.dirac_method(name) for name in methods]  # validates every name first
    settings = dict(learning_rate=learning_rate, num_steps=num_steps, d_steps=d_steps,
                    tolerance=tolerance)
    tf.get_logger().setLevel("ERROR")  # one small tf.function per method: retracing is expected
    tick = time.time()
    rows, panels = [], []
    for method in built:
        row, panel = analyse(method, start=tuple(float(s) for s in start), **settings)
        rows.append(row)
        panels.append(panel)
        print(f"{method.name}: eigenvalues {_format_eigenvalues(row['eigenvalues'])}; "
              f"simGD {row['sim']['distance']:.3g}, altGD {row['alt']['distance']:.3g}", flush=True)
    os.makedirs(model_dir, exist_ok=True)
    table = markdown_table(rows, **settings)
    with open(os.path.join(model_dir, "dirac_table.md"), "w") as f:
        f.write(table)
    for panel in panels:
        plots.dirac_figure([panel], os.path.join(model_dir, f"dirac_{panel['title']}.png"), cols=1)
    if len(panels) > 1:
        plots.dirac_figure(panels, os.path.join(model_dir, "dirac_all.png"))
    serializable = [dict(r, eigenvalues=[[z.real, z.imag] for z in r["eigenvalues"]]) for r in rows]
    with open(os.path.join(model_dir, "dirac_results.json"), "w") as f:
        json.dump({"settings": settings, "rows": serializable}, f, indent=1)
    print(table)
    print(f"Dirac-GAN study: {len(rows)} methods in {time.time() - tick:.1f} s -> {model_dir}")
    return rows
