"""`python -m tf_convgan.evaluate` without the Inception network, for tests that start it as a
process: the features are a fixed random projection of 8x8 average-pooled pixels to 2048
dimensions, read from the `--weights` file (so the reference cache is keyed by that file as by
real weights). Everything else is the command's own: flags, the generator loaded from a run
directory, the data sources, the FeatureExtractor's batching and streaming, the reference cache,
the metrics and --output_json.

    python tests/projection_features.py --weights W.npz --model_dir RUN ...   (evaluate's flags)
"""
import os
import sys

import numpy as np

POOL = 37  # 299 x 299 Inception inputs -> 8 x 8
INPUT_DIM = 8 * 8 * 3


def write_weights(path, seed=0):
    """The projection [192, 2048] as an .npz file (a stand-in for the weights file)."""
    from tf_convgan.evaluation import inception
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(INPUT_DIM, inception.FEATURE_DIM)) / np.sqrt(INPUT_DIM)
    np.savez(path, projection=projection.astype(np.float32))
    return str(path)


def projection_extractor(*, weights_path, batch_size):
    """A tf_convgan FeatureExtractor whose network is the projection of `weights_path`."""
    import tensorflow as tf
    from tf_convgan.evaluation import features

    class ProjectionFeatureExtractor(features.FeatureExtractor):
        def __init__(self):  # FeatureExtractor's, without building the Inception network
            self.strategy = tf.distribute.get_strategy()
            self.batch_size, self.jit_compile, self.verbose, self.logits = (
                batch_size, False, True, False)
            self.output_dim = features.inception.FEATURE_DIM
            with np.load(weights_path) as f:
                projection = tf.constant(f["projection"])

            def model(images, training=False):  # images: [B, 299, 299, 3] in [-1, 1]
                pooled = tf.nn.avg_pool2d(images, POOL, POOL, "VALID")
                return tf.matmul(tf.reshape(pooled, [-1, INPUT_DIM]), projection)

            self.model = model
            self._steps = {}

    return ProjectionFeatureExtractor()


def use_projection_features(evaluate_module):
    """Makes the evaluate command build projection extractors (from its --weights)."""
    evaluate_module._extractor = lambda f: projection_extractor(weights_path=f.weights,
                                                                batch_size=f.batch_size)


def main(argv):
    from tf_convgan.cli import evaluate
    use_projection_features(evaluate)
    return evaluate.main(argv)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main(sys.argv))
