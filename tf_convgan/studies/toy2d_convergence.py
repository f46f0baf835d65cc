"""Convergence of a 2D GAN measured so that sampling noise cannot fake it (Mescheder et al. 2018,
sec. 2-4: convergence of the parameters to a stationary point of the gradient vector field).

Per evaluation (`toy2d_convergence_writer`, a `train.sample_writer`):
  w2         the exact W2 distance between G's samples of a FIXED z and a FIXED data set
             (`toy2d.evaluate`, the same points at every evaluation of a run), with its floor
             (`toy2d.data_floor`: a perfect generator's W2);
  v_norm     ||v(theta, psi)||, the norm of the simultaneous gradient vector field
             v = (-grad_theta L_G, -grad_psi L_D) of both players' full objectives (loss, penalty,
             instance noise: `spectrum.objectives`, the train step's composition) on a FIXED real
             batch B1 of `field_batch` points and fixed z (the draws of step FIELD_STEP);
  v_noise    the sampling noise of that estimate: ||v_B1 - v_B2|| / sqrt(2), B2 a second fixed
             batch and z (step FIELD_STEP + 1). At a stationary point of the population field,
             ||v_B1|| is of this size; away from one it is much larger;
  movement   ||x_k - x_{k-1}||, the Euclidean distance between the flattened parameter vectors
             x = (theta, psi) at this and the previous evaluation (the first evaluation has none:
             nan).

At `final_step` the writer also computes the leading eigenvalues of the game Jacobian J on the
first `spectrum_batch` points of B1 (`spectrum.spectrum`: the k of largest real part, float32
products, ARPACK capped at `spectrum_maxiter` restarts) and the spectral radius of the run's
update map at its learning rate (simGD: I + h J; altGD: the alternating map with the run's
d_steps), written to `spectrum_final.json`.

Verdict (`verdict`, fixed before the runs; thresholds are module constants):
  diverging   a non-finite value, or over the last `window` evaluations both ||v|| and the
              movement grew by at least `trend` (x2);
  converged   settled: the final ||v|| is at noise level (<= K_NOISE = 3 x v_noise) and the last
              movement is at most SETTLE_FRAC = 0.1 of the largest movement of the run; and the
              final W2 is within NEAR = 0.15 of the floor;
  stalled     settled, but the final W2 is further than NEAR from the floor (a stationary point
              away from the data);
  still converging  not settled, but ||v|| fell by at least `trend` (x2) over the last `window`
              evaluations;
  oscillating not settled otherwise (keeps moving with ||v|| above noise and not falling).
"""
import json
import os

import gin
import numpy as np
import tensorflow as tf

from tf_convgan import run_dir
from tf_convgan.studies import spectrum
from tf_convgan.studies import toy2d

VERDICTS = ("converged", "stalled", "still converging", "oscillating", "diverging")
WINDOW, K_NOISE, SETTLE_FRAC, NEAR, TREND = 4, 3.0, 0.1, 0.15, 2.0
FIELD_STEP = 10 ** 9          # the step whose draws (z, penalty points, noise) the field uses
FIELD_BATCH = 4096
PARAMS_FILE = "params_last.npz"   # the parameters of the latest evaluation (for the movement)
SPECTRUM_FILE = "spectrum_final.json"


def flat_parameters(gan):
    """x = (theta, psi): G's then D's trainable weights, flattened, float64."""
    return np.concatenate([np.asarray(v.numpy(), np.float64).ravel()
                           for v in gan.generator.trainable_variables +
                           gan.discriminator.trainable_variables])


def field_batches(problem, *, size=FIELD_BATCH, seed=0):
    """Two fixed real batches of a problem (streams (seed, -3) and (seed, -4): never a training
    or evaluation sample), float32 [size, 2]."""
    return tuple(toy2d.sample_points(problem, size, tf.constant([seed, s], tf.int64)).numpy()
                 for s in (-3, -4))


class FieldProbe:
    """||v|| on fixed batches and its noise level (see the module docstring). Keeps the game
    operators between calls, so the field is traced once per run."""

    def __init__(self, batches):
        self.batches, self._operators = batches, [None] * len(batches)

    def operator(self, gan, i=0):
        self._operators[i] = spectrum.game_operator(gan=gan, real=self.batches[i],
                                                    step=FIELD_STEP + i, like=self._operators[i])
        return self._operators[i]

    def __call__(self, gan):
        """(||v_B1||, ||v_B1 - v_B2|| / sqrt(2)) at the GAN's current weights."""
        fields = [self.operator(gan, i).field() for i in range(len(self.batches))]
        noise = (np.linalg.norm(fields[0] - fields[1]) / np.sqrt(2.0) if len(fields) > 1
                 else float("nan"))
        return float(np.linalg.norm(fields[0])), float(noise)


def movement(model_dir, step, params):
    """||params - params of the previous evaluation|| (nan when there is none: the first), and
    records params as the latest (crash-safe; a resumed run measures from its last
    evaluation)."""
    path = os.path.join(model_dir, PARAMS_FILE)
    moved = float("nan")
    if run_dir.files.exists(path):
        with np.load(path) as f:
            if int(f["step"]) < step and f["x"].shape == params.shape:
                moved = float(np.linalg.norm(params - f["x"]))
    with run_dir.atomic_file(path) as f:
        np.savez(f, step=step, x=params)
    return moved


