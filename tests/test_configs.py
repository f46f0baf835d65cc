"""Every gin file in gin_configs/ parses and builds its networks (reduced in width where large)."""
import glob
import os

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tf_convgan  # noqa: F401  (registers the configurables)
from tf_convgan import config, consistency, data, dirac, dirac_study, losses, toy2d
from tf_convgan.networks import build, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = sorted(
    os.path.relpath(p, os.path.join(ROOT, "gin_configs"))
    for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"), recursive=True)
    if p.split(os.sep)[-2] not in ("base", "methods") and os.path.basename(p) != "base.gin")

# Width reductions so that 256..1024 px networks build in seconds; architecture and depth stay.
SMALL = ["resnet_generator.nf = 2", "resnet_generator.nf_max = 4",
         "resnet_discriminator.nf = 2", "resnet_discriminator.nf_max = 4"]


def _call(binding):
    """Calls the configurable that gin bound to `binding` (e.g. 'train.generator_fn')."""
    return gin.query_parameter(binding).scoped_configurable_fn


def test_gin_files_are_found():
    assert "quickstart.gin" in GIN_FILES and len(GIN_FILES) >= 15
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
    # Consistency terms (issue 6), where a config binds them.
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


def test_full_size_quickstart_and_cifar_counts():
    """Unreduced: the CIFAR-10 configs build the published 32x32 network (6,773,699 / 2,579,649)."""
    gin.clear_config()
    config.parse(["cifar10_r1.gin"])
    assert count_params(build(_call("train.generator_fn")())) == 6_773_699
    assert count_params(build(_call("train.discriminator_fn")())) == 2_579_649
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
    from tf_convgan.train import build_gan
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
    gin.clear_config()
