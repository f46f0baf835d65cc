"""Initialisation of the GAN_stability ResNets: under init='pytorch' every parameter is drawn as
PyTorch draws it (bounds from the fan-in of the PyTorch-layout weight), G(z) and D(x) at step 0
have the statistics of weights drawn in NumPy from PyTorch's formulas, 'keras' keeps Keras'
defaults, and class embeddings start unrelated (N(0, 1), not mean 1)."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_convgan import networks as N
from tf_convgan.networks.initializers import PYTORCH, WeightInit, resolve_init
from tf_convgan.networks.torch_port import load_state_dict, state_dict

ARCHS = ["resnet", "resnet2", "resnet3", "resnet4"]


def _small(arch, role, init, num_classes=1, embed_size=8, **kw):
    resolution = {"resnet": 32, "resnet2": 32}.get(arch, 64)
    width = dict(nf=16, nf_max=64) if arch == "resnet" else dict(nf=4)
    if role == "generator":
        return N.build(getattr(N, f"{arch}_generator")(
            resolution=resolution, z_dim=16, num_classes=num_classes, embed_size=embed_size,
            init=init, **width, **kw))
    return N.build(getattr(N, f"{arch}_discriminator")(
        resolution=resolution, num_classes=num_classes, init=init, **width, **kw))


def _fan_in(name, state):
    """PyTorch's fan_in of the layer that owns parameter `name`: in_features of a linear weight
    [out, in], in_channels * kh * kw of a conv weight [out, in, kh, kw]; a bias uses its
    weight's."""
    weight = state[name.rsplit(".", 1)[0] + ".weight"]
    return int(np.prod(weight.shape[1:]))


def _pytorch_bound(name, state):
    """nn.Linear / nn.Conv2d reset_parameters: weight kaiming_uniform_(a=sqrt(5)), i.e.
    U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)); bias
    U(+-1/sqrt(fan_in))."""
    fan_in = _fan_in(name, state)
    if name.endswith(".bias"):
        return 1.0 / math.sqrt(fan_in)
    gain = math.sqrt(2.0 / (1.0 + 5.0))
    return gain * math.sqrt(3.0 / fan_in)


