"""Runs a sweep: one training run per cell of a grid of gin bindings, then a table and a heat map.

    python -m tf_convgan.sweep --sweep FILE --out_dir DIR [--max_cells N]
    python -m tf_convgan.sweep --sweep FILE --out_dir DIR --print_commands [--commands_file F]
    python -m tf_convgan.sweep --sweep FILE --out_dir DIR --collect

The sweep file is described in tf_convgan.studies.sweep. Without a mode the cells run one after
another in this process, each in <out_dir>/<cell name>, with one progress line per cell; a
finished cell (its export and its sweep_result.json; or a diverged run, recorded as such in the
table) is skipped, an unfinished one resumes from its own checkpoint (rerun the same command
after a kill). At the end (and after every cell) it writes <out_dir>/sweep_results.md,
sweep_heatmap.{png,md} and sweep_samples.png (write_report). `--print_commands` prints one
`python run.py ...` command per cell (or writes them to --commands_file), for any scheduler;
`--collect` then builds the table from the run directories (metric 'fid': each run's metrics.csv;
'pixel': computed from each run's EMA generator). Bad input prints one line `error: ...` naming
the flag and exits with status 2. <out_dir> may be local or a URL (gs://...): every read and
write of it goes through run_dir.files.
"""
import os
import sys
import time

import numpy as np

from tf_convgan import run_dir
from tf_convgan.errors import ConfigError
from tf_convgan.studies import sweep as sweep_lib


def metrics_from_csv(model_dir):
    """The last row of the run's metrics.csv (the in-training evaluator's; it evaluates at the
    last step) as {metric: float}, or None when there is none."""
    path = os.path.join(model_dir, run_dir.METRICS_CSV)
    if not run_dir.files.isfile(path):
        return None
    from tf_convgan.evaluation.hook import read_metrics_csv
    table = read_metrics_csv(path)
    if not len(table["step"]):
        return None
    return {k: float(v[-1]) for k, v in table.items() if k != "eval_seconds"}


def pixel_metrics(fake_images, real_images, *, seed=0):
    """FID and KID of 8x8 grey-pixel features (evaluation.metrics.pixel_features): a cheap
    stand-in for the Inception features, for tests and smoke runs (not comparable to FID)."""
    from tf_convgan.evaluation import metrics
    fake, real = metrics.pixel_features(fake_images), metrics.pixel_features(real_images)
    kid, kid_std = metrics.kernel_inception_distance(
        fake, real, num_subsets=10, subset_size=min(len(fake), len(real), 1000), seed=seed)
    return {"fid": metrics.frechet_distance_of_features(fake, real), "kid": kid,
            "kid_std": kid_std}


def _configured_data(sweep, cell):
    """The cell's training data source (gin's train.data), built from its config."""
    import gin
    from tf_convgan.cli import config
    gin.clear_config()
    try:
        config.parse(sweep_lib.gin_files(sweep), sweep_lib.gin_params(sweep, cell))
        return gin.query_parameter("train.data").scoped_configurable_fn()
    finally:
        gin.clear_config()


def pixel_metrics_of(generator, source, num_samples, *, seed=0, batch_size=100):
    """pixel_metrics of `num_samples` samples of the generator (z ~ N(0, 1), labels
    uniform, from `seed`) against as many training examples."""
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    fake = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        z = rng.standard_normal((n, generator.z_dim)).astype(np.float32)
        labels = rng.integers(0, generator.num_classes, size=n).astype(np.int32)
        fake.append(np.asarray(generator(tf.constant(z), tf.constant(labels), training=False)))
    real = np.stack([image.numpy() for image, _ in source.dataset(seed=seed).take(num_samples)])
    return pixel_metrics(np.concatenate(fake), real, seed=seed)


def cell_metrics(sweep, cell, model_dir, generator=None):
    """The cell's metric values: 'fid' from its metrics.csv, 'pixel' computed from `generator`
    (default: the run's EMA generator, loaded from its latest checkpoint). None if unavailable."""
    if sweep.metric == "fid":
        return metrics_from_csv(model_dir)
    if generator is None:
        if not sweep_lib.is_exported(model_dir):
            return None
        from tf_convgan.run_dir.generators import load_generator_ema
        generator, _ = load_generator_ema(model_dir)
    return pixel_metrics_of(generator, _configured_data(sweep, cell), sweep.num_samples)


def train_cell(sweep, cell, model_dir):
    """Trains one cell in this process (as run.py would, resuming from its checkpoint); returns
    the GAN."""
    import gin
    from tf_convgan.cli import config
    from tf_convgan.training import strategy
    gin.clear_config()
    try:
        config.parse(sweep_lib.gin_files(sweep), sweep_lib.gin_params(sweep, cell))
        strategy.create_early_if_configured()
        return config.entry_point()(model_dir=model_dir)
    finally:
        gin.clear_config()


