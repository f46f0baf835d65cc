"""Small networks and GANs shared by the tests; a noise source of known numbers; running run.py
and train() on the tiny config; fresh ram:// paths."""
import collections
import contextlib
import io
import os
import shutil
import subprocess
import sys
import uuid

import gin
import keras
import numpy as np
import tensorflow as tf

from tf_convgan.objectives import losses
from tf_convgan.gan import optimizers
from tf_convgan.gan.model import GAN
from tf_convgan.networks import (build, dcgan_discriminator, dcgan_generator,
                                 resnet_cifar_discriminator, resnet_cifar_generator,
                                 resnet_discriminator, resnet_generator,
                                 sndcgan_discriminator, sndcgan_generator)

# Tiny versions of every network family: (generator factory, discriminator factory).
TINY_NETWORKS = {
    "resnet": (lambda c: resnet_generator(resolution=32, nf=4, nf_max=8, z_dim=8, embed_size=4,
                                          num_classes=c),
               lambda c: resnet_discriminator(resolution=32, nf=4, nf_max=8, num_classes=c)),
    "dcgan": (lambda c: dcgan_generator(resolution=32, z_dim=8, ch=16, num_classes=c),
              lambda c: dcgan_discriminator(resolution=32, num_classes=c)),
    "sndcgan": (lambda c: sndcgan_generator(resolution=32, z_dim=8, ch=16, num_classes=c),
                lambda c: sndcgan_discriminator(resolution=32, num_classes=c)),
    "resnet_cifar": (lambda c: resnet_cifar_generator(resolution=32, z_dim=8, ch=8, num_classes=c),
                     lambda c: resnet_cifar_discriminator(resolution=32, ch=8, num_classes=c)),
}


def make_gan(network="resnet", *, num_classes=1, strategy=None, seed=1, optimizer=None,
             dtype_policy=None, **gan_kwargs):
    """A GAN of tiny networks with weights that depend on `seed` (and the dtype) only. `network`:
    a name of TINY_NETWORKS, or a pair (generator factory, discriminator factory) of num_classes.
    `dtype_policy`: the Keras dtype policy the networks are built under ('float64': float64
    weights and activations; the discriminators' logits stay float32), or None: the global one."""
    strategy = strategy or tf.distribute.get_strategy()
    make_g, make_d = TINY_NETWORKS[network] if isinstance(network, str) else network
    with dtype_policy_scope(dtype_policy), strategy.scope():
        keras.utils.set_random_seed(seed)
        generator, discriminator = build(make_g(num_classes)), build(make_d(num_classes))
        generator_ema = build(make_g(num_classes))
        optimizer = optimizer or (lambda: optimizers.adam(learning_rate=1e-3))
        gan_kwargs.setdefault("loss", losses.non_saturating())
        return GAN(generator, discriminator, generator_ema, g_optimizer=optimizer(),
                   d_optimizer=optimizer(), **gan_kwargs)


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Layers created inside are built under Keras' dtype policy `name` (None: no change)."""
    previous = keras.config.dtype_policy()
    if name is not None:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def random_batch(batch_size, d_steps=1, num_classes=1, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, size=(batch_size, d_steps, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=(batch_size, d_steps)).astype(np.int32)
    return real, labels


def run_steps(gan, batches, *, strategy=None, jit_compile=False):
    """Runs one train_step per batch through strategy.run, as the trainer does."""
    strategy = strategy or tf.distribute.get_strategy()
    step = tf.function(gan.train_step, jit_compile=jit_compile)

    @tf.function
    def distributed(batch):
        logs = strategy.run(step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in logs.items()}

    logs = None
    for batch in batches:
        dataset = tf.data.Dataset.from_tensors(batch)
        dist_batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
        logs = distributed(dist_batch)
    return {k: float(v) for k, v in logs.items()}


def run_eager_steps(gan, batches):
    """Runs one train_step per batch eagerly (no tracing: the cheap uncompiled reference)."""
    logs = None
    for batch in batches:
        logs = gan.train_step(tuple(tf.constant(x) for x in batch))
    return {k: float(v) for k, v in logs.items()}


def weights(gan):
    return [w.numpy().copy() for w in
            gan.generator.weights + gan.discriminator.weights + gan.generator_ema.weights]


def assert_close_per_tensor(got, want, rtol, atol=0.0, names=None):
    """Per tensor (NumPy arrays), max |got - want| <= rtol * max |want| + atol; got finite."""
    for i, (a, b) in enumerate(zip(got, want)):
        name = names[i] if names else i
        assert np.isfinite(a).all(), name
        error, scale = np.abs(a - b).max(), np.abs(b).max()
        assert error <= rtol * scale + atol, (
            f"{name}: max abs error {error:.3g} > {rtol} * {scale:.3g} + {atol}")


class PrescribedNoise:
    """A noise source (tf_convgan.noise) whose numbers the test knows in advance: the i-th draw of a
    kind ("normal", "uniform") and shape is `value(kind, shape, i)`, NumPy's numbers for that key,
    whatever seed the step asks with. `calls` counts the draws per (kind, shape). For eager steps
    (a traced step draws once, while tracing)."""

    _KINDS = {"normal": 0, "uniform": 1}

    def __init__(self, seed=0):
        self.seed = seed
        self.calls = collections.Counter()

    def value(self, kind, shape, index=0):
        rng = np.random.default_rng([self.seed, self._KINDS[kind], index, *shape])
        draw = rng.standard_normal(shape) if kind == "normal" else rng.uniform(size=shape)
        return draw.astype(np.float32)

    def _draw(self, kind, shape, dtype):
        key = (kind, tuple(shape))
        index = self.calls[key]
        self.calls[key] += 1
        return tf.constant(self.value(kind, list(shape), index), dtype)

    def normal(self, per_replica_shape, seed, dtype=tf.float32):
        return self._draw("normal", per_replica_shape, dtype)

    def uniform(self, per_replica_shape, seed, dtype=tf.float32):
        return self._draw("uniform", per_replica_shape, dtype)


def two_cpu_strategy():
    """A MirroredStrategy over the two logical CPUs, with collective keys of its own.

    Every MirroredStrategy numbers its collective group and instance keys from the same base, and
    the runtime remembers collective instances by key for the whole process: a second strategy over
    the same devices reuses the first one's keys, and its all-reduces are matched against the
    remembered ones ("Shape mismatch in the collective instance 100 ..."). TF's own tests move the
    base for every strategy (strategy_combinations._mirrored_strategy_with_collective_key_base);
    so do ours: every test creates its MirroredStrategy here."""
    tf.distribute.MirroredStrategy._collective_key_base += 100000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


# -- run.py on tests/tiny.gin --------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(path):
    """The module of a script of the checkout (`scripts/...py`, `benchmarks/...py`; not a
    package), imported from its file under the name of the file."""
    import importlib.util
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
TINY_GIN = os.path.join(ROOT, "tests", "tiny.gin")


def run_py(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def tiny_args(model_dir, npy, *params):
    args = ["--gin_file", TINY_GIN, "--model_dir", str(model_dir),
            "--gin_param", f"npy_source.path = '{npy}'"]
    for p in params:
        args += ["--gin_param", p]
    return args


def checkpoint_values(model_dir):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in name and "save_counter" not in name}


def run_py_in_process(*args):
    """run.py's main in this process: (exit status, stdout, stderr). For run.py's messages and
    exit statuses where no separate process is needed (no TensorFlow start-up per call)."""
    import run  # the project root is on sys.path (pyproject: pythonpath)
    out, err = io.StringIO(), io.StringIO()
    gin.clear_config()
    try:
        run.FLAGS(["run.py", *args])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run.main(["run.py"])
                status = 0
            except SystemExit as e:
                status = e.code
            except KeyboardInterrupt:
                status = "KeyboardInterrupt"
    finally:
        run.FLAGS.unparse_flags()
        gin.clear_config()
    return status, out.getvalue(), err.getvalue()


def train_in_process(model_dir, npy, *params):
    """train() on tests/tiny.gin with `params`; returns the GAN."""
    from tf_convgan.cli import config
    from tf_convgan.training.loop import train
    gin.clear_config()
    config.parse([TINY_GIN], [f"npy_source.path = '{npy}'", *params])
    try:
        return train(model_dir=str(model_dir))
    finally:
        gin.clear_config()


def tree_bytes(directory):
    """{relative path: bytes} of every file under `directory` (symbolic links as their target
    name): equal before and after means nothing in it changed."""
    found = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, directory)
            if os.path.islink(path):
                found[key] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[key] = f.read()
            else:
                found[key] = "dir"
    return found


