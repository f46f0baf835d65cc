"""The sweep runner (studies/sweep.py, cli/sweep.py): a 2x2 grid of the tiny config (tests/tiny.gin)
on 16 random images, 2 steps per cell, metric 'pixel'."""
import glob
import os
import shlex

import gin
import numpy as np
import pytest
import yaml

from tf_convgan import run_dir
from tf_convgan.cli import config
from tf_convgan.cli import sweep as cli_sweep
from tf_convgan.errors import ConfigError
from tf_convgan.run_dir import images
from tf_convgan.studies import sweep as sweep_lib
from helpers import TINY_GIN, ram_url

NAMES = ["loss=non_saturating__penalty=r1", "loss=non_saturating__penalty=none",
         "loss=hinge__penalty=r1", "loss=hinge__penalty=none"]


def _spec(npy):
    return {"gin_files": [TINY_GIN],
            "gin_params": [f"npy_source.path = '{npy}'", "train.num_steps = 2",
                           "train.sample_every = 2"],
            "grid": [{"name": "loss", "binding": "GAN.loss",
                      "values": ["@non_saturating()", "@hinge()"]},
                     {"name": "penalty", "binding": "GAN.penalty", "values": ["@r1", None]}],
            "metric": "pixel", "num_samples": 8,
            "heatmap": {"rows": "penalty", "columns": "loss"}}


def _write_sweep(tmp_path, npy):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(_spec(npy)))
    return str(path)


def test_the_grid_expands_into_named_cells_with_their_bindings(tmp_path):
    sweep = sweep_lib.parse_sweep(_spec("x.npy"))
    cells = sweep_lib.expand(sweep)
    assert [c.name for c in cells] == NAMES
    assert cells[1].bindings == ("GAN.loss = @non_saturating()", "GAN.penalty = None")
    assert cells[2].labels == (("loss", "hinge"), ("penalty", "r1"))
    assert sweep_lib.gin_params(sweep, cells[3])[-2:] == ["GAN.loss = @hinge()",
                                                          "GAN.penalty = None"]
    assert sweep_lib.cell_dir("out", cells[0]) == os.path.join("out", NAMES[0])
    assert sweep_lib.value_label("'spectral_norm'") == "spectral_norm"
    assert sweep_lib.value_label("@d/adam()") == "d-adam"
    labelled = dict(_spec("x.npy"), heatmap=None)
    labelled["grid"] = [{"name": "norm", "binding": "sndcgan_discriminator.normalization",
                         "values": ["'none'", "'spectral_norm'"], "labels": ["no", "sn"]}]
    assert [c.name for c in sweep_lib.expand(sweep_lib.parse_sweep(labelled))] == [
        "norm=no", "norm=sn"]


@pytest.mark.parametrize("change,field", [
    (lambda s: s.pop("grid"), "grid"),
    (lambda s: s.update(metric="inception"), "metric"),
    (lambda s: s.update(heatmap={"rows": "lr"}), "heatmap.rows"),
    (lambda s: s.update(heatmap={"rows": ["loss", "lr"]}), "heatmap.rows"),
    (lambda s: s["grid"][0].update(labels=["a", "a"]), "labels"),
    (lambda s: s.update(seeds=3), "unknown field"),
    (lambda s: s["grid"][0].pop("binding"), "bindings 'param = value'"),
    (lambda s: s["grid"][0].update(binding=None, values=[["GAN.penalty = @r1"]]), "labels"),
    (lambda s: s.update(curves={"group": "seed"}), "curves.group"),
])
def test_bad_sweep_files_name_the_field(change, field):
    spec = _spec("x.npy")
    change(spec)
    with pytest.raises(ConfigError, match=field):
        sweep_lib.parse_sweep(spec)


