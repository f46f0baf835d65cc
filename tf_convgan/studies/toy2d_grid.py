"""The full 2D comparison (Mescheder et al. 2018, sec. 4.1): every method of the Dirac-GAN table on
every 2D problem, simGD and altGD, several seeds. This module is the pure part: the methods as gin
bindings, the grid's expansion into runs, the convergence verdict, the Markdown table and the
figure grids. Training (train() on gin_configs/toy2d) is `scripts/toy2d_grid.py`'s.

Methods (`METHODS`, data-driven; `select_methods` picks some by name). Losses as in the
Dirac-GAN table (`studies.dirac.dirac_method`): the minimax loss unless the method is the
non-saturating GAN or a WGAN; gamma = 1 for every penalty and ConOpt, as there. The 2D-specific
values (the Dirac-GAN's clip = 1 and sigma = 1 do not carry over to an MLP on data of scale ~1):
WGAN clips every weight of D to [-0.01, 0.01] (Arjovsky et al.'s c); instance noise has a constant
sigma = 0.1 (the Dirac analysis is for a constant sigma). WGAN and WGAN-GP take 5 D steps per G step
under altGD; simGD needs 1 (`GAN.update_rule = 'simultaneous'` takes both gradients at the same
state), so under simGD they take 1.

ConOpt (`GAN.consensus_gamma`) has its own simultaneous step and refuses `update_rule`; it runs
once per problem and seed, only as itself (rule 'own'), and is listed once in the table and in
both figure grids.

Verdict of one run, from its evaluations (metrics.csv: W2 of 1000 samples to 1000 data points every
`sample_every` steps), the last `window` of them (default 4, the second half of a run evaluated 8
times), and the data floor f (`toy2d.data_floor` for the run's seed):
  converged         the W2 over the window changes by at most `settle` (max - min <= 0.05) and the
                    final W2 is within `near` (0.15) of f;
  stalled           settled (max - min <= 0.05) but further than `near` from f: a fixed point away
                    from the data (e.g. a collapsed G);
  still decreasing  not settled, but the W2 never rose by more than settle/2 between two
                    evaluations of the window and the final W2 is within settle/2 of the window's
                    lowest: it may converge with more steps, no verdict yet;
  oscillates        not settled otherwise (the W2 rose by more than settle/2 between two
                    evaluations, or ended more than settle/2 above the window's lowest);
  diverged          training stopped on a non-finite value (train's TrainingDivergedError).
The thresholds are absolute W2 values, fixed before the full run; the floors are 0.05-0.35.
"""
import dataclasses
import inspect
import json
import os
import time
from typing import Optional, Tuple

import numpy as np

from tf_convgan import run_dir
from tf_convgan.objectives import penalties
from tf_convgan.studies import plots
from tf_convgan.studies import toy2d

RULES = ("alternating", "simultaneous")
OWN_RULE = "own"  # ConOpt's own simultaneous step
SHORT_RULE = {"alternating": "altGD", "simultaneous": "simGD", OWN_RULE: "own (sim.)"}
WINDOW, SETTLE, NEAR = 4, 0.05, 0.15
VERDICTS = ("converged", "stalled", "still decreasing", "oscillates", "diverged")
STATUS_FILE = "grid_run.json"
FRAME_FILE = toy2d.FRAME_NPZ


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    bindings: Tuple[str, ...]        # gin bindings on top of gin_configs/toy2d/<problem>_*.gin
    penalty: Optional[str] = None    # a function of tf_convgan.objectives.penalties, or None
    alt_d_steps: int = 1             # D steps per G step under altGD
    own_rule: bool = False           # ConOpt: its own simultaneous step, no update_rule


def _penalty_bindings(name, gamma=1.0):
    bindings = [f"GAN.penalty = @{name}"]
    fn = getattr(penalties, name, None)
    if fn is not None and "gamma" in inspect.signature(fn).parameters:
        bindings.append(f"{name}.gamma = {gamma}")
    return bindings


