"""The 2D convergence study's report, read from its run directories (scripts/toy2d_convergence.py):
one result per run (the curves of W2, ||v||, its noise level and the movement; the final
spectrum; the verdict of `toy2d_convergence.verdict`), a Markdown table per method x update rule
x learning rate (rows) and problem (columns), and the figures (final samples over D's contours;
W2 above the floor and ||v|| against the step)."""
import json
import os

import numpy as np

from tf_convgan import run_dir
from tf_convgan.studies import toy2d
from tf_convgan.studies import toy2d_convergence as conv
from tf_convgan.studies import toy2d_grid as grid

TABLE, RESULTS = "toy2d_convergence_table.md", "toy2d_convergence_results.json"


def _spectrum(model_dir):
    path = os.path.join(model_dir, conv.SPECTRUM_FILE)
    return json.loads(run_dir.read_text(path)) if run_dir.files.exists(path) else {}


def _bindings(bindings):
    """{name: int value} of the integer gin bindings of a run's status."""
    out = {}
    for b in bindings:
        name, _, value = (part.strip() for part in b.partition("="))
        if value.isdigit():
            out[name] = int(value)
    return out


def collect(out_dir, runs, run_name, *, num_steps, floors):
    """One dict per (run, lr) of `runs`: the run's fields, lr, name, floor, curves, final
    numbers, radius and verdict ('missing' while unfinished)."""
    results = []
    for run, lr in runs:
        name = run_name(run, lr)
        model_dir = os.path.join(out_dir, "runs", name)
        status = grid.read_status(model_dir) or {}
        rows = grid.evaluations(model_dir)
        col = lambda key: [float(r.get(key, np.nan)) for _, r in rows]  # noqa: E731
        r = {"method": run.method, "problem": run.problem, "rule": run.rule, "seed": run.seed,
             "d_steps": run.d_steps, "lr": lr, "name": name,
             "floor": floors[(run.problem, run.seed)], "steps": [s for s, _ in rows],
             "w2": col("w2"), "v_norm": col("v_norm"), "v_noise": col("v_noise"),
             "movement": col("movement"), "seconds": status.get("seconds")}
        setting = _bindings(status.get("bindings", []))
        if len(rows) > 1 and rows[-1][1].get("v_noise") is not None:
            r["walk"] = conv.noise_walk(
                learning_rate=lr, steps=rows[-1][0] - rows[-2][0], v_noise=r["v_noise"][-1],
                field_batch=setting.get("toy2d_convergence_writer.field_batch", conv.FIELD_BATCH),
                batch_size=setting.get("train.batch_size", 64))
        spec = _spectrum(model_dir)
        r["radius"] = spec.get("radius", np.nan)
        r["max_real"] = spec.get("max_real", np.nan)
        if status.get("status") == "diverged":
            r.update(verdict="diverging", final=np.nan, final_v=np.nan, final_noise=np.nan)
        elif not grid.is_finished(model_dir, num_steps) or not rows or rows[-1][0] != num_steps:
            r.update(verdict="missing", final=np.nan, final_v=np.nan, final_noise=np.nan)
        else:
            r.update(final=r["w2"][-1], final_v=r["v_norm"][-1], final_noise=r["v_noise"][-1],
                     verdict=conv.verdict(r["w2"], r["floor"], r["v_norm"], r["v_noise"],
                                          r["movement"]))
        results.append(r)
    return results


def _median(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.median(values)) if values else float("nan")


def choose_lr(results, *, method="r1", baseline="unregularized"):
    """The learning rate for the full grid, from a finished learning-rate sweep's results (the
    dicts of `collect`; no run may be 'missing'): the one where `method` (the paper's
    convergent one) converges in the most runs over problems, rules and seeds; ties go to the
    larger lead over `baseline`'s converged runs, then to the smaller median final W2 above the
    floor of `method`. Returns (lr, {lr: (converged, baseline converged, median excess, runs)})."""
    missing = [r["name"] for r in results if r["verdict"] == "missing"]
    if missing:
        raise ValueError(f"the sweep has {len(missing)} unfinished runs (e.g. {missing[0]}): "
                         f"finish it first")
    table = {}
    for lr in sorted({r["lr"] for r in results}):
        mine = [r for r in results if r["lr"] == lr and r["method"] == method]
        if not mine:
            raise ValueError(f"the sweep has no {method} run at lr {lr:g}")
        base = [r for r in results if r["lr"] == lr and r["method"] == baseline]
        table[lr] = (sum(r["verdict"] == "converged" for r in mine),
                     sum(r["verdict"] == "converged" for r in base),
                     _median([r["final"] - r["floor"] for r in mine]), len(mine))
    best = max(table, key=lambda lr: (table[lr][0], table[lr][0] - table[lr][1], -table[lr][2]))
    return best, table


