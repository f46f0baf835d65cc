"""The spectrum of the game Jacobian (tf_convgan.spectrum): the Dirac-GAN's closed forms through
the GAN's own objective and the JVP operator, the matrix-free eigenvalues of a small MLP GAN
against its dense autodiff Jacobian, finite differences, MirroredStrategy, the evaluator hook
and the command line."""
import functools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT, ram_url, two_cpu_strategy
from tf_convgan.errors import ConfigError
from tf_convgan.gan.model import GAN
from tf_convgan.objectives import losses, penalties
from tf_convgan import noise
from tf_convgan.cli import spectrum as spectrum_cli
from tf_convgan.studies import dirac, spectrum
from tf_convgan.networks import build, mlp_discriminator, mlp_generator
from tf_convgan.run_dir import images

F1 = 0.5  # f'(0) of the minimax loss (tests/studies/test_dirac.py)


# --------------------------------------------------------------------------- the Dirac-GAN

class DiracGenerator(keras.Model):
    """G_theta = delta_theta: every z gives the one point theta (a [1] weight)."""

    def __init__(self, theta=0.0, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.num_classes, self.data_shape = 1, 1, (1,)
        self.theta = self.add_weight(shape=(1,), initializer=keras.initializers.Constant(theta),
                                     name="theta")

    def call(self, z, labels=None, training=None):
        return keras.ops.zeros_like(z[:, :1]) + self.theta


class DiracDiscriminator(keras.Model):
    """D_psi(x) = psi x: logits [B]."""

    def __init__(self, psi=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.data_shape = 1, (1,)
        self.psi = self.add_weight(shape=(1,), initializer=keras.initializers.Constant(psi),
                                   name="psi")

    def call(self, x, labels=None, training=None):
        return self.psi[0] * keras.ops.sum(x, axis=1)


def dirac_gan(*, theta=0.0, psi=0.0, loss=None, penalty=None, sigma=None, strategy=None):
    """The Dirac-GAN as a tf_convgan GAN with float64 weights."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            g, d = build(DiracGenerator(theta)), build(DiracDiscriminator(psi))
            g_ema = build(DiracGenerator(theta))
            return GAN(g, d, g_ema, loss=loss or losses.minimax(), penalty=penalty,
                       instance_noise=None if sigma is None else (lambda step: sigma))
    finally:
        keras.config.set_dtype_policy(previous)


def _dirac_spectrum(gan, batch=8, **kwargs):
    real = np.zeros([batch, 1], np.float32)  # data delta_0
    operator = spectrum.game_operator(gan=gan, real=real)
    return operator, spectrum.spectrum(operator=operator, k=2, **kwargs)


def _closed(trace_half, disc):
    root = np.sqrt(complex(disc))
    return np.sort_complex(np.array([trace_half + root, trace_half - root]))


def _lm(result):
    return np.sort_complex(result.eigenvalues["LM"])


def test_dirac_unregularized_eigenvalues_are_imaginary():
    operator, result = _dirac_spectrum(dirac_gan())
    assert result.method == "dense" and operator.n == 2 and result.counts["jvp"] >= 2
    np.testing.assert_allclose(_lm(result), [-1j * F1, 1j * F1], atol=1e-8)
    np.testing.assert_allclose(result.max_real, 0.0, atol=1e-8)
    np.testing.assert_allclose(operator.dense(), [[0.0, F1], [-F1, 0.0]], atol=1e-12)
    assert np.all(result.residuals["LM"] < 1e-12)
    np.testing.assert_allclose(result.g_fraction["LM"], [0.5, 0.5], atol=1e-12)
    # simGD diverges for every h: |1 + h i f'(0)| = sqrt(1 + h^2 f'(0)^2) > 1.
    _, result = _dirac_spectrum(dirac_gan(), learning_rate=0.1)
    np.testing.assert_allclose(result.sim_radius, np.sqrt(1 + 0.01 * F1 ** 2), atol=1e-12)


@pytest.mark.parametrize("name", ["r1", "r2"])
@pytest.mark.parametrize("gamma", [0.3, 1.0, 3.0])  # 2 f'(0) = 1: complex, double, real roots
def test_dirac_gradient_penalty_eigenvalues(name, gamma):
    penalty = functools.partial(getattr(penalties, name), gamma=gamma)
    _, result = _dirac_spectrum(dirac_gan(penalty=penalty), learning_rate=0.1)
    expected = _closed(-gamma / 2, gamma ** 2 / 4 - F1 ** 2)
    np.testing.assert_allclose(_lm(result), expected, atol=1e-8 if gamma != 1.0 else 1e-7)
    np.testing.assert_allclose(result.max_real, expected.real.max(), atol=1e-7)
    # The update maps against tf_convgan.studies.dirac's autodiff of its own sim/alt steps.
    method = dirac.dirac_method(name, gamma=gamma)
    for mode, radius in (("sim", result.sim_radius), ("alt", result.alt_radius)):
        expected_radius = dirac.spectral_radius(dirac.update_jacobian(
            method, learning_rate=0.1, mode=mode))
        np.testing.assert_allclose(radius, expected_radius, atol=1e-10)
    assert result.sim_radius < 1.0
    # Blocks: D's Hessian is gamma (the penalty's curvature), the coupling f'(0).
    np.testing.assert_allclose(result.d_hessian_eigenvalues, [gamma], atol=1e-10)
    np.testing.assert_allclose(result.coupling_dg, [F1], atol=1e-10)
    np.testing.assert_allclose(result.coupling_gd, [F1], atol=1e-10)


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_dirac_instance_noise_eigenvalues(sigma):
    """With the step's own noise draws r_i, f_i (sigma eps) the Jacobian at the equilibrium is
    [[0, f'(0)], [-f'(0), -s/4]], s = mean(r^2 + f^2): eigenvalues -s/8 +- sqrt(s^2/64 - 1/4)
    (as s -> 2 sigma^2: the paper's f''(0) sigma^2 +- sqrt(f''(0)^2 sigma^4 - f'(0)^2))."""
    gan = dirac_gan(sigma=sigma)
    operator, result = _dirac_spectrum(gan, batch=64)
    zeros = tf.zeros([64, 1], tf.float32)
    r = gan._noisy(zeros, noise.fold_in(operator.seed_d, 0)).numpy()  # the step's draws
    f = gan._noisy(zeros, noise.fold_in(operator.seed_d, 1)).numpy()
    s = np.mean(r.astype(np.float64) ** 2 + f.astype(np.float64) ** 2)
    assert abs(s / (2 * sigma ** 2) - 1) < 0.3
    np.testing.assert_allclose(_lm(result), _closed(-s / 8, s ** 2 / 64 - F1 ** 2), atol=1e-8)
    assert result.max_real < 0


def test_dirac_away_from_the_equilibrium_matches_dirac_module():
    """At (theta, psi) = (0.7, -0.4) with R1: J equals tf_convgan.studies.dirac's autodiff
    Jacobian."""
    gan = dirac_gan(theta=0.7, psi=-0.4, penalty=functools.partial(penalties.r1, gamma=0.6))
    operator, result = _dirac_spectrum(gan)
    want = dirac.jacobian(dirac.dirac_method("r1", gamma=0.6), point=(0.7, -0.4))
    np.testing.assert_allclose(operator.dense(), want, atol=1e-12)
    np.testing.assert_allclose(_lm(result), np.sort_complex(np.linalg.eigvals(want)), atol=1e-10)


# --------------------------------------------------------------------------- a small MLP GAN

def mlp_gan(*, strategy=None, dtype="float64", loss=None, penalty="r1", seed=3):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            keras.utils.set_random_seed(seed)
            make_g = lambda: mlp_generator(z_dim=2, width=6, depth=1)  # noqa: E731
            g, d = build(make_g()), build(mlp_discriminator(width=6, depth=1))
            g_ema = build(make_g())
            return GAN(g, d, g_ema, loss=loss or losses.non_saturating(),
                       penalty=None if penalty is None else functools.partial(
                           getattr(penalties, penalty), gamma=1.0))
    finally:
        keras.config.set_dtype_policy(previous)


def _points(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, 2)).astype(np.float32)


def _dense_autodiff_jacobian(operator):
    """J by full reverse-mode autodiff of the field (tape.jacobian of v(x))."""
    x = tf.constant(operator.x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        v = operator._v(operator._split(x), *operator._batch, operator.seed_d, operator.seed_g,
                        tf.constant(operator.terms.sigma, tf.float32))
    return tape.jacobian(v, x).numpy()


def _match(got, want_all, atol):
    """Every value of `got` is within atol of some value of `want_all`."""
    for value in got:
        assert np.min(np.abs(want_all - value)) < atol, (value, want_all)


@pytest.fixture(scope="module")
def mlp_case():
    gan = mlp_gan()
    operator = spectrum.game_operator(gan=gan, real=_points())
    return gan, operator, _dense_autodiff_jacobian(operator)


def test_mlp_matrix_free_eigenvalues_equal_the_dense_jacobians(mlp_case):
    gan, operator, jac = mlp_case
    assert operator.n == 2 * 6 + 6 + 6 * 2 + 2 + 2 * 6 + 6 + 6 + 1 == 57
    np.testing.assert_allclose(operator.dense(), jac, atol=1e-12)
    result = spectrum.spectrum(operator=operator, k=5, learning_rate=0.5, dense_below=0)
    assert result.method == "arnoldi"
    dense_values = np.linalg.eigvals(jac)
    for which, key in (("LM", np.abs), ("LR", np.real)):
        got = result.eigenvalues[which]
        assert len(got) == 5 and np.all(result.residuals[which] < 1e-8)
        _match(got, dense_values, 1e-6)
        # ... and they are the k largest by the ordering.
        np.testing.assert_allclose(np.sort(key(got))[::-1], np.sort(key(dense_values))[::-1][:5],
                                   atol=1e-6)
        # The eigenvectors' share in G's coordinates, against the dense eigenvectors'.
        values, vectors = np.linalg.eig(jac)
        for value, share in zip(got, result.g_fraction[which]):
            u = vectors[:, np.argmin(np.abs(values - value))]
            np.testing.assert_allclose(share, np.sum(np.abs(u[:operator.n_g]) ** 2) /
                                       np.sum(np.abs(u) ** 2), atol=1e-6)
    np.testing.assert_allclose(result.sim_radius,
                               np.abs(np.linalg.eigvals(np.eye(57) + 0.5 * jac)).max(), atol=1e-6)
    alt = spectrum.eigenvalues._alt_dense(jac, operator.n_g, 0.5, 1)
    np.testing.assert_allclose(result.alt_radius, np.abs(np.linalg.eigvals(alt)).max(), atol=1e-6)
    # Blocks against the dense matrix.
    n_g = operator.n_g
    hessian = np.linalg.eigvalsh(-jac[n_g:, n_g:])
    _match(result.d_hessian_eigenvalues, hessian, 1e-6)
    assert np.isclose(result.d_hessian_eigenvalues.max(), hessian.max(), atol=1e-6)
    assert np.isclose(result.d_hessian_eigenvalues.min(), hessian.min(), atol=1e-6)
    np.testing.assert_allclose(result.coupling_dg,
                               np.linalg.svd(jac[n_g:, :n_g], compute_uv=False)[:5], atol=1e-6)
    np.testing.assert_allclose(result.coupling_gd,
                               np.linalg.svd(jac[:n_g, n_g:], compute_uv=False)[:5], atol=1e-6)
    assert result.counts["vjp"] > 0


def test_one_update_map_alone_gives_that_maps_numbers_exactly(mlp_case):
    """update_maps=('alt',) runs only the altGD map's ARPACK (from the same start vector): its
    eigenvalues are those of both maps' run bit for bit, and the simGD map's stay None."""
    _, operator, _ = mlp_case
    args = dict(operator=operator, k=3, which=("LR",), learning_rate=0.5, blocks=False,
                dense_below=0)
    both = spectrum.spectrum(**args)
    for name, other in (("alt", "sim"), ("sim", "alt")):
        one = spectrum.spectrum(update_maps=(name,), **args)
        np.testing.assert_array_equal(getattr(one, f"{name}_eigenvalues"),
                                      getattr(both, f"{name}_eigenvalues"))
        assert getattr(one, f"{name}_radius") == getattr(both, f"{name}_radius")
        assert getattr(one, f"{other}_radius") is None
        np.testing.assert_array_equal(one.eigenvalues["LR"], both.eigenvalues["LR"])
    with pytest.raises(ConfigError, match="update_maps"):
        spectrum.spectrum(update_maps=("sim", "ALT"), **args)


def test_mlp_jvp_and_vjp_equal_finite_differences_and_the_transpose(mlp_case):
    gan, operator, jac = mlp_case
    rng = np.random.default_rng(1)
    u = rng.normal(size=operator.n)
    eps = 1e-6
    central = (operator.field(operator.x0 + eps * u) - operator.field(operator.x0 - eps * u)) / (
        2 * eps)
    ju = operator.jvp(u)
    assert np.abs(ju - central).max() < 1e-6 * np.abs(ju).max()
    w = rng.normal(size=operator.n)
    np.testing.assert_allclose(operator.vjp(w), jac.T @ w, atol=1e-12)


def _step_gan(make_g, make_d, h, **terms):
    keras.utils.set_random_seed(5)
    g, d, g_ema = build(make_g()), build(make_d()), build(make_g())
    return GAN(g, d, g_ema, loss=losses.non_saturating(), ema_beta=0.0,
               g_optimizer=keras.optimizers.SGD(learning_rate=h),
               d_optimizer=keras.optimizers.SGD(learning_rate=h), **terms)


def _check_field_is_the_steps_update(gan, real, h, rtol):
    """One SGD step of GAN.train_step moves psi by h v_psi(theta, psi), then theta by
    h v_theta(theta, psi') at D's new psi': the field is the step's own objective."""
    operator = spectrum.game_operator(gan=gan, real=real)
    x0, n_g = operator.x0, operator.n_g
    gan.train_step((tf.constant(real[:, None]), tf.zeros([real.shape[0], 1], tf.int32)))
    x1 = np.concatenate([w.numpy().ravel() for w in
                         gan.generator.trainable_variables + gan.discriminator.trainable_variables])
    v0 = operator.field()
    scale = np.abs(v0).max()
    assert np.abs((x1 - x0)[n_g:] / h - v0[n_g:]).max() < rtol * scale
    v_mid = operator.field(np.concatenate([x0[:n_g], x1[n_g:]]))
    assert np.abs((x1 - x0)[:n_g] / h - v_mid[:n_g]).max() < rtol * scale


def test_field_is_the_steps_update_mlp_with_every_term():
    from tf_convgan.objectives import augment, consistency
    gan = _step_gan(lambda: mlp_generator(z_dim=2, width=6, depth=1),
                    lambda: mlp_discriminator(width=6, depth=1), 0.1,
                    penalty=functools.partial(penalties.r1, gamma=2.0),
                    instance_noise=lambda step: 0.3,
                    consistency=functools.partial(consistency.bcr, augment=functools.partial(
                        augment.gaussian_noise, sigma=0.1)),
                    latent_consistency=consistency.zcr())
    _check_field_is_the_steps_update(gan, _points(), 0.1, 1e-5)


def test_field_is_the_steps_update_resnet_wgan_gp():
    from helpers import TINY_NETWORKS
    make_g, make_d = TINY_NETWORKS["resnet"]
    gan = _step_gan(lambda: make_g(1), lambda: make_d(1), 0.01,
                    penalty=functools.partial(penalties.wgan_gp, gamma=2.0))
    real = np.random.default_rng(0).uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)
    _check_field_is_the_steps_update(gan, real, 0.01, 1e-4)


def test_float32_networks_and_float64_twins():
    gan = mlp_gan(dtype="float32")
    op32 = spectrum.game_operator(gan=gan, real=_points())
    assert op32.dtype == tf.float32
    g64, d64 = spectrum.float64_networks(
        generator_fn=lambda: mlp_generator(z_dim=2, width=6, depth=1),
        discriminator_fn=lambda: mlp_discriminator(width=6, depth=1),
        generator=gan.generator, discriminator=gan.discriminator)
    op64 = spectrum.game_operator(gan=gan, real=_points(), generator=g64, discriminator=d64)
    assert op64.dtype == tf.float64
    np.testing.assert_array_equal(op64.x0, op32.x0)  # float32 values, exactly
    r32 = spectrum.spectrum(operator=op32, k=4, which=("LR",), blocks=False, dense_below=0)
    r64 = spectrum.spectrum(operator=op64, k=4, which=("LR",), blocks=False, dense_below=0)
    np.testing.assert_allclose(r32.eigenvalues["LR"], r64.eigenvalues["LR"], atol=1e-4)
    assert r64.residuals["LR"].max() < 1e-9 < r32.residuals["LR"].max()


class ProjectionGenerator(keras.Model):
    """G(z) = tanh(scale * (z P) + shift) per channel: a fixed random projection P
    (non-trainable) and 6 trainable numbers, 32x32 RGB images."""

    def __init__(self, resolution=32, z_dim=3, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.num_classes, self.resolution = z_dim, 1, resolution
        self.projection = self.add_weight(
            shape=(z_dim, resolution * resolution * 3), trainable=False, name="projection",
            initializer=keras.initializers.RandomNormal(seed=0))
        self.scale = self.add_weight(shape=(3,), name="scale",
                                     initializer=keras.initializers.Constant(0.5))
        self.shift = self.add_weight(shape=(3,), name="shift",
                                     initializer=keras.initializers.Constant(0.1))

    def call(self, z, labels=None, training=None):
        x = keras.ops.matmul(z, self.projection)
        x = keras.ops.reshape(x, (-1, self.resolution, self.resolution, 3))
        return keras.ops.tanh(x * self.scale + self.shift)


def _resnet_discriminator_first_and_last_layers():
    """The tiny ResNet D with its residual blocks frozen: the products run through the whole
    network, the 241 trainable numbers (conv_img, fc) keep the dense Jacobian small."""
    from helpers import TINY_NETWORKS
    keras.utils.set_random_seed(1)
    d = build(TINY_NETWORKS["resnet"][1](1))
    for block in [d.first_block] + d.blocks:
        block.trainable = False
    return d


def test_float64_image_discriminator_products_are_exact():
    """A ResNet D's float64 twin keeps float64 logits: with R1, its matrix-free products and
    eigenvalues equal the dense float64 autodiff Jacobian's to ~1e-12 (the float32 network's
    products are off by ~1e-6, a float32 cast of the logits by ~1e-9)."""
    make_d = _resnet_discriminator_first_and_last_layers
    g, d, g_ema = build(ProjectionGenerator()), make_d(), build(ProjectionGenerator())
    gan = GAN(g, d, g_ema, loss=losses.non_saturating(),
              penalty=functools.partial(penalties.r1, gamma=1.0))
    g64, d64 = spectrum.float64_networks(generator_fn=ProjectionGenerator,
                                         discriminator_fn=make_d, generator=g, discriminator=d)
    real = np.random.default_rng(0).uniform(-1, 1, size=(4, 32, 32, 3)).astype(np.float32)
    assert d64(tf.constant(real, tf.float64)).dtype == tf.float64
    op32 = spectrum.game_operator(gan=gan, real=real)
    op64 = spectrum.game_operator(gan=gan, real=real, generator=g64, discriminator=d64)
    assert (op64.n, op64.n_g) == (247, 6) and op64.dtype == tf.float64
    jac = _dense_autodiff_jacobian(op64)
    scale = np.abs(jac).max()
    u = np.random.default_rng(3).normal(size=(2, op64.n))
    for ui in u:
        want = jac @ ui
        assert np.abs(op64.jvp(ui) - want).max() < 1e-12 * np.abs(want).max()
        assert np.abs(op32.jvp(ui) - want).max() > 1e-9 * np.abs(want).max()
    result = spectrum.spectrum(operator=op64, k=4, which=("LM", "LR"), blocks=False,
                               dense_below=0)
    assert result.method == "arnoldi"
    dense_values = np.linalg.eigvals(jac)
    for which, key in (("LM", np.abs), ("LR", np.real)):
        got = result.eigenvalues[which]
        assert len(got) == 4 and result.residuals[which].max() < 1e-11
        _match(got, dense_values, 1e-9 * scale)
        np.testing.assert_allclose(np.sort(key(got))[::-1], np.sort(key(dense_values))[::-1][:4],
                                   atol=1e-9 * scale)


def test_mirrored_strategy_equals_one_device():
    strategy = two_cpu_strategy()
    one = spectrum.game_operator(gan=mlp_gan(), real=_points())
    two = spectrum.game_operator(gan=mlp_gan(strategy=strategy), real=_points(), strategy=strategy)
    np.testing.assert_array_equal(one.x0, two.x0)
    u = np.random.default_rng(2).normal(size=one.n)
    np.testing.assert_allclose(two.field(), one.field(), atol=1e-14)
    np.testing.assert_allclose(two.jvp(u), one.jvp(u), atol=1e-13)
    np.testing.assert_allclose(two.vjp(u), one.vjp(u), atol=1e-13)
    kwargs = dict(k=4, which=("LM", "LR"), learning_rate=0.5, dense_below=0)
    r1, r2 = spectrum.spectrum(operator=one, **kwargs), spectrum.spectrum(operator=two, **kwargs)
    for which in ("LM", "LR"):
        np.testing.assert_allclose(r2.eigenvalues[which], r1.eigenvalues[which], atol=1e-10)
    np.testing.assert_allclose(r2.sim_radius, r1.sim_radius, atol=1e-10)
    np.testing.assert_allclose(r2.coupling_dg, r1.coupling_dg, atol=1e-10)


# --------------------------------------------------------------------------- outputs and hooks

def test_record_accumulates_history_png_and_tensorboard(tmp_path, mlp_case):
    gan, operator, _ = mlp_case
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    result = spectrum.spectrum(operator=operator, k=3, which=("LR",), blocks=False,
                               learning_rate=0.1, update_maps=True)
    for step in (0, 10):
        result.step = step
        png = spectrum.record(result, out_dir=str(tmp_path / "out"), writer=writer)
    history = json.loads((tmp_path / "out" / spectrum.HISTORY_JSON).read_text())
    assert [e["step"] for e in history] == [0, 10]
    assert history[0]["max_real"] == pytest.approx(result.max_real)
    assert os.path.getsize(png) > 5000
    tags = set()
    for path in (tmp_path / "tb").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(v.tag for v in event.summary.value)
    assert {"spectrum/max_real", "spectrum/max_abs_imag", "spectrum/sim_radius"} <= tags
    assert "largest real part" in spectrum.format_table(result)


def test_record_writes_into_a_url(no_local_disk_for_ram):
    """out_dir on an object store (ram:// stands in for gs://): the history is read back from
    there (an evaluation of the same step replaces the earlier one) and the PNG written there;
    no local file function sees the path (the fixture checks)."""
    out = ram_url("spectrum") + "/out"
    result = spectrum.SpectrumResult(
        step=0, n=2, n_g=1, n_d=1, dtype="float64", method="dense", field_norm=0.0,
        eigenvalues={"LM": np.array([-0.1 + 0.5j, -0.1 - 0.5j])}, residuals={"LM": np.zeros(2)})
    for step, real in ((0, -0.1), (5, -0.2), (0, -0.3)):
        result.step = step
        result.eigenvalues = {"LM": np.array([real + 0.5j, real - 0.5j])}
        png = spectrum.record(result, out_dir=out)
    history = spectrum.read_history(out)
    assert [(e["step"], e["max_real"]) for e in history] == [(0, -0.3), (5, -0.2)]
    assert png == f"{out}/{spectrum.PLOT_PNG}" and images.read_png(png).ndim == 3
    assert spectrum.read_history(ram_url("spectrum")) == []


def test_evaluator_evaluates_its_gan(tmp_path):
    gan = mlp_gan()
    source = spectrum_source()
    evaluator = spectrum.SpectrumEvaluator(k=2, batch_size=8, out_dir=str(tmp_path), gan=gan)
    values = evaluator.evaluate(gan.generator_ema, 0, strategy=None, data=source)
    assert set(values) == {"spectrum_max_real", "spectrum_max_abs_imag"}
    assert evaluator.last.n == 57 and (tmp_path / spectrum.PLOT_PNG).exists()
    # A later evaluation (other weights, other step) reuses the traced functions and equals a
    # fresh operator's result.
    first = evaluator._operator
    gan.step_counter.assign(7)
    gan.discriminator.trainable_variables[0].assign_add(
        0.1 * tf.ones_like(gan.discriminator.trainable_variables[0]))
    evaluator.evaluate(gan.generator_ema, 7, data=source)
    assert evaluator._operator._jvp_fn is first._jvp_fn and evaluator._operator.step == 7
    fresh = spectrum.game_operator(gan=gan, real=evaluator._batch[0])
    np.testing.assert_array_equal(evaluator._operator.x0, fresh.x0)
    u = np.random.default_rng(0).normal(size=fresh.n)
    np.testing.assert_allclose(evaluator._operator.jvp(u), fresh.jvp(u), atol=1e-13)
    assert [e["step"] for e in spectrum.read_history(str(tmp_path))] == [0, 7]
    with pytest.raises(ConfigError, match="no GAN owns"):
        evaluator.evaluate(build(mlp_generator(z_dim=2, width=6, depth=1)), 0, data=source)


def test_evaluator_plugs_into_train_with_gin(tmp_path):
    """train.evaluator = @spectrum_evaluator(): no change to train() needed; the scalars go to
    metrics.csv (and TensorBoard eval/*), the history and the PNG to its out_dir. (The 2D ring
    with R1: train() as run.py runs it, on small MLPs.)"""
    import gin
    from tf_convgan.cli import config
    from tf_convgan.evaluation import read_metrics_csv
    from tf_convgan.training.loop import train
    out = tmp_path / "spectrum"
    gin.clear_config()
    config.parse(["toy2d/ring8_r1.gin"], [
        "train.num_steps = 2", "train.eval_every = 1", "train.batch_size = 8",
        "mlp_generator.width = 8", "mlp_generator.depth = 1", "mlp_discriminator.width = 8",
        "mlp_discriminator.depth = 1", "train.evaluator = @spectrum_evaluator()",
        "spectrum_evaluator.k = 2", "spectrum_evaluator.batch_size = 8",
        f"spectrum_evaluator.out_dir = '{out}'"])
    try:
        train(model_dir=str(tmp_path / "run"))
    finally:
        gin.clear_config()
    table = read_metrics_csv(str(tmp_path / "run" / "metrics.csv"))
    assert list(table["step"]) == [1, 2] and np.all(np.isfinite(table["spectrum_max_real"]))
    history = spectrum.read_history(str(out))
    assert [e["step"] for e in history] == [1, 2] and (out / spectrum.PLOT_PNG).exists()
    assert history[1]["max_real"] == pytest.approx(table["spectrum_max_real"][1])
    # The run's operative config (with spectrum_evaluator's bindings) reads back as data.
    gan, path, source, notes = spectrum.load_run(str(tmp_path / "run"))
    assert path.endswith("ckpt-2") and int(gan.step.numpy()) == 2 and source is None
    assert gan.penalty.keywords == {"gamma": 1.0}


def spectrum_source():
    from tf_convgan.studies.toy2d import PointSource
    return PointSource("ring8")


def test_bad_arguments():
    operator = spectrum.game_operator(gan=mlp_gan(), real=_points())
    with pytest.raises(ConfigError, match="which"):
        spectrum.spectrum(operator=operator, which=("SM",))
    with pytest.raises(ConfigError, match="learning_rate"):
        spectrum.spectrum(operator=operator, learning_rate=-1.0)
    with pytest.raises(ConfigError, match="does not fit"):
        spectrum.game_operator(gan=mlp_gan(), real=np.zeros([4, 3], np.float32))


# --------------------------------------------------------------------------- the command line

def test_command_line_on_a_run_directory(trained_run, tmp_path, capsys):
    out = tmp_path / "out"
    status = spectrum_cli.main(["spectrum", "--model_dir", str(trained_run.model_dir), "--k", "3",
                                "--which", "LR", "--noblocks", "--batch_size", "4",
                                "--out_dir", str(out), "--checkpoint", "ckpt-2", "--tol", "1e-3"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "largest real part" in printed.out and "step 2:" in printed.out
    assert (out / spectrum.PLOT_PNG).exists()


def test_load_run_float64_twins_of_a_run(trained_run):
    """--float64: the run's networks built under the float64 policy with the checkpoint's
    (float32) weights; the products agree with the float32 ones to float32 precision."""
    gan32, path, source, _ = spectrum.load_run(str(trained_run.model_dir), checkpoint="ckpt-3")
    gan64, _, _, _ = spectrum.load_run(str(trained_run.model_dir), checkpoint="ckpt-3",
                                       float64=True)
    assert path.endswith("ckpt-3") and int(gan64.step.numpy()) == 3
    real, labels = spectrum.real_batch(source, batch_size=4)
    op32 = spectrum.game_operator(gan=gan32, real=real, labels=labels)
    op64 = spectrum.game_operator(gan=gan64, real=real, labels=labels)
    assert op32.dtype == tf.float32 and op64.dtype == tf.float64
    np.testing.assert_array_equal(op64.x0, op32.x0)
    u = np.random.default_rng(0).normal(size=op32.n)
    ju32, ju64 = op32.jvp(u), op64.jvp(u)
    assert np.abs(ju32 - ju64).max() < 1e-4 * np.abs(ju64).max()


def test_python_dash_m_reports_a_bad_flag_in_one_line():
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "tf_convgan.spectrum", "--k", "0",
                             "--model_dir", "none"], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                            cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --k: must be >= 1, got 0"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args,flag", [
    (["--k", "0"], "--k"), (["--batch_size", "0"], "--batch_size"),
    (["--which", "SM"], "--which"), (["--checkpoint", "ckpt-99"], "--checkpoint"),
    (["--learning_rate", "-1"], "--learning_rate")])
def test_command_line_errors_name_the_flag(trained_run, args, flag, capsys):
    status = spectrum_cli.main(["spectrum", "--model_dir", str(trained_run.model_dir), *args])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: {flag}") and len(err.splitlines()) == 1, err


def test_command_line_without_model_dir(capsys, tmp_path):
    assert spectrum_cli.main(["spectrum"]) == 2
    assert capsys.readouterr().err.startswith("error: --model_dir")
    assert spectrum_cli.main(["spectrum", "--model_dir", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: --model_dir")
