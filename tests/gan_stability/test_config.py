"""tf_convgan.gan_stability.config: GAN_stability's YAML configs (merged over its default.yaml)
as gin bindings, and training from a YAML config with run.py's parser."""
import os

import gin
import numpy as np
import pytest

from gan_stability_reference import REFERENCE_DIR
from tf_convgan.cli import config
from tf_convgan.gan_stability import config as gan_stability_config
from tf_convgan.run_dir import images
from tf_convgan.objectives import penalties
from tf_convgan.errors import ConfigError
from tf_convgan.training.loop import train

ORACLE_CONFIG = os.path.join(REFERENCE_DIR, "config.yaml")


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _write(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _bindings(path):
    return dict(line.split(" = ", 1) for line in gan_stability_config.gin_bindings(
        gan_stability_config.load(path)))


def test_merge_over_the_defaults(tmp_path):
    """Sections merge key by key; a value (also a list, or `kwargs: null` of the defaults)
    is replaced; the file may add keys the defaults do not have."""
    path = _write(tmp_path, "data:\n  img_size: 64\n  lsun_categories_train: [tower_train]\n"
                            "generator:\n  kwargs:\n    nfilter: 8\ntraining:\n  lr_d: 0.001\n"
                            "  extra: 1\n")
    merged = gan_stability_config.load(path)
    assert merged["data"]["img_size"] == 64 and merged["data"]["type"] == "lsun"
    assert merged["data"]["lsun_categories_train"] == ["tower_train"]
    assert merged["generator"] == {"name": "resnet", "kwargs": {"nfilter": 8}}
    assert merged["discriminator"]["kwargs"] is None
    assert merged["training"]["lr_d"] == 0.001 and merged["training"]["lr_g"] == 0.0001
    assert merged["training"]["extra"] == 1 and merged["z_dist"]["dim"] == 256
    assert gan_stability_config.DEFAULT_CONFIG["training"]["lr_d"] == 0.0001  # not mutated


def test_inherit_from(tmp_path):
    _write(tmp_path, "z_dist:\n  dim: 32\ntraining:\n  batch_size: 16\n", "parent.yaml")
    child = _write(tmp_path, "inherit_from: parent.yaml\ntraining:\n  batch_size: 8\n")
    merged = gan_stability_config.load(child)
    assert merged["z_dist"]["dim"] == 32 and merged["training"]["batch_size"] == 8
    assert merged["training"]["optimizer"] == "rmsprop"  # the defaults under the parent
    loop = _write(tmp_path, "inherit_from: config.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        gan_stability_config.load(loop)


@pytest.mark.skipif(not os.path.isfile(ORACLE_CONFIG), reason=f"no {ORACLE_CONFIG}")
def test_oracle_config_translates_to_the_papers_settings():
    bindings = _bindings(ORACLE_CONFIG)
    assert bindings["train.generator_fn"] == "@resnet_generator"
    assert (bindings["resnet_generator.nf"], bindings["resnet_generator.nf_max"],
            bindings["resnet_generator.embed_size"], bindings["resnet_generator.z_dim"],
            bindings["resnet_generator.resolution"]) == ("8", "32", "1", "16", "32")
    assert "resnet_discriminator.embed_size" not in bindings  # D has no embedding
    assert bindings["resnet_generator.init"] == bindings["resnet_discriminator.init"] == "'pytorch'"
    assert bindings["GAN.penalty"] == "@r1" and bindings["r1.gamma"] == "20.0"  # 2 * reg_param
    assert bindings["GAN.loss"] == "@non_saturating()" and bindings["GAN.ema_beta"] == "0.999"
    assert bindings["GAN.g_optimizer"] == "@g/torch_rmsprop()"  # PyTorch's formula
    assert (bindings["g/torch_rmsprop.learning_rate"], bindings["g/torch_rmsprop.rho"],
            bindings["g/torch_rmsprop.epsilon"]) == ("0.0001", "0.99", "1e-08")
    assert bindings["train.batch_size"] == "8" and bindings["GAN.d_steps"] == "1"
    assert bindings["image_folder_source.directory"] == "'data/fashion_mnist_32'"
    # The whole text parses as gin and names only this library's configurables.
    gin.parse_config(gan_stability_config.gin_text(ORACLE_CONFIG))
    assert gin.query_parameter("r1.gamma") == 20.0


@pytest.mark.parametrize("text, binding, value", [
    ("training:\n  reg_type: real_fake\n  reg_param: 5.\n", "r1_r2.gamma", "10.0"),
    ("training:\n  reg_type: fake\n", "r2.gamma", "20.0"),
    ("training:\n  reg_type: wgangp\n  gan_type: wgan\n", "wgan_gp.gamma", "20.0"),
    ("training:\n  reg_type: wgangp0\n", "wgan_gp0.gamma", "20.0"),
    ("training:\n  reg_type: none\n", "GAN.penalty", "None"),
    ("training:\n  gan_type: wgan\n", "GAN.loss", "@wasserstein()"),
    ("training:\n  optimizer: adam\n  lr_g: 0.0002\n", "g/torch_adam.learning_rate", "0.0002"),
    ("training:\n  optimizer: adam\n", "d/torch_adam.beta_2", "0.99"),
    ("training:\n  optimizer: adam\n", "g/torch_adam.epsilon_placement",
     "'before_bias_correction'"),  # the PyTorch of 2018
    ("training:\n  optimizer: sgd\n", "GAN.d_optimizer", "@d/sgd()"),
    ("training:\n  take_model_average: false\n", "GAN.ema_beta", "0.0"),
    ("training:\n  d_steps: 5\n", "GAN.d_steps", "5"),
    ("data:\n  nlabels: 1000\n", "resnet_discriminator.num_classes", "1000"),
    ("data:\n  lsun_categories_train: church_outdoor_train\n", "tfds_source.name",
     "'lsun/church_outdoor'"),
    ("data:\n  type: cifar10\n  img_size: 32\n", "tfds_source.name", "'cifar10'"),
    ("data:\n  type: image\n  train_dir: data/Imagenet\n  nlabels: 1000\n",
     "image_folder_source.labels_from_subdirs", "True"),
])
def test_settings(tmp_path, text, binding, value):
    assert _bindings(_write(tmp_path, text))[binding] == value


@pytest.mark.parametrize("data_type, transform", [
    ("image", True), ("lsun", True), ("cifar10", True), ("lsun_class", True), ("npy", False)])
def test_input_transform_follows_gan_stability_data_type(tmp_path, data_type, transform):
    """gan_training/inputs.py flips and adds U[0, 1/128) for every data type but npy (loaded
    without the transform)."""
    bindings = _bindings(_write(tmp_path, f"data:\n  type: {data_type}\n"))
    if transform:
        assert bindings["make_input_pipeline.random_flip"] == "True"
        assert float(bindings["make_input_pipeline.dequantization_noise"]) == 1.0 / 128.0
    else:
        assert not any(key.startswith("make_input_pipeline.") for key in bindings)


@pytest.mark.parametrize("name", gan_stability_config.NETWORK_NAMES)
def test_every_gan_stability_network_builds_or_is_a_clear_error(tmp_path, name):
    """A network with a port builds from the config (tiny widths); one without names the ports
    there are."""
    from tf_convgan import networks
    path = _write(tmp_path, f"data:\n  img_size: 64\n  nlabels: 3\nz_dist:\n  dim: 8\n"
                            f"generator:\n  name: {name}\n  kwargs: {{nfilter: 2, embed_size: 4}}\n"
                            f"discriminator:\n  name: {name}\n  kwargs: {{nfilter: 2}}\n")
    if not hasattr(networks, f"{name}_generator"):
        with pytest.raises(ConfigError, match=f"GAN_stability network '{name}' has no tf_convgan "
                                              f"port; available: .*'resnet'"):
            _bindings(path)
        return
    gin.parse_config(gan_stability_config.gin_text(path))
    generator = networks.build(gin.query_parameter("train.generator_fn").scoped_configurable_fn())
    discriminator = networks.build(
        gin.query_parameter("train.discriminator_fn").scoped_configurable_fn())
    assert (generator.z_dim, generator.num_classes, generator.resolution) == (8, 3, 64)
    assert (discriminator.num_classes, discriminator.resolution) == (3, 64)


def test_penalty_weight_equals_gan_stability_reg_param():
    """GAN_stability adds reg_param * E||grad D||^2 (no 1/2); r1 with gamma = 2 reg_param is
    the same number for a linear D(x) = sum(x) (||grad||^2 = dimension)."""
    import tensorflow as tf
    real = tf.zeros([2, 3])
    reg_param = 10.0
    ours = penalties.r1(lambda x: tf.reduce_sum(x, axis=1), real, real, gamma=2 * reg_param)
    np.testing.assert_allclose(ours.numpy(), reg_param * 3.0)


@pytest.mark.parametrize("text, message", [
    ("training:\n  lr_anneal: 0.5\n  lr_anneal_every: 10\n  d_steps: 4\n",
     r"training.lr_anneal_every \(10\) must be a multiple of training.d_steps \(4\)"),
    ("training:\n  lr_anneal: -0.5\n", "training.lr_anneal must be > 0, got -0.5"),
    ("training:\n  lr_anneal: 0.5\n  lr_anneal_every: 0\n",
     "training.lr_anneal_every must be a positive integer, got 0"),
    ("training:\n  equalize_lr: true\n", "training.equalize_lr is true"),
    ("training:\n  model_average_reinit: true\n", "training.model_average_reinit is true"),
    ("training:\n  reg_type: r1\n", r"training.reg_type must be one of \['fake', 'none', "),
    ("training:\n  gan_type: hinge\n", r"training.gan_type must be one of \['standard', 'wgan'\]"),
    ("training:\n  optimizer: adagrad\n", "training.optimizer must be one of"),
    ("training:\n  batch_size: 0\n", "training.batch_size must be a positive integer, got 0"),
    ("training:\n  batch_size: '8'\n", "training.batch_size must be a positive integer"),
    ("z_dist:\n  type: unif\n", "z_dist.type 'unif' is not supported"),
    ("generator:\n  name: resnet5\n", "GAN_stability network 'resnet5' has no tf_convgan port"),
    ("generator:\n  kwargs:\n    nfilter: 8\n    size: 3\n", r"generator.kwargs \['size'\] are "
                                                           r"not supported"),
    ("discriminator:\n  kwargs:\n    nfilter: -1\n", "discriminator.kwargs.nfilter must be a "
                                                     "positive integer"),
    ("data:\n  lsun_categories_train: [bedroom_train, tower_train]\n",
     "must be one category such as"),
    ("data: [1, 2]\n", "`data` must be a mapping"),
    ("- a\n- b\n", "must be a mapping of sections"),
    ("data:\n  img_size: [\n", "is not valid YAML"),
])
def test_bad_configs_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        gan_stability_config.gin_bindings(gan_stability_config.load(_write(tmp_path, text)))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("optimizer,factory", [("rmsprop", "torch_rmsprop"),
                                               ("adam", "torch_adam"), ("sgd", "sgd")])
def test_lr_anneal_becomes_the_optimizers_step_decay(tmp_path, optimizer, factory):
    """GAN_stability's StepLR steps per iteration (one D update; G every d_steps-th): D anneals
    every lr_anneal_every of its updates, G every lr_anneal_every / d_steps of its own."""
    path = _write(tmp_path, f"training:\n  optimizer: {optimizer}\n  lr_g: 0.001\n"
                            f"  lr_d: 0.002\n  lr_anneal: 0.5\n  lr_anneal_every: 6\n"
                            f"  d_steps: 2\n")
    bindings = _bindings(path)
    assert bindings[f"d/{factory}.lr_anneal"] == "0.5"
    assert bindings[f"d/{factory}.lr_anneal_every"] == "6"
    assert bindings[f"g/{factory}.lr_anneal_every"] == "3"
    config.parse([path])
    with gin.config_scope("d"):
        d_optimizer = gin.get_configurable(factory)()
    with gin.config_scope("g"):
        g_optimizer = gin.get_configurable(factory)()
    for iteration in range(12):  # GAN_stability's `it`: lr * 0.5 ** ((it + 1) // 6)
        want = 0.5 ** ((iteration + 1) // 6)
        d_optimizer.iterations.assign(iteration)  # D updates before this one
        np.testing.assert_allclose(float(d_optimizer.learning_rate), 0.002 * want, rtol=1e-6)
        if (iteration + 1) % 2 == 0:  # G updates in this iteration
            g_optimizer.iterations.assign((iteration + 1) // 2 - 1)
            np.testing.assert_allclose(float(g_optimizer.learning_rate), 0.001 * want,
                                       rtol=1e-6)


def test_lr_anneal_of_one_adds_no_binding(tmp_path):
    assert not any("lr_anneal" in key for key in _bindings(_write(tmp_path, "training: {}\n")))


def test_yaml_is_data_only(tmp_path):
    """A YAML tag that would build a Python object is refused by the safe loader."""
    marker = tmp_path / "marker"
    path = _write(tmp_path, f"data: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        gan_stability_config.load(path)
    assert not marker.exists()


_TINY = """
data:
  type: image
  train_dir: {images}
  img_size: 32
generator:
  kwargs: {{nfilter: 4, nfilter_max: 8, embed_size: 4}}
discriminator:
  kwargs: {{nfilter: 4, nfilter_max: 8}}
z_dist:
  dim: 8
training:
  batch_size: 4
  sample_every: 1
"""


def test_training_from_a_yaml_config(tmp_path):
    """run.py's parser takes the YAML (applied in order with gin files; --gin_param wins) and
    trains a step on an image folder, as GAN_stability's `image` data type."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images" / "class_0"
    folder.mkdir(parents=True)
    for i in range(8):
        images.write_png(str(folder / f"{i}.png"), rng.integers(0, 256, (40, 48, 3), np.uint8))
    path = _write(tmp_path, _TINY.format(images=tmp_path / "images"))
    config.parse([path], ["train.num_steps = 1", "train.num_samples = 4",
                          "train.export_at_end = False"])
    gan = train(model_dir=str(tmp_path / "run"))
    assert int(gan.step.numpy()) == 1
    assert gan.penalty is penalties.r1 and gan.ema_beta == 0.999
    assert type(gan.g_optimizer).__name__ == "TorchRMSprop"
    assert gan.generator.z_dim == 8 and gan.generator.nf == 4
    assert os.path.exists(tmp_path / "run" / "checkpoints" / "ckpt-1.index")
    operative = (tmp_path / "run" / "operative_config.gin").read_text()
    assert "r1.gamma = 20.0" in operative
    # The input transform reached the pipeline that train() built.
    assert "make_input_pipeline.random_flip = True" in operative
    assert "make_input_pipeline.dequantization_noise = 0.0078125" in operative


def test_data_type_without_a_source_is_a_clear_error_when_training(tmp_path):
    path = _write(tmp_path, _TINY.replace("type: image", "type: npy").format(images="x"))
    config.parse([path], ["train.num_steps = 1"])
    with pytest.raises(ConfigError, match="GAN_stability data.type 'npy' has no tf_convgan "
                                          "data source: bind train.data yourself"):
        train(model_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_unknown_keys_are_named_in_one_warning_and_known_ones_are_not(tmp_path, capsys):
    """A misspelt key (`lr_gg`) or section was ignored without a word; GAN_stability's own keys
    (its default.yaml's, `interpolations.ys`, a network's kwargs) give no warning."""
    path = _write(tmp_path, "inherit_from: " + ORACLE_CONFIG + "\n"
                  "training:\n  lr_gg: 0.1\n  lr_g: 0.0002\n"
                  "tarining:\n  batch_size: 8\n"
                  "interpolations:\n  ys: [1, 2]\n"
                  "generator:\n  kwargs:\n    anything: 1\n")
    config = gan_stability_config.load(path)
    assert config["training"]["lr_g"] == 0.0002
    assert capsys.readouterr().err == (
        f"warning: GAN_stability config {path}: ignoring unknown keys training.lr_gg, tarining "
        f"(not settings of GAN_stability: misspelt?)\n")
    gan_stability_config.load(ORACLE_CONFIG)
    assert capsys.readouterr().err == ""