def histories(sweep, out_dir):
    """{cell name: its metrics.csv as {column: array}} for the cells that have one."""
    from tf_convgan.evaluation.hook import read_metrics_csv
    found = {}
    for cell in sweep_lib.expand(sweep):
        path = os.path.join(sweep_lib.cell_dir(out_dir, cell), run_dir.METRICS_CSV)
        if run_dir.files.isfile(path):
            found[cell.name] = read_metrics_csv(path)
    return found


REPORT_NAMES = (sweep_lib.TABLE_MD, sweep_lib.HEATMAP_PNG, sweep_lib.HEATMAP_MD,
                sweep_lib.SAMPLES_PNG, sweep_lib.CURVES_PNG, sweep_lib.HISTORY_MD,
                sweep_lib.GROUPS_MD)  # what write_report writes into out_dir


def _is_sweep_dir(sweep, out_dir):
    """Whether `out_dir` is this sweep's, made before the library marked its output directories
    (or by the cells' run.py commands): it holds at least one of its cells' run directories and
    nothing but those and the report's files."""
    cells = {os.path.basename(sweep_lib.cell_dir(out_dir, cell)) for cell in
             sweep_lib.expand(sweep)}
    entries = run_dir.files.listdir(out_dir)
    runs = [e for e in entries if e in cells and run_dir.is_run_directory(
        os.path.join(out_dir, e))]
    return bool(runs) and all(e in cells or e in REPORT_NAMES for e in entries)


def check_out_dir(sweep, out_dir, *, name="--out_dir"):
    """Raises ConfigError naming `name` unless the sweep may write its cells and report into
    `out_dir` (run_dir.outputs)."""
    run_dir.outputs.check_output_dir(out_dir, name=name, command="sweep", names=REPORT_NAMES,
                                     own=lambda d: _is_sweep_dir(sweep, d))


def is_commands_file(path):
    """Whether `path` is a --commands_file this command wrote (run.py command lines, each with
    --model_dir): the only existing file that --commands_file replaces."""
    import shlex
    try:
        if run_dir.files.getsize(path) > 1 << 24:
            return False
        lines = [line for line in run_dir.read_text(path).splitlines() if line.strip()]
        return bool(lines) and all("--model_dir" in shlex.split(line)[2:] and
                                   shlex.split(line)[1].endswith(".py") for line in lines)
    except (OSError, ValueError, IndexError):
        return False


def write_report(sweep, out_dir, results):
    """<out_dir>/sweep_results.md, the heat map (sweep_heatmap.png and its numbers,
    sweep_heatmap.md) and the finished runs' last sample grids side by side
    (sweep_samples.png); with `curves` in the sweep file also the metric-against-step curves,
    their values (sweep_history.md) and the per-group table. out_dir local or a URL."""
    run_dir.outputs.claim_output_dir(out_dir, "sweep")
    sweep_lib.write_table(os.path.join(out_dir, sweep_lib.TABLE_MD), sweep, results)
    sweep_lib.write_heatmap(os.path.join(out_dir, sweep_lib.HEATMAP_PNG), sweep, results)
    sweep_lib.write_heatmap_table(os.path.join(out_dir, sweep_lib.HEATMAP_MD), sweep, results)
    # of the finished cells only (a running cell's samples and curve are partial)
    finished = {name for name, r in results.items() if r and "diverged" not in r}
    sweep_lib.write_samples(os.path.join(out_dir, sweep_lib.SAMPLES_PNG), sweep, out_dir,
                            names=finished)
    if sweep.curves:
        found = {name: h for name, h in histories(sweep, out_dir).items() if name in finished}
        sweep_lib.write_curves(os.path.join(out_dir, sweep_lib.CURVES_PNG), sweep, found)
        sweep_lib.write_history_table(os.path.join(out_dir, sweep_lib.HISTORY_MD), sweep, found)
        sweep_lib.write_group_table(os.path.join(out_dir, sweep_lib.GROUPS_MD), sweep, results)


