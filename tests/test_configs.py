"""Every gin file in gin_configs/ parses and builds its networks (reduced in width where large)."""
import glob
import os

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tf_convgan  # noqa: F401  (registers the configurables)
from tf_convgan import data
from tf_convgan.cli import config
from tf_convgan.objectives import consistency
from tf_convgan.studies import dirac
from tf_convgan.studies import dirac_study
from tf_convgan.objectives import losses
from tf_convgan.studies import toy2d
from tf_convgan.networks import build, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = sorted(
    os.path.relpath(p, os.path.join(ROOT, "gin_configs"))
    for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"), recursive=True)
    if p.split(os.sep)[-2] not in ("base", "methods") and os.path.basename(p) != "base.gin")

# Width reductions so that 256..1024 px networks build in seconds; architecture and depth stay.
SMALL = ["resnet_generator.nf = 2", "resnet_generator.nf_max = 4",
         "resnet_discriminator.nf = 2", "resnet_discriminator.nf_max = 4"] + [
    f"resnet{arch}_{role}.nf = 1" for arch in (2, 3, 4) for role in ("generator", "discriminator")]


def _call(binding):
    """Calls the configurable that gin bound to `binding` (e.g. 'train.generator_fn')."""
    return gin.query_parameter(binding).scoped_configurable_fn


def test_gin_files_are_found():
    assert "quickstart.gin" in GIN_FILES and len(GIN_FILES) >= 15
    assert set(PUBLISHED_COUNTS) <= set(GIN_FILES)
    assert {os.path.join("dirac", "all.gin"), os.path.join("toy2d", "ring8_r1.gin")} <= set(GIN_FILES)


def _check_dirac_config():
    """A Dirac-GAN study config: run.main is the study and every method builds and has a finite
    Jacobian at the equilibrium."""
    assert config.entry_point() is dirac_study.dirac_study
    methods = gin.query_parameter("dirac_study.methods")
    assert methods and set(methods) <= set(dirac.METHODS)
    for name in methods:
        assert np.isfinite(dirac.jacobian(dirac.dirac_method(name))).all()


def _check_toy2d_config():
    """A 2D config: MLP networks of 2-D points, a point source and the 2D sample writer."""
    generator = build(_call("train.generator_fn")())
    discriminator = build(_call("train.discriminator_fn")())
    assert generator.data_shape == discriminator.data_shape == (2,)
    assert generator(tf.zeros([3, generator.z_dim])).shape == (3, 2)
    assert discriminator(tf.zeros([3, 2])).shape == (3,)
    source = _call("train.data")()
    assert isinstance(source, toy2d.PointSource)
    point, label = next(iter(source.dataset(seed=0)))
    assert point.shape == (2,) and int(label) == 0
    assert callable(_call("train.sample_writer")())
    penalty = gin.query_parameter("GAN.penalty")
    assert penalty is None or callable(penalty.scoped_configurable_fn)
    assert config.entry_point().__name__ == "train"


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_gin_file_parses_and_builds(gin_file):
    gin.clear_config()
    config.parse([gin_file], [] if gin_file.startswith(("dirac", "toy2d")) else SMALL)
    for prefix, check in (("dirac", _check_dirac_config), ("toy2d", _check_toy2d_config)):
        if gin_file.startswith(prefix + os.sep):
            check()
            gin.clear_config()
            return
    generator = build(_call("train.generator_fn")())
    discriminator = build(_call("train.discriminator_fn")())
    resolution = generator.resolution
    assert discriminator.resolution == resolution
    z = tf.zeros([1, generator.z_dim])
    labels = tf.constant([generator.num_classes - 1])
    assert generator(z, labels).shape == (1, resolution, resolution, 3)
    assert discriminator(tf.zeros([1, resolution, resolution, 3]), labels).shape == (1,)
    # The GAN's loss and penalty bindings resolve to real callables.
    loss = gin.query_parameter("GAN.loss")
    assert isinstance(loss.scoped_configurable_fn(), losses.GANLoss)
    penalty = gin.query_parameter("GAN.penalty")
    assert penalty is None or callable(penalty.scoped_configurable_fn)
    # Consistency regularization (CR, ICR), where a config binds it.
    if gin_file.startswith(("cr_", "icr_")):
        assert callable(gin.query_parameter("GAN.consistency").scoped_configurable_fn)
    # The data binding names an existing source, and a tfds dataset name that exists.
    source_ref = gin.query_parameter("train.data")
    assert source_ref.configurable.wrapper in (data.tfds_source, data.fashion_mnist_source,
                                               data.image_folder_source, data.npy_source,
                                               data.idx_source)
    if source_ref.configurable.wrapper is data.tfds_source:
        name = gin.query_parameter("tfds_source.name")
        tfds.builder(name)  # raises for an unknown dataset or config name
        macro = gin.query_parameter("tfds_source.resolution")  # %RESOLUTION
        assert macro.scoped_configurable_fn() == resolution
    gin.clear_config()


