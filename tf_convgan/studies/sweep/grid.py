"""A sweep's grid: the sweep file, its cells, their run directories, run.py commands and result
files.

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
sweep's description and bookkeeping, tf_convgan.studies.sweep.report its tables and figures;
`tf_convgan.cli.sweep` runs the cells. The out_dir, the cells' run directories and the reports
may be local or URLs (gs://, ram://): they are read and written through run_dir.files; the sweep
file and its gin files are read from the local disk.
"""
import dataclasses
import itertools
import json
import os
import re
import shlex

from tf_convgan import run_dir
from tf_convgan.errors import ConfigError

RESULT_JSON = "sweep_result.json"
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
