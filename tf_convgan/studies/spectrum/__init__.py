"""The spectrum of the game Jacobian of a GAN, matrix-free (Mescheder et al. 2018, sec. 2).

At a fixed batch and training step's random draws, the field v(theta, psi) = (-grad_theta L_G,
-grad_psi L_D) of the objectives `GAN.train_step` composes, and J = dv/dx at x = (theta, psi); the
leading eigenvalues of J, of the simGD and altGD update maps, D's Hessian and the coupling blocks'
singular values. The derivation, the precision, distribution and what the field leaves out:
docs/spectrum.md, "What is computed".

The modules, in the order they build on each other:
  game         the objectives' terms at a step, the step's seeds, (L_G, L_D)
  jacobian     `game_operator`: J u, J^T w of the field (`GameOperator`), `float64_networks`
  eigenvalues  `spectrum(...)` -> `SpectrumResult` (ARPACK or dense)
  outputs      `format_table`, `record` (history JSON, PNG, TensorBoard scalars)
  hook         `SpectrumEvaluator` (gin `@spectrum_evaluator()`, a `train.evaluator`)
  saved_run    `load_run`: a GAN rebuilt from a run directory, with its data source
The command `python -m tf_convgan.spectrum --model_dir runs/X` is tf_convgan.cli.spectrum. The
names below are the package's API.
"""
from tf_convgan.errors import ConfigError  # noqa: F401  (what the API raises)
from tf_convgan.studies.spectrum.eigenvalues import (  # noqa: F401
    BLOCKS, UPDATE_MAPS, WHICH, SpectrumResult, spectrum)
from tf_convgan.studies.spectrum.game import (  # noqa: F401
    GameTerms, game_terms, objectives, step_seeds)
from tf_convgan.studies.spectrum.hook import SpectrumEvaluator, real_batch  # noqa: F401
from tf_convgan.studies.spectrum.jacobian import (  # noqa: F401
    GameOperator, float64_networks, game_operator)
from tf_convgan.studies.spectrum.outputs import (  # noqa: F401
    HISTORY_JSON, PLOT_PNG, check_out_dir, draw_history, format_table, plot_history,
    read_history, record, write_summaries)
from tf_convgan.studies.spectrum.saved_run import (  # noqa: F401
    LoadedRun, data_source, load_run)
