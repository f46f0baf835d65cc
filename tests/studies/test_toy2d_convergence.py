"""The 2D convergence measure (tf_convgan.studies.toy2d_convergence): the verdict on synthetic
curves, ||v|| of the Dirac-GAN through the GAN's own objectives against its closed form, the
parameter movement, and the study script (scripts/toy2d_convergence.py) through train() on tiny
networks: its metrics, final spectrum, report, and a rerun that skips the finished run."""
import json
import os

import numpy as np
import pytest

from helpers import load_script
from test_spectrum import dirac_gan
from tf_convgan.objectives import losses, penalties
from tf_convgan.studies import toy2d_convergence as conv
from tf_convgan.studies import toy2d_report as report

NAN = float("nan")
STEPS = 8
DECAY = 0.5 ** np.arange(STEPS)          # a linear rate: halves every evaluation


@pytest.mark.parametrize("w2, v, noise, moves, expected", [
    # converging: ||v|| falls to its noise level, the movement to 1% of its largest, W2 to the floor
    (0.2 + 0.8 * DECAY, 1e-3 + DECAY, np.full(STEPS, 1e-2), np.r_[NAN, DECAY[1:]], "converged"),
    # the same, but W2 settles 0.5 above the floor: a stationary point away from the data
    (0.7 + 0.8 * DECAY, 1e-3 + DECAY, np.full(STEPS, 1e-2), np.r_[NAN, DECAY[1:]], "stalled"),
    # oscillating: ||v|| and the movement keep their size (the W2 even touches the floor)
    (0.2 + 0.3 * np.abs(np.sin(np.arange(STEPS))), 0.5 + 0.1 * np.sin(np.arange(STEPS)),
     np.full(STEPS, 1e-2), np.r_[NAN, np.full(STEPS - 1, 0.4)], "oscillating"),
    # still converging: ||v|| halves per evaluation but is still 10x its noise level
    (0.2 + 0.8 * DECAY, 1e3 * DECAY, np.full(STEPS, 1.0), np.r_[NAN, DECAY[1:]],
     "still converging"),
    # diverging: ||v|| and the movement double per evaluation
    (0.2 + 0.1 * 2.0 ** np.arange(STEPS), 2.0 ** np.arange(STEPS), np.full(STEPS, 1e-2),
     np.r_[NAN, 2.0 ** np.arange(1, STEPS)], "diverging"),
    (np.r_[0.5, NAN], [1.0, 1.0], [0.1, 0.1], [NAN, 1.0], "diverging"),   # non-finite
])
def test_verdict_on_synthetic_curves(w2, v, noise, moves, expected):
    assert conv.verdict(w2, 0.2, v, noise, moves) == expected


def test_verdict_needs_both_v_and_movement_at_noise_level():
    w2, noise = 0.2 + 0.8 * DECAY, np.full(STEPS, 1e-2)
    still_moving = np.r_[NAN, np.full(STEPS - 1, 0.4)]          # ||v|| small, x keeps moving
    assert conv.verdict(w2, 0.2, 1e-3 + DECAY, noise, still_moving) != "converged"
    large_v = np.full(STEPS, 0.5)                               # x settles, ||v|| stays large
    assert conv.verdict(w2, 0.2, large_v, noise, np.r_[NAN, DECAY[1:]]) != "converged"
    # the thresholds are inclusive: ||v|| = 3 x noise, the last move = 0.1 x the largest
    v = np.r_[np.ones(STEPS - 1), 0.03]
    moves = np.r_[NAN, 1.0, np.full(STEPS - 3, 0.5), 0.1]
    assert conv.verdict(w2, 0.2, v, noise, moves) == "converged"
    assert conv.verdict(w2, 0.2, np.r_[v[:-1], 0.0301], noise, moves) != "converged"


@pytest.mark.parametrize("gamma", [None, 1.0, 3.0])
@pytest.mark.parametrize("theta, psi", [(1.0, 1.0), (-0.7, 0.4), (0.0, 0.0)])
def test_field_norm_of_the_dirac_gan_is_its_closed_form(theta, psi, gamma):
    """Library convention (D gives real data high logits), data delta_0, D_psi(x) = psi x:
    L_D = softplus(0) + softplus(psi theta) + gamma/2 psi^2 (R1: grad_x D = psi),
    L_G = -softplus(psi theta), so v = (psi s, -theta s - gamma psi), s = sigmoid(psi theta)."""
    gan = dirac_gan(theta=theta, psi=psi, loss=losses.minimax(),
                    penalty=None if gamma is None else
                    (lambda *a, **k: penalties.r1(*a, **k, gamma=gamma)))
    real = np.zeros([16, 1], np.float32)
    v_norm, v_noise = conv.FieldProbe((real, real))(gan)
    theta, psi = conv.flat_parameters(gan)   # the weights as stored (float64)
    s = 1.0 / (1.0 + np.exp(-psi * theta))
    want = np.hypot(psi * s, -theta * s - (gamma or 0.0) * psi)
    np.testing.assert_allclose(v_norm, want, rtol=1e-12, atol=1e-15)
    assert v_noise == pytest.approx(0.0, abs=1e-15)   # the Dirac game has no sampling noise


