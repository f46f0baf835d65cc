"""The Dirac-GAN on the library's losses and penalties: Jacobians equal the paper's closed forms,
and the convergence table reproduces the paper's verdicts."""
import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from helpers import ram_url
from tf_convgan import run_dir
from tf_convgan.studies import dirac
from tf_convgan.studies import dirac_study as dirac_study_lib
from tf_convgan.objectives import instance_noise, losses
from tf_convgan.objectives.consensus import consensus_term
from tf_convgan.run_dir import files, images
from tf_convgan.studies.dirac_study import dirac_study
from tf_convgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F1, F2 = 0.5, -0.25  # f'(0), f''(0) of f(t) = -log(1 + exp(-t))


def _eigs(name, **kwargs):
    return dirac.eigenvalues(dirac.jacobian(dirac.dirac_method(name, **kwargs)))


def _closed(trace_half, disc):
    """trace_half +- sqrt(disc), sorted like dirac.eigenvalues."""
    root = np.sqrt(complex(disc))
    return dirac.eigenvalues(np.diag([trace_half + root, trace_half - root]))


@pytest.mark.parametrize("name,f1", [("unregularized", F1), ("non_saturating", F1), ("wgan", 1.0)])
def test_unregularized_eigenvalues_are_imaginary(name, f1):
    np.testing.assert_allclose(_eigs(name), [-1j * f1, 1j * f1], atol=1e-6)


@pytest.mark.parametrize("name", ["r1", "r2"])
@pytest.mark.parametrize("gamma", [0.2, 0.7, 1.0, 1.5, 3.0, 10.0])  # 2 f'(0) = 1 in the middle
def test_gradient_penalty_eigenvalues(name, gamma):
    expected = _closed(-gamma / 2, gamma ** 2 / 4 - F1 ** 2)
    np.testing.assert_allclose(_eigs(name, gamma=gamma), expected, atol=1e-6)


def test_r1_r2_is_twice_the_penalty():
    gamma = 0.8  # R1 + R2 on the Dirac-GAN: both penalise psi^2, so the weight is 2 gamma
    np.testing.assert_allclose(_eigs("r1_r2", gamma=gamma), _closed(-gamma, gamma ** 2 - F1 ** 2),
                               atol=1e-6)


