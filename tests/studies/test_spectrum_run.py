"""The spectrum of a run directory (`python -m tf_convgan.spectrum`): the objective is the one
the run's step composed, instance noise at the checkpoint's step and consistency terms
included, or the command refuses, naming the term."""
import functools

import numpy as np
import pytest

from helpers import copy_run
from tf_convgan.gan.model import GAN
from tf_convgan.objectives import augment, consistency, instance_noise
from tf_convgan.run_dir import layout
from tf_convgan.cli import spectrum as spectrum_cli
from tf_convgan.studies import spectrum

TERMS = """
GAN.instance_noise = @sigma_schedule
sigma_schedule.sigma = 0.5
sigma_schedule.final_sigma = 0.1
sigma_schedule.decay_steps = 4
GAN.consistency = @bcr
bcr.lambda_real = 2.0
bcr.augment = @shift_flip
shift_flip.max_shift = 2
GAN.latent_consistency = @zcr()
zcr.sigma_noise = 0.2
"""


def _run_with(trained_run, tmp_path, bindings):
    """A copy of the trained tiny run whose operative config binds `bindings` too (later
    bindings replace earlier ones, as in gin)."""
    run = copy_run(trained_run.model_dir, tmp_path / "run")
    with open(layout.operative_config_path(str(run)), "a", encoding="utf-8") as f:
        f.write(bindings)
    return str(run)


def _objectives(gan, real, labels):
    """(L_G, L_D) of `gan` at its step, as the spectrum's field differentiates them."""
    step = int(gan.step.numpy())
    seed_d, seed_g = spectrum.step_seeds(seed=gan.seed, step=step, d_steps=gan.d_steps)
    l_g, l_d = spectrum.objectives(
        terms=spectrum.game_terms(gan), generator=gan.generator,
        discriminator=gan.discriminator, real=real, labels=labels.astype(np.int32),
        seed_d=seed_d, seed_g=seed_g)
    return np.array([float(l_g), float(l_d)])


def _same_networks(gan, **terms):
    """A GAN of `gan`'s networks, loss, penalty and seed at its step with other `terms`."""
    other = GAN(gan.generator, gan.discriminator, gan.generator_ema, loss=gan.loss,
                penalty=gan.penalty, seed=gan.seed, ema_beta=0.0, **terms)
    other.step_counter.assign(int(gan.step.numpy()))
    return other


def test_instance_noise_and_consistency_are_rebuilt_at_the_checkpoints_step(trained_run,
                                                                             tmp_path):
    run = _run_with(trained_run, tmp_path, TERMS)
    gan, path, source, _ = spectrum.load_run(run, checkpoint="ckpt-2")
    assert path.endswith("ckpt-2") and int(gan.step.numpy()) == 2
    # sigma at step 2 of a linear decay from 0.5 to 0.1 over 4 steps.
    terms = spectrum.game_terms(gan)
    assert terms.noisy and terms.sigma == pytest.approx(0.3, rel=1e-6)
    real, labels = spectrum.real_batch(source, batch_size=4)
    want = _same_networks(
        gan, instance_noise=functools.partial(instance_noise.sigma_schedule, sigma=0.5,
                                              final_sigma=0.1, decay_steps=4),
        consistency=functools.partial(consistency.bcr, lambda_real=2.0, augment=functools.partial(
            augment.shift_flip, max_shift=2)),
        latent_consistency=consistency.zcr(sigma_noise=0.2))
    np.testing.assert_array_equal(_objectives(gan, real, labels),
                                  _objectives(want, real, labels))
    # ... which is not the game without the terms.
    plain = _objectives(_same_networks(gan), real, labels)
    assert np.all(np.abs(_objectives(gan, real, labels) - plain) > 1e-4 * np.abs(plain))


def test_command_line_on_a_run_with_instance_noise_and_consistency(trained_run, tmp_path,
                                                                   capsys):
    run = _run_with(trained_run, tmp_path, TERMS)
    status = spectrum_cli.main(["spectrum", "--model_dir", run, "--k", "1", "--which", "LR",
                                "--noblocks", "--batch_size", "4", "--checkpoint", "ckpt-2",
                                "--tol", "1e-2", "--out_dir", str(tmp_path / "out")])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "step 2:" in printed.out and "not rebuilt" not in printed.out


@pytest.mark.parametrize("bindings,term", [
    ("GAN.consistency = @cr\ncr.augment = @s/shift_flip\n", "GAN.consistency"),
    ("GAN.instance_noise = @exponential_annealing\n", "GAN.instance_noise"),
    ("GAN.latent_consistency = @zcr\n", "GAN.latent_consistency"),
])
def test_command_line_refuses_a_term_it_cannot_rebuild(trained_run, tmp_path, capsys, bindings,
                                                       term):
    """Refused before anything is computed, naming the term (and --model_dir, also when a
    checkpoint is named)."""
    run = _run_with(trained_run, tmp_path, bindings)
    status = spectrum_cli.main(["spectrum", "--model_dir", run, "--checkpoint", "ckpt-2",
                                "--out_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: --model_dir: ") and f"{term} cannot be rebuilt" in err, err
    assert not (tmp_path / "out").exists()
