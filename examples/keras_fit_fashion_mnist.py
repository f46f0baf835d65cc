"""Train a GAN on Fashion-MNIST the Keras way: your own generator and discriminator, R1 in one
argument, `compile` and `fit` with Keras callbacks, then a grid of samples.

    python examples/keras_fit_fashion_mnist.py --steps 2000 --out samples.png

The data comes through the library's readers (tf_convgan.data.fashion_mnist_source: the IDX
files of ../shared/data/fashion_mnist, nothing downloaded). Images are padded to 32x32 gray, in
[-1, 1]. For gin configs, checkpoints, FID and the run directory use `python run.py` instead.
"""
import argparse
import functools
import os
import sys

import keras

from tf_convgan.data import fashion_mnist_source
from tf_convgan.gan.keras_networks import gan_from_keras
from tf_convgan.objectives import penalties
from tf_convgan.run_dir import images as images_lib
from tf_convgan.training.hooks import sample_grid

Z_DIM = 64


def make_generator():
    """z [N, 64] -> images [N, 32, 32, 1] in [-1, 1] (DCGAN-style, as keras-io's examples)."""
    return keras.Sequential([
        keras.Input((Z_DIM,)),
        keras.layers.Dense(4 * 4 * 64), keras.layers.LeakyReLU(0.2),
        keras.layers.Reshape((4, 4, 64)),
        keras.layers.Conv2DTranspose(64, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2DTranspose(32, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2DTranspose(16, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(1, 3, padding="same", activation="tanh"),
    ], name="generator")


def make_discriminator():
    """images [N, 32, 32, 1] -> one logit per example [N, 1]."""
    return keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Conv2D(32, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(64, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Conv2D(128, 4, strides=2, padding="same"), keras.layers.LeakyReLU(0.2),
        keras.layers.Flatten(), keras.layers.Dense(1),
    ], name="discriminator")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=1.0, help="R1's weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="samples.png", help="the sample grid (PNG)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        parser.error("--steps and --batch_size must be positive")
    if os.path.exists(args.out):  # never overwrite what the user has
        parser.error(f"--out {args.out} exists; choose another path")

    keras.utils.set_random_seed(args.seed)
    source = fashion_mnist_source(channels=1)
    dataset = source.dataset(seed=args.seed).batch(args.batch_size, drop_remainder=True)

    gan = gan_from_keras(make_generator(), make_discriminator(), seed=args.seed,
                         penalty=functools.partial(penalties.r1, gamma=args.gamma))
    gan.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99),
                d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99))
    gan.fit(dataset, epochs=1, steps_per_epoch=args.steps,
            callbacks=[keras.callbacks.TerminateOnNaN()],
            verbose=1 if sys.stdout.isatty() else 2)

    grid = sample_grid(gan.generator_ema, num_samples=64, seed=args.seed)
    images_lib.write_png(args.out, grid)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
