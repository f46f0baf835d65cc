"""This project's training, step for step, against GAN_stability's (the PyTorch oracle).

    python scripts/gan_stability_steps.py [--reference DIR] [--iterations 5] [--jit_compile]

The oracle (DIR, default ../shared/reference/gan_stability; see its README.md) holds five training
iterations of the original code for three cases: RMSprop + R1; Adam (0, 0.99) + R1+R2 with 3
classes; WGAN loss + WGAN-GP. For each case this script builds the same networks, loads the
oracle's initial weights, and runs `GAN.train_step` (D step with its penalty, G step, EMA) on the
oracle's inputs: its real batches and labels, and, through a replaying noise source (the step's
own code path draws them), its z of the D and G steps and its WGAN-GP interpolation weights.
It prints, per iteration, the relative error of the losses, and where the oracle stores weights
(iterations 1 and 5) for G, D and the EMA generator: the relative error (max over tensors of
max |ours - oracle| / max |oracle|), the cosine between our and the oracle's change of the weights
since initialisation, and the ratio of their sizes; after iteration 1 also the optimizer state.
It does so with the PyTorch-exact optimizers (torch_rmsprop / torch_adam, what the
GAN_stability configs use) and, for contrast, with Keras' (rmsprop / adam).

Conventions mapped here (the two runs are then the same function of the same numbers):
  reg_param 10 (no 1/2) is gamma = 20; reg_type real / real_fake / wgangp is r1 / r1_r2 / wgan_gp.
  GAN_stability's WGAN critic has the opposite sign (D minimises mean D(real) - mean D(fake)): D
    is loaded with its output layer negated, and negated back for the comparison.
  Its interpolates are (1 - e) real + e fake, ours eps real + (1 - eps) fake: eps = 1 - e.
  With real_fake its logged `reg` is only the fake half: compared with R2 of the weights before
    the step (both halves are in the update, which the weights compare).
Also usable as a module (tests/gan_stability/test_steps.py): `replay`, `compare`.
"""
import argparse
import functools
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_convgan.objectives import losses  # noqa: E402
from tf_convgan.gan import optimizers
from tf_convgan.objectives import penalties
from tf_convgan.gan.model import GAN  # noqa: E402
from tf_convgan.networks import build, resnet_discriminator, resnet_generator  # noqa: E402
from tf_convgan.networks.torch_port import load_state_dict, state_dict  # noqa: E402

DEFAULT_REFERENCE = os.path.join(ROOT, "..", "shared", "reference", "gan_stability")
CASES = ("resnet_rmsprop_r1", "resnet_adam_r1r2_cond3", "resnet_rmsprop_wgangp")
MODELS = ("G", "D", "G_ema")
_CRITIC_OUTPUT = ("fc.weight", "fc.bias")


def load_case(path):
    """{key: array} of a train_steps_*.npz, with its decoded `config`."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {key: f[key] for key in f.files}
    arrays["config"] = json.loads(bytes(arrays.pop("config_json")).decode())
    return arrays


def sub_state(arrays, prefix):
    """The state dict stored under `prefix/` (e.g. 'G_init', 'it1/G_ema')."""
    prefix += "/"
    return {k[len(prefix):]: v for k, v in arrays.items()
            if k.startswith(prefix) and "/" not in k[len(prefix):]}


class ReplayNoise:
    """A noise source (see tf_convgan.noise) that serves recorded draws: the step's normal draws
    are, in order, z of the D step and z of the G step; its uniform draw is the interpolation
    weights. The values are read from variables set before each step, so that one traced step
    replays every iteration."""

    def __init__(self, batch, z_dim):
        self.z_d = tf.Variable(tf.zeros([batch, z_dim]), trainable=False)
        self.z_g = tf.Variable(tf.zeros([batch, z_dim]), trainable=False)
        self.eps = tf.Variable(tf.zeros([batch]), trainable=False)
        self._normals = 0

    def set(self, z_d, z_g, eps=None):
        self.z_d.assign(z_d)
        self.z_g.assign(z_g)
        if eps is not None:
            self.eps.assign(eps)

    def normal(self, shape, seed, dtype=tf.float32):
        del seed
        variable = (self.z_d, self.z_g)[self._normals % 2]
        self._normals += 1
        if list(shape) != variable.shape.as_list():
            raise ValueError(f"the step asked for normals of shape {shape}, the record has "
                             f"{variable.shape}")
        return tf.cast(variable.read_value(), dtype)

    def uniform(self, shape, seed, dtype=tf.float32):
        del seed
        return tf.cast(tf.reshape(self.eps.read_value(), shape), dtype)


def _spec(config, family):
    """(loss, penalty, optimizer factory) of an oracle case; family 'torch' or 'keras'."""
    gamma = 2.0 * float(config["reg_param"])  # reg_param has no 1/2
    loss = {"standard": losses.non_saturating, "wgan": losses.wasserstein}[config["gan_type"]]()
    penalty = functools.partial({"real": penalties.r1, "real_fake": penalties.r1_r2,
                                 "wgangp": penalties.wgan_gp}[config["reg_type"]], gamma=gamma)
    assert config["lr_g"] == config["lr_d"]
    lr = float(config["lr_d"])
    name = {"torch": "torch_", "keras": ""}[family] + config["optimizer"]
    if config["optimizer"] == "rmsprop":  # RMSprop(alpha=0.99, eps=1e-8)
        kwargs = dict(learning_rate=lr, rho=0.99, epsilon=1e-8)
    else:  # Adam(betas=(0, 0.99), eps=1e-8)
        kwargs = dict(learning_rate=lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8)
    factory = getattr(optimizers, name)
    return loss, penalty, lambda: factory(**kwargs)


def _networks(config):
    g_kwargs, d_kwargs = config["generator_kwargs"], config["discriminator_kwargs"]

    def generator():
        return build(resnet_generator(
            resolution=config["img_size"], z_dim=config["z_dim"], num_classes=config["nlabels"],
            nf=g_kwargs["nfilter"], nf_max=g_kwargs["nfilter_max"],
            embed_size=g_kwargs["embed_size"]))

    def discriminator():
        return build(resnet_discriminator(
            resolution=config["img_size"], num_classes=config["nlabels"],
            nf=d_kwargs["nfilter"], nf_max=d_kwargs["nfilter_max"]))

    return generator, discriminator


def _critic_sign(state, negate):
    """GAN_stability's WGAN critic <-> ours: the output layer negated (an involution)."""
    if not negate:
        return dict(state)
    return {k: -v if k in _CRITIC_OUTPUT else v for k, v in state.items()}


