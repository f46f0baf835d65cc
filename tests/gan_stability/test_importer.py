"""tf_convgan.import_gan_stability: the oracle's GAN_stability checkpoint (both serializations)
becomes a model directory whose G, EMA G and D give the reference outputs, whose optimizers hold
the checkpoint's state, and which run.py resumes; bad files give one line and exit status 2."""
import itertools
import json
import os
import re
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from gan_stability_reference import REFERENCE_DIR
from helpers import ram_url, run_py_in_process
from tf_convgan import run_dir
from tf_convgan.run_dir import checkpoints, files
from tf_convgan.run_dir.lock import url_lock_warning
from tf_convgan.cli import config
from tf_convgan.run_dir import images
from tf_convgan.serving import sampling
from tf_convgan.gan_stability import torch_pickle
from tf_convgan.gan_stability import importer
from tf_convgan.cli import import_gan_stability as importer_cli, sampling as sampling_cli
from tf_convgan.errors import ConfigError
from tf_convgan.training.loop import build_gan
from torch_files import Call, Global, Tensor, nested_lists_pickle, write_zip, write_zip_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REFERENCE_DIR, "config.yaml")
EXPECTED = os.path.join(REFERENCE_DIR, "checkpoint_resnet_celeba_style_expected.npz")
CHECKPOINTS = {"zip": os.path.join(REFERENCE_DIR, "checkpoint_resnet_celeba_style.pt"),
               "legacy": os.path.join(REFERENCE_DIR, "checkpoint_resnet_celeba_style_legacy.pt")}
pytestmark = pytest.mark.skipif(
    not all(os.path.isfile(p) for p in [CONFIG, EXPECTED, *CHECKPOINTS.values()]),
    reason=f"GAN_stability checkpoint oracle not found in {REFERENCE_DIR} "
           f"(set TF_CONVGAN_GAN_STABILITY_REFERENCE)")


