"""The full 2D comparison (scripts/toy2d_grid.py, tf_convgan.studies.toy2d_grid): the grid's
expansion, the verdicts and the table on synthetic metrics, and a tiny real grid through train()
that writes its table from the model directories and skips finished runs on a rerun."""
import json
import os

import numpy as np
import pytest

from helpers import ram_url, load_script
from tf_convgan.objectives import penalties
from tf_convgan.run_dir import files, images
from tf_convgan.studies import toy2d
from tf_convgan.studies import toy2d_grid as grid



def _script():
    return load_script(os.path.join("scripts", "toy2d_grid.py"))


def _methods(*names):
    return [grid.METHODS[n] for n in names]


def test_expand_covers_methods_problems_rules_and_seeds():
    runs = grid.expand(_methods("unregularized", "wgan", "conopt"), ["line", "ring8"],
                       grid.RULES, [0, 1])
    # (2 methods x 2 rules + ConOpt once) x 2 problems x 2 seeds
    assert len(runs) == (2 * 2 + 1) * 2 * 2 == len({r.name for r in runs})
    assert [r.seed for r in runs] == [0] * 10 + [1] * 10  # seed by seed
    conopt = [r for r in runs if r.method == "conopt"]
    assert {r.rule for r in conopt} == {"own"} and len(conopt) == 4
    assert all(not any("update_rule" in b for b in r.bindings) for r in conopt)
    assert all("GAN.consensus_gamma = 1.0" in r.bindings for r in conopt)
    wgan = {r.rule: r for r in runs if r.method == "wgan" and r.problem == "line" and r.seed == 0}
    assert wgan["alternating"].d_steps == 5 and "GAN.d_steps = 5" in wgan["alternating"].bindings
    assert wgan["simultaneous"].d_steps == 1
    assert "GAN.update_rule = 'simultaneous'" in wgan["simultaneous"].bindings
    assert "GAN.d_weight_clip = 0.01" in wgan["simultaneous"].bindings
    assert runs[0].name == "line_unregularized_alternating_seed0"
    assert runs[0].gin_file == os.path.join("toy2d", "line_unregularized.gin")
    with pytest.raises(ValueError, match="rules"):
        grid.expand(_methods("r1"), ["line"], ["sim"], [0])


def test_methods_are_selected_by_name_and_every_penalty_exists():
    assert [m.name for m in grid.select_methods(["roth", "r1"])] == ["roth", "r1"]
    assert grid.select_methods() == list(grid.METHODS.values())
    for method in grid.METHODS.values():
        assert method.penalty is None or callable(getattr(penalties, method.penalty))
    with pytest.raises(ValueError, match="unknown"):
        grid.select_methods(["r3"])


@pytest.mark.parametrize("curve, floor, expected", [
    ([0.9, 0.5, 0.30, 0.31, 0.29, 0.30], 0.2, "converged"),
    ([0.9, 0.9, 0.80, 0.81, 0.79, 0.80], 0.2, "stalled"),      # settled far from the data
    ([0.9, 0.8, 0.70, 0.60, 0.50, 0.40], 0.2, "still decreasing"),
    ([0.9, 0.5, 0.30, 0.60, 0.30, 0.60], 0.2, "oscillates"),
    ([0.9, 0.5, 0.30, 0.30, 0.30, 0.40], 0.2, "oscillates"),   # rises at the end
    ([0.9, 0.44, 0.28, 0.30, 0.32], 0.2, "oscillates"),        # small rises, ends above its low
    ([0.9, 0.6, 0.50, 0.52, 0.40], 0.2, "still decreasing"),   # a small bump on the way down
    ([0.9, float("nan")], 0.2, "diverged"),
    ([], 0.2, "diverged"),
])
def test_verdict_on_synthetic_curves(curve, floor, expected):
    assert grid.verdict(curve, floor) == expected


def test_verdict_thresholds_are_inclusive():
    assert grid.verdict([1.0, 0.35, 0.30, 0.30, 0.30], 0.15) == "converged"  # 0.30 - 0.15 = near
    assert grid.verdict([1.0, 0.35, 0.30, 0.30, 0.3001], 0.15) == "stalled"
    assert grid.verdict([0.35, 0.30, 0.30, 0.30], 0.2) == "converged"  # spread 0.05 = settle


