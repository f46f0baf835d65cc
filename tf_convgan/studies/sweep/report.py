"""A sweep's report: the results table, the heat map (PNG and its numbers), the metric against
the step per group (PNG, history table, group table) and the runs' last sample grids side by
side. Every file is written through run_dir (local or a URL)."""
import io
import itertools
import math
import os

import numpy as np

from tf_convgan import run_dir
from tf_convgan.studies.sweep.grid import cell_dir, expand

TABLE_MD = "sweep_results.md"
HEATMAP_PNG = "sweep_heatmap.png"
HEATMAP_MD = "sweep_heatmap.md"
CURVES_PNG = "sweep_curves.png"
GROUPS_MD = "sweep_groups.md"
HISTORY_MD = "sweep_history.md"
SAMPLES_PNG = "sweep_samples.png"


def _fmt(value):
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def write_table(path, sweep, results):
    """A Markdown table, one row per cell (grid order): the axes' labels, then the metrics.
    `results`: {cell name: {metric: value} or None (not finished)}."""
    cells = expand(sweep)
    columns = sorted({k for r in results.values() if r for k in r if k not in ("step", "diverged")},
                     key=lambda k: (k not in ("fid", "kid", "kid_std"), k))
    header = [a.name for a in sweep.axes] + columns + ["directory"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        result = results.get(cell.name)
        if not result:
            values = ["not run"] * len(columns)
        elif "diverged" in result:
            values = ["diverged"] * len(columns)
        else:
            values = [_fmt(result.get(c)) for c in columns]
        lines.append("| " + " | ".join([label for _, label in cell.labels] + values
                                       + [f"`{cell.name}`"]) + " |")
    text = "\n".join(lines) + "\n"
    run_dir.write_text(path, text)
    return text


def _heatmap_labels(sweep, names):
    """The labels along one side of the heat map: the combinations of the named axes' labels
    (grid order), joined by ' / '."""
    axes = {a.name: a for a in sweep.axes}
    return tuple(" / ".join(combo)
                 for combo in itertools.product(*(axes[n].labels for n in names)))


def heatmap_matrix(sweep, results):
    """(row labels, column labels, matrix) of heatmap['value'] over the heat map's rows and
    columns (each one axis or the combinations of several); where other axes vary, each entry
    is the best (lowest) over them; NaN where nothing finished."""
    rows, columns = sweep.heatmap["rows"], sweep.heatmap["columns"]
    row_labels, column_labels = _heatmap_labels(sweep, rows), _heatmap_labels(sweep, columns)
    key = sweep.heatmap["value"]
    matrix = np.full((len(row_labels), len(column_labels)), np.nan)
    for cell in expand(sweep):
        result = results.get(cell.name)
        if not result or result.get(key) is None or not math.isfinite(result[key]):
            continue
        i = row_labels.index(" / ".join(cell.label(n) for n in rows))
        j = column_labels.index(" / ".join(cell.label(n) for n in columns))
        matrix[i, j] = np.fmin(matrix[i, j], result[key])
    return row_labels, column_labels, matrix


def _heatmap_others(sweep):
    """The axes the heat map takes the best over (neither rows nor columns)."""
    shown = set(sweep.heatmap["rows"]) | set(sweep.heatmap["columns"])
    return [a.name for a in sweep.axes if a.name not in shown]


def write_heatmap_table(path, sweep, results):
    """The heat map's numbers as a Markdown table (rows x columns; '–' where no cell of the
    entry finished)."""
    row_labels, column_labels, matrix = heatmap_matrix(sweep, results)
    corner = " / ".join(sweep.heatmap["rows"]) + " \\ " + " / ".join(sweep.heatmap["columns"])
    others = _heatmap_others(sweep)
    lines = [f"{sweep.heatmap['value'].upper()}"
             + (f", the best over {', '.join(others)}" if others else "") + ":", "",
             "| " + " | ".join((corner,) + column_labels) + " |",
             "|" + "---|" * (len(column_labels) + 1)]
    for label, row in zip(row_labels, matrix):
        lines.append("| " + " | ".join([label] + [_fmt(v) for v in row]) + " |")
    text = "\n".join(lines) + "\n"
    run_dir.write_text(path, text)
    return text


def write_heatmap(path, sweep, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_labels, column_labels, matrix = heatmap_matrix(sweep, results)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(column_labels), 1.2 + 0.6 * len(row_labels)),
                           dpi=100)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(column_labels)), column_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set_xlabel(" / ".join(sweep.heatmap["columns"]))
    ax.set_ylabel(" / ".join(sweep.heatmap["rows"]))
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, _fmt(matrix[i, j]), ha="center", va="center", color="w", fontsize=8)
    others = _heatmap_others(sweep)
    title = sweep.heatmap["value"].upper() + (f" (best over {', '.join(others)})" if others
                                              else "")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


# ----------------------------------------------------------------------------- curves, groups

