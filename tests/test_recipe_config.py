"""The Fashion-MNIST recipe (fashion_mnist_r1_fast.gin): its settings and a few real training
steps of it at full width."""
import os

import gin
import numpy as np

import tf_convgan  # noqa: F401  (registers the configurables)
from tf_convgan.cli import config
from tf_convgan.run_dir import checkpoints as checkpoints_lib
from tf_convgan.training.loop import train
from fid_helpers import FASHION_MNIST_DIR, needs_fashion_mnist

RECIPE = "fashion_mnist_r1_fast.gin"


def _bindings(gin_file):
    """{'scope/configurable.parameter': value string} of the whole parsed config."""
    gin.clear_config()
    try:
        config.parse([gin_file])
        text = gin.config_str()
    finally:
        gin.clear_config()
    bindings, key = {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("import "):
            continue
        if " = " in line and not line.startswith(" "):
            key, value = line.split(" = ", 1)
            bindings[key.strip()] = value.strip()
        elif key is not None:  # continuation of a multi-line value
            bindings[key] += " " + line.strip()
    return bindings


def test_recipe_settings():
    """R1 with gamma 0.1 on the non-saturating loss, the narrow ResNet, Adam (0, 0.99) at 5e-4,
    batch 64, and FID of 2,000 samples against the test split during training."""
    b = _bindings(RECIPE)
    assert b["GAN.penalty"] == "@r1" and float(b["r1.gamma"]) == 0.1
    assert b["GAN.loss"] == "@non_saturating()"
    assert (b["resnet_generator.nf"], b["resnet_discriminator.nf"]) == ("16", "16")
    assert (float(b["adam.beta_1"]), float(b["adam.beta_2"])) == (0.0, 0.99)
    assert float(b["adam.learning_rate"]) == 5e-4
    assert int(b["train.batch_size"]) == 64 and float(b["GAN.ema_beta"]) == 0.999
    assert b["train.evaluator"] == "@fid_evaluator()"
    assert int(b["fid_evaluator.num_samples"]) == 2000
    assert b["test/fashion_mnist_source.split"] == "'test'"


@needs_fashion_mnist
def test_recipe_trains_a_few_steps_at_full_width(tmp_path):
    """Two steps of the recipe's networks on the real data (no FID: it costs minutes): the
    checkpoint of step 2, G moved from its initialisation, finite weights."""
    gin.clear_config()
    config.parse([RECIPE], [f"fashion_mnist_source.directory = '{FASHION_MNIST_DIR}'",
                            "fashion_mnist_source.data_dir = '/nonexistent-tfds-dir'",
                            "train.evaluator = None", "train.export_at_end = False"])
    try:
        model_dir = str(tmp_path / "run")
        gan = train(model_dir=model_dir, num_steps=0)
        initial = [w.copy() for w in gan.generator.get_weights()]
        gan = train(model_dir=model_dir, num_steps=2)
    finally:
        gin.clear_config()
    assert max(checkpoints_lib.checkpoint_steps(os.path.join(model_dir, "checkpoints"))) == 2
    moved = [np.abs(a - b).max() for a, b in zip(initial, gan.generator.get_weights())]
    assert max(moved) > 0
    for w in gan.generator.get_weights() + gan.discriminator.get_weights():
        assert np.isfinite(w).all()