def test_movement_is_measured_from_the_previous_evaluation(tmp_path):
    d = str(tmp_path)
    assert np.isnan(conv.movement(d, 10, np.zeros(3)))
    assert conv.movement(d, 20, np.array([3.0, 4.0, 0.0])) == pytest.approx(5.0)
    assert conv.movement(d, 30, np.array([3.0, 4.0, 1.0])) == pytest.approx(1.0)
    # a resumed run re-evaluating an earlier step does not count a movement from the future
    assert np.isnan(conv.movement(d, 30, np.zeros(3)))


def test_noise_walk_is_lr_sqrt_steps_times_the_per_step_noise():
    # per-step noise 0.01 sqrt(4096 / 256) = 0.04; 100 steps: sqrt(100) = 10; lr 0.1
    assert conv.noise_walk(learning_rate=0.1, steps=100, v_noise=0.01, field_batch=4096,
                           batch_size=256) == pytest.approx(0.04)


def test_study_script_trains_measures_reports_and_skips_finished_runs(tmp_path):
    script = load_script(os.path.join("scripts", "toy2d_convergence.py"))
    out = str(tmp_path / "study")
    args = [out, "--methods", "r1", "--problems", "line", "--rules", "simultaneous",
            "--lrs", "0.05", "--seeds", "0", "--num_steps", "10", "--evals", "5",
            "--steps_per_execution", "2", "--batch_size", "16",
            "--gin_param", "mlp_generator.width = 8", "--gin_param", "mlp_discriminator.width = 8",
            "--gin_param", "mlp_generator.depth = 1", "--gin_param", "mlp_discriminator.depth = 1",
            "--gin_param", "toy2d_convergence_writer.field_batch = 64",
            "--gin_param", "toy2d_convergence_writer.num_points = 50",
            "--gin_param", "toy2d_convergence_writer.spectrum_k = 2"]
    assert script.main(args) == 1
    model_dir = os.path.join(out, "runs", "line_r1_simultaneous_lr0.05_seed0")
    spec = json.load(open(os.path.join(model_dir, conv.SPECTRUM_FILE)))
    assert spec["rule"] == "simultaneous" and spec["learning_rate"] == pytest.approx(0.05)
    assert np.isfinite(spec["radius"]) and spec["radius"] == spec["sim_radius"]
    results = json.load(open(os.path.join(out, report.RESULTS)))
    assert len(results) == 1 and results[0]["steps"] == [2, 4, 6, 8, 10]
    assert np.isnan(results[0]["movement"][0]) and all(m > 0 for m in results[0]["movement"][1:])
    assert all(n > 0 for n in results[0]["v_noise"]) and results[0]["verdict"] in conv.VERDICTS
    table = open(os.path.join(out, report.TABLE)).read()
    assert "| r1 | simGD | 0.05 |" in table and "PARTIAL" not in table
    assert script.main(args) == 0   # finished: skipped


def test_study_script_rejects_a_bad_flag_in_one_line(capsys):
    script = load_script(os.path.join("scripts", "toy2d_convergence.py"))
    with pytest.raises(SystemExit) as e:
        script.main(["out", "--methods", "r3"])
    assert e.value.code == 2 and "unknown method" in capsys.readouterr().err


def _result(method, lr, verdict, excess, seed=0):
    return {"method": method, "lr": lr, "verdict": verdict, "final": 0.1 + excess, "floor": 0.1,
            "name": f"{method}_lr{lr}_seed{seed}"}


def test_choose_lr_takes_the_most_r1_convergence_then_the_lead_then_the_distance():
    runs = [_result("r1", 0.1, "oscillating", 0.02), _result("r1", 0.1, "converged", 0.02, 1),
            _result("r1", 0.03, "converged", 0.05), _result("r1", 0.03, "converged", 0.05, 1),
            _result("r1", 0.01, "converged", 0.01), _result("r1", 0.01, "converged", 0.01, 1),
            _result("unregularized", 0.03, "oscillating", 1.0),
            _result("unregularized", 0.01, "converged", 0.02)]
    lr, table = report.choose_lr(runs)
    # 0.03 and 0.01 both have 2/2 R1 runs converged; 0.03 leads the unregularized GAN by 2, 0.01
    # by 1 (closer to the data, but the lead decides first).
    assert lr == 0.03 and table[0.03][:2] == (2, 0) and table[0.01][:2] == (2, 1)
    assert table[0.1] == (1, 0, pytest.approx(0.02), 2)
    runs[-1]["verdict"] = "oscillating"
    assert report.choose_lr(runs)[0] == 0.01   # equal lead: the smaller distance to the data
    with pytest.raises(ValueError, match="unfinished"):
        report.choose_lr(runs + [_result("r1", 0.1, "missing", np.nan, 2)])