def _methods():
    minimax, none = "GAN.loss = @minimax()", "GAN.penalty = None"
    wasserstein = "GAN.loss = @wasserstein()"
    methods = [
        Method("unregularized", (minimax, none)),
        Method("non_saturating", ("GAN.loss = @non_saturating()", none)),
        Method("wgan", (wasserstein, none, "GAN.d_weight_clip = 0.01"), alt_d_steps=5),
        Method("wgan_gp", (wasserstein, *_penalty_bindings("wgan_gp")), "wgan_gp", alt_d_steps=5),
        Method("instance_noise", (minimax, none, "GAN.instance_noise = @sigma_schedule",
                                  "sigma_schedule.sigma = 0.1",
                                  "sigma_schedule.final_sigma = 0.1")),
        Method("conopt", (minimax, none, "GAN.consensus_gamma = 1.0"), own_rule=True),
        Method("r1", (minimax, *_penalty_bindings("r1")), "r1"),
        Method("r2", (minimax, *_penalty_bindings("r2")), "r2"),
        Method("r1_r2", (minimax, *_penalty_bindings("r1_r2")), "r1_r2"),
        Method("dragan", (minimax, *_penalty_bindings("dragan")), "dragan"),
        Method("roth", (minimax, *_penalty_bindings("roth")), "roth"),
    ]
    return {m.name: m for m in methods}


METHODS = _methods()


def select_methods(names=None):
    """The methods named in `names` (default: all), in METHODS' order of the names given; an
    unknown name is a ValueError listing the known ones."""
    names = list(METHODS) if names is None else list(names)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    return [METHODS[name] for name in names]


@dataclasses.dataclass(frozen=True)
class Run:
    method: str
    problem: str
    rule: str        # 'alternating', 'simultaneous' or 'own' (ConOpt)
    seed: int
    d_steps: int
    bindings: Tuple[str, ...]

    @property
    def name(self):
        return f"{self.problem}_{self.method}_{self.rule}_seed{self.seed}"

    @property
    def gin_file(self):  # the problem's unregularized config; the method's bindings follow
        return os.path.join("toy2d", f"{self.problem}_unregularized.gin")


def expand(methods, problems, rules, seeds):
    """Every run of the grid (ConOpt once per problem and seed, as 'own'), seed by seed: the
    first seed's runs all come first, so an interrupted grid has whole seeds."""
    for rule in rules:
        if rule not in RULES:
            raise ValueError(f"rules must be among {RULES}, got {rule!r}")
    runs = []
    for seed in seeds:
        for method in methods:
            method_rules = (OWN_RULE,) if method.own_rule else tuple(rules)
            for problem in problems:
                for rule in method_rules:
                    d_steps = method.alt_d_steps if rule == "alternating" else 1
                    extra = [f"GAN.d_steps = {d_steps}"]
                    if rule != OWN_RULE:
                        extra.append(f"GAN.update_rule = '{rule}'")
                    runs.append(Run(method.name, problem, rule, seed, d_steps,
                                    tuple(method.bindings) + tuple(extra)))
    return runs


def verdict(w2s, floor, *, window=WINDOW, settle=SETTLE, near=NEAR):
    """The verdict of one run from its W2 evaluations in order (see the module docstring)."""
    w2s = np.asarray(w2s, float)
    if len(w2s) == 0 or not np.all(np.isfinite(w2s)):
        return "diverged"
    last = w2s[-window:]
    if last.max() - last.min() <= settle:
        return "converged" if w2s[-1] - floor <= near else "stalled"
    if np.all(np.diff(last) <= settle / 2) and last[-1] <= last.min() + settle / 2:
        return "still decreasing"
    return "oscillates"


def read_status(model_dir):
    """The run's status file as a dict, or None when there is none (model_dir local or a URL)."""
    path = os.path.join(model_dir, STATUS_FILE)
    if not run_dir.files.exists(path):
        return None
    return json.loads(run_dir.read_text(path))


def write_status(model_dir, **status):
    """Replaces the run's status file, crash-safe (run_dir.write_text)."""
    run_dir.write_text(os.path.join(model_dir, STATUS_FILE), json.dumps(status))


def mean_floors(results, problems):
    """Per problem, the mean over seeds of the W2 floor (each seed's once), or None without
    results."""
    means = []
    for p in problems:
        per_seed = dict((r["seed"], r["floor"]) for r in results if r["problem"] == p)
        means.append(float(np.mean(list(per_seed.values()))) if per_seed else None)
    return means


def train_and_record(model_dir, train_fn, *, diverged, **status):
    """Runs `train_fn()`, then writes the run's status file: `status` plus 'done', or
    'diverged' with the error when it raises one of `diverged` (the loop's
    TrainingDivergedError: this layer does not import the loop), and the seconds it took.
    Returns 'done' or 'diverged'."""
    tick = time.time()
    try:
        train_fn()
        status["status"] = "done"
    except diverged as e:
        status.update(status="diverged", error=str(e))
    status["seconds"] = round(time.time() - tick, 1)
    write_status(model_dir, **status)
    return status["status"]