def final_spectrum(gan, operator, *, k=4, maxiter=100, both_maps=False):
    """The leading eigenvalues of J and the spectral radius of the run's update map (simGD or
    altGD at the D optimizer's learning rate and the GAN's d_steps) as a JSON-able dict. The
    other rule's map (its own ARPACK run; altGD's costs d_steps + 1 products per iteration) only
    with `both_maps`, else its radius is None; the run's own radius is the same either way."""
    h = float(np.asarray(gan.d_optimizer.learning_rate))
    rule = "simultaneous" if gan.simultaneous else "alternating"
    own = "sim" if gan.simultaneous else "alt"
    maps = spectrum.UPDATE_MAPS if both_maps else (own,)
    result = spectrum.spectrum(operator=operator, k=k, which=("LR",), learning_rate=h,
                               d_steps=gan.d_steps, blocks=False, maxiter=maxiter,
                               update_maps=maps)
    radius = getattr(result, f"{own}_radius")
    lr_eigs = result.eigenvalues.get("LR", np.zeros(0))
    lm_eigs = result.eigenvalues.get("LM", np.zeros(0))
    pair = lambda values: [[float(v.real), float(v.imag)] for v in values]  # noqa: E731
    return {"step": result.step, "learning_rate": h, "rule": rule, "d_steps": gan.d_steps,
            "radius": radius, "sim_radius": result.sim_radius, "alt_radius": result.alt_radius,
            "max_real": result.max_real, "max_abs_imag": result.max_abs_imag,
            "eigenvalues_lr": pair(lr_eigs), "eigenvalues_lm": pair(lm_eigs),
            "field_norm": result.field_norm, "seconds": result.seconds,
            "notes": list(result.notes)}


@gin.configurable
def toy2d_convergence_writer(*, problem=gin.REQUIRED, num_points=2000, field_batch=FIELD_BATCH,
                             final_step=None, spectrum_k=4, spectrum_maxiter=100,
                             spectrum_batch=512, plot=False):
    """A `train.sample_writer`: `toy2d.toy2d_writer`'s W2 (fixed evaluation set of `num_points`)
    and frame, plus v_norm, v_noise and movement per evaluation (metrics.csv), and at
    `final_step` the spectrum (SPECTRUM_FILE, on the first `spectrum_batch` points of B1). See the
    module docstring."""
    base = toy2d.toy2d_writer(problem=problem, num_points=num_points, plot=plot)
    state = {}

    def write(gan, model_dir, step, writer, *, num_samples=None, seed=0):
        if "probe" not in state:
            state["probe"] = FieldProbe(field_batches(problem, size=field_batch, seed=seed))
        probe = state["probe"]
        v_norm, v_noise = probe(gan)
        extra = {"v_norm": v_norm, "v_noise": v_noise,
                 "movement": movement(model_dir, step, flat_parameters(gan))}
        metrics = base(gan, model_dir, step, writer, seed=seed, extra=extra)
        if final_step is not None and step == final_step:
            try:
                operator = spectrum.game_operator(gan=gan, real=probe.batches[0][:spectrum_batch],
                                                  step=FIELD_STEP)
                out = final_spectrum(gan, operator, k=spectrum_k, maxiter=spectrum_maxiter)
            except Exception as e:  # recorded, not fatal: the run itself has finished
                out = {"error": f"{type(e).__name__}: {e}"}
            run_dir.write_text(os.path.join(model_dir, SPECTRUM_FILE), json.dumps(out))
        return metrics

    return write


def noise_walk(*, learning_rate, steps, v_noise, field_batch, batch_size):
    """The parameter movement that minibatch noise alone causes over `steps` steps along
    directions the update map neither contracts nor expands (J's zero eigenvalues: the networks'
    reparametrisations): lr sqrt(steps) x the per-step gradient noise, estimated from the fixed
    batches' noise level as v_noise sqrt(field_batch / batch_size) (the noise of a mean scales
    as 1 / sqrt(batch)). A diagnostic for the report, not part of the verdict."""
    return float(learning_rate * np.sqrt(steps) * v_noise * np.sqrt(field_batch / batch_size))


def verdict(w2, floor, v_norm, v_noise, moves, *, window=WINDOW, k_noise=K_NOISE,
            settle_frac=SETTLE_FRAC, near=NEAR, trend=TREND):
    """The verdict of one run from its evaluations in order (see the module docstring). `moves`
    may start with nan (no previous evaluation)."""
    w2, v_norm, v_noise = (np.asarray(a, float) for a in (w2, v_norm, v_noise))
    moves = np.asarray(moves, float)
    moves = moves[np.isfinite(moves)] if len(moves) and np.isnan(moves[0]) else moves
    if (len(w2) == 0 or len(moves) == 0 or not all(np.all(np.isfinite(a)) for a in
                                                   (w2, v_norm, v_noise, moves))):
        return "diverging"
    last_v, last_m = v_norm[-window:], moves[-window:]
    if last_v[-1] >= trend * last_v[0] and last_m[-1] >= trend * last_m[0]:
        return "diverging"
    settled = (v_norm[-1] <= k_noise * v_noise[-1]
               and moves[-1] <= settle_frac * moves.max())
    if settled:
        return "converged" if w2[-1] - floor <= near else "stalled"
    if last_v[-1] * trend <= last_v[0]:
        return "still converging"
    return "oscillating"