def group_curves(sweep, histories):
    """The curves of sweep.curves['value'] against the step, one per label of the group axis:
    {label: (steps, mean, min, max, number of cells)} over the cells of that label whose history
    (a {column: array} table with 'step', from a run's metrics.csv) has the value, at the steps
    every one of them has. Labels without any such cell are left out."""
    group, key = sweep.curves["group"], sweep.curves["value"]
    by_label = {}
    for cell in expand(sweep):
        history = histories.get(cell.name)
        if history is None or key not in history or not len(history["step"]):
            continue
        by_label.setdefault(cell.label(group), []).append(
            dict(zip(np.asarray(history["step"]).astype(int).tolist(),
                     np.asarray(history[key], float).tolist())))
    axis = {a.name: a for a in sweep.axes}[group]
    curves = {}
    for label in axis.labels:
        runs = by_label.get(label)
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(r) for r in runs)))
        values = np.array([[r[s] for s in steps] for r in runs]).reshape(len(runs), len(steps))
        curves[label] = (np.array(steps), values.mean(0), values.min(0), values.max(0),
                         len(runs))
    return curves


def write_curves(path, sweep, histories):
    """A PNG of group_curves: the mean over the other axes as a line, their range shaded."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = group_curves(sweep, histories)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for label, (steps, mean, low, high, n) in curves.items():
        (line,) = ax.plot(steps, mean, marker="o", markersize=3, label=f"{label} (n={n})")
        if n > 1:
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
    key = sweep.curves["value"]
    others = [a.name for a in sweep.axes if a.name != sweep.curves["group"]]
    ax.set_xlabel("step")
    ax.set_ylabel(key.upper())
    ax.set_yscale("log")
    ax.set_title(f"{key.upper()} against the step: mean over {', '.join(others) or 'one run'}"
                 f" (range shaded)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def write_history_table(path, sweep, histories):
    """A Markdown table of sweep.curves['value'] at every evaluated step, one row per cell with a
    history (grid order): the axes' labels, then the value at each step ('–' where that run has
    none)."""
    key = sweep.curves["value"]
    rows = []
    for cell in expand(sweep):
        history = histories.get(cell.name)
        if history is None or key not in history:
            continue
        steps = np.asarray(history["step"]).astype(int).tolist()
        rows.append((cell, dict(zip(steps, np.asarray(history[key], float).tolist()))))
    steps = sorted({step for _, values in rows for step in values})
    header = [a.name for a in sweep.axes] + [f"{key} at {step}" for step in steps]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell, values in rows:
        lines.append("| " + " | ".join([label for _, label in cell.labels]
                                       + [_fmt(values.get(step)) for step in steps]) + " |")
    text = "\n".join(lines) + "\n"
    run_dir.write_text(path, text)
    return text


def write_group_table(path, sweep, results):
    """A Markdown table, one row per label of the curves' group axis: each metric's mean over
    the finished cells of that label, with their min and max; diverged cells are counted."""
    group = sweep.curves["group"]
    axis = {a.name: a for a in sweep.axes}[group]
    columns = sorted({k for r in results.values() if r for k in r
                      if k not in ("step", "diverged")},
                     key=lambda k: (k not in ("fid", "kid", "kid_std"), k))
    header = [group, "cells"] + columns
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label in axis.labels:
        cells = [results.get(c.name) for c in expand(sweep) if c.label(group) == label]
        done = [r for r in cells if r and "diverged" not in r]
        diverged = sum(1 for r in cells if r and "diverged" in r)
        count = f"{len(done)}/{len(cells)}" + (f" ({diverged} diverged)" if diverged else "")
        values = []
        for column in columns:
            v = np.array([r[column] for r in done if r.get(column) is not None], float)
            values.append("–" if not len(v) else
                          f"{_fmt(v.mean())} [{_fmt(v.min())}, {_fmt(v.max())}]" if len(v) > 1
                          else _fmt(v[0]))
        lines.append("| " + " | ".join([label, count] + values) + " |")
    text = ("mean [min, max] over the other axes' cells, at each run's last evaluation\n\n"
            + "\n".join(lines) + "\n")
    run_dir.write_text(path, text)
    return text


def write_samples(path, sweep, out_dir, *, names=None):
    """One PNG of the runs' last sample grids (run_dir.layout's samples.png), one panel per
    cell (only the cells in `names`, if given), titled by the cell's labels. When the last axis
    has at most 6 labels, each row is one label combination of the other axes and each column
    one label of the last axis (e.g. the 4 normalizations side by side), a cell without a grid
    left blank; otherwise the panels fill rows of 5 in grid order. Returns the number of
    panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = len(sweep.axes[-1].labels)
    aligned = last <= 6
    slots = []  # (title, grid path) or None: a blank slot keeps the rows aligned
    for cell in expand(sweep):
        grid = os.path.join(cell_dir(out_dir, cell), run_dir.SAMPLES_PNG)
        if (names is None or cell.name in names) and run_dir.files.exists(grid):
            slots.append((", ".join(label for _, label in cell.labels), grid))
        elif aligned:
            slots.append(None)
    panels = [slot for slot in slots if slot]
    if not panels:
        return 0
    columns = last if aligned else min(5, len(slots))
    rows = -(-len(slots) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, slot in zip(axes.flat, slots):
        if slot:
            ax.imshow(plt.imread(io.BytesIO(run_dir.read_bytes(slot[1])), format="png"))
            ax.set_title(slot[0], fontsize=8)
    fig.tight_layout()
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return len(panels)
