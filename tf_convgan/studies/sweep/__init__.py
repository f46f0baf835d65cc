"""Sweeps: a grid of gin bindings -> one run directory per cell -> a table and a heat map.

  grid    the sweep file (its format: that module's docstring), its cells, their run directories,
          run.py commands and result files
  report  the table, heat map, curves and sample grids of the cells' results
The command `python -m tf_convgan.sweep` (tf_convgan.cli.sweep) runs the cells. The names below
are the package's API.
"""
from tf_convgan.studies.sweep.grid import (  # noqa: F401
    METRICS, RESULT_JSON, Axis, Cell, Sweep, cell_dir, command, expand, format_command,
    gin_files, gin_params, is_exported, is_finished, load_sweep, parse_sweep, read_result,
    result_path, value_label, write_result)
from tf_convgan.studies.sweep.report import (  # noqa: F401
    CURVES_PNG, GROUPS_MD, HEATMAP_MD, HEATMAP_PNG, HISTORY_MD, SAMPLES_PNG, TABLE_MD,
    group_curves, heatmap_matrix, write_curves, write_group_table, write_heatmap,
    write_heatmap_table, write_history_table, write_samples, write_table)