def is_finished(model_dir, num_steps):
    """A run is finished when its status file says done (or diverged) for this num_steps."""
    status = read_status(model_dir)
    return status is not None and status.get("num_steps") == num_steps


def evaluations(model_dir):
    """[(step, metrics row)] of a run's metrics.csv, one per step (the last row of a step wins:
    a run resumed after a crash may have logged a step twice)."""
    path = os.path.join(model_dir, toy2d.METRICS_CSV)
    if not run_dir.files.exists(path):
        return []
    by_step = {}
    for row in toy2d.read_csv(path):
        by_step[int(row["step"])] = row
    return sorted(by_step.items())


def collect(out_dir, runs, floors, num_steps):
    """One result per run, read from its model directory: final W2 (and ring8 coverage), the W2
    curve and the verdict. floors: {(problem, seed): data floor}."""
    results = []
    for run in runs:
        model_dir = os.path.join(out_dir, "runs", run.name)
        status = read_status(model_dir) or {}
        rows = evaluations(model_dir)
        floor = floors[(run.problem, run.seed)]
        result_seconds = status.get("seconds", 0.0)
        result = dataclasses.asdict(run) | {"name": run.name, "floor": floor,
                                            "curve": [r["w2"] for _, r in rows],
                                            "steps": [s for s, _ in rows],
                                            "seconds": result_seconds}
        if status.get("status") == "diverged":
            result.update(final=float("nan"), verdict="diverged", error=status.get("error"))
        elif not rows or rows[-1][0] != num_steps:
            result.update(final=float("nan"), verdict="missing")
        else:
            last = rows[-1][1]
            result.update(final=last["w2"], verdict=verdict(result["curve"], floor))
            for key in ("modes", "high_quality"):
                if key in last:
                    result[key] = last[key]
        results.append(result)
    return results


def _group(results):
    groups = {}
    for r in results:
        groups.setdefault((r["method"], r["rule"]), {}).setdefault(r["problem"], []).append(r)
    return groups


def _cell(rs):
    finals = [r["final"] for r in rs if np.isfinite(r["final"])]
    counts = {}
    for r in rs:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    verdicts = ", ".join(f"{v} {n}/{len(rs)}" for v, n in counts.items())
    mean = f"**{np.mean(finals):.3f}**" if finals else "n/a"
    return f"{mean} ({verdicts})"


