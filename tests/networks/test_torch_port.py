"""GAN_stability state dicts <-> Keras networks: the oracle's weights reproduce the oracle's
outputs, state_dict is the exact inverse of load_state_dict, and bad state dicts fail strictly."""
import numpy as np
import pytest

from gan_stability_reference import load, needs_reference, sub_state
from tf_convgan import networks as N
from tf_convgan.errors import ConfigError
from tf_convgan.networks.torch_port import StateDictMismatchError, load_state_dict, state_dict


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


ARCHS = ["resnet", "resnet2", "resnet3", "resnet4"]


def _pair(config):
    """G and D of an oracle file's configuration (`arch`, GAN_stability's kwargs)."""
    arch, g_kw, d_kw = config["arch"], config["generator_kwargs"], config["discriminator_kwargs"]
    common = dict(resolution=config["img_size"], num_classes=config["nlabels"])
    g_width, d_width = dict(nf=g_kw["nfilter"]), dict(nf=d_kw["nfilter"])
    if arch == "resnet":  # only `resnet` has nfilter_max (resnet2 ignores it)
        g_width["nf_max"], d_width["nf_max"] = g_kw["nfilter_max"], d_kw["nfilter_max"]
    g = getattr(N, f"{arch}_generator")(z_dim=config["z_dim"], embed_size=g_kw["embed_size"],
                                        **common, **g_width)
    d = getattr(N, f"{arch}_discriminator")(**common, **d_width)
    return g, d


@needs_reference
@pytest.mark.parametrize("arch", ARCHS)
def test_oracle_weights_reproduce_the_reference_forward_pass(arch):
    ref = load(f"forward_{arch}.npz")
    assert ref["config"]["arch"] == arch
    g, d = _pair(ref["config"])
    load_state_dict(g, sub_state(ref, "G"))
    load_state_dict(d, sub_state(ref, "D"))
    y = ref["y"].astype(np.int32)
    g_out = g(ref["z"], y, training=False).numpy()
    np.testing.assert_allclose(g_out, _nhwc(ref["G_out"]), rtol=0, atol=1e-5)
    d_out = d(_nhwc(ref["x"]), y, training=False).numpy()
    np.testing.assert_allclose(d_out, ref["D_out"], rtol=1e-5, atol=1e-5)
    # The outputs are not trivially small: a wrong layout would show.
    assert np.abs(ref["G_out"]).max() > 0.05 and np.abs(ref["D_out"]).max() > 3e-3


@needs_reference
@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_is_the_inverse_of_load_state_dict(arch):
    """Keys (in the reference's order), shapes and values read back exactly; the parameter count
    equals the reference's (the sum of its state dict's sizes)."""
    ref = load(f"forward_{arch}.npz")
    for prefix, net in zip(("G", "D"), _pair(ref["config"])):
        want = sub_state(ref, prefix)
        load_state_dict(net, want)
        got = state_dict(net)
        assert list(got) == list(want)
        for name, value in want.items():
            assert got[name].dtype == np.float32 and got[name].shape == value.shape, name
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        assert N.count_params(net) == sum(v.size for v in want.values())


@needs_reference
@pytest.mark.parametrize("case", ["resnet_rmsprop_r1", "resnet_adam_r1r2_cond3"])
def test_training_oracle_states_load_into_the_configured_networks(case):
    """The train_steps files' networks (img 32, nfilter 8, nfilter_max 32, 1 or 3 classes): every
    stored state (init, it1, it5, EMA) loads strictly and reads back bit-exactly."""
    ref = load(f"train_steps_{case}.npz")
    g, d = _pair(ref["config"])
    for prefix, net in (("G_init", g), ("D_init", d), ("it5/G_ema", g), ("it1/D", d)):
        want = sub_state(ref, prefix)
        load_state_dict(net, want)
        got = state_dict(net)
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{prefix}/{name}")


@needs_reference
def test_data_parallel_prefix_is_stripped():
    ref = load("forward_resnet.npz")
    g, _ = _pair(ref["config"])
    load_state_dict(g, {"module." + k: v for k, v in sub_state(ref, "G").items()})
    np.testing.assert_array_equal(state_dict(g)["fc.weight"], ref["G/fc.weight"])


def _small_resnet_g(**kw):
    return N.build(N.resnet_generator(resolution=32, nf=2, nf_max=4, z_dim=3, embed_size=2, **kw))


def test_mismatched_state_dicts_raise_naming_the_key_and_assign_nothing():
    g = _small_resnet_g()
    good = state_dict(g)
    before = [w.numpy().copy() for w in g.weights]

    bad = dict(good)
    bad["fc.weight"] = np.zeros((5, 5), np.float32)
    bad["conv_img.bias"] = good["conv_img.bias"] + 1.0  # would change if anything were assigned
    with pytest.raises(StateDictMismatchError, match=r"'fc\.weight' has shape \[5, 5\], the "
                                                     r"network's is \[64, 5\]") as e:
        load_state_dict(g, bad)
    assert isinstance(e.value, ConfigError)
    for w, b in zip(g.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)

    missing = {k: v for k, v in good.items() if k != "resnet.4.conv_s.weight"}
    with pytest.raises(StateDictMismatchError,
                       match=r"missing keys \['resnet\.4\.conv_s\.weight'\]"):
        load_state_dict(g, missing)
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys \['resnet\.1\.weight'\]"):
        load_state_dict(g, dict(good, **{"resnet.1.weight": np.zeros(3, np.float32)}))
    with pytest.raises(StateDictMismatchError, match="both with and without"):
        load_state_dict(g, dict(good, **{"module.fc.bias": good["fc.bias"]}))
    with pytest.raises(StateDictMismatchError, match="mapping"):
        load_state_dict(g, list(good.items()))


def test_conv_and_dense_layouts_are_transposed_not_reshaped():
    """A conv kernel's [out, in, kh, kw] entry (o, i, y, x) lands at HWIO (y, x, i, o), a linear
    weight's (o, i) at (i, o)."""
    g = _small_resnet_g()
    state = state_dict(g)
    w = np.arange(np.prod(state["conv_img.weight"].shape), dtype=np.float32).reshape(
        state["conv_img.weight"].shape)
    fc = np.arange(state["fc.weight"].size, dtype=np.float32).reshape(state["fc.weight"].shape)
    load_state_dict(g, dict(state, **{"conv_img.weight": w, "fc.weight": fc}))
    assert g.conv_img.kernel.numpy()[2, 1, 0, 1] == w[1, 0, 2, 1]
    assert g.fc.kernel.numpy()[4, 7] == fc[7, 4]


def test_unbuilt_networks_are_built_and_other_families_refused():
    g = N.resnet_generator(resolution=32, nf=2, nf_max=4, z_dim=3, embed_size=2)
    assert "embedding.weight" in state_dict(g)
    with pytest.raises(TypeError, match="no GAN_stability counterpart"):
        state_dict(N.dcgan_discriminator(resolution=16))