@pytest.fixture(scope="module")
def expected():
    with np.load(EXPECTED, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module", params=sorted(CHECKPOINTS))
def imported(request, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp(request.param) / "run")
    try:
        _, step = importer.import_checkpoint(CONFIG, CHECKPOINTS[request.param], model_dir)
    finally:
        gin.clear_config()
    assert step == 3
    return request.param, model_dir


def _nchw(images_nhwc):
    return np.transpose(np.asarray(images_nhwc), (0, 3, 1, 2))


def _restore(model_dir):
    """The GAN of a model directory, restored from its latest checkpoint as train() does."""
    gin.clear_config()
    config.parse([os.path.join(model_dir, "operative_config.gin")], finalize=False)
    try:
        gan = build_gan(gin.query_parameter("train.generator_fn").scoped_configurable_fn,
                        gin.query_parameter("train.discriminator_fn").scoped_configurable_fn,
                        tf.distribute.get_strategy())
        checkpoints.restore_latest(gan, os.path.join(model_dir, "checkpoints"))
    finally:
        gin.clear_config()
    return gan


def test_generators_give_the_reference_outputs(imported, expected):
    """The SavedModel and the model directory (tf_convgan.sampling's two sources) reproduce the
    EMA generator's outputs; the checkpoint's G reproduces G's."""
    _, model_dir = imported
    z, labels = expected["z"], expected["y"].astype(np.int32)
    for source in (os.path.join(model_dir, "export"), model_dir):
        out = _nchw(sampling.Sampler.load(source)(z, labels))
        np.testing.assert_allclose(out, expected["G_test_out"], atol=1e-5, rtol=0)
    gan = _restore(model_dir)
    np.testing.assert_allclose(_nchw(gan.generator(z, labels)), expected["G_out"], atol=1e-5,
                               rtol=0)
    assert np.abs(expected["G_out"] - expected["G_test_out"]).max() > 1e-4  # EMA != G


def test_discriminator_gives_the_reference_outputs(imported, expected):
    _, model_dir = imported
    gan = _restore(model_dir)
    x = np.transpose(expected["x"], (0, 2, 3, 1))
    out = gan.discriminator(x, expected["y"].astype(np.int32)).numpy()
    np.testing.assert_allclose(out, expected["D_out"], atol=1e-5, rtol=0)


def _layout(keras_value, torch_value):
    """The axis permutation that turns the PyTorch weight into the Keras one, found from the
    values (not from how the importer transposes)."""
    perms = [p for p in itertools.permutations(range(torch_value.ndim))
             if np.transpose(torch_value, p).shape == keras_value.shape
             and np.array_equal(np.transpose(torch_value, p), keras_value)]
    assert perms, (keras_value.shape, torch_value.shape)
    return perms[0]  # several only where axes of size 1 swap: the same array


def test_optimizer_state_and_step_follow_the_checkpoint(imported):
    """Every slot holds the checkpoint's square_avg of the same parameter, in the layout of
    that parameter's weight; the update count is PyTorch's `step` (3) and the step counter is
    it + 1 = 3."""
    layout, model_dir = imported
    checkpoint = torch_pickle.load(CHECKPOINTS[layout])
    gan = _restore(model_dir)
    assert int(gan.step_counter.numpy()) == 3
    for player, network, optimizer in (("generator", gan.generator, gan.g_optimizer),
                                       ("discriminator", gan.discriminator, gan.d_optimizer)):
        state = checkpoint[player[0] + "_optimizer"]["state"]
        weights = list(checkpoint[player].values())
        assert int(optimizer.iterations.numpy()) == 3
        assert len(network.trainable_variables) == len(weights) == len(state)
        for i, variable in enumerate(network.trainable_variables):
            slot = optimizer.state(variable)["square_avg"]
            if weights[i].size == 1:  # the embedding [1, 1]
                assert slot.numpy().ravel() == state[i]["square_avg"].ravel()
                continue
            axes = _layout(variable.numpy(), weights[i])
            np.testing.assert_array_equal(slot.numpy(),
                                          np.transpose(state[i]["square_avg"], axes))


def test_directory_contents_and_record(imported):
    layout, model_dir = imported
    assert sorted(os.listdir(model_dir)) == ["checkpoints", "export", "gan_stability_import.json",
                                             "operative_config.gin"]
    record = json.load(open(os.path.join(model_dir, "gan_stability_import.json")))
    assert record["it"] == 2 and record["step"] == 3
    assert record["optimizer_state"] == ["g_optimizer", "d_optimizer"]
    assert record["checkpoint_sha256"] == {
        "zip": "dac3f0f87ca867960388b720c2c445fb5f8c8fc130493c96c8638cea5e48a0fb",
        "legacy": "af2af3a4edb0377fa96cf2256bb6d25902a2399176f181d143fee5c1bd67b403"}[layout]
    operative = open(os.path.join(model_dir, "operative_config.gin")).read()
    assert "r1.gamma = 20.0" in operative and "resnet_generator.nf = 8" in operative
    assert "%" not in operative and "include" not in operative  # literal values only


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tf_convgan.import_gan_stability", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_sampling_cli_reads_the_import_and_run_py_resumes_it(tmp_path):
    """The sampling command line on the imported directory writes the SavedModel's samples;
    run.py then trains one more step from the imported state (the config's data folder replaced
    by a small array), continuing the step and the optimizers' update count. Both commands' mains
    in this process (`python -m tf_convgan.sampling` and run.py as processes:
    tests/serving/test_sampling.py, tests/training/test_loop.py)."""
    model_dir = str(tmp_path / "run")
    try:
        importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], model_dir)
    finally:
        gin.clear_config()
    out = tmp_path / "samples"
    status = sampling_cli.main(["sampling", "--model", model_dir, "--out_dir", str(out),
                                "--num", "2", "--seed", "1"])
    assert status == 0
    written = images.read_png(str(out / "samples" / "sample_00001.png"))
    sampler = sampling.Sampler.load(os.path.join(model_dir, "export"))
    np.testing.assert_array_equal(written, images.to_uint8(sampler.sample(2, 1)).numpy()[1])

    data = tmp_path / "images.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), np.uint8))
    status, printed, err = run_py_in_process(
        "--gin_file", os.path.join(model_dir, "operative_config.gin"), "--model_dir", model_dir,
        "--gin_param", "train.num_steps = 4", "--gin_param", "train.export_at_end = False",
        "--gin_param", "train.data = @npy_source()", "--gin_param", f"npy_source.path = '{data}'",
        "--gin_param", "npy_source.resolution = 32")
    assert status == 0, err[-3000:]
    assert "at step 3" in printed
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "ckpt-4"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 4
    assert reader.get_tensor("g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4
    assert reader.get_tensor("d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4


def _mismatched_config(tmp_path):
    text = open(CONFIG).read().replace("nfilter_max: 32", "nfilter_max: 64")
    path = tmp_path / "mismatch.yaml"
    path.write_text(text)
    return str(path)


def _bad_input(kind, tmp_path):
    """(config, checkpoint, expected message) of one kind of bad input."""
    if kind == "global":
        path = str(tmp_path / "evil.pt")
        write_zip(path, {"it": 2, "generator": {"w": Tensor.of(np.zeros(2, np.float32), "0")},
                         "discriminator": Call(Global("posix", "system"),
                                               (f"touch {tmp_path / 'marker'}",))})
        return CONFIG, path, "refusing to load the pickled global posix.system"
    if kind == "truncated":
        data = open(CHECKPOINTS["legacy"], "rb").read()
        path = tmp_path / "cut.pt"
        path.write_bytes(data[:len(data) // 2])
        return CONFIG, str(path), "truncated"
    if kind == "deep_nesting":  # data.pkl: 100k lists inside each other
        path = str(tmp_path / "deep.pt")
        write_zip_pickle(path, nested_lists_pickle(100_000))
        return CONFIG, path, "containers nested deeper than 64 levels"
    return (_mismatched_config(tmp_path), CHECKPOINTS["zip"],
            r"does not fit config .*'fc.weight' has shape \[512, 17\]")


@pytest.mark.parametrize("kind", ["global", "truncated", "mismatch", "deep_nesting"])
def test_bad_input_in_process(kind, tmp_path):
    config_path, checkpoint, message = _bad_input(kind, tmp_path)
    with pytest.raises(ValueError, match=message) as info:
        try:
            importer.import_checkpoint(config_path, checkpoint, str(tmp_path / "run"))
        finally:
            gin.clear_config()
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "marker").exists()
    assert [p for p in os.listdir(tmp_path) if ".import-" in p] == []


@pytest.mark.parametrize("kind", ["global", "truncated", "mismatch"])
def test_bad_input_on_the_command_line(kind, tmp_path):
    config_path, checkpoint, message = _bad_input(kind, tmp_path)
    result = _cli("--config", config_path, "--checkpoint", checkpoint,
                  "--model_dir", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr[-3000:]
    # TensorFlow's own start-up log lines aside, one line: the error.
    lines = [line for line in result.stderr.strip().splitlines()
             if not re.match(r"(WARNING: All log messages|[IWE]\d{4} )", line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert re.search(message, lines[0])
    assert not (tmp_path / "run").exists() and not (tmp_path / "marker").exists()


def test_a_config_or_checkpoint_that_is_not_a_file_is_named_by_its_flag(tmp_path, capsys):
    """Not `GAN_stability config <dir> does not exist`: the flag, and what it should be."""
    (tmp_path / "a_directory").mkdir()
    for args, expected in [
            (["--config", str(tmp_path / "a_directory"), "--checkpoint", CHECKPOINTS["zip"]],
             f"--config: '{tmp_path / 'a_directory'}' is a directory: it should be a "
             f"GAN_stability YAML config"),
            (["--config", CONFIG, "--checkpoint", str(tmp_path / "missing.pt")],
             f"--checkpoint: '{tmp_path / 'missing.pt'}' does not exist: it should be a "
             f"GAN_stability checkpoint (.pt)")]:
        status = importer_cli.main(["import", *args, "--model_dir", str(tmp_path / "run")])
        assert (status, capsys.readouterr().err) == (2, f"error: {expected}\n")
    assert os.listdir(tmp_path) == ["a_directory"]


def test_mismatches_name_what_differs(tmp_path):
    with pytest.raises(ConfigError, match=r"generator: .*'fc.weight' has shape \[512, 17\], the "
                                          r"network's is \[1024, 17\]"):
        importer.import_checkpoint(_mismatched_config(tmp_path), CHECKPOINTS["zip"],
                                   str(tmp_path / "a"), export=False)
    adam = tmp_path / "adam.yaml"
    adam.write_text(open(CONFIG).read().replace("optimizer: rmsprop", "optimizer: adam"))
    with pytest.raises(ConfigError, match=r"g_optimizer: parameter 'embedding.weight' has the "
                                          r"optimizer state \['square_avg'\] but the config's "
                                          r"optimizer \(adam\) keeps \['exp_avg', 'exp_avg_sq'\]"):
        importer.import_checkpoint(str(adam), CHECKPOINTS["zip"], str(tmp_path / "b"),
                                   export=False)
    gin.clear_config()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_model_dir_is_refused_unless_empty_or_an_earlier_import(tmp_path):
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"--model_dir .* is not empty and not an earlier "
                                          r"import"):
        importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], str(user_dir), export=False)
    assert (user_dir / "notes.txt").read_text() == "mine"
    # An earlier import is replaced; one that was trained since is not.
    again = tmp_path / "again"
    again.mkdir()
    importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], str(again), export=False)
    importer.import_checkpoint(CONFIG, CHECKPOINTS["legacy"], str(again), export=False)
    record = json.load(open(again / "gan_stability_import.json"))
    assert record["checkpoint"] == os.path.abspath(CHECKPOINTS["legacy"])
    (again / "checkpoints" / "ckpt-4.index").write_text("")
    with pytest.raises(ConfigError, match="trained since the import"):
        importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], str(again), export=False)
    gin.clear_config()