def _images(x_nchw):
    return np.transpose(x_nchw, (0, 2, 3, 1))


def _optimizer_state(optimizer, model, make_model, negate):
    """{param name: {state name: torch-layout array}} of a PyTorch-exact optimizer, through a
    shadow network whose weights are set to each state (the port knows the layouts)."""
    shadow = make_model()
    out = {}
    for state_name in type(optimizer).STATE:
        for variable, target in zip(model.trainable_variables, shadow.trainable_variables):
            target.assign(optimizer.state(variable)[state_name])
        converted = _critic_sign(state_dict(shadow), negate and state_name == "exp_avg")
        for name, value in converted.items():
            out.setdefault(name, {})[state_name] = value
    return out


def replay(path, family="torch", iterations=5, jit_compile=False):
    """Runs `iterations` GAN.train_steps on an oracle case's inputs from its initial weights.

    Returns {"oracle": arrays, "init": {model: state dict}, "logs": [per iteration {"d_loss",
    "g_loss", "reg"}], "states": {t: {model: state dict}} for t in (1, iterations),
    "optimizer_state": {"G_opt"/"D_opt": {param: {state: array}}, "step": {...}} after iteration
    1 (PyTorch-exact optimizers only)}, every state in GAN_stability's names and layouts."""
    arrays = load_case(path)
    config = arrays["config"]
    negate = config["gan_type"] == "wgan"
    loss, penalty, make_optimizer = _spec(config, family)
    make_g, make_d = _networks(config)
    generator, discriminator, generator_ema = make_g(), make_d(), make_g()
    load_state_dict(generator, sub_state(arrays, "G_init"))
    load_state_dict(generator_ema, sub_state(arrays, "G_init"))
    load_state_dict(discriminator, _critic_sign(sub_state(arrays, "D_init"), negate))
    source = ReplayNoise(config["batch_size"], config["z_dim"])
    gan = GAN(generator, discriminator, generator_ema, loss=loss, penalty=penalty, d_steps=1,
              ema_beta=float(config["model_average_beta"]), g_optimizer=make_optimizer(),
              d_optimizer=make_optimizer(), noise_source=source)
    strategy = tf.distribute.get_strategy()
    train_step = tf.function(gan.train_step, jit_compile=jit_compile)
    step = tf.function(lambda batch: strategy.run(train_step, args=(batch,)))

    def states():
        return {"G": state_dict(generator),
                "D": _critic_sign(state_dict(discriminator), negate),
                "G_ema": state_dict(generator_ema)}

    result = {"oracle": arrays, "init": states(), "logs": [], "states": {}}
    for t in range(1, iterations + 1):
        x = _images(arrays[f"it{t}/x_real"])
        y = arrays[f"it{t}/y"].astype(np.int32)
        eps = 1.0 - arrays[f"it{t}/gp_eps"] if f"it{t}/gp_eps" in arrays else None
        source.set(arrays[f"it{t}/z_d"], arrays[f"it{t}/z_g"], eps)
        fake_half = None
        if config["reg_type"] == "real_fake":  # the oracle logs R2 of the weights before the step
            labels = tf.constant(y)
            fake = generator(tf.constant(arrays[f"it{t}/z_d"]), labels, training=True)
            fake_half = float(tf.reduce_mean(penalties.r2(
                lambda images: discriminator(images, labels, training=True), None, fake,
                gamma=2.0 * float(config["reg_param"]))))
        logs = step((tf.constant(x[:, None]), tf.constant(y[:, None])))
        logs = {k: float(v) for k, v in logs.items()}
        result["logs"].append({"d_loss": logs["d_loss"], "g_loss": logs["g_loss"],
                               "reg": logs["penalty"] if fake_half is None else fake_half})
        if t in (1, iterations):
            result["states"][t] = states()
        if t == 1 and family == "torch":
            result["optimizer_state"] = {
                "G_opt": _optimizer_state(gan.g_optimizer, generator, make_g, False),
                "D_opt": _optimizer_state(gan.d_optimizer, discriminator, make_d, negate),
                "step": {"G_opt": int(gan.g_optimizer.iterations.numpy()),
                         "D_opt": int(gan.d_optimizer.iterations.numpy())}}
    return result