def _reproduces_gan_stability(gin_file):
    """The configs of GAN_stability's experiments (CIFAR-10 comparison, CelebA, LSUN, ImageNet,
    and its published models); not the CR/ICR, study, quickstart or 2D/Dirac configs."""
    return os.path.basename(gin_file).startswith(("cifar10_", "celeba", "lsun_", "imagenet_"))


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_gan_stability_reproductions_and_only_they_use_its_input_transform(gin_file):
    """GAN_stability's inputs are flipped at random and get U[0, 1/128) dequantization noise
    (gan_training/inputs.py): its experiments' configs bind both, the others neither."""
    gin.clear_config()
    try:
        config.parse([gin_file], [])
        bound = {}
        for name in ("random_flip", "dequantization_noise"):
            try:
                bound[name] = gin.query_parameter(f"make_input_pipeline.{name}")
            except ValueError:  # not bound
                pass
    finally:
        gin.clear_config()
    if _reproduces_gan_stability(gin_file):
        assert bound == {"random_flip": True, "dequantization_noise": 1.0 / 128.0}
    else:
        assert bound == {}


def test_full_size_quickstart_and_cifar_counts():
    """Unreduced: the CIFAR-10 configs build the published 32x32 network (6,773,699 / 2,579,649)."""
    gin.clear_config()
    config.parse(["cifar10_r1.gin"])
    assert count_params(build(_call("train.generator_fn")())) == 6_773_699
    assert count_params(build(_call("train.discriminator_fn")())) == 2_579_649
    gin.clear_config()


# Parameter counts (G, D) of GAN_stability's networks, computed once with the reference code:
# gan_training/models/resnet{,2,3,4}.py of LMescheder/GAN_stability @ c1f64c9e under torch 2.13 CPU
# (that reconstruction reproduced the oracle's forward_<arch>.npz bit-exactly), models built as
# build_models() does from each configs/pretrained/*.yaml (and configs/lsun_*.yaml for the
# experiments), counted as sum(p.numel() for p in model.parameters()).
PUBLISHED_COUNTS = {
    os.path.join("pretrained", "celeba_hq_1024_pretrained.gin"): (18_810_036, 16_705_201),
    os.path.join("pretrained", "celeba_256_pretrained.gin"): (52_161_732, 47_952_065),
    os.path.join("pretrained", "imagenet_128_pretrained.gin"): (100_535_747, 108_260_776),
    os.path.join("pretrained", "lsun_bedroom_256_pretrained.gin"): (67_849_284, 59_429_953),
    os.path.join("pretrained", "lsun_bridge_256_pretrained.gin"): (67_849_284, 59_429_953),
    os.path.join("pretrained", "lsun_church_256_pretrained.gin"): (67_849_284, 59_429_953),
    os.path.join("pretrained", "lsun_tower_256_pretrained.gin"): (67_849_284, 59_429_953),
    "celeba_hq_1024.gin": (18_810_036, 16_705_201),
    "imagenet_128.gin": (100_535_747, 108_260_776),
    "lsun_bedroom_256.gin": (52_154_052, 47_944_385),
}


def _configured(gin_file, role, width=None):
    """The unbuilt `role` network of `gin_file` and its configured width nf; with `width`, the
    network at that width instead (nf_max scaled alike for `resnet`)."""
    gin.clear_config()
    config.parse([gin_file])
    name = gin.query_parameter(f"train.{role}_fn").configurable.name
    nf = gin.query_parameter(f"{name}.nf")
    bindings = [f"{name}.nf = {width}"] if width else []
    if width and name.startswith("resnet_"):
        bindings.append(f"{name}.nf_max = {gin.query_parameter(f'{name}.nf_max') // nf * width}")
    gin.clear_config()
    config.parse([gin_file], bindings)
    model = _call(f"train.{role}_fn")()
    gin.clear_config()
    return model, nf


_SHAPES_AT_WIDTH_1_AND_2 = {}