def test_import_into_a_url_never_touches_the_local_disk(no_local_disk_for_ram, expected,
                                                         capsys):
    """A --model_dir on an object store (ram:// stands in for gs://): the import writes its
    checkpoint, config, export and record there through run_dir.files, its export reproduces the
    EMA generator's outputs, and a second import replaces the first (under the writer lock, which
    on an object store is only the one-line warning); a directory holding anything else is
    refused. No local file function sees the path (the fixture checks)."""
    model_dir = ram_url("import") + "/run"
    try:
        assert importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], model_dir) == (
            model_dir, 3)
    finally:
        gin.clear_config()
    assert sorted(files.listdir(model_dir)) == [
        "checkpoints", "export", importer.IMPORT_RECORD, "operative_config.gin"]
    record = json.loads(run_dir.read_text(f"{model_dir}/{importer.IMPORT_RECORD}"))
    assert record["step"] == 3 and record["checkpoint_sha256"] == (
        "dac3f0f87ca867960388b720c2c445fb5f8c8fc130493c96c8638cea5e48a0fb")
    out = _nchw(sampling.Sampler.load(f"{model_dir}/export")(expected["z"],
                                                             expected["y"].astype(np.int32)))
    np.testing.assert_allclose(out, expected["G_test_out"], atol=1e-5, rtol=0)
    assert capsys.readouterr().err == ""  # a new directory: nothing to lock yet

    try:
        importer.import_checkpoint(CONFIG, CHECKPOINTS["legacy"], model_dir, export=False)
    finally:
        gin.clear_config()
    record = json.loads(run_dir.read_text(f"{model_dir}/{importer.IMPORT_RECORD}"))
    assert record["checkpoint"] == os.path.abspath(CHECKPOINTS["legacy"])
    assert sorted(files.listdir(model_dir)) == [
        "checkpoints", importer.IMPORT_RECORD, "operative_config.gin"]
    assert not [n for n in files.listdir(model_dir.rsplit("/", 1)[0]) if n.startswith(".")]
    assert capsys.readouterr().err.splitlines() == [url_lock_warning(model_dir, "--model_dir")]

    other = ram_url("import") + "/mine"
    run_dir.write_text(f"{other}/notes.txt", "mine")
    with pytest.raises(ConfigError, match="is not empty and not an earlier import"):
        importer.import_checkpoint(CONFIG, CHECKPOINTS["zip"], other, export=False)
    gin.clear_config()
    assert files.listdir(other) == ["notes.txt"]


