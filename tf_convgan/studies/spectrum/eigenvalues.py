"""The spectrum of a game operator: the leading eigenvalues of J (SciPy's ARPACK, in float64, or
a dense decomposition for small n), those of the simGD and altGD update maps, D's Hessian and the
coupling blocks' singular values; `SpectrumResult` holds one evaluation."""
import dataclasses
import time
from typing import Optional

import numpy as np
import scipy.sparse.linalg as sla
import tensorflow as tf

from tf_convgan.errors import ConfigError

WHICH = ("LM", "LR")
BLOCKS = ("d_hessian", "coupling")
UPDATE_MAPS = ("sim", "alt")


@dataclasses.dataclass
class SpectrumResult:
    """One evaluation (see `spectrum`). Eigenvalues are complex128 arrays, sorted by
    decreasing modulus ('LM'), real part ('LR'), modulus (update maps)."""
    step: int
    n: int
    n_g: int
    n_d: int
    dtype: str
    method: str                         # 'arnoldi' or 'dense'
    field_norm: float                   # ||v(x0)||: how far from a stationary point
    eigenvalues: dict                   # which -> eigenvalues of J
    residuals: dict                     # which -> ||J u - lambda u|| / |lambda|
    g_fraction: dict = dataclasses.field(default_factory=dict)  # which -> ||u_theta||^2 / ||u||^2
    learning_rate: Optional[float] = None
    sim_eigenvalues: Optional[np.ndarray] = None   # of I + h J, largest modulus first
    sim_radius: Optional[float] = None             # max |1 + h lambda|
    alt_eigenvalues: Optional[np.ndarray] = None
    alt_radius: Optional[float] = None
    d_steps: int = 1
    d_hessian_eigenvalues: Optional[np.ndarray] = None   # of grad^2_psi L_D = -J_DD (both ends)
    coupling_dg: Optional[np.ndarray] = None    # singular values of J_DG = d v_psi / d theta
    coupling_gd: Optional[np.ndarray] = None    # singular values of J_GD = d v_theta / d psi
    counts: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple = ()

    def all_eigenvalues(self):
        values = [v for v in self.eigenvalues.values() if v is not None and len(v)]
        return np.concatenate(values) if values else np.zeros(0, np.complex128)

    @property
    def max_real(self):
        """The largest real part among the computed eigenvalues of J."""
        values = self.all_eigenvalues()
        return float(values.real.max()) if values.size else float("nan")

    @property
    def max_abs_imag(self):
        values = self.all_eigenvalues()
        return float(np.abs(values.imag).max()) if values.size else float("nan")

    def scalars(self):
        """The headline numbers: largest real part, largest |imag|, spectral radii."""
        out = {"max_real": self.max_real, "max_abs_imag": self.max_abs_imag}
        if self.sim_radius is not None:
            out["sim_radius"] = self.sim_radius
        if self.alt_radius is not None:
            out["alt_radius"] = self.alt_radius
        return out

    def to_json(self):
        def enc(value):
            if isinstance(value, np.ndarray):
                if np.iscomplexobj(value):
                    return {"re": value.real.tolist(), "im": value.imag.tolist()}
                return value.tolist()
            if isinstance(value, dict):
                return {k: enc(v) for k, v in value.items()}
            if isinstance(value, tuple):
                return list(value)
            return value
        out = {f.name: enc(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out.update(self.scalars())
        return out


def _sort(values, key):
    values = np.asarray(values, np.complex128)
    order = np.argsort(-key(values), kind="stable")
    return values[order], order


_KEYS = {"LM": np.abs, "LR": np.real}


def _arpack(fn, *args, **kwargs):
    """ARPACK's answer; on ArpackNoConvergence the converged part and a note."""
    try:
        return fn(*args, **kwargs), None
    except sla.ArpackNoConvergence as e:
        found = (e.eigenvalues, e.eigenvectors)
        return found, f"{fn.__name__} {kwargs.get('which')}: ARPACK converged {len(e.eigenvalues)}"\
                      f" of {kwargs.get('k')} ({e})"


def _start_vector(n, seed):
    return np.random.default_rng(seed).standard_normal(n)


def _eigs(matvec, n, *, k, which, tol, maxiter, seed, dense=None, ncv=None):
    """(eigenvalues, eigenvectors [n, k], note) of a real n x n operator, sorted by `which`."""
    if dense is not None:
        values, vectors = np.linalg.eig(dense)
        note = None
    else:
        op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        (values, vectors), note = _arpack(sla.eigs, op, k=k, which=which, tol=tol,
                                          maxiter=maxiter, v0=_start_vector(n, seed),
                                          ncv=None if ncv is None else min(ncv, n - 1))
    values, order = _sort(values, _KEYS[which])
    return values[:k], np.asarray(vectors)[:, order][:, :k], note


def _residuals(operator, values, vectors):
    out = []
    for value, vector in zip(values, vectors.T):
        vector = vector / np.linalg.norm(vector)
        out.append(np.linalg.norm(operator.cjvp(vector) - value * vector) /
                   max(abs(value), np.finfo(float).tiny))
    return np.array(out)


def _alt_dense(jac, n_g, h, d_steps):
    n = jac.shape[0]
    g, d = slice(0, n_g), slice(n_g, n)
    a_d = np.eye(n)
    a_d[d, :] += h * jac[d, :]
    a_g = np.eye(n)
    a_g[g, :] += h * jac[g, :]
    return a_g @ np.linalg.matrix_power(a_d, d_steps)


def _check_spectrum_arguments(*, k, which, learning_rate, d_steps, blocks):
    """Checks `spectrum`'s arguments; returns `blocks` as a tuple of names of BLOCKS."""
    for name in which:
        if name not in WHICH:
            raise ConfigError(f"which must name orderings among {WHICH}, got {name!r}")
    if not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    if learning_rate is not None and not float(learning_rate) > 0:
        raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not isinstance(d_steps, int) or d_steps < 1:
        raise ConfigError(f"d_steps must be an integer >= 1, got {d_steps!r}")
    blocks = BLOCKS if blocks is True else () if not blocks else tuple(blocks)
    for name in blocks:
        if name not in BLOCKS:
            raise ConfigError(f"blocks must name blocks among {BLOCKS}, got {name!r}")
    return blocks


def _default_tol(operator):
    """ARPACK's tolerance for the operator's products: 1e-12 in float64, 1e-6 in float32."""
    return 1e-12 if operator.dtype == tf.float64 else 1e-6


def _jacobian_eigenvalues(operator, jac, *, which, k, notes, **arpack):
    """{'eigenvalues', 'residuals', 'g_fraction'}: for each ordering of `which`, the k leading
    eigenvalues of J (ARPACK on the JVPs, or of the dense `jac`), their residuals and their
    eigenvectors' shares in G's coordinates. ARPACK's notes go to `notes`."""
    eigenvalues, residuals, g_fraction = {}, {}, {}
    for name in which:
        values, vectors, note = _eigs(operator.jvp, operator.n, k=k, which=name, dense=jac,
                                      **arpack)
        eigenvalues[name] = values
        residuals[name] = _residuals(operator, values, vectors)
        weights = np.abs(vectors) ** 2
        g_fraction[name] = (weights[:operator.n_g].sum(axis=0) /
                            np.maximum(weights.sum(axis=0), 1e-300))
        if note:
            notes.append(note)
    return {"eigenvalues": eigenvalues, "residuals": residuals, "g_fraction": g_fraction}


def _sim_map(operator, h):
    """u -> (I + h J) u: the linearised simGD update."""
    return lambda u: u + h * operator.jvp(u)


def _alt_map(operator, h, d_steps):
    """u -> A_G A_D^d_steps u: the linearised altGD update (d_steps D steps, then G's)."""
    n_g = operator.n_g

    def alt(u):
        for _ in range(d_steps):  # D steps: psi += h (J u)_psi
            u = np.concatenate([u[:n_g], u[n_g:] + h * operator.jvp(u)[n_g:]])
        return np.concatenate([u[:n_g] + h * operator.jvp(u)[:n_g], u[n_g:]])
    return alt


def _update_maps(result, operator, jac, *, h, d_steps, k, notes, maps=UPDATE_MAPS, **arpack):
    """Sets result.{sim,alt}_eigenvalues (k by modulus) and result.{sim,alt}_radius of the
    simGD and altGD maps at learning rate h (those named in `maps`; each is its own ARPACK run
    from the same start vector, so one alone gives the same numbers as both)."""
    n = operator.n
    for attr, matvec, dense in (
            ("sim", _sim_map(operator, h), None if jac is None else np.eye(n) + h * jac),
            ("alt", _alt_map(operator, h, d_steps),
             None if jac is None else _alt_dense(jac, operator.n_g, h, d_steps))):
        if attr not in maps:
            continue
        values, _, note = _eigs(matvec, n, k=k, which="LM", dense=dense, **arpack)
        setattr(result, f"{attr}_eigenvalues", values)
        setattr(result, f"{attr}_radius",
                float(np.abs(values).max()) if len(values) else float("nan"))
        if note:
            notes.append(note)


def spectrum(*, operator, k=6, which=WHICH, learning_rate=None, d_steps=1, update_maps=True,
             blocks=True, tol=None, maxiter=None, ncv=None, dense_below=64, seed=0):
    """The leading eigenvalues of the game Jacobian J = dv/dx (docs/spectrum.md).

    Args:
      operator: a `GameOperator` (`game_operator(gan=..., real=..., labels=...)`).
      k: eigenvalues per request.
      which: ARPACK's orderings of J to compute: 'LM' (largest modulus), 'LR' (largest real part).
      learning_rate: h; with `update_maps` the k largest-modulus eigenvalues of the simGD map
        I + h J and of the altGD map (`d_steps` D steps, then G), and their spectral radii.
        update_maps: True (both), False (neither) or a tuple of 'sim' and/or 'alt' (the other's
        fields stay None).
      blocks: True (both), False (neither) or a tuple of 'd_hessian' (the eigenvalues of D's
        Hessian grad^2_psi L_D, k from both ends, eigsh) and 'coupling' (the k largest singular
        values of the coupling blocks J_DG and J_GD, svds).
      tol: ARPACK's relative tolerance (default 1e-12 for float64 products, 1e-6 for float32).
      maxiter: ARPACK's restarts (default max(100, n)); ncv: its Krylov dimension (default
        max(2k + 1, 20)). Each restart costs about ncv - k products; eigenvalues that did not
        converge within maxiter are left out (a note says how many converged).
      dense_below: up to this n, J is assembled from the n products J e_i and decomposed
        densely (ARPACK needs k < n - 1); every number still comes from the JVP operator.
      seed: ARPACK's start vector (results are reproducible for a given seed).
    Returns a `SpectrumResult` (with the products used, `counts`, and the seconds taken).
    """
    blocks = _check_spectrum_arguments(k=k, which=which, learning_rate=learning_rate,
                                       d_steps=d_steps, blocks=blocks)
    maps = UPDATE_MAPS if update_maps is True else () if not update_maps else tuple(update_maps)
    if any(name not in UPDATE_MAPS for name in maps):
        raise ConfigError(f"update_maps must be True, False or a tuple of names among "
                          f"{UPDATE_MAPS}, got {update_maps!r}")
    start, counts_before = time.time(), dict(operator.counts)
    n = operator.n
    arpack = {"tol": _default_tol(operator) if tol is None else tol,
              "maxiter": maxiter or max(100, n), "seed": seed}
    use_dense = n <= dense_below or k >= n - 1
    jac = operator.dense() if use_dense else None
    notes = list(operator.terms.notes)
    h = None if learning_rate is None else float(learning_rate)

    result = SpectrumResult(
        step=operator.step, n=n, n_g=operator.n_g, n_d=operator.n_d, dtype=operator.dtype.name,
        method="dense" if use_dense else "arnoldi", learning_rate=h, d_steps=d_steps,
        **_jacobian_eigenvalues(operator, jac, which=which, k=min(k, n), ncv=ncv, notes=notes,
                                **arpack),
        field_norm=float(np.linalg.norm(operator.field())))
    if h is not None and maps:
        _update_maps(result, operator, jac, h=h, d_steps=d_steps, k=min(k, n), ncv=ncv,
                     notes=notes, maps=maps, **arpack)
    if blocks:
        _block_spectra(result, operator, jac, k=k, notes=notes, blocks=blocks, **arpack)
    result.counts = {key: operator.counts[key] - counts_before.get(key, 0)
                     for key in operator.counts}
    result.seconds = time.time() - start
    result.notes = tuple(notes)
    return result


def _both_ends(values, k):
    """k of the sorted `values` from both ends (all when there are at most k), descending."""
    values = np.sort(np.asarray(values, np.float64))
    if len(values) > k:
        values = np.concatenate([values[:k // 2], values[len(values) - (k + 1) // 2:]])
    return values[::-1]


def _d_hessian(operator, jac, *, k, tol, maxiter, seed, notes):
    """Eigenvalues of D's Hessian grad^2_psi L_D = -J_DD (symmetric), k from both ends."""
    n_g, n_d = operator.n_g, operator.n_d
    if jac is not None or k >= n_d:
        block = -(jac if jac is not None else operator.dense())[n_g:, n_g:]
        return _both_ends(np.linalg.eigvalsh(0.5 * (block + block.T)), k)
    op = sla.LinearOperator(
        (n_d, n_d), dtype=np.float64,
        matvec=lambda u: -operator.jvp(np.concatenate([np.zeros(n_g), np.ravel(u)]))[n_g:])
    found, note = _arpack(sla.eigsh, op, k=k, which="BE", tol=tol, maxiter=maxiter,
                          v0=_start_vector(n_d, seed), return_eigenvectors=False)
    if note:
        notes.append(note)
    return _both_ends(found if note is None else found[0], k)


def _coupling(operator, jac, *, rows_are_d, k, tol, maxiter, seed, notes):
    """The k largest singular values of J_DG (rows_are_d: rows psi, columns theta) or J_GD;
    matrix-free by svds with J u (matvec) and J^T w (rmatvec) on zero-padded vectors."""
    n, n_g = operator.n, operator.n_g
    g, d = slice(0, n_g), slice(n_g, n)
    rows, cols = (d, g) if rows_are_d else (g, d)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if jac is not None or k >= min(shape):
        block = (jac if jac is not None else operator.dense())[rows, cols]
        return np.linalg.svd(block, compute_uv=False)[:k]

    def padded(u, where):
        x = np.zeros(n)
        x[where] = np.ravel(u)
        return x

    op = sla.LinearOperator(shape, dtype=np.float64,
                            matvec=lambda u: operator.jvp(padded(u, cols))[rows],
                            rmatvec=lambda w: operator.vjp(padded(w, rows))[cols])
    try:
        values = sla.svds(op, k=k, tol=tol, maxiter=maxiter, solver="arpack",
                          v0=_start_vector(min(shape), seed), return_singular_vectors=False)
    except sla.ArpackNoConvergence as e:
        notes.append(f"svds {'J_DG' if rows_are_d else 'J_GD'}: {e}")
        values = np.zeros(0)
    return np.sort(np.asarray(values, np.float64))[::-1]


def _block_spectra(result, operator, jac, *, blocks, **kwargs):
    if "d_hessian" in blocks:
        result.d_hessian_eigenvalues = _d_hessian(operator, jac, **kwargs)
    if "coupling" in blocks:
        result.coupling_dg = _coupling(operator, jac, rows_are_d=True, **kwargs)
        result.coupling_gd = _coupling(operator, jac, rows_are_d=False, **kwargs)