def relative_error(got, want):
    """max |got - want| / max |want| of one tensor."""
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _flat(state, names):
    return np.concatenate([np.ravel(state[n]).astype(np.float64) for n in names])


def compare(result):
    """Per iteration t: {"losses": {name: relative error}, and for t with states:
    "models": {model: {"error": max over tensors of the relative error, "worst": its tensor,
    "cosine": cos(our change, oracle's change), "ratio": |our change| / |oracle's|}}};
    and "optimizer_state": {"G_opt"/"D_opt": max relative error over params and states}."""
    oracle = result["oracle"]
    out = {}
    for t, logs in enumerate(result["logs"], 1):
        row = {"losses": {k: abs(v - float(oracle[f"it{t}/{k}"])) / abs(float(oracle[f"it{t}/{k}"]))
                          for k, v in logs.items()}}
        if t in result["states"]:
            row["models"] = {}
            for model in MODELS:
                ours, theirs = result["states"][t][model], sub_state(oracle, f"it{t}/{model}")
                init = result["init"][model]
                assert set(ours) == set(theirs), (model, sorted(set(ours) ^ set(theirs)))
                errors = {n: relative_error(ours[n], theirs[n]) for n in theirs}
                names = sorted(theirs)
                d_ours = _flat(ours, names) - _flat(init, names)
                d_theirs = _flat(theirs, names) - _flat(init, names)
                worst = max(errors, key=errors.get)
                row["models"][model] = {
                    "error": errors[worst], "worst": worst,
                    "cosine": float(d_ours @ d_theirs / (np.linalg.norm(d_ours)
                                                         * np.linalg.norm(d_theirs))),
                    "ratio": float(np.linalg.norm(d_ours) / np.linalg.norm(d_theirs))}
        out[t] = row
    if "optimizer_state" in result:
        opt = {}
        for key in ("G_opt", "D_opt"):
            errors = []
            for param, states in result["optimizer_state"][key].items():
                for name, value in states.items():
                    errors.append(relative_error(value, oracle[f"it1/{key}/{param}/{name}"]))
                assert int(oracle[f"it1/{key}/{param}/step"]) == \
                    result["optimizer_state"]["step"][key]
            opt[key] = max(errors)
        out["optimizer_state"] = opt
    return out


def _print_case(name, family, metrics):
    print(f"\n{name}, {family} optimizers")
    print(f"{'it':>3} {'d_loss':>9} {'reg':>9} {'g_loss':>9} | "
          + " | ".join(f"{m + ' err':>9} {'1 - cos':>8} {'size':>5}" for m in MODELS))
    for t, row in sorted((k, v) for k, v in metrics.items() if isinstance(k, int)):
        losses_ = " ".join(f"{row['losses'][k]:9.2e}" for k in ("d_loss", "reg", "g_loss"))
        models = " | ".join(
            f"{row['models'][m]['error']:9.2e} {1 - row['models'][m]['cosine']:8.1e} "
            f"{row['models'][m]['ratio']:5.3f}" if "models" in row else f"{'':>25}"
            for m in MODELS)
        print(f"{t:>3} {losses_} | {models}")
    first = metrics[min(t for t in metrics if isinstance(t, int) and "models" in metrics[t])]
    print("largest error at it 1 in: " + ", ".join(
        f"{m} {first['models'][m]['worst']}" for m in MODELS))
    if "optimizer_state" in metrics:
        print("optimizer state after it 1, max relative error: "
              + ", ".join(f"{k} {v:.2e}" for k, v in metrics["optimizer_state"].items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=os.environ.get(
        "TF_CONVGAN_GAN_STABILITY_REFERENCE", DEFAULT_REFERENCE))
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--families", nargs="+", default=["torch", "keras"],
                        choices=["torch", "keras"])
    args = parser.parse_args(argv)
    paths = [os.path.join(args.reference, f"train_steps_{c}.npz") for c in CASES]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        sys.exit(f"error: oracle file(s) not found: {missing} (--reference)")
    print("err: relative errors; losses |ours - oracle| / |oracle|, weights the max over a "
          "model's tensors of max|ours - oracle| / max|oracle|;\n1 - cos, size: 1 - cosine and "
          "norm ratio of our and the oracle's weight change since initialisation"
          + ("; step compiled with XLA" if args.jit_compile else ""))
    for case, path in zip(CASES, paths):
        for family in args.families:
            keras.utils.clear_session()
            metrics = compare(replay(path, family, args.iterations, args.jit_compile))
            _print_case(case, family, metrics)


if __name__ == "__main__":
    main()