def _count_at_configured_width(gin_file, role):
    """The parameter count of `gin_file`'s `role` network from two narrow builds: every weight
    dimension of these networks is either fixed (kernel size, z_dim, embed_size, RGB, classes) or
    proportional to the width nf (channels, and the dense layers' C * s0 * s0 side), so the
    weight shapes at nf = 1 and 2 give every shape at the configured nf. Networks shared by
    several configs are built once."""
    narrow = [_configured(gin_file, role, width=t)[0] for t in (1, 2)]
    key = tuple((type(m).__name__, getattr(m, "arch", "resnet"), m.resolution, m.num_classes,
                 getattr(m, "z_dim", None), getattr(m, "embed_size", None),
                 getattr(m, "nf_max", None)) for m in narrow)
    if key not in _SHAPES_AT_WIDTH_1_AND_2:
        _SHAPES_AT_WIDTH_1_AND_2[key] = [
            [tuple(w.shape) for w in build(m, batch_size=1).weights] for m in narrow]
    shapes_1, shapes_2 = _SHAPES_AT_WIDTH_1_AND_2[key]
    nf = _configured(gin_file, role)[1]
    total = 0
    for s1, s2 in zip(shapes_1, shapes_2, strict=True):
        assert all(d2 in (d1, 2 * d1) for d1, d2 in zip(s1, s2)), (s1, s2)
        total += int(np.prod([d1 * nf if d2 == 2 * d1 else d1 for d1, d2 in zip(s1, s2)]))
    return total


@pytest.mark.parametrize("gin_file", sorted(PUBLISHED_COUNTS))
def test_published_networks_have_the_reference_parameter_counts(gin_file):
    """At the configured width, G's and D's parameter counts equal the reference's (counted from
    narrow builds, see _count_at_configured_width; test_published_networks_full_size, marked slow,
    builds them at full size)."""
    for role, want in zip(("generator", "discriminator"), PUBLISHED_COUNTS[gin_file]):
        got = _count_at_configured_width(gin_file, role)
        assert got == want, f"{gin_file} {role}: {got:,} != {want:,}"


@pytest.mark.slow
@pytest.mark.parametrize("gin_file", sorted(PUBLISHED_COUNTS))
def test_published_networks_full_size(gin_file):
    gin.clear_config()
    config.parse([gin_file])
    counts = tuple(count_params(build(_call(f"train.{role}_fn")(), batch_size=1))
                   for role in ("generator", "discriminator"))
    gin.clear_config()
    assert counts == PUBLISHED_COUNTS[gin_file]


def test_gan_stability_configs_use_pytorch_init():
    """GAN_stability trained with PyTorch's default initialisation; the quickstart keeps Keras'."""
    for gin_file, want in (("lsun_church_256.gin", "pytorch"), ("cifar10_r1.gin", "pytorch"),
                           (os.path.join("pretrained", "imagenet_128_pretrained.gin"), "pytorch"),
                           ("quickstart.gin", "keras")):
        gin.clear_config()
        config.parse([gin_file], SMALL)
        for role in ("generator", "discriminator"):
            assert _call(f"train.{role}_fn")().init.name == want, (gin_file, role)
    gin.clear_config()


def test_gan_stability_convention_in_configs():
    """reg_param = 10 in GAN_stability is gamma = 20 here: the paper-reproducing configs use it."""
    gin.clear_config()
    config.parse(["lsun_bedroom_256.gin"])
    assert gin.query_parameter("r1.gamma") == 20.0
    assert gin.query_parameter("GAN.ema_beta") == 0.999
    gin.clear_config()


CONSISTENCY_FILES = [f for f in GIN_FILES if f.startswith(("cr_", "icr_"))]


def test_consistency_configs_are_found():
    assert {"cr_cifar10_sndcgan.gin", "cr_cifar10_resnet.gin", "icr_cifar10_sndcgan.gin",
            "icr_cifar10_resnet.gin"} <= set(CONSISTENCY_FILES)


@pytest.mark.parametrize("gin_file", CONSISTENCY_FILES)
def test_consistency_configs_build_the_gan_with_the_papers_values(gin_file):
    """The GAN of every cr_/icr_ config builds (its eager hyperparameter checks run) with the
    papers' weights, Adam (2e-4, 0.5, 0.999) and the network's n_dis."""
    from tf_convgan.training.loop import build_gan
    gin.clear_config()
    config.parse([gin_file], ["resnet_cifar_generator.ch = 8", "resnet_cifar_discriminator.ch = 8",
                              "sndcgan_generator.ch = 16"])
    gan = build_gan(_call("train.generator_fn"), _call("train.discriminator_fn"),
                    tf.distribute.get_strategy())
    assert gan.d_steps == (5 if "resnet" in gin_file else 1)
    assert gan.discriminator.spectral_norm
    for optimizer in (gan.g_optimizer, gan.d_optimizer):
        np.testing.assert_allclose(float(optimizer.learning_rate), 2e-4)
        np.testing.assert_allclose([float(optimizer.beta_1), float(optimizer.beta_2)], [0.5, 0.999])
    if gin_file.startswith("cr_"):
        assert gin.query_parameter("cr.lambda_cr") == 10.0 and gan.latent_consistency is None
    else:
        assert gin.query_parameter("bcr.lambda_real") == gin.query_parameter("bcr.lambda_fake") == 10.0
        assert isinstance(gan.latent_consistency, consistency.LatentConsistency)
        assert (gin.query_parameter("zcr.lambda_dis"), gin.query_parameter("zcr.lambda_gen"),
                gin.query_parameter("zcr.sigma_noise")) == (5.0, 0.5, 0.03)
    assert gan.generator.num_classes == (10 if "conditional" in gin_file else 1)
    # T as StudioGAN's CR: shift by up to 4 px with reflected fill, flip with probability 1/2.
    assert (gin.query_parameter("shift_flip.max_shift"), gin.query_parameter("shift_flip.padding"),
            gin.query_parameter("shift_flip.flip_prob")) == (4, "reflect", 0.5)
    gin.clear_config()


