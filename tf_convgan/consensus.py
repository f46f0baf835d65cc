"""Consensus optimization, ConOpt (Mescheder, Nowozin & Geiger 2017, "The Numerics of GANs").

v = (grad_theta L_G, grad_psi L_D) is the joint gradient field of the two players (each player's
gradient of its own loss). ConOpt adds the consensus term

    L_C = gamma/2 * ||v||^2      (the penalties' gamma/2 convention; the paper's 1/2 ||v||^2 * gamma)

to *both* players' losses, so the update becomes -(v + gamma J^T v) with J = dv/dx. The gradients
in `gradients` must themselves be differentiable (computed under an outer GradientTape), since
grad L_C is a double backprop. For the Dirac-GAN (J = [[0, a], [-a, 0]] at the equilibrium) the
Jacobian of the update field is -J - gamma a^2 I: eigenvalues -gamma a^2 +- a i, so gradient
descent converges for every gamma > 0 and a small enough learning rate.
"""
import tensorflow as tf

from tf_convgan.errors import check_nonnegative


def consensus_term(gradients, *, gamma):
    """gamma/2 * sum over the list `gradients` of ||g||^2 (None entries are skipped): a scalar."""
    check_nonnegative("consensus.gamma", gamma)
    squares = [tf.reduce_sum(tf.square(g)) for g in gradients if g is not None]
    if not squares:
        raise ValueError("consensus_term needs at least one gradient")
    return 0.5 * gamma * tf.add_n(squares)