def test_a_sweep_file_that_is_not_yaml_is_one_line_naming_the_flag(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("grid: [unclosed\n")
    out = tmp_path / "out"
    assert cli_sweep.main(["sweep", "--sweep", str(path), "--out_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --sweep: sweep file {path}: not valid YAML (")
    assert err.count("\n") == 1 and not out.exists()


def test_print_commands_are_run_py_command_lines_that_parse(tmp_path, capsys):
    import run  # the project root is on sys.path (pyproject: pythonpath)
    sweep = sweep_lib.load_sweep(_write_sweep(tmp_path, "/data/x.npy"))
    out = str(tmp_path / "out")
    commands_file = tmp_path / "commands.txt"
    assert cli_sweep.main(["sweep", "--sweep", _write_sweep(tmp_path, "/data/x.npy"),
                           "--out_dir", out, "--print_commands", "--commands_file",
                           str(commands_file)]) == 0
    lines = commands_file.read_text().splitlines()
    assert len(lines) == 4
    cli_sweep.print_commands(sweep, out)
    assert capsys.readouterr().out.splitlines() == lines
    for line, cell in zip(lines, sweep_lib.expand(sweep)):
        args = shlex.split(line)
        assert args[:2] == ["python", "run.py"]
        try:
            run.FLAGS(args[1:])
            assert run.FLAGS.model_dir == os.path.join(out, cell.name)
            assert run.FLAGS.gin_file == [TINY_GIN]
            assert run.FLAGS.gin_param[-2:] == list(cell.bindings)
            gin.clear_config()
            config.parse(run.FLAGS.gin_file, run.FLAGS.gin_param)
            assert gin.query_parameter("train.num_steps") == 2
            penalty = gin.query_parameter("GAN.penalty")
            assert (penalty is None) == cell.name.endswith("none")
        finally:
            run.FLAGS.unparse_flags()
            gin.clear_config()


def test_sweep_runs_resumes_skips_and_collects(tmp_path, npy_path, capsys):
    """Killed after one cell (max_cells=1), the rerun trains the other three, a cell killed in the
    middle of its run resumes from its checkpoint, a finished sweep trains nothing, and the table
    and heat map come from the real run directories (also with --collect)."""
    sweep_file = _write_sweep(tmp_path, npy_path)
    sweep = sweep_lib.load_sweep(sweep_file)
    out = str(tmp_path / "out")
    calls = []

    def counting_train(sweep, cell, model_dir):
        calls.append(cell.name)
        return cli_sweep.train_cell(sweep, cell, model_dir)

    results = cli_sweep.run_sweep(sweep, out, max_cells=1, train=counting_train)
    assert calls == NAMES[:1]
    assert results[NAMES[0]]["fid"] > 0 and results[NAMES[1]] is None
    assert sweep_lib.is_finished(os.path.join(out, NAMES[0]))
    assert "not run" in (tmp_path / "out" / sweep_lib.TABLE_MD).read_text()
    # The second cell is killed after its first step: a checkpoint, no export.
    partial = sweep_lib.parse_sweep({**_spec(npy_path), "gin_params":
                                     _spec(npy_path)["gin_params"] + ["train.num_steps = 1",
                                                                       "train.export_at_end = False"]})
    cli_sweep.train_cell(partial, sweep_lib.expand(partial)[1], os.path.join(out, NAMES[1]))
    assert not sweep_lib.is_exported(os.path.join(out, NAMES[1]))
    capsys.readouterr()

    results = cli_sweep.run_sweep(sweep, out, train=counting_train)
    assert calls == NAMES
    printed = capsys.readouterr().out
    assert f"[1/4] {NAMES[0]}: finished, skipped" in printed
    assert "restored" in printed and "at step 1" in printed  # the killed cell resumed
    for name in NAMES[1:]:
        assert f"{name}: done in" in printed
    assert all(sweep_lib.is_finished(os.path.join(out, n)) for n in NAMES)

    cli_sweep.run_sweep(sweep, out, train=counting_train)
    assert calls == NAMES  # nothing trained again

    table = (tmp_path / "out" / sweep_lib.TABLE_MD).read_text().splitlines()
    assert table[0].startswith("| loss | penalty | fid | kid | kid_std")
    for name in NAMES:
        row = next(line for line in table if f"`{name}`" in line)
        fid = float(row.split("|")[3])
        assert fid == pytest.approx(results[name]["fid"], rel=1e-3)
    assert (tmp_path / "out" / sweep_lib.HEATMAP_PNG).stat().st_size > 1000
    rows, columns, matrix = sweep_lib.heatmap_matrix(sweep, results)
    assert rows == ("r1", "none") and columns == ("non_saturating", "hinge")
    assert matrix[1, 0] == pytest.approx(results[NAMES[1]]["fid"])
    heatmap_md = (tmp_path / "out" / sweep_lib.HEATMAP_MD).read_text().splitlines()
    assert heatmap_md[2] == "| penalty \\ loss | non_saturating | hinge |"
    assert float(heatmap_md[5].split("|")[2]) == pytest.approx(results[NAMES[1]]["fid"], rel=1e-3)
    assert (tmp_path / "out" / sweep_lib.SAMPLES_PNG).stat().st_size > 1000  # no curves needed

    # --collect from the directories alone: a lost result file is recomputed from the export.
    os.remove(os.path.join(out, NAMES[2], sweep_lib.RESULT_JSON))
    os.remove(tmp_path / "out" / sweep_lib.TABLE_MD)
    assert cli_sweep.main(["sweep", "--sweep", sweep_file, "--out_dir", out, "--collect"]) == 0
    assert sweep_lib.read_result(os.path.join(out, NAMES[2]))["fid"] == pytest.approx(
        results[NAMES[2]]["fid"], rel=1e-4)
    assert (tmp_path / "out" / sweep_lib.TABLE_MD).read_text().splitlines() == table
    assert calls == NAMES


def test_a_sweep_on_a_url_never_touches_the_local_disk(no_local_disk_for_ram, capsys):
    """out_dir on an object store (ram:// stands in for gs://): the cells' results, the table,
    the heat map and the commands file are written there and read back from there (a finished
    cell is skipped on the rerun); no local file function sees the path (the fixture checks).
    The cells' training is stood in for by what a run leaves: metrics.csv and an export."""
    from tf_convgan.training.loop import TrainingDivergedError
    sweep = sweep_lib.parse_sweep(dict(_spec("x.npy"), metric="fid"))
    out = ram_url("sweep") + "/out"

    def fake_train(sweep, cell, model_dir):
        if cell.name == NAMES[1]:
            raise TrainingDivergedError("non-finite d_loss at step 1")
        run_dir.append_csv_row(f"{model_dir}/{run_dir.METRICS_CSV}", 2, {"fid": 12.5})
        run_dir.write_bytes(f"{run_dir.export_dir(model_dir)}/saved_model.pb", b"")

    results = cli_sweep.run_sweep(sweep, out, max_cells=2, train=fake_train)
    assert results[NAMES[0]] == {"step": 2.0, "fid": 12.5}
    assert results[NAMES[1]] == {"diverged": 1.0}
    assert results[NAMES[2]] is None
    table = run_dir.read_text(f"{out}/{sweep_lib.TABLE_MD}").splitlines()
    assert table[0] == "| loss | penalty | fid | directory |"
    assert table[2:4] == [f"| non_saturating | r1 | 12.5 | `{NAMES[0]}` |",
                          f"| non_saturating | none | diverged | `{NAMES[1]}` |"]
    assert table[4].startswith("| hinge | r1 | not run |")
    assert images.read_png(f"{out}/{sweep_lib.HEATMAP_PNG}").ndim == 3
    capsys.readouterr()

    cli_sweep.run_sweep(sweep, out, max_cells=0, train=fake_train)
    printed = capsys.readouterr().out
    assert f"[1/4] {NAMES[0]}: finished, skipped (fid=12.5)" in printed
    assert f"[2/4] {NAMES[1]}: finished, skipped" in printed
    assert cli_sweep.collect(sweep, out, log=lambda line: None) == results
    cli_sweep.print_commands(sweep, out, file=f"{out}/commands.txt")
    commands = run_dir.read_text(f"{out}/commands.txt").splitlines()
    assert len(commands) == 4 and commands[0].endswith(f"--model_dir {out}/{NAMES[0]}")


# The study's sweep files and their number of cells: the CIFAR-10 files have the study's 4 losses x
# 3 penalties x 4 normalizations, the CPU-sized file 2 of its losses, its seeds file 2 seeds x 2
# normalizations.
STUDY_SWEEPS = {"kurach_fashion_mnist.yaml": 24, "kurach_fashion_mnist_seeds.yaml": 4,
                "kurach_cifar10_sndcgan.yaml": 48, "kurach_cifar10_resnet.yaml": 48}


def test_every_sweep_file_of_the_studies_is_tested():
    from helpers import ROOT
    found = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "gin_configs", "**",
                                                                  "*.yaml"), recursive=True)}
    assert found == set(STUDY_SWEEPS) | {"image_comparison_fashion_mnist.yaml"}


