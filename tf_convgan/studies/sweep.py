"""Sweeps: a grid of gin bindings -> one run directory per cell -> a table and a heat map.

A sweep file (YAML) says what is shared and what varies:

    gin_files: [study/kurach_fashion_mnist.gin]    # every cell's gin files, in order
    gin_params: ['train.num_steps = 2000']          # every cell's extra bindings
    grid:                                            # the axes, in order (the names' order)
      - name: loss                                   # short name in directory names and tables
        binding: GAN.loss                            # the gin parameter it binds
        values: ['@non_saturating()', '@hinge()']    # gin values, as written after '='
        labels: [ns, hinge]                          # optional: names of the values
      - name: method                                 # an axis without `binding`: each value
        values: [['GAN.penalty = @r1'],              # is a list of bindings (labels required)
                 ['GAN.loss = @wasserstein()', 'GAN.penalty = @wgan_gp']]
        labels: [r1, wgan_gp]
    metric: fid          # 'fid': the last row of the run's metrics.csv (train.evaluator, e.g.
                         # @fid_evaluator(), must be bound; it evaluates at the last step);
                         # 'pixel': FID/KID of 8x8 grey pixels of the EMA generator's samples
                         # against the training data (cheap; for tests and smoke runs)
    num_samples: 2000    # 'pixel': samples and real examples compared
    heatmap: {rows: loss, columns: penalty, value: fid}   # two axes; others: min over them
                         # (rows or columns may be a list of axes: [loss, penalty], one row per
                         # combination of their labels, 'ns / wgan_gp')
    curves: {group: loss, value: fid}   # optional: the metric against the step (every row of
                                        # each run's metrics.csv), one line per label of `group`
                                        # (the mean over the other axes, their range shaded)

A cell is named by its labels, `loss=hinge__penalty=wgan_gp__norm=spectral_norm` (a label is the
value without '@', '()' and quotes, unless `labels` names it), and runs in <out_dir>/<name>.
A cell is finished when its run directory has the export of the last step and the sweep's result
file (RESULT_JSON, its metric values); a finished cell is not run again. This module is the
sweep's description and bookkeeping; `tf_convgan.cli.sweep` runs the cells. The out_dir, the
cells' run directories and the reports may be local or URLs (gs://, ram://): they are read and
written through run_dir.files; the sweep file and its gin files are read from the local disk.
"""
import dataclasses
import io
import itertools
import json
import math
import os
import re
import shlex

import numpy as np

from tf_convgan import run_dir
from tf_convgan.errors import ConfigError

RESULT_JSON = "sweep_result.json"
TABLE_MD = "sweep_results.md"
HEATMAP_PNG = "sweep_heatmap.png"
HEATMAP_MD = "sweep_heatmap.md"
CURVES_PNG = "sweep_curves.png"
GROUPS_MD = "sweep_groups.md"
HISTORY_MD = "sweep_history.md"
SAMPLES_PNG = "sweep_samples.png"
METRICS = ("fid", "pixel")
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    binding: str  # None: each value is a tuple of 'param = value' bindings
    values: tuple
    labels: tuple

    def bindings(self, i):
        """The gin bindings of value i."""
        if self.binding is None:
            return tuple(self.values[i])
        return (f"{self.binding} = {_gin_value(self.values[i])}",)


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    labels: tuple  # (axis name, label) in grid order
    bindings: tuple  # gin binding strings, in grid order

    def label(self, axis):
        return dict(self.labels)[axis]


@dataclasses.dataclass(frozen=True)
class Sweep:
    gin_files: tuple
    gin_params: tuple
    axes: tuple
    metric: str = "fid"
    num_samples: int = 2000
    heatmap: dict = None
    curves: dict = None
    base_dir: str = "."  # the sweep file's directory (gin files may be relative to it)


def value_label(value):
    """'@wgan_gp()' -> 'wgan_gp', "'spectral_norm'" -> 'spectral_norm', None -> 'none'."""
    text = "none" if value is None else str(value)
    text = text.strip().lstrip("@")
    if text.endswith("()"):
        text = text[:-2]
    text = text.strip("'\"").replace("/", "-")
    return _LABEL_CHARS.sub("_", text) or "empty"


