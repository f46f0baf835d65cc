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


def _dense(gradients, variables):
    """Dense gradients (IndexedSlices converted), zeros for variables the loss does not reach."""
    return [tf.zeros_like(tf.convert_to_tensor(v)) if g is None
            else tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g, v in zip(gradients, variables)]


def consensus_gradients(compute_losses, variables, *, gamma, all_reduce=None):
    """Both players' ConOpt gradients in one simultaneous update, by double backprop.

    Player i minimises L_i + gamma/2 ||v||^2 with v = (grad_{x_1} L_1, ..., grad_{x_n} L_n):
    its gradient is v_i + gamma (J^T v)_i, J = dv/dx.

      compute_losses: () -> (losses, aux): one scalar loss per player (this replica's share of the
        global-batch average, e.g. via tf.nn.compute_average_loss) and a dict passed through;
        evaluated under the tapes.
      variables: one list of variables per player.
      all_reduce: sums a list of tensors over replicas (None: one device).

    Distribution: v is the replica sum of the local fields v_r; grad gamma/2 ||v||^2 =
    gamma J^T v = gamma sum_r J_r^T v, so each replica differentiates the surrogate
    gamma <stop_gradient(v), v_r> and the results are summed: exact for any replica count.

    Returns (gradients: one list per player, summed over replicas; consensus: gamma/2 ||v||^2;
    aux)."""
    check_nonnegative("consensus.gamma", gamma)
    all_reduce = all_reduce or (lambda values: values)
    flat_vars = [v for vs in variables for v in vs]
    with tf.GradientTape() as outer:
        with tf.GradientTape(persistent=True) as inner:
            losses, aux = compute_losses()
        local = [g for loss, vs in zip(losses, variables)
                 for g in _dense(inner.gradient(loss, vs), vs)]
        field = all_reduce(local)
        surrogate = gamma * tf.add_n([tf.reduce_sum(tf.stop_gradient(g) * l)
                                      for g, l in zip(field, local)])
    correction = all_reduce(_dense(outer.gradient(surrogate, flat_vars), flat_vars))
    total = [g + c for g, c in zip(field, correction)]
    gradients, start = [], 0
    for vs in variables:
        gradients.append(total[start:start + len(vs)])
        start += len(vs)
    return gradients, consensus_term(field, gamma=gamma), aux