@pytest.mark.parametrize("name", sorted(STUDY_SWEEPS))
def test_study_sweep_files_expand_and_every_cell_parses(name):
    """The large-scale study's sweep files: every cell's gin parses and binds its D
    normalization."""
    from helpers import ROOT
    sweep = sweep_lib.load_sweep(os.path.join(ROOT, "gin_configs", "study", name))
    cells = sweep_lib.expand(sweep)
    assert len(cells) == STUDY_SWEEPS[name] == len({c.name for c in cells})
    for cell in cells:
        gin.clear_config()
        try:
            config.parse(sweep_lib.gin_files(sweep), sweep_lib.gin_params(sweep, cell))
            d = gin.query_parameter("train.discriminator_fn").configurable.name
            assert gin.query_parameter(f"{d}.normalization") == cell.label("norm")
        finally:
            gin.clear_config()


def test_heat_map_rows_may_combine_axes_and_the_rest_is_the_best_over_them(tmp_path):
    """rows [loss, penalty] x columns seed: one row per (loss, penalty) in grid order, each entry
    the lowest FID over the remaining axis (norm); n/a where no cell finished."""
    spec = _spec("x.npy")
    spec["grid"] += [{"name": "norm", "binding": "x.norm", "values": ["'bn'", "'sn'"]},
                     {"name": "seed", "binding": "train.seed", "values": [1, 2]}]
    spec["heatmap"] = {"rows": ["loss", "penalty"], "columns": "seed"}
    sweep = sweep_lib.parse_sweep(spec)
    cells = sweep_lib.expand(sweep)
    results = {c.name: {"fid": 10.0 * i} for i, c in enumerate(cells)
               if c.labels[:2] != (("loss", "hinge"), ("penalty", "none"))}
    rows, columns, matrix = sweep_lib.heatmap_matrix(sweep, results)
    assert rows == ("non_saturating / r1", "non_saturating / none", "hinge / r1",
                    "hinge / none") and columns == ("1", "2")
    # cells in grid order: loss, penalty, norm, seed -> the first row's bn cells are 0 and 1
    np.testing.assert_array_equal(matrix[:3], [[0, 10], [40, 50], [80, 90]])
    assert np.isnan(matrix[3]).all()
    text = sweep_lib.write_heatmap_table(str(tmp_path / "h.md"), sweep, results)
    assert text.splitlines()[0] == "FID, the best over norm:"
    assert text.splitlines()[-1] == "| hinge / none | – | – |"
    sweep_lib.write_heatmap(str(tmp_path / "h.png"), sweep, results)
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_an_axis_of_binding_lists_binds_each_value_s_parameters_together():
    spec = _spec("x.npy")
    spec["grid"] = [{"name": "seed", "binding": "train.seed", "values": [1, 2]},
                    {"name": "method", "labels": ["r1", "wgan_gp"],
                     "values": [["GAN.penalty = @r1"],
                                ["GAN.loss = @wasserstein()", "GAN.penalty = @wgan_gp"]]}]
    spec["heatmap"] = {"rows": "method", "columns": "seed"}
    cells = sweep_lib.expand(sweep_lib.parse_sweep(spec))
    assert [c.name for c in cells] == ["seed=1__method=r1", "seed=1__method=wgan_gp",
                                       "seed=2__method=r1", "seed=2__method=wgan_gp"]
    assert cells[3].bindings == ("train.seed = 2", "GAN.loss = @wasserstein()",
                                 "GAN.penalty = @wgan_gp")
    assert cells[0].bindings == ("train.seed = 1", "GAN.penalty = @r1")


