"""The spectrum during training: `train.evaluator = @spectrum_evaluator()`."""
import gin

from tf_convgan.errors import ConfigError
from tf_convgan.evaluation.hook import EvaluationHook
from tf_convgan.studies.spectrum.eigenvalues import WHICH, spectrum
from tf_convgan.studies.spectrum.jacobian import game_operator
from tf_convgan.studies.spectrum.outputs import record


def real_batch(source, *, batch_size, seed=0):
    """The first `batch_size` examples of `source.dataset(seed=seed)`: (images, labels)."""
    images, labels = next(iter(source.dataset(seed=seed).batch(batch_size)))
    if images.shape[0] != batch_size:
        raise ConfigError(f"the data has {images.shape[0]} examples, the spectrum's batch_size "
                          f"is {batch_size}")
    return images.numpy(), labels.numpy()


@gin.configurable("spectrum_evaluator")
class SpectrumEvaluator(EvaluationHook):
    """The spectrum of the game Jacobian during training: `train.evaluator =
    @spectrum_evaluator()` (every `train.eval_every` steps).

    A training hook (tf_convgan.training.hooks): called with the loop's context it evaluates the
    context's GAN (or `gan`) and records the values as every evaluation hook does (TensorBoard
    eval/*, metrics.csv). `evaluate(generator_ema, step, strategy=, data=)` takes a fixed batch of `batch_size`
    examples of `data` (the first of the stream of `seed`, the same at every evaluation),
    computes the spectrum at the current weights with the step's random draws, appends it to
    `out_dir` (history and PNG; None: not written) and returns the scalars, which train() logs to
    TensorBoard as eval/spectrum_* and to metrics.csv."""

    def __init__(self, *, k=6, which=("LR",), batch_size=64, learning_rate=None, blocks=False,
                 out_dir=None, seed=0, tol=None, maxiter=None, gan=None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"spectrum_evaluator.batch_size must be an integer >= 1, got "
                              f"{batch_size!r}")
        for name in which:
            if name not in WHICH:
                raise ConfigError(f"spectrum_evaluator.which must name orderings among {WHICH}, "
                                  f"got {name!r}")
        self.k, self.which, self.batch_size = k, tuple(which), batch_size
        self.learning_rate, self.blocks, self.out_dir = learning_rate, blocks, out_dir
        self.seed, self.tol, self.maxiter, self.gan = seed, tol, maxiter, gan
        self._context_gan = None
        self._batch = None
        self._operator = None  # traced once, moved to every evaluation's weights and step
        self.last = None

    def __call__(self, context):
        self._context_gan = context.gan
        return super().__call__(context)

    def evaluate(self, generator_ema, step, *, strategy=None, data=None):
        gan = self.gan or self._context_gan
        if gan is None or gan.generator_ema is not generator_ema:
            raise ConfigError("spectrum_evaluator: no GAN owns this generator: run it as "
                              "train.evaluator or pass gan=")
        if self._batch is None:
            if data is None:
                raise ConfigError("spectrum_evaluator needs the training data (data=)")
            self._batch = real_batch(data, batch_size=self.batch_size, seed=self.seed)
        operator = game_operator(gan=gan, real=self._batch[0], labels=self._batch[1],
                                 strategy=strategy, like=self._operator)
        self._operator = operator
        result = spectrum(operator=operator, k=self.k, which=self.which,
                          learning_rate=self.learning_rate, d_steps=gan.d_steps,
                          blocks=self.blocks, tol=self.tol, maxiter=self.maxiter, seed=self.seed)
        record(result, out_dir=self.out_dir)
        self.last = result
        return {f"spectrum_{name}": value for name, value in result.scalars().items()}