KURACH_SWEEPS = ["kurach_cifar10_resnet.yaml", "kurach_cifar10_sndcgan.yaml",
                 "kurach_fashion_mnist.yaml"]


@pytest.mark.parametrize("name", KURACH_SWEEPS)
def test_kurach_study_uses_compare_gans_dragan_and_least_squares(name):
    """compare_gan is Kurach et al.'s code: the study's DRAGAN cells are @dragan_compare_gan (c = 1,
    clipped to the data range [-1, 1], lambda 10 = gamma 20), its LSGAN cells
    @least_squares_sigmoid(); Kodali et al.'s @dragan and Mao et al.'s @least_squares() are not
    in the grid."""
    from tf_convgan.studies import sweep as sweep_lib
    sweep = sweep_lib.load_sweep(os.path.join(ROOT, "gin_configs", "study", name))
    values = {axis.name: set(axis.values) for axis in sweep.axes}
    assert "@dragan_compare_gan" in values["penalty"] and "@dragan" not in values["penalty"]
    assert "@least_squares()" not in values["loss"]
    if "lsgan" in {label for axis in sweep.axes for label in axis.labels}:
        assert "@least_squares_sigmoid()" in values["loss"]
    gin.clear_config()
    try:
        config.parse(sweep_lib.gin_files(sweep), [])
        assert {key: gin.query_parameter(f"dragan_compare_gan.{key}")
                for key in ("gamma", "g0", "c", "std_over", "clip")} == dict(
            gamma=20.0, g0=1.0, c=1.0, std_over="batch", clip=(-1.0, 1.0))
    finally:
        gin.clear_config()


@pytest.mark.parametrize("gin_file", ["cifar10_dragan.gin",
                                      os.path.join("study", "image_comparison_fashion_mnist.gin")])
def test_paper_configs_use_kodali_et_als_dragan(gin_file):
    """The regularizer comparisons of Mescheder et al. use DRAGAN as its authors' code does:
    @dragan (interpolated perturbations, c = 0.5), lambda 10 = gamma 20."""
    gin.clear_config()
    try:
        config.parse([gin_file], SMALL)
        assert (gin.query_parameter("dragan.gamma"), gin.query_parameter("dragan.c")) == (20.0, 0.5)
        if gin_file == "cifar10_dragan.gin":
            assert gin.query_parameter("GAN.penalty").selector == "dragan"
    finally:
        gin.clear_config()


ROTH_FILES = [f for f in GIN_FILES if f.endswith("_roth.gin")]


def test_roth_configs_are_found():
    assert {"cifar10_roth.gin"} | {os.path.join("toy2d", f"{p}_roth.gin")
                                   for p in toy2d.PROBLEMS} <= set(ROTH_FILES)


@pytest.mark.parametrize("gin_file", ROTH_FILES)
def test_roth_configs_anneal_gamma_from_2_to_002_over_the_run(gin_file):
    """Roth et al.'s `--gamma=2.0 --annealing` (decay_factor 0.01, gamma * 0.01^(t / (T - 1))):
    the bound penalty, on D(x) = sum(x) (||grad||^2 = dimension, logits 0 at x = 0), is
    2.0/2 (1/4 + 1/4) d at step 0 and 0.02/2 (1/4 + 1/4) d at the last step, T - 1."""
    from tf_convgan.gan.checks import check_penalty
    gin.clear_config()
    config.parse([gin_file], [] if gin_file.startswith("toy2d") else SMALL)
    penalty = gin.query_parameter("GAN.penalty").scoped_configurable_fn
    last = gin.query_parameter("train.num_steps") - 1
    assert gin.query_parameter("exponential_annealing.decay_steps") == last
    check_penalty(penalty)
    x = tf.zeros([2, 2]) if gin_file.startswith("toy2d") else tf.zeros([2, 32, 32, 3])
    dim = int(np.prod(x.shape[1:]))
    d_fn = lambda images: tf.reduce_sum(images, axis=list(range(1, x.shape.rank)))  # noqa: E731
    for step, gamma in ((0, 2.0), (last, 0.02)):
        value = penalty(d_fn, x, x, step=tf.constant(step, tf.int64)).numpy()
        np.testing.assert_allclose(value, gamma / 2 * 0.5 * dim, rtol=1e-5)
    gin.clear_config()
