"""ConOpt's consensus gradients against the explicit formula on a quadratic game (the GAN's
consensus step: tests/gan/test_consensus_step.py)."""
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan.objectives import consensus


@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_quadratic_game_matches_the_explicit_formula(gamma):
    """L_G = theta psi + a theta^2 / 2, L_D = -theta psi + b psi^2 / 2 + c psi:
    v = (psi + a theta, -theta + b psi + c), J = [[a, 1], [-1, b]]; player gradients
    v + gamma J^T v, consensus gamma/2 ||v||^2."""
    a, b, c, theta0, psi0 = 0.7, -0.4, 0.25, 1.3, -0.6
    theta, psi = tf.Variable(theta0), tf.Variable(psi0)

    def losses():
        return [theta * psi + 0.5 * a * theta ** 2,
                -theta * psi + 0.5 * b * psi ** 2 + c * psi], {}

    (g_grads, d_grads), value, _ = consensus.consensus_gradients(
        losses, [[theta], [psi]], gamma=gamma)
    v = np.array([psi0 + a * theta0, -theta0 + b * psi0 + c])
    jt_v = np.array([[a, 1.0], [-1.0, b]]).T @ v
    np.testing.assert_allclose(float(g_grads[0]), v[0] + gamma * jt_v[0], rtol=1e-6)
    np.testing.assert_allclose(float(d_grads[0]), v[1] + gamma * jt_v[1], rtol=1e-6)
    np.testing.assert_allclose(float(value), gamma / 2 * v @ v, rtol=1e-6)