def copy_run(run, destination):
    """A copy of a run directory to change in a test."""
    shutil.copytree(run, destination, symlinks=True)
    return destination


def assert_two_replicas_equal_one_device(make_gan_on, batches):
    """`make_gan_on(strategy)` (None: one device) trained on `batches` on one device and on a
    MirroredStrategy over the two logical CPUs: every weight to 1e-5, every logged value to 1e-4
    relative (the same names logged). Returns the one device's logs."""
    single = make_gan_on(None)
    single_logs = run_steps(single, batches)
    strategy = two_cpu_strategy()
    mirrored = make_gan_on(strategy)
    mirrored_logs = run_steps(mirrored, batches, strategy=strategy)
    for a, b in zip(weights(single), weights(mirrored)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert set(single_logs) == set(mirrored_logs)
    for name in single_logs:
        np.testing.assert_allclose(single_logs[name], mirrored_logs[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    return single_logs


def check_file_functions_on_url(directory):
    """The library's file functions on a URL directory (an object store or ram://): a write
    replaces, an aborted atomic write leaves the old content, matching and a missing file.
    Returns the path written ('<directory>/sub/a.txt', holding "two")."""
    import pytest
    from tf_convgan import run_dir
    from tf_convgan.run_dir import files
    path = f"{directory}/sub/a.txt"
    run_dir.write_text(path, "one")
    run_dir.write_text(path, "two")
    assert run_dir.read_text(path) == "two"
    with pytest.raises(RuntimeError):
        with run_dir.atomic_file(path, "w") as f:
            f.write("three")
            raise RuntimeError
    assert run_dir.read_text(path) == "two"
    assert files.matching(f"{directory}/sub", "*.txt") == [path]
    assert files.matching(f"{directory}/missing", "*") == []
    with pytest.raises(FileNotFoundError):
        run_dir.read_text(f"{directory}/missing.txt")
    return path


def ram_url(name):
    """A fresh path on TensorFlow's in-memory filesystem (`ram://<name>_<8 hex digits>`), which
    stands in for an object store such as gs:// (no atomic rename, no file locks). With the
    fixture `no_local_disk_for_ram` (tests/conftest.py) a local file function given it raises."""
    return f"ram://{name}_{uuid.uuid4().hex[:8]}"