def _fake_run_dir(out_dir, run, curve, *, num_steps, status="done"):
    model_dir = os.path.join(out_dir, "runs", run.name)
    os.makedirs(model_dir)
    steps = np.linspace(num_steps / len(curve), num_steps, len(curve)).astype(int)
    for step, w2 in zip(steps, curve):
        files.append_csv_row(os.path.join(model_dir, toy2d.METRICS_CSV), int(step), {"w2": w2})
    grid.write_status(model_dir, num_steps=num_steps, status=status, error="training diverged")


def test_table_from_synthetic_model_directories(tmp_path):
    out = str(tmp_path)
    runs = grid.expand(_methods("unregularized", "r1"), ["line"], grid.RULES, [0, 1])
    curves = {"unregularized": [0.9, 0.5, 0.3, 0.6, 0.3, 0.6], "r1": [0.9, 0.3, 0.1, 0.1, 0.1, 0.1]}
    for run in runs:
        if run.name == "line_r1_simultaneous_seed1":
            _fake_run_dir(out, run, [0.9], num_steps=600, status="diverged")
        else:
            _fake_run_dir(out, run, curves[run.method], num_steps=600)
    floors = {("line", 0): 0.04, ("line", 1): 0.06}
    results = grid.collect(out, runs, floors, 600)
    assert [r["verdict"] for r in results if r["method"] == "r1"] == [
        "converged", "converged", "converged", "diverged"]
    table = grid.markdown(results, num_steps=600, seeds=(0, 1), problems=("line",))
    assert "| method | rule | D steps | line |" in table
    assert "| *floor* | | | 0.050 |" in table
    assert "| unregularized | altGD | 1 | **0.600** (oscillates 2/2) |" in table
    assert "| r1 | simGD | 1 | **0.100** (converged 1/2, diverged 1/2) |" in table
    assert "Verdicts over all runs: oscillates 4, converged 3, diverged 1." in table
    assert "PARTIAL" not in table
    # unregularized: finals 0.6, floors 0.04 / 0.06, last four 0.3, 0.6, 0.3, 0.6
    assert "| unregularized | altGD | 0.550 | 0.300 | 0/2 | 0/2 | 0/2 | 2/2 | 0/2 |" in table
    assert "| r1 | simGD | 0.060 | 0.000 | 1/2 | 0/2 | 0/2 | 0/2 | 1/2 |" in table
    assert table.index("| r1 | altGD | 0.050") < table.index("| unregularized | altGD | 0.550")
    assert "| line r1 simGD seed 1 | nan | 0.060 | diverged | 0.900 |" in table
    partial = grid.markdown(results[:3], num_steps=600, seeds=(0, 1), problems=("line",),
                            partial=True)
    assert partial.startswith("**PARTIAL RESULTS")


def test_a_run_of_another_length_or_without_status_is_not_finished(tmp_path):
    model_dir = str(tmp_path / "run")
    assert not grid.is_finished(model_dir, 100)
    grid.write_status(model_dir, num_steps=100, status="done")
    assert grid.is_finished(model_dir, 100) and not grid.is_finished(model_dir, 200)


