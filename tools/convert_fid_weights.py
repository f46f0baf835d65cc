"""Convert the FID Inception weights into tf_convgan's .npz format (see ../shared/README.md).

Sources (download them on a machine with internet):
  * the PyTorch port used by pytorch-fid:
      https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    (read without PyTorch by tf_convgan.gan_stability.torch_pickle, which refuses anything but
    tensors and containers; the file's full sha256 must be PTH_SHA256, whose prefix "6726825d"
    is in the name)
        python tools/convert_fid_weights.py --pth pt_inception-2015-12-05-6726825d.pth --out W.npz
  * the official 2015 TensorFlow graph (what TTUR uses):
      http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz
        python tools/convert_fid_weights.py --graph inception-2015-12-05.tgz --out W.npz
    (the .tgz or the extracted classify_image_graph_def.pb; the output also holds the graph's
    logits layer, softmax/weights and softmax/biases, which the Inception Score needs). The
    library does this conversion itself on first use (tf_convgan.evaluation.weights, which holds
    the conversion code this script calls).

The output is verified: the content digest of its pool_3 arrays (sha256 over the sorted arrays'
names, dtypes, shapes and bytes; the .npz file's own sha256 varies with zip timestamps; the logits
layer has no pinned digest) is printed and compared with
KNOWN_CONTENT_SHA256, the digest of the weights this project is tested with; with
--reference_io the converted network's pool_3 features are compared with the reference features.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The conversion lives in the library (the first-use download converts the graph too); these names
# are this script's API as well.
from tf_convgan.evaluation.weights import (  # noqa: E402,F401
    KNOWN_CONTENT_SHA256, PTH_SHA256, build_meta, content_sha256, conv_meta, file_sha256,
    from_graph_def, from_state_dict, has_logits, load_graph_def, pool3_content_sha256, read_npz,
    save_npz, torch_names)


def load_pth(path, expected_sha256=PTH_SHA256):
    """pytorch-fid's state dict as {name: numpy array}: the file's sha256 is checked first, then
    it is read with tf_convgan.gan_stability.torch_pickle (no PyTorch; no pickled code
    runs)."""
    digest = file_sha256(path)
    if digest != expected_sha256:
        raise ValueError(f"{path}: sha256 {digest} is not that of the official "
                         f"pt_inception-2015-12-05-6726825d.pth ({expected_sha256})")
    from tf_convgan.gan_stability import torch_pickle

    state = torch_pickle.load(path)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state


# ---------------------------------------------------------------------------------- output

def verify(path, reference_io=None):
    """The pool_3 arrays' content digest vs KNOWN_CONTENT_SHA256 (the logits layer, when there,
    has no pinned digest); pool_3 vs the reference io file when given."""
    arrays, _ = read_npz(path)
    digest = pool3_content_sha256(arrays)
    ok = digest == KNOWN_CONTENT_SHA256
    logits = "with" if has_logits(arrays) else "without"
    print(f"{path}: pool_3 content sha256 {digest} "
          f"({'matches' if ok else 'DIFFERS from'} the tested weights {KNOWN_CONTENT_SHA256}); "
          f"{logits} the logits layer")
    if reference_io:
        from tf_convgan.evaluation.inception import fid_inception

        ref = np.load(reference_io)
        features = fid_inception(path)(np.transpose(ref["x"], (0, 2, 3, 1))).numpy()
        error = float(np.abs(features - ref["pool3"]).max())
        print(f"pool_3 vs {reference_io}: max abs error {error:.2e}")
        ok = ok and error < 1e-4
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pth", help="pt_inception-2015-12-05-6726825d.pth")
    source.add_argument("--graph", help="inception-2015-12-05.tgz or classify_image_graph_def.pb")
    source.add_argument("--verify", help="only verify an existing .npz")
    parser.add_argument("--out", help="output .npz")
    parser.add_argument("--reference_io", help="fid_inception_reference_io_seed0.npz to check "
                        "pool_3 against")
    args = parser.parse_args(argv)
    if args.verify:
        return 0 if verify(args.verify, args.reference_io) else 1
    if not args.out:
        parser.error("--out is required")
    try:
        if args.pth:
            arrays, meta = from_state_dict(load_pth(args.pth))
        else:
            arrays, meta = from_graph_def(load_graph_def(args.graph))
    except (ValueError, FileNotFoundError) as e:  # bad input: one line, status 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_npz(args.out, arrays, meta)
    return 0 if verify(args.out, args.reference_io) else 1


if __name__ == "__main__":
    sys.exit(main())