@pytest.mark.parametrize("gamma", [0.2, 1.0, 2.0, 3.0, 10.0])  # 4 f'(0) = 2: a double root
def test_roth_eigenvalues(gamma):
    """Roth et al.: at the equilibrium sigmoid(0) = 1/2 weights both terms by 1/4, so
    J = [[0, f'(0)], [-f'(0), -gamma/2]] (R1's with gamma/2, i.e. (R1 + R2)/4) and the eigenvalues
    are -gamma/4 +- sqrt(gamma^2/16 - f'(0)^2); derivation in tf_convgan/studies/dirac.py."""
    method = dirac.dirac_method("roth", gamma=gamma)
    jac = dirac.jacobian(method)
    np.testing.assert_allclose(jac, [[0.0, F1], [-F1, -gamma / 2]], atol=1e-12)
    np.testing.assert_allclose(dirac.eigenvalues(jac),
                               _closed(-gamma / 4, gamma ** 2 / 16 - F1 ** 2), atol=1e-6)
    quarter = dirac.jacobian(dirac.dirac_method("r1_r2", gamma=gamma / 4))
    np.testing.assert_allclose(jac, quarter, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_roth_with_gamma_sigma_squared_has_instance_noises_jacobian(sigma):
    """f''(0) sigma^2 = -sigma^2/4 = -gamma/4: Roth et al.'s regularizer, derived from noise, is
    instance noise's linearisation at the equilibrium when gamma = sigma^2."""
    np.testing.assert_allclose(
        dirac.jacobian(dirac.dirac_method("roth", gamma=sigma ** 2)),
        dirac.jacobian(dirac.dirac_method("instance_noise", sigma=sigma)), atol=1e-9)


def test_roth_field_away_from_the_equilibrium():
    """u at (theta, psi) against the field written out (minimax, real data at 0, s = sigmoid):
    u_theta = psi s(psi theta), u_psi = -theta s(psi theta) - gamma/2 [psi/2 + 2 s^2 psi
    + 2 psi^2 theta s^2 (1 - s)]; and with the non-saturating G loss, u_theta = psi s(-psi theta),
    the same Jacobian at the equilibrium."""
    gamma = 1.5
    theta, psi = np.array([0.7, -1.2, 0.0, 2.0]), np.array([0.4, 0.9, -1.1, -0.3])
    s = 1 / (1 + np.exp(-psi * theta))
    u = dirac.field_on_grid(dirac.dirac_method("roth", gamma=gamma), theta, psi)
    np.testing.assert_allclose(u[0], psi * s, rtol=1e-12)
    np.testing.assert_allclose(
        u[1], -theta * s - gamma / 2 * (psi / 2 + 2 * s ** 2 * psi
                                        + 2 * psi ** 2 * theta * s ** 2 * (1 - s)), rtol=1e-12)
    method = dirac.dirac_method("roth", gamma=gamma)
    non_saturating = dirac.Method("roth", losses.non_saturating(), method.penalty)
    np.testing.assert_allclose(dirac.field_on_grid(non_saturating, theta, psi)[0],
                               psi / (1 + np.exp(psi * theta)), rtol=1e-12)
    np.testing.assert_allclose(dirac.jacobian(non_saturating), dirac.jacobian(method), atol=1e-12)


@pytest.mark.parametrize("sigma", [0.3, 1.0, np.sqrt(2.0), 2.0, 3.0])  # real roots for sigma > sqrt(2)
def test_instance_noise_eigenvalues(sigma):
    expected = _closed(F2 * sigma ** 2, F2 ** 2 * sigma ** 4 - F1 ** 2)
    np.testing.assert_allclose(_eigs("instance_noise", sigma=sigma), expected, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_conopt_eigenvalues(gamma):
    """-J - gamma J^T J with J = [[0, a], [-a, 0]]: -gamma a^2 +- a i."""
    np.testing.assert_allclose(_eigs("conopt", gamma=gamma),
                               [-gamma * F1 ** 2 - 1j * F1, -gamma * F1 ** 2 + 1j * F1], atol=1e-6)


def test_jacobian_entries_and_simgd_update_map():
    method = dirac.dirac_method("r1", gamma=0.6)
    jac = dirac.jacobian(method)  # library sign convention: psi is the paper's -psi
    np.testing.assert_allclose(jac, [[0.0, F1], [-F1, -0.6]], atol=1e-12)
    np.testing.assert_allclose(dirac.update_jacobian(method, learning_rate=0.1),
                               np.eye(2) + 0.1 * jac, atol=1e-12)
    # altGD: psi' = psi + h(-theta/2 - gamma psi), then theta' = theta + h psi' / 2.
    h, g = 0.1, 0.6
    d_step = np.array([[1.0, 0.0], [-h * F1, 1 - h * g]])
    g_step = np.array([[1.0, h * F1], [0.0, 1.0]])
    np.testing.assert_allclose(dirac.update_jacobian(method, learning_rate=h, mode="alt"),
                               g_step @ d_step, atol=1e-12)


def test_gauss_hermite_moments():
    eps, w = instance_noise.gauss_hermite_noise(sigma=1.5, num_nodes=16)
    for k, moment in ((0, 1.0), (1, 0.0), (2, 1.5 ** 2), (4, 3 * 1.5 ** 4)):
        np.testing.assert_allclose(np.sum(w * eps ** k), moment, atol=1e-10)


def test_consensus_term_value():
    grads = [tf.constant([1.0, 2.0]), tf.constant([[3.0]])]
    np.testing.assert_allclose(consensus_term(grads, gamma=0.5).numpy(), 0.25 * 14.0)


def test_sigma_schedule_and_noise():
    assert float(instance_noise.sigma_schedule(5, sigma=1.0, final_sigma=0.0, decay_steps=10)) == 0.5
    assert float(instance_noise.sigma_schedule(50, sigma=1.0, final_sigma=0.2, decay_steps=10)) == \
        pytest.approx(0.2)
    x = tf.zeros([1000, 2])
    noisy = instance_noise.add_instance_noise(x, tf.constant([1, 2], tf.int64), sigma=2.0)
    assert abs(float(tf.math.reduce_std(noisy)) - 2.0) < 0.15
    np.testing.assert_array_equal(
        noisy, instance_noise.add_instance_noise(x, tf.constant([1, 2], tf.int64), sigma=2.0))


CONVERGES = {"unregularized": False, "non_saturating": False, "wgan": False, "wgan_gp": False,
             "dragan": False, "instance_noise": True, "conopt": True, "r1": True, "r2": True,
             "r1_r2": True, "roth": True}


def test_study_table_matches_the_paper(tmp_path):
    """The verdicts (from the update maps' spectral radii) are the paper's, and the trajectories
    agree at these settings: the convergent methods end within 1e-5 of (0, 0), the others > 0.1
    away. altGD on the unregularized GAN has rho = 1 (eigenvalues on the unit circle): not
    convergent."""
    rows = dirac_study(model_dir=str(tmp_path), methods=dirac.METHODS, learning_rate=0.1,
                       num_steps=1000, d_steps=1, start=(1.0, 1.0))
    for row in rows:
        for mode in ("sim", "alt"):
            assert row[mode]["converges"] == CONVERGES[row["method"]], (row["method"], mode, row)
            if CONVERGES[row["method"]]:
                assert row[mode]["spectral_radius"] < 1.0
                assert row[mode]["distance"] < 1e-5
            else:
                assert row[mode]["spectral_radius"] >= 1.0 - 1e-9
                assert row[mode]["distance"] > 0.1
    assert rows[0]["method"] == "unregularized"
    assert rows[0]["alt"]["spectral_radius"] == pytest.approx(1.0, abs=1e-12)
    table = (tmp_path / "dirac_table.md").read_text()
    assert table.count("**does not converge**") == 10 and table.count("| converges |") == 12
    assert "- dragan: simGD: last 100 steps theta in" in table and "- r1:" not in table
    for name in dirac.METHODS:
        assert (tmp_path / f"dirac_{name}.png").stat().st_size > 1000
    assert (tmp_path / "dirac_all.png").exists()


def test_slow_convergence_is_called_convergent(tmp_path):
    """ConOpt with gamma = 0.3: the simGD map's eigenvalues are 1 + h (-gamma f'(0)^2 +- f'(0) i),
    rho = 0.99376 < 1, so it converges, slowly: still > 1e-3 from (0, 0) after 500 steps. The
    verdict follows rho, not the distance after T steps."""
    gin.bind_parameter("dirac_method.gamma", 0.3)
    try:
        rows = dirac_study(model_dir=str(tmp_path), methods=["conopt"], learning_rate=0.1,
                           num_steps=500)
    finally:
        gin.clear_config()
    h, gamma = 0.1, 0.3
    expected = abs(1 + h * complex(-gamma * F1 ** 2, F1))
    sim, alt = rows[0]["sim"], rows[0]["alt"]
    assert sim["spectral_radius"] == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(0.99376, abs=1e-5)
    for m in (sim, alt):
        assert m["spectral_radius"] < 1.0 and m["distance"] > 1e-3 and m["converges"]
    assert "| conopt | minimax | -0.075 - 0.5i, -0.075 + 0.5i | 0.993759 | 0.063 | converges |" in (
        tmp_path / "dirac_table.md").read_text()


def test_the_study_writes_into_a_url_and_nothing_on_the_local_disk(no_local_disk_for_ram):
    """A model_dir on an object store (ram:// stands in for gs://): the table, the results and
    the figures are written there through run_dir.files; no local file function sees the path
    and the working directory stays empty (the fixture checks both)."""
    model_dir = ram_url("dirac") + "/study"
    rows = dirac_study(model_dir=model_dir, methods=["unregularized", "r1"], num_steps=50)
    assert sorted(files.listdir(model_dir)) == sorted([
        dirac_study_lib.TABLE_MD, dirac_study_lib.RESULTS_JSON, dirac_study_lib.ALL_PNG,
        "dirac_unregularized.png", "dirac_r1.png", run_dir.outputs.OUTPUTS_MARK])
    table = run_dir.read_text(f"{model_dir}/{dirac_study_lib.TABLE_MD}")
    assert table.startswith("Dirac-GAN, h = 0.1, T = 50 steps") and "| r1 | minimax |" in table
    results = json.loads(run_dir.read_text(f"{model_dir}/{dirac_study_lib.RESULTS_JSON}"))
    assert [r["method"] for r in results["rows"]] == ["unregularized", "r1"]
    assert results["rows"][1]["sim"]["distance"] == pytest.approx(rows[1]["sim"]["distance"])
    for name in ("dirac_r1.png", dirac_study_lib.ALL_PNG):
        assert images.read_png(f"{model_dir}/{name}").shape[-1] in (3, 4)


def test_dragan_stalls_near_theta_minus_2():
    """DRAGAN from (1, 1), h = 0.1: psi decays to 0 while theta goes to 2 gamma = 2, where the
    loss's pull on psi (theta f'(0)) balances the penalty's push of |psi| towards 1; at the smoothed
    kink psi flips, and the iterates cross to theta = -2, where they are at T = 1000 (simGD and
    altGD alike)."""
    method = dirac.dirac_method("dragan")
    for mode, crossing in (("sim", 589), ("alt", 605)):  # the study table's sign changes
        points = dirac.trajectory(method, (1.0, 1.0), num_steps=1000, learning_rate=0.1, mode=mode)
        np.testing.assert_allclose(points[500], [2.0, 0.0], atol=1e-3)
        assert list(np.nonzero(np.diff(np.sign(points[:, 0])))[0] + 1) == [crossing]
        np.testing.assert_allclose(points[-100:, 0], -2.0, atol=0.011)
        np.testing.assert_allclose(points[-100:, 1], 0.0, atol=0.003)


def test_wgan_clipping_projects_psi():
    method = dirac.dirac_method("wgan", clip=0.3)
    points = dirac.trajectory(method, (1.0, 0.0), num_steps=200, learning_rate=0.1)
    assert np.abs(points[:, 1]).max() == pytest.approx(0.3)


@pytest.mark.parametrize("kwargs,name", [
    (dict(name="r3"), "dirac_method.name"), (dict(name="r1", gamma=-1.0), "dirac_method.gamma"),
    (dict(name="instance_noise", sigma=-0.5), "dirac_method.sigma"),
    (dict(name="wgan", clip=0.0), "dirac_method.clip")])
def test_bad_method_arguments(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        dirac.dirac_method(**kwargs)


def test_bad_mode_and_study_arguments(tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        dirac.trajectory(dirac.dirac_method("r1"), (1.0, 1.0), num_steps=2, learning_rate=0.1,
                         mode="simultaneous")
    with pytest.raises(ConfigError, match="dirac_study.methods"):
        dirac_study(model_dir=str(tmp_path), methods="r1")
    with pytest.raises(ConfigError, match="instance_noise.sigma"):
        instance_noise.add_instance_noise(tf.zeros([2]), sigma=-1.0)


def test_run_py_runs_one_method(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run.py"), "--gin_file", "gin_configs/dirac/r1.gin",
         "--model_dir", str(tmp_path), "--gin_param", "dirac_study.num_steps = 300"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "dirac_table.md").read_text()
    assert "| r1 | minimax | -0.5, -0.5 |" in table and "converges" in table
    assert (tmp_path / "dirac_r1.png").exists() and not (tmp_path / "checkpoints").exists()
    bad = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run.py"), "--gin_file", "gin_configs/dirac/r1.gin",
         "--model_dir", str(tmp_path / "bad"), "--gin_param", "dirac_method.gamma = -2.0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "dirac_method.gamma" in bad.stderr
    assert "Traceback" not in bad.stderr