def run_sweep(sweep, out_dir, *, max_cells=None, train=train_cell, log=print):
    """Runs the unfinished cells (at most `max_cells` of them), one after another; returns
    {cell name: metrics or None}. `train(sweep, cell, model_dir)` trains one cell and returns
    the GAN (tests count its calls)."""
    cells = sweep_lib.expand(sweep)
    results, trained = {}, 0
    for index, cell in enumerate(cells, 1):
        model_dir = sweep_lib.cell_dir(out_dir, cell)
        prefix = f"[{index}/{len(cells)}] {cell.name}:"
        if sweep_lib.is_finished(model_dir):
            results[cell.name] = sweep_lib.read_result(model_dir)
            log(f"{prefix} finished, skipped ({_summary(results[cell.name])})")
            continue
        if max_cells is not None and trained >= max_cells:
            results[cell.name] = None
            log(f"{prefix} not run (--max_cells {max_cells})")
            continue
        start = time.time()
        gan = None
        if not sweep_lib.is_exported(model_dir):
            from tf_convgan.training.loop import TrainingDivergedError
            trained += 1
            try:
                gan = train(sweep, cell, model_dir)
            except TrainingDivergedError as e:  # a result of the study, not a failure
                sweep_lib.write_result(model_dir, {"diverged": 1.0})
                results[cell.name] = sweep_lib.read_result(model_dir)
                log(f"{prefix} diverged after {time.time() - start:.0f}s: {e}")
                write_report(sweep, out_dir, results)
                continue
        values = cell_metrics(sweep, cell, model_dir,
                              generator=getattr(gan, "generator_ema", None))
        if values is None or not sweep_lib.is_exported(model_dir):
            raise ConfigError(
                f"sweep: cell {cell.name} ended without "
                + ("its export" if not sweep_lib.is_exported(model_dir) else
                   "metrics.csv (metric 'fid' needs train.evaluator, e.g. @fid_evaluator())"))
        sweep_lib.write_result(model_dir, values)
        results[cell.name] = sweep_lib.read_result(model_dir)
        log(f"{prefix} done in {time.time() - start:.0f}s ({_summary(results[cell.name])})")
        write_report(sweep, out_dir, results)
    write_report(sweep, out_dir, results)
    return results


def collect(sweep, out_dir, *, log=print):
    """The table and heat map from the cells' run directories as they are (cells not finished
    are marked 'not run'); records the metrics of exported cells that lack a result file."""
    results = {}
    for cell in sweep_lib.expand(sweep):
        model_dir = sweep_lib.cell_dir(out_dir, cell)
        if sweep_lib.is_finished(model_dir):
            results[cell.name] = sweep_lib.read_result(model_dir)
        elif sweep_lib.is_exported(model_dir):
            values = cell_metrics(sweep, cell, model_dir)
            if values is not None:
                sweep_lib.write_result(model_dir, values)
            results[cell.name] = values
        else:
            results[cell.name] = None
        log(f"{cell.name}: {_summary(results[cell.name]) if results[cell.name] else 'not run'}")
    write_report(sweep, out_dir, results)
    return results


def _summary(values):
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()) if k != "step")


def print_commands(sweep, out_dir, *, python="python", run_py="run.py", file=None):
    lines = [sweep_lib.format_command(sweep_lib.command(sweep, cell, out_dir, python=python,
                                                       run_py=run_py))
             for cell in sweep_lib.expand(sweep)]
    text = "\n".join(lines) + "\n"
    if file:
        run_dir.write_text(file, text)
    else:
        sys.stdout.write(text)
    return lines


def _flag_values():
    """The command's own absl FlagValues (importable beside run.py's global flags)."""
    from absl import flags
    f = flags.FlagValues()
    flags.DEFINE_string("sweep", None, "The sweep file (YAML, read from the local disk) "
                        "(required).", flag_values=f)
    flags.DEFINE_string("out_dir", None, "One run directory per cell in here, and the table and "
                        "heat map (local or a URL such as gs://) (required).", flag_values=f)
    flags.DEFINE_bool("print_commands", False, "Print one run.py command per cell instead of "
                      "running them.", flag_values=f)
    flags.DEFINE_bool("collect", False, "Build the table and heat map from the existing run "
                      "directories.", flag_values=f)
    flags.DEFINE_string("commands_file", None, "With --print_commands: write the commands to "
                        "this file.", flag_values=f)
    flags.DEFINE_integer("max_cells", None, "Train at most this many cells, then stop (rerun to "
                         "continue).", lower_bound=0, flag_values=f)
    return f


def main(argv):
    """`python -m tf_convgan.sweep` (argv[0] is the program name); returns the exit status (2:
    bad input, one line `error: ...` naming the flag)."""
    from tf_convgan.errors import FlagError, blame, command_status, parse_flags
    f = _flag_values()

    def run():
        parse_flags(f, argv, usage=__doc__)
        for name in ("sweep", "out_dir"):
            if not getattr(f, name):
                raise FlagError(name, "is required")
        if f.print_commands and f.collect:
            raise FlagError("collect", "cannot be combined with --print_commands")
        if f.commands_file and not f.print_commands:
            raise FlagError("commands_file", "needs --print_commands")
        if not os.path.isfile(f.sweep):  # the user's input: a local file
            raise FlagError("sweep", f"{f.sweep!r} does not exist")
        with blame("sweep"):
            sweep = sweep_lib.load_sweep(f.sweep)
        if f.print_commands:  # the cells' run.py commands check their own directories
            run_dir.outputs.check_not_in_checkpoints(f.out_dir, name="--out_dir")
        else:
            check_out_dir(sweep, f.out_dir)
        if f.commands_file:
            run_dir.outputs.check_output_file(f.commands_file, name="--commands_file",
                                              own=is_commands_file)
        if f.print_commands:
            print_commands(sweep, f.out_dir, file=f.commands_file)
        elif f.collect:
            collect(sweep, f.out_dir)
        else:
            run_sweep(sweep, f.out_dir, max_cells=f.max_cells)

    return command_status(run)