def _gin_value(value):
    """A YAML value as gin text: strings as written (gin syntax), None, numbers, booleans."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def parse_sweep(spec, *, base_dir="."):
    """A Sweep from the parsed YAML mapping; ConfigError naming the bad field."""
    if not isinstance(spec, dict):
        raise ConfigError("sweep file: must be a mapping with gin_files, gin_params and grid")
    unknown = set(spec) - {"gin_files", "gin_params", "grid", "metric", "num_samples", "heatmap",
                         "curves"}
    if unknown:
        raise ConfigError(f"sweep file: unknown field(s) {', '.join(sorted(unknown))}")
    gin_files = tuple(spec.get("gin_files") or ())
    gin_params = tuple(spec.get("gin_params") or ())
    grid = spec.get("grid")
    if not grid or not isinstance(grid, list):
        raise ConfigError("sweep file: grid must be a non-empty list of axes")
    axes = []
    for i, axis in enumerate(grid):
        if not isinstance(axis, dict) or not {"name", "values"} <= set(axis):
            raise ConfigError(f"sweep file: grid[{i}] needs name and values (and binding, "
                              f"unless every value is a list of bindings)")
        values = tuple(axis["values"])
        if not values:
            raise ConfigError(f"sweep file: grid[{i}] ({axis['name']}) has no values")
        binding = axis.get("binding")
        if binding is None:
            values = tuple(_binding_list(v, f"grid[{i}] ({axis['name']})") for v in values)
            if not axis.get("labels"):
                raise ConfigError(f"sweep file: grid[{i}] ({axis['name']}) has no binding, so "
                                  f"its values are lists of bindings and need labels")
        labels = tuple(axis.get("labels") or (value_label(v) for v in values))
        labels = tuple(_LABEL_CHARS.sub("_", str(label)) for label in labels)
        if len(labels) != len(values) or len(set(labels)) != len(labels):
            raise ConfigError(f"sweep file: grid[{i}] ({axis['name']}): the labels must be "
                              f"distinct, one per value; got {list(labels)}")
        name = _LABEL_CHARS.sub("_", str(axis["name"]))
        axes.append(Axis(name, None if binding is None else str(binding), values, labels))
    if len({a.name for a in axes}) != len(axes):
        raise ConfigError("sweep file: the grid's axis names must be distinct")
    metric = spec.get("metric", "fid")
    if metric not in METRICS:
        raise ConfigError(f"sweep file: metric must be one of {', '.join(METRICS)}, "
                          f"got {metric!r}")
    heatmap = dict(spec.get("heatmap") or {})
    names = [a.name for a in axes]
    heatmap.setdefault("rows", names[0])
    heatmap.setdefault("columns", names[1] if len(names) > 1 else names[0])
    heatmap.setdefault("value", "fid")
    for key in ("rows", "columns"):
        chosen = heatmap[key]
        chosen = (chosen,) if isinstance(chosen, str) else tuple(chosen or ())
        if not chosen or any(name not in names for name in chosen):
            raise ConfigError(f"sweep file: heatmap.{key} = {heatmap[key]!r} is not an axis "
                              f"({', '.join(names)}) or a list of axes")
        heatmap[key] = chosen
    curves = spec.get("curves")
    if curves is not None:
        curves = dict(curves)
        curves.setdefault("value", "fid")
        if curves.get("group") not in names:
            raise ConfigError(f"sweep file: curves.group = {curves.get('group')!r} is not an "
                              f"axis ({', '.join(names)})")
        if metric != "fid":
            raise ConfigError("sweep file: curves need metric 'fid' (the runs' metrics.csv)")
    num_samples = spec.get("num_samples", 2000)
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ConfigError(f"sweep file: num_samples must be an integer >= 2, got {num_samples!r}")
    return Sweep(gin_files, gin_params, tuple(axes), metric, num_samples, heatmap, curves,
                 base_dir)


def _binding_list(value, where):
    """A value of an axis without `binding`: a list of 'param = value' strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(b, str) and "=" in b for b in value):
        raise ConfigError(f"sweep file: {where}: without a binding, each value must be a list "
                          f"of gin bindings 'param = value', got {value!r}")
    return tuple(b.strip() for b in value)


def load_sweep(path):
    """The Sweep of a YAML sweep file."""
    import yaml
    with open(path) as f:
        try:
            spec = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"sweep file {path}: not valid YAML ({' '.join(str(e).split())})"
                              ) from None
    return parse_sweep(spec, base_dir=os.path.dirname(os.path.abspath(path)))


def expand(sweep):
    """Every cell of the grid, the last axis varying fastest."""
    cells = []
    for choice in itertools.product(*(range(len(a.values)) for a in sweep.axes)):
        labels = tuple((a.name, a.labels[i]) for a, i in zip(sweep.axes, choice))
        bindings = tuple(b for a, i in zip(sweep.axes, choice) for b in a.bindings(i))
        name = "__".join(f"{axis}={label}" for axis, label in labels)
        cells.append(Cell(name, labels, bindings))
    return cells


def cell_dir(out_dir, cell):
    return os.path.join(out_dir, cell.name)


def gin_files(sweep):
    """The sweep's gin files: as given when they exist (or are in gin_configs/, resolved by the
    parser), else relative to the sweep file."""
    found = []
    for path in sweep.gin_files:
        beside = os.path.join(sweep.base_dir, path)
        found.append(beside if not os.path.exists(path) and os.path.exists(beside) else path)
    return found


def gin_params(sweep, cell):
    """The bindings of one cell: the shared ones, then the cell's (the cell's win)."""
    return list(sweep.gin_params) + list(cell.bindings)


def command(sweep, cell, out_dir, *, python="python", run_py="run.py"):
    """The run.py command line (a list) that trains one cell."""
    args = [python, run_py]
    for path in gin_files(sweep):
        args += ["--gin_file", path]
    for binding in gin_params(sweep, cell):
        args += ["--gin_param", binding]
    return args + ["--model_dir", cell_dir(out_dir, cell)]


def format_command(args):
    return shlex.join(args)


# ----------------------------------------------------------------------------- results

def result_path(model_dir):
    return os.path.join(model_dir, RESULT_JSON)


def is_exported(model_dir):
    return run_dir.files.isfile(os.path.join(run_dir.export_dir(model_dir), "saved_model.pb"))


def is_finished(model_dir):
    """The cell's run ended (export of the last step, or divergence) and its result is
    recorded."""
    if not run_dir.files.isfile(result_path(model_dir)):
        return False
    return is_exported(model_dir) or "diverged" in read_result(model_dir)


def read_result(model_dir):
    return json.loads(run_dir.read_text(result_path(model_dir)))


def write_result(model_dir, values):
    run_dir.write_text(result_path(model_dir),
                       json.dumps({k: float(v) for k, v in values.items()}, indent=1,
                                  sort_keys=True))


# ----------------------------------------------------------------------------- table, heat map

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