def test_wgan_critic_changes_sign(tmp_path, expected):
    """GAN_stability's wgan critic minimises D(real) - D(fake), ours D(fake) - D(real): the
    import negates it, so that our loss continues its training."""
    wgan = tmp_path / "wgan.yaml"
    wgan.write_text(open(CONFIG).read().replace("gan_type: standard", "gan_type: wgan")
                    .replace("reg_type: real", "reg_type: wgangp"))
    model_dir = str(tmp_path / "run")
    importer.import_checkpoint(str(wgan), CHECKPOINTS["zip"], model_dir, export=False)
    gin.clear_config()
    gan = _restore(model_dir)
    out = gan.discriminator(np.transpose(expected["x"], (0, 2, 3, 1)),
                            expected["y"].astype(np.int32)).numpy()
    np.testing.assert_allclose(out, -expected["D_out"], atol=1e-5, rtol=0)
    assert "GAN.loss = @wasserstein()" in open(os.path.join(model_dir, "operative_config.gin")).read()


@pytest.mark.parametrize("name", ["resnet2", pytest.param("resnet3", marks=pytest.mark.slow),
                                  pytest.param("resnet4", marks=pytest.mark.slow)])
def test_import_of_the_other_gan_stability_networks(tmp_path, name):
    """A GAN_stability-style checkpoint of resnet2/3/4 (tiny, conditional; weights of a source
    network in PyTorch layout, `module.` prefixes, RMSprop state) imports: the imported G, EMA G
    and D compute what the source networks compute, and the optimizer state reads back."""
    from tf_convgan import networks
    from tf_convgan.networks import torch_port
    rng = np.random.default_rng(0)
    make_g = getattr(networks, f"{name}_generator")
    make_d = getattr(networks, f"{name}_discriminator")
    kwargs = dict(resolution=64, num_classes=3, nf=2, init="pytorch")
    sources = {"generator": networks.build(make_g(z_dim=8, embed_size=4, **kwargs)),
               "generator_test": networks.build(make_g(z_dim=8, embed_size=4, **kwargs)),
               "discriminator": networks.build(make_d(**kwargs))}
    states = {key: torch_port.state_dict(net) for key, net in sources.items()}
    checkpoint, square_avg = {"it": 9}, {}
    for key, state in states.items():
        checkpoint[key] = {f"module.{n}": Tensor.of(v, f"{key}/{n}") for n, v in state.items()}
    for player in ("generator", "discriminator"):
        square_avg[player] = {n: rng.uniform(0, 1, v.shape).astype(np.float32)
                              for n, v in states[player].items()}
        checkpoint[player[0] + "_optimizer"] = {
            "state": {i: {"step": Tensor.of(np.float32(10), f"{player}/step{i}"),
                          "square_avg": Tensor.of(a, f"{player}/sq{i}")}
                      for i, a in enumerate(square_avg[player].values())},
            "param_groups": [{"lr": 1e-4, "alpha": 0.99, "eps": 1e-8, "momentum": 0,
                              "centered": False, "weight_decay": 0,
                              "params": list(range(len(states[player])))}]}
    path = str(tmp_path / "model.pt")
    write_zip(path, checkpoint)
    yaml_path = tmp_path / "config.yaml"
    yaml_path.write_text(
        f"data:\n  type: image\n  img_size: 64\n  nlabels: 3\nz_dist:\n  dim: 8\n"
        f"generator:\n  name: {name}\n  kwargs: {{nfilter: 2, embed_size: 4}}\n"
        f"discriminator:\n  name: {name}\n  kwargs: {{nfilter: 2, embed_size: 4}}\n")
    model_dir = str(tmp_path / "run")
    _, step = importer.import_checkpoint(str(yaml_path), path, model_dir, export=False)
    gin.clear_config()
    assert step == 10
    gan = _restore(model_dir)
    z = rng.standard_normal((3, 8)).astype(np.float32)
    labels = np.array([0, 1, 2], np.int32)
    x = rng.uniform(-1, 1, (3, 64, 64, 3)).astype(np.float32)
    for ours, source in ((gan.generator, "generator"), (gan.generator_ema, "generator_test")):
        np.testing.assert_allclose(ours(z, labels), sources[source](z, labels), atol=1e-6)
    np.testing.assert_allclose(gan.discriminator(x, labels), sources["discriminator"](x, labels),
                               atol=1e-6)
    for player, network, optimizer in (("generator", gan.generator, gan.g_optimizer),
                                       ("discriminator", gan.discriminator, gan.d_optimizer)):
        assert int(optimizer.iterations.numpy()) == 10
        for variable in network.trainable_variables:
            variable.assign(optimizer.state(variable)["square_avg"])
        read_back = torch_port.state_dict(network)
        for n, value in square_avg[player].items():
            np.testing.assert_array_equal(read_back[n], value)