def _pytorch_state_dict(shapes, rng):
    """A state dict drawn in NumPy as PyTorch initialises GAN_stability's modules."""
    state = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    for name, shape in shapes.items():
        if name == "embedding.weight":  # nn.Embedding: N(0, 1)
            state[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            bound = _pytorch_bound(name, state)
            state[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return state


@pytest.mark.parametrize("role", ["generator", "discriminator"])
@pytest.mark.parametrize("arch", ARCHS)
def test_pytorch_init_draws_every_parameter_as_pytorch_does(arch, role):
    keras.utils.set_random_seed(3)
    state = state_dict(_small(arch, role, "pytorch", num_classes=40, embed_size=40))
    pooled = {"weight": [], "bias": []}
    for name, value in state.items():
        if name == "embedding.weight":
            assert abs(value.mean()) < 0.1 and abs(value.std() - 1.0) < 0.1, name
            continue
        u = value / _pytorch_bound(name, state)  # U(-1, 1) if drawn right
        assert np.abs(u).max() <= 1.0 + 1e-6, name
        if u.size >= 1000:
            assert np.abs(u).max() > 0.99 and abs(u.std() * math.sqrt(3) - 1) < 0.1, name
        pooled[name.rsplit(".", 1)[1]].append(u.ravel())
    for kind, parts in pooled.items():
        u = np.concatenate(parts)
        assert u.size > 300
        # U(-1, 1): mean 0, std 1/sqrt(3), |u| up to 1.
        assert abs(u.mean()) < 0.05 and abs(u.std() * math.sqrt(3) - 1) < 0.05, kind
        assert np.abs(u).max() > 0.98, kind


@pytest.mark.parametrize("arch", ARCHS)
def test_keras_init_keeps_the_keras_defaults(arch):
    """Glorot-uniform kernels (bound sqrt(6 / (fan_in + fan_out))), zero biases, N(0, 1)
    embedding."""
    keras.utils.set_random_seed(3)
    for role in ("generator", "discriminator"):
        state = state_dict(_small(arch, role, "keras", num_classes=40, embed_size=40))
        for name, value in state.items():
            if name == "embedding.weight":
                assert abs(value.mean()) < 0.1 and abs(value.std() - 1.0) < 0.1
            elif name.endswith(".bias"):
                assert not value.any(), name
            else:
                receptive = int(np.prod(value.shape[2:]))
                bound = math.sqrt(6.0 / (value.shape[1] * receptive + value.shape[0] * receptive))
                assert np.abs(value).max() <= bound * (1 + 1e-6), name
                if value.size >= 1000:
                    assert np.abs(value).max() > 0.99 * bound, name


def _layers(model):
    """The conv / dense / embedding layers of a network of the resnet family."""
    for _, layer in model.torch_layers():
        yield from (_layers(layer) if hasattr(layer, "torch_layers") else [layer])


def _redraw(model):
    """Fresh weights from copies of the layers' own initializers (what building the model draws),
    without rebuilding: many seeds at little cost. (An unseeded Keras initializer fixes its seed
    when created, so a copy, made after keras.utils.set_random_seed, draws anew.)"""
    def draw(variable, initializer):
        variable.assign(type(initializer).from_config(initializer.get_config())(variable.shape))

    for layer in _layers(model):
        if isinstance(layer, keras.layers.Embedding):
            draw(layer.embeddings, layer.embeddings_initializer)
            continue
        draw(layer.kernel, layer.kernel_initializer)
        if layer.use_bias:
            draw(layer.bias, layer.bias_initializer)


def _output_std_over_seeds(generator, discriminator, draw, num_seeds=64):
    """Mean over seeds of std(G(z)) and std(D(x)) (x ~ U(-1, 1)) with weights from `draw(seed)`,
    and the standard errors of these means."""
    rng = np.random.default_rng(0)
    z = tf.constant(rng.standard_normal((8, generator.z_dim)), tf.float32)
    x = tf.constant(rng.uniform(-1, 1, (32, 32, 32, 3)), tf.float32)
    forward = tf.function(lambda: (tf.math.reduce_std(generator(z, training=False)),
                                   tf.math.reduce_std(discriminator(x, training=False))))
    g_std, d_std = [], []
    for seed in range(num_seeds):
        draw(seed)
        g, d = forward()
        g_std.append(float(g))
        d_std.append(float(d))
    return [(np.mean(s), np.std(s) / math.sqrt(num_seeds)) for s in (g_std, d_std)]


def test_step_0_outputs_have_the_statistics_of_pytorch_initialised_weights():
    """The 32x32 ResNet (nf 16, nf_max 64): std of G(z) and of D(x) at step 0, averaged over 64
    weight draws, equal those of weights drawn in NumPy from PyTorch's fan-in formulas (G ~0.075,
    D ~0.003; GAN_stability's own code gives the same) within 10% (G) and 15% (D; one output unit,
    so std(D(x)) varies by ~23% between draws: a standard error of ~3% per mean). Keras' init
    is far off."""
    kw = dict(resolution=32, nf=16, nf_max=64)
    nets = {init: (N.build(N.resnet_generator(z_dim=16, embed_size=8, init=init, **kw)),
                   N.build(N.resnet_discriminator(init=init, **kw)))
            for init in ("pytorch", "keras")}
    shapes = {role: {k: v.shape for k, v in state_dict(net).items()}
              for role, net in zip(("G", "D"), nets["pytorch"])}

    def numpy_draw(seed):
        rng = np.random.default_rng(1000 + seed)
        for role, net in zip(("G", "D"), nets["pytorch"]):
            load_state_dict(net, _pytorch_state_dict(shapes[role], rng))

    def keras_draw(init):
        def draw(seed):
            keras.utils.set_random_seed(seed)
            for net in nets[init]:
                _redraw(net)
        return draw

    reference = _output_std_over_seeds(*nets["pytorch"], numpy_draw)
    ported = _output_std_over_seeds(*nets["pytorch"], keras_draw("pytorch"))
    keras_default = _output_std_over_seeds(*nets["keras"], keras_draw("keras"), num_seeds=4)
    for what, (want, want_se), (got, got_se), rtol in zip(("G(z)", "D(x)"), reference, ported,
                                                           (0.1, 0.15)):
        print(f"std {what}: NumPy PyTorch-init {want:.4f} +- {want_se:.4f}, "
              f"init='pytorch' {got:.4f} +- {got_se:.4f}")
        assert abs(got / want - 1) < rtol, what
    print(f"init='keras': std G(z) {keras_default[0][0]:.4f}, D(x) {keras_default[1][0]:.4f}")
    assert keras_default[0][0] > 2 * reference[0][0] and keras_default[1][0] > 2 * reference[1][0]


@pytest.mark.parametrize("arch,init", [(arch, "pytorch") for arch in ARCHS] + [("resnet", "keras")])
def test_class_embeddings_start_unrelated(arch, init):
    """1000 classes, embed_size 256 (the ImageNet configuration): the embeddings are N(0, 1)
    vectors, so pairwise cosines are ~N(0, 1/256): mean ~0, mean |cos| ~ sqrt(2 / (pi * 256)) =
    0.05 (with the former mean-1 initialisation: 0.9975, an almost unconditional G)."""
    keras.utils.set_random_seed(4)
    width = dict(nf=1, nf_max=1) if arch == "resnet" else dict(nf=1)
    g = N.build(getattr(N, f"{arch}_generator")(
        resolution=32 if arch in ("resnet", "resnet2") else 64, z_dim=4, num_classes=1000,
        embed_size=256, init=init, **width))
    e = g.embedding.embeddings.numpy()
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    cos = (e @ e.T)[np.triu_indices(1000, k=1)]
    assert abs(cos.mean()) < 0.005
    np.testing.assert_allclose(np.abs(cos).mean(), math.sqrt(2 / (math.pi * 256)), rtol=0.05)


def test_init_choice_is_validated_and_extensible():
    with pytest.raises(ValueError, match=r"^init must be one of \['keras', 'pytorch'\] or a "
                                         r"WeightInit, got 'torch'"):
        N.resnet2_generator(resolution=64, init="torch")
    assert resolve_init("pytorch") is PYTORCH
    zeros = WeightInit("zeros", kernel=lambda fan_in: keras.initializers.Zeros(),
                       bias=lambda fan_in: keras.initializers.Zeros(),
                       embedding=lambda: keras.initializers.Ones())
    d = N.build(N.resnet3_discriminator(resolution=64, nf=1, init=zeros))
    assert not any(w.numpy().any() for w in d.weights)