def _cell(rs):
    done = [r for r in rs if r["verdict"] != "missing"]
    if not done:
        return "missing"
    conv_n = sum(r["verdict"] == "converged" for r in done)
    other = {}
    for r in done:
        if r["verdict"] != "converged":
            key = r["verdict"].replace("still converging", "still conv.")
            other[key] = other.get(key, 0) + 1
    rest = "; ".join(f"{k} {n}" for k, n in other.items())
    excess = _median([r["final"] - r["floor"] for r in done])
    ratio = _median([r["final_v"] / r["final_noise"] for r in done if r["final_noise"]])
    radius = _median([r["radius"] for r in done])
    walk = _median([r["movement"][-1] / r["walk"] for r in done if r.get("walk")])
    return (f"**{conv_n}/{len(done)}**" + (f" ({rest})" if rest else "") +
            f"; W2-floor {excess:.3f}; v/noise {ratio:.1f}; move/walk {walk:.1f}; "
            f"rho-1 {radius - 1:+.1e}")


def markdown(results, *, num_steps, num_points, seconds=None):
    problems = list(dict.fromkeys(r["problem"] for r in results))
    missing = sum(r["verdict"] == "missing" for r in results)
    lines = []
    if missing:
        lines += [f"**PARTIAL RESULTS: {len(results) - missing} of {len(results)} runs had "
                  f"finished; cells count only finished runs.**", ""]
    lines += [
        f"Plain gradient descent (SGD, no momentum) for G and D, {num_steps} steps. Per cell: "
        f"**converged runs / finished runs** (other verdicts), the median over the seeds of the "
        f"final W2 above the floor ({num_points} samples of a fixed z vs {num_points} fixed data "
        f"points), of final ||v|| / its noise level (v/noise; converged needs <= "
        f"{conv.K_NOISE:g}), and of the spectral radius of the run's update map at its learning "
        f"rate minus 1 (rho-1: the largest modulus among the map's leading eigenvalues at the "
        f"final weights, ARPACK on the game Jacobian's products; < 0: locally contracting). "
        f"Verdict "
        f"(`toy2d_convergence.verdict`, fixed before the runs): converged = final ||v|| <= "
        f"{conv.K_NOISE:g} x its noise level and the last movement <= {conv.SETTLE_FRAC:g} x the "
        f"run's largest, and final W2 within {conv.NEAR:g} of the floor; stalled = settled but "
        f"further; still converging = ||v|| fell by x{conv.TREND:g} over the last "
        f"{conv.WINDOW} evaluations; diverging = non-finite or ||v|| and movement grew "
        f"x{conv.TREND:g}; oscillating = otherwise. move/walk (a diagnostic, not in the verdict): "
        f"the last movement over the movement minibatch noise alone would cause along flat "
        f"directions (`toy2d_convergence.noise_walk`); ~1: the remaining movement is noise.", "",
        "| method | rule | lr | " + " | ".join(problems) + " |",
        "|---|---|---|" + "---|" * len(problems)]
    floors = [f"floor {f:.3f}" if f is not None else "" for f in grid.mean_floors(results, problems)]
    lines.append("| | | | " + " | ".join(floors) + " |")
    groups = {}
    for r in results:
        groups.setdefault((r["method"], r["rule"], r["lr"]), {}).setdefault(
            r["problem"], []).append(r)
    for (method, rule, lr), per in groups.items():
        cells = [_cell(per[p]) if p in per else "" for p in problems]
        lines.append(f"| {method} | {grid.SHORT_RULE[rule]} | {lr:g} | " + " | ".join(cells)
                     + " |")
    counts = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    secs = [r["seconds"] for r in results if r.get("seconds")]
    lines += ["", "Verdicts over all runs: " + ", ".join(f"{v} {n}" for v, n in counts.items())
              + ".", "", f"{len(secs)} runs trained; their train() calls took {sum(secs):.0f} s "
              f"(median {_median(secs):.0f} s per run)" +
              ("" if seconds is None else f"; this invocation {seconds:.0f} s") + "."]
    lines += ["", "<details><summary>every run</summary>", "",
              "| run | verdict | final W2 | floor | final v | noise | rho | W2 curve |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["verdict"] == "missing":
            continue
        curve = ", ".join(f"{v:.3f}" for v in r["w2"])
        lines.append(f"| {r['name']} | {r['verdict']} | {r['final']:.3f} | {r['floor']:.3f} | "
                     f"{r['final_v']:.3g} | {r['final_noise']:.3g} | {r['radius']:.6f} | "
                     f"{curve} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def curves_figure(results, path, *, lr):
    """Per problem (columns) W2 above the floor (top) and ||v|| (bottom, log) against the step,
    one line per run at learning rate `lr`, coloured by method x rule."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chosen = [r for r in results if r["lr"] == lr and r["verdict"] != "missing"]
    problems = list(dict.fromkeys(r["problem"] for r in results))
    keys = list(dict.fromkeys((r["method"], r["rule"]) for r in results))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(2, len(problems), figsize=(3.2 * len(problems), 5.5), squeeze=False)
    for j, p in enumerate(problems):
        for r in (r for r in chosen if r["problem"] == p):
            c = colours(keys.index((r["method"], r["rule"])) % 10)
            axes[0, j].plot(r["steps"], np.asarray(r["w2"]) - r["floor"], color=c, lw=0.8)
            axes[1, j].semilogy(r["steps"], r["v_norm"], color=c, lw=0.8)
            axes[1, j].semilogy(r["steps"], r["v_noise"], color=c, lw=0.5, ls=":")
        axes[0, j].set_title(f"{p}, lr {lr:g}")
        axes[1, j].set_xlabel("step")
    axes[0, 0].set_ylabel("W2 - floor")
    axes[1, 0].set_ylabel("||v|| (dotted: noise level)")
    for i, (m, rule) in enumerate(keys):
        axes[0, -1].plot([], [], color=colours(i % 10), label=f"{m} {grid.SHORT_RULE[rule]}")
    axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    run_dir.files.makedirs(os.path.dirname(path) or ".")
    fig.savefig(path, dpi=70)
    plt.close(fig)


def write(out_dir, runs, run_name, *, num_steps, num_points, seconds=None):
    """Writes TABLE, RESULTS and the figures into out_dir; returns the results."""
    keys = {(run.problem, run.seed) for run, _ in runs}
    floors = {(p, s): toy2d.data_floor(toy2d.PointSource(p), num_points=num_points, seed=s)
              for p, s in sorted(keys)}
    results = collect(out_dir, runs, run_name, num_steps=num_steps, floors=floors)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, TABLE), "w") as f:
        f.write(markdown(results, num_steps=num_steps, num_points=num_points, seconds=seconds))
    with open(os.path.join(out_dir, RESULTS), "w") as f:
        json.dump(results, f, indent=1, default=float)
    seed = min(r["seed"] for r in results)
    for lr in sorted({r["lr"] for r in results}):
        curves_figure(results, os.path.join(out_dir, f"toy2d_convergence_curves_lr{lr:g}.png"),
                      lr=lr)
        at_lr = [dict(r, final=r["final"]) for r in results if r["lr"] == lr]
        methods = list(dict.fromkeys(r["method"] for r in at_lr))
        problems = list(dict.fromkeys(r["problem"] for r in at_lr))
        for rule in sorted({r["rule"] for r in at_lr}):
            grid.figure(out_dir, at_lr, os.path.join(
                out_dir, f"toy2d_convergence_samples_{rule}_lr{lr:g}.png"), rule=rule,
                seed=seed, methods=methods, problems=problems)
    return results
