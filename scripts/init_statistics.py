"""Step-0 statistics of the 32x32 CIFAR-10 ResNet (GAN_stability's `resnet`, nf 64, nf_max 512 / 1024,
z 256) under init='pytorch' and init='keras': std of G(z) and of D(x) for x ~ U(-1, 1), mean and
spread over weight seeds; and the mean pairwise cosine of 1000 class embeddings of size 256 drawn
as now (N(0, 1)) and as before (mean 1, std 0.05).

    python scripts/init_statistics.py [--seeds 8]
    python scripts/init_statistics.py --reference_src /path/to/GAN_stability   # + the PyTorch code

With --reference_src (a checkout of LMescheder/GAN_stability; needs torch, which is not a project
dependency) the same statistics of the reference code's own modules are printed alongside.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tf_convgan import networks as N  # noqa: E402

G_KW = dict(resolution=32, z_dim=256, nf=64, nf_max=512, embed_size=256)
D_KW = dict(resolution=32, nf=64, nf_max=1024)
BATCH = 16


def _inputs():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH, 256)).astype(np.float32),
            rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype(np.float32))


def ours(init, seeds):
    z, x = _inputs()
    g_std, d_std = [], []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        g = N.resnet_generator(init=init, **G_KW)
        d = N.resnet_discriminator(init=init, **D_KW)
        g_std.append(np.std(g(z, training=False).numpy()))
        d_std.append(np.std(d(x, training=False).numpy()))
    return g_std, d_std


def reference(src, seeds):
    import torch
    sys.path.insert(0, src)
    from gan_training.models import resnet
    z, x = _inputs()
    z, x = torch.from_numpy(z), torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy())
    y = torch.zeros(BATCH, dtype=torch.int64)
    g_std, d_std = [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        g = resnet.Generator(z_dim=256, nlabels=1, size=32, embed_size=256, nfilter=64,
                             nfilter_max=512)
        d = resnet.Discriminator("resnet", nlabels=1, size=32, nfilter=64, nfilter_max=1024)
        with torch.no_grad():
            g_std.append(g(z, y).std(unbiased=False).item())
            d_std.append(d(x, y).std(unbiased=False).item())
    return g_std, d_std


def _mean_cosine(e):
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    cos = (e @ e.T)[np.triu_indices(len(e), k=1)]
    return cos.mean(), np.abs(cos).mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--reference_src", help="a GAN_stability checkout (needs torch)")
    args = parser.parse_args()
    rows = [(f"init='{init}'", *ours(init, args.seeds)) for init in ("pytorch", "keras")]
    if args.reference_src:
        rows.append(("GAN_stability (PyTorch)", *reference(args.reference_src, args.seeds)))
    print(f"32x32 ResNet at step 0, {args.seeds} weight seeds, batch {BATCH}: mean (std over seeds)")
    for name, g_std, d_std in rows:
        print(f"  {name:<24} std G(z) {np.mean(g_std):.4f} ({np.std(g_std):.4f})   "
              f"std D(x) {np.mean(d_std):.5f} ({np.std(d_std):.5f})")
    keras.utils.set_random_seed(0)
    g = N.build(N.resnet_generator(resolution=32, nf=1, nf_max=1, z_dim=4, num_classes=1000,
                                   embed_size=256, init="pytorch"))
    now = _mean_cosine(g.embedding.embeddings.numpy())
    before = _mean_cosine(np.random.default_rng(0).normal(1.0, 0.05, (1000, 256)))
    print("1000 class embeddings (256-d), pairwise cosine: mean, mean |cos|")
    print(f"  N(0, 1) (now)              {now[0]:.4f}, {now[1]:.4f}")
    print(f"  mean 1, std 0.05 (before)  {before[0]:.4f}, {before[1]:.4f}")


if __name__ == "__main__":
    main()