def test_status_metrics_and_frames_on_a_url(no_local_disk_for_ram):
    """A grid's out_dir on an object store (ram:// stands in for gs://): the status file, the
    metrics and the latest frame are written and read back there, and the figure drawn from
    them is written there; no local file function sees the path (the fixture checks)."""
    out = ram_url("toy2d")
    runs = grid.expand(_methods("r1"), ["line"], ("alternating",), [0])
    model_dir = f"{out}/runs/{runs[0].name}"
    for step, w2 in ((300, 0.3), (600, 0.1)):
        files.append_csv_row(f"{model_dir}/{toy2d.METRICS_CSV}", step, {"w2": w2})
    assert not grid.is_finished(model_dir, 600)
    grid.write_status(model_dir, num_steps=600, status="done")
    assert grid.is_finished(model_dir, 600) and grid.read_status(model_dir)["status"] == "done"
    results = grid.collect(out, runs, {("line", 0): 0.05}, 600)
    assert results[0]["curve"] == [0.3, 0.1] and results[0]["verdict"] == "still decreasing"
    rng = np.random.default_rng(0)
    axis = np.linspace(-2, 2, 5)
    x, y = np.meshgrid(axis, axis)
    fake = rng.normal(size=(16, 2))
    toy2d.save_frame(f"{model_dir}/{grid.FRAME_FILE}", step=600, fake=fake,
                     real=rng.normal(size=(16, 2)), grid=(x, y, x * y), metrics={"w2": 0.1})
    frame = toy2d.load_frame(f"{model_dir}/{grid.FRAME_FILE}")
    assert int(frame["step"]) == 600 and float(frame["metric_w2"]) == 0.1
    np.testing.assert_array_equal(frame["fake"], fake)
    grid.figure(out, results, f"{out}/figure.png", rule="alternating", seed=0, methods=["r1"],
                problems=["line"])
    assert images.read_png(f"{out}/figure.png").ndim == 3


def test_tiny_grid_trains_writes_the_table_and_skips_finished_runs(tmp_path):
    """2 methods x 1 problem x 2 rules x 1 seed, 8 steps each, through train() and the real
    train_step; a rerun trains nothing and writes the same table."""
    script = _script()
    calls = []

    def counting_train(run, model_dir, **kwargs):
        calls.append(run.name)
        return script.train_run(run, model_dir, extra_bindings=(
            "mlp_generator.width = 8", "mlp_discriminator.width = 8"), **kwargs)

    out = str(tmp_path / "grid")
    kwargs = dict(methods=["unregularized", "r1"], problems=("line",), rules=grid.RULES,
                  seeds=(0,), num_steps=8, evals=4, train_fn=counting_train, log=lambda m: None)
    results, trained = script.run(out, **kwargs)
    assert trained == 4 and sorted(calls) == sorted([
        "line_unregularized_alternating_seed0", "line_unregularized_simultaneous_seed0",
        "line_r1_alternating_seed0", "line_r1_simultaneous_seed0"])
    for r in results:
        model_dir = os.path.join(out, "runs", r["name"])
        rows = toy2d.read_csv(os.path.join(model_dir, toy2d.METRICS_CSV))
        assert [row["step"] for row in rows] == [2, 4, 6, 8]
        assert r["curve"] == [row["w2"] for row in rows] and r["final"] == rows[-1]["w2"]
        assert r["verdict"] in grid.VERDICTS and r["floor"] == pytest.approx(
            toy2d.data_floor(toy2d.PointSource("line"), seed=0))
        status = grid.read_status(model_dir)
        assert status["status"] == "done" and "GAN.update_rule = '%s'" % r["rule"] in \
            status["bindings"]
        assert os.path.exists(os.path.join(model_dir, "samples.npz"))
        assert not os.path.exists(os.path.join(model_dir, "samples.png"))  # plot = False
        assert os.listdir(os.path.join(model_dir, "checkpoints"))
    with open(os.path.join(out, "runs", "line_r1_simultaneous_seed0", "operative_config.gin")) as f:
        operative = f.read()
    assert "GAN.update_rule = 'simultaneous'" in operative and "GAN.penalty = @r1" in operative
    table = open(os.path.join(out, "toy2d_grid_table.md")).read()
    assert "| r1 | simGD | 1 |" in table and "| unregularized | altGD | 1 |" in table
    assert "after 8 steps" in table and "PARTIAL" not in table and "4 runs; their train()" in table
    for rule in grid.RULES:
        assert os.path.getsize(os.path.join(out, f"toy2d_grid_{rule}.png")) > 1000
    with open(os.path.join(out, "toy2d_grid_results.json")) as f:
        assert len(json.load(f)) == 4

    calls.clear()
    again, trained = script.run(out, **kwargs)
    assert trained == 0 and calls == []
    assert [r["final"] for r in again] == [r["final"] for r in results]
    assert open(os.path.join(out, "toy2d_grid_table.md")).read().split("; this invocation")[0] \
        == table.split("; this invocation")[0]