def markdown(results, *, num_steps, seeds, problems, seconds=None, partial=False):
    """The Markdown table: per method x update rule (rows) and problem (columns) the mean final
    W2 over the seeds and the seeds' verdicts; then every run's numbers."""
    lines = []
    if partial:
        lines += ["**PARTIAL RESULTS: not every run of the grid had finished.**", ""]
    lines += [f"Exact W2 distance to the data after {num_steps} steps (1000 samples of G vs 1000 "
              f"data points), mean over seeds {list(seeds)}, with each seed's verdict: converged = "
              f"the W2 of the last {WINDOW} evaluations varies by at most {SETTLE} and the final "
              f"W2 is within {NEAR} of the floor; stalled = settled but further; still decreasing "
              f"= not settled, never rising by more than {SETTLE / 2} between evaluations and "
              f"ending within {SETTLE / 2} of the window's lowest; oscillates = not settled "
              f"otherwise; diverged = non-finite. Floor: W2 between the evaluation's data "
              f"points and 1000 other data points (mean over the seeds).", "",
              "| method | rule | D steps | " + " | ".join(problems) + " |",
              "|---|---|---|" + "---|" * len(problems)]
    floor_cells = [f"{f:.3f}" if f is not None else "" for f in mean_floors(results, problems)]
    lines.append("| *floor* | | | " + " | ".join(floor_cells) + " |")
    for (method, rule), per_problem in _group(results).items():
        d_steps = next(iter(per_problem.values()))[0]["d_steps"]
        cells = [_cell(per_problem[p]) if p in per_problem else "" for p in problems]
        lines.append(f"| {method} | {SHORT_RULE[rule]} | {d_steps} | " + " | ".join(cells) + " |")
    lines += ["", summary(results)]
    counts = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    lines += ["", "Verdicts over all runs: " + ", ".join(f"{v} {n}" for v, n in counts.items())
              + "."]
    ring = [r for r in results if "modes" in r]
    if ring:
        lines += ["", "ring8, mean over seeds: " + "; ".join(
            f"{m} {SHORT_RULE[rule]}: {100 * np.mean([r['modes'] for r in rs]):.0f}% of the "
            f"modes" for (m, rule), rs in _group_flat(ring).items())]
    trained = sum(r.get("seconds") or 0.0 for r in results)
    lines += ["", f"{len(results)} runs; their train() calls took {trained:.0f} s in all (sum "
              f"over the runs' grid_run.json)" + ("" if seconds is None else
                                                  f"; this invocation took {seconds:.0f} s") + "."]
    lines += ["", "<details><summary>every run: final W2, floor, verdict, W2 curve</summary>", "",
              "| run | final W2 | floor | verdict | W2 at each evaluation |",
              "|---|---|---|---|---|"]
    for r in results:
        curve = ", ".join(f"{v:.3f}" for v in r["curve"])
        lines.append(f"| {r['problem']} {r['method']} {SHORT_RULE[r['rule']]} seed {r['seed']} | "
                     f"{r['final']:.3f} | {r['floor']:.3f} | {r['verdict']} | {curve} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def spread(curve, window=WINDOW):
    """max - min of the W2 over the last `window` evaluations."""
    last = np.asarray(curve[-window:], float)
    return float(last.max() - last.min())


def summary(results):
    """Per method x rule, over every problem and seed: the mean final W2 above the floor, the
    mean spread of the last evaluations (how much the W2 still moves) and the verdict counts,
    ordered by the excess."""
    rows = []
    for (method, rule), rs in _group_flat(results).items():
        ok = [r for r in rs if np.isfinite(r["final"]) and r["curve"]]
        excess = np.mean([r["final"] - r["floor"] for r in ok]) if ok else float("nan")
        moves = np.mean([spread(r["curve"]) for r in ok]) if ok else float("nan")
        counts = {v: sum(r["verdict"] == v for r in rs) for v in VERDICTS + ("missing",)}
        rows.append((excess, method, rule, moves, counts, len(rs)))
    lines = [f"Summary over problems and seeds, by mean final W2 above the floor (lower: closer "
             f"to the data); spread = max - min of the W2 over the last {WINDOW} evaluations "
             f"(mean over the runs; lower: moves less).", "",
             "| method | rule | W2 above floor | spread | converged | stalled | still decreasing "
             "| oscillates | diverged |", "|---|---|---|---|---|---|---|---|---|"]
    for excess, method, rule, moves, counts, n in sorted(rows, key=lambda row: row[0]):
        lines.append(f"| {method} | {SHORT_RULE[rule]} | {excess:.3f} | {moves:.3f} | "
                     + " | ".join(f"{counts[v]}/{n}" for v in VERDICTS) + " |")
    return "\n".join(lines)


def _group_flat(results):
    groups = {}
    for r in results:
        groups.setdefault((r["method"], r["rule"]), []).append(r)
    return groups


def figure(out_dir, results, path, *, rule, seed, methods, problems):
    """Rows: methods, columns: problems; each panel G's final samples (red) over D's logit
    contours for `rule` (ConOpt: its own step) and `seed`, from the runs' samples.npz."""
    frames = []
    for method in methods:
        for problem in problems:
            match = [r for r in results if r["method"] == method and r["problem"] == problem
                     and r["seed"] == seed and r["rule"] in (rule, OWN_RULE)]
            frame = {"title": f"{method}, {problem}: no run", "real": np.zeros((0, 2)),
                     "fake": np.zeros((0, 2)), "d_grid": None,
                     "limit": toy2d.PLOT_LIMIT.get(problem, 2.0)}
            if match:
                r = match[0]
                npz = os.path.join(out_dir, "runs", r["name"], FRAME_FILE)
                if run_dir.files.exists(npz):
                    f = toy2d.load_frame(npz)
                    frame.update(real=f["real"], fake=f["fake"],
                                 d_grid=(f["grid_x"], f["grid_y"], f["logits"]))
                own = " (own)" if r["rule"] == OWN_RULE else ""
                frame["title"] = f"{method}{own}, {problem}: {r['final']:.2f}, {r['verdict']}"
            frames.append(frame)
    plots.toy2d_figure(frames, path, cols=len(problems), limit=2.0, dpi=60)