def _curves_sweep():
    spec = _spec("x.npy")
    spec["grid"] = [{"name": "seed", "binding": "train.seed", "values": [1, 2]},
                    {"name": "method", "binding": "GAN.penalty", "values": ["@r1", None]}]
    spec["curves"] = {"group": "method"}
    spec["metric"] = "fid"
    spec["heatmap"] = {"rows": "method", "columns": "seed"}
    return sweep_lib.parse_sweep(spec)


def test_curves_average_each_group_over_the_other_axes_at_the_shared_steps():
    import numpy as np
    sweep = _curves_sweep()
    histories = {"seed=1__method=r1": {"step": np.array([10, 20, 30]),
                                        "fid": np.array([9.0, 5.0, 3.0])},
                 "seed=2__method=r1": {"step": np.array([10, 20]),  # a run still going
                                        "fid": np.array([7.0, 4.0])},
                 "seed=1__method=none": {"step": np.array([10]), "fid": np.array([50.0])}}
    curves = sweep_lib.group_curves(sweep, histories)
    steps, mean, low, high, n = curves["r1"]
    assert steps.tolist() == [10, 20] and n == 2
    np.testing.assert_allclose(mean, [8.0, 4.5])
    np.testing.assert_allclose(low, [7.0, 4.0])
    np.testing.assert_allclose(high, [9.0, 5.0])
    assert curves["none"][1].tolist() == [50.0] and curves["none"][4] == 1


