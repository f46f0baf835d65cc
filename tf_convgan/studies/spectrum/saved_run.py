"""A GAN rebuilt from a training run's directory for the spectrum, read as data (its run config
and checkpoint, never through gin), with the run's data source."""
from typing import NamedTuple

from tf_convgan.studies.spectrum.jacobian import float64_networks

FILE_SOURCES = ("fashion_mnist_source", "npy_source", "idx_source", "image_folder_source")


class LoadedRun(NamedTuple):
    """What `load_run` rebuilt from a run directory."""
    gan: object          # the GAN at the checkpoint's weights and step
    path: str            # the checkpoint's prefix
    source: object       # the run's data source, or None
    notes: tuple         # what the result's notes should add


def data_source(config, *, data_dir=None):
    """The source bound to train.data in a RunConfig when it is one of the library's file
    sources (`FILE_SOURCES`, unscoped) with literal bindings, else None. `data_dir` replaces the
    directory of a source that has one (fashion_mnist_source, idx_source, image_folder_source)."""
    import inspect
    from tf_convgan import data as data_lib
    reference = config.reference("train.data")
    name = reference.selector.rpartition(".")[2] if reference is not None else None
    if name not in FILE_SOURCES or reference.scope:
        return None
    function = inspect.unwrap(getattr(data_lib, name))
    kwargs = config.literal_kwargs(name, function)
    if data_dir is not None and "directory" in inspect.signature(function).parameters:
        kwargs["directory"] = data_dir
    return function(**kwargs)


def _run_notes(config):
    """Notes on what the spectrum of a run directory computes differently from its training."""
    policy = config.literal("train.mixed_precision")
    if policy is None:
        return ()
    return (f"train.mixed_precision = {policy!r}: the products run in float32 (float64 with "
            f"--float64), not in the run's {policy}",)


def load_run(model_dir, *, checkpoint=None, float64=False, data_dir=None):
    """A GAN rebuilt from a run directory, what was restored, and the run's data source.

    Read as data, never through gin (tf_convgan.run_dir): G and D from the run config's network
    factories and the checkpoint (latest readable, 'best', a name or a prefix: run_dir.generators
    .load_players); the objective, loss and every term the step composes (penalty, instance
    noise, consistency, zCR, seeds, d_steps, lazy_interval, consensus_gamma), from the config's
    bindings (run_dir.objective.read_objective: a term that cannot be rebuilt raises a
    RunConfigError naming it). The data: `data_source`. With `float64`, the networks are
    float64 twins (`float64_networks`) of the checkpoint's float32 ones. Returns a `LoadedRun`
    (gan, checkpoint path, data source or None, notes)."""
    from tf_convgan.gan.model import GAN
    from tf_convgan.run_dir import generators, objective
    from tf_convgan.run_dir.run_config import read_run_config

    config = read_run_config(model_dir)
    game = objective.read_objective(config)
    players = generators.load_players(model_dir, checkpoint=checkpoint, config=config,
                                      dtype_policy="float32")
    generator, discriminator = players.generator, players.discriminator
    if float64:
        generator, discriminator = float64_networks(
            generator_fn=lambda: config.build("train.generator_fn"),
            discriminator_fn=lambda: config.build("train.discriminator_fn"),
            generator=generator, discriminator=discriminator)
    generator_ema = generators.build_network(config, "train.generator_fn",
                                             dtype_policy="float64" if float64 else "float32")
    gan = GAN(generator, discriminator, generator_ema, **game.gan_kwargs())
    gan.step_counter.assign(players.step)
    return LoadedRun(gan, players.path, data_source(config, data_dir=data_dir),
                     _run_notes(config))