def test_the_history_table_gives_each_run_s_value_at_every_step(tmp_path):
    import numpy as np
    sweep = _curves_sweep()
    histories = {"seed=1__method=r1": {"step": np.array([10, 20]), "fid": np.array([9.0, 5.25])},
                 "seed=2__method=none": {"step": np.array([10]), "fid": np.array([50.0])}}
    text = sweep_lib.write_history_table(str(tmp_path / "history.md"), sweep, histories)
    assert text.splitlines() == ["| seed | method | fid at 10 | fid at 20 |", "|---|---|---|---|",
                                 "| 1 | r1 | 9 | 5.25 |", "| 2 | none | 50 | – |"]


def test_the_group_table_gives_mean_and_range_and_counts_diverged_runs(tmp_path):
    sweep = _curves_sweep()
    results = {"seed=1__method=r1": {"fid": 10.0, "step": 30.0},
               "seed=2__method=r1": {"fid": 20.0, "step": 30.0},
               "seed=1__method=none": {"diverged": 1.0}}
    text = sweep_lib.write_group_table(str(tmp_path / "groups.md"), sweep, results)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[4:]}
    assert rows["r1"] == "| r1 | 2/2 | 15 [10, 20] |"
    assert rows["none"] == "| none | 0/2 (1 diverged) | – |"


def test_the_image_comparison_sweep_parses_every_method_with_its_bindings():
    """9 methods x 2 seeds; each cell's gin parses and binds the method's loss, penalty and
    instance noise."""
    from helpers import ROOT
    sweep = sweep_lib.load_sweep(os.path.join(ROOT, "gin_configs", "study",
                                              "image_comparison_fashion_mnist.yaml"))
    cells = sweep_lib.expand(sweep)
    assert len(cells) == 18 and sweep.curves == {"group": "method", "value": "fid"}
    expected = {"unregularized": ("non_saturating", None), "r1": ("non_saturating", "r1"),
                "wgan_gp": ("wasserstein", "wgan_gp"), "wgan_gp0": ("wasserstein", "wgan_gp0"),
                "instance_noise": ("non_saturating", None), "roth": ("non_saturating", "roth")}
    for cell in cells:
        gin.clear_config()
        try:
            config.parse(sweep_lib.gin_files(sweep), sweep_lib.gin_params(sweep, cell))
            assert gin.query_parameter("train.seed") == int(cell.label("seed"))
            method = cell.label("method")
            if method not in expected:
                continue
            loss, penalty = expected[method]
            assert gin.query_parameter("GAN.loss").configurable.name == loss
            bound = gin.query_parameter("GAN.penalty")
            assert (bound and bound.configurable.name) == penalty
            noise = gin.query_parameter("GAN.instance_noise") if method == "instance_noise" \
                else None
            assert method != "instance_noise" or noise.configurable.name == "sigma_schedule"
        finally:
            gin.clear_config()


def test_the_samples_figure_shows_only_the_named_cells(tmp_path):
    """write_samples: one panel per cell with a samples.png, restricted to `names` (the report
    passes the finished cells, so a running cell's grid is left out)."""
    import numpy as np
    from PIL import Image
    sweep = _curves_sweep()
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    for name in ("seed=1__method=r1", "seed=2__method=r1", "seed=2__method=none"):
        (tmp_path / name).mkdir()
        Image.fromarray(red).save(tmp_path / name / "samples.png")
    path = str(tmp_path / "samples_all.png")
    assert sweep_lib.write_samples(path, sweep, str(tmp_path)) == 3
    # a row per seed, a column per method (the last axis): 2 x 2 panels of 2.6 x 2.8 inches,
    # seed 1's 'none' (top right) blank
    figure = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert figure.shape == (560, 520, 3)
    is_red = (figure[..., 0] > 200) & (figure[..., 1] < 60)
    quadrants = [is_red[:280, :260], is_red[:280, 260:], is_red[280:, :260], is_red[280:, 260:]]
    assert [q.mean() > 0.2 for q in quadrants] == [True, False, True, True]
    assert sweep_lib.write_samples(str(tmp_path / "one.png"), sweep, str(tmp_path),
                                   names={"seed=2__method=r1"}) == 1
