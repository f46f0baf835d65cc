"""FID/KID/IS/precision-recall.

  inception   the FID Inception network (Keras port of the 2015 graph) and its weights
  metrics     FID, KID, IS, precision/recall of features
  streaming   FeatureSummary: FID statistics and IS sums gathered batch by batch, and the first
              max_rows feature rows (KID, precision/recall): memory that does not grow with N
  features    images -> uint8 -> TF1 bilinear resize -> Inception inputs; FeatureExtractor
              (features in batches under a strategy); generator_fn
  reference   the reference-feature cache (reference_summary, reference_features) and
              compute_metrics
  hook        the in-training evaluator (gin `fid_evaluator`), a training hook called with the
              loop's context, and its bookkeeping: metrics.csv, fid.png, best/

The command line is tf_convgan.cli.evaluate (`python -m tf_convgan.evaluate`).
"""
from tf_convgan.evaluation.features import (RESIZE_CONVENTION, FeatureExtractor, generator_fn,
                                            image_folder_resolution, inception_inputs)
from tf_convgan.evaluation.reference import compute_metrics, reference_features, reference_summary
from tf_convgan.evaluation.streaming import FeatureSummary
from tf_convgan.evaluation.hook import EvaluationHook, FIDEvaluator, read_best, read_metrics_csv

__all__ = ["RESIZE_CONVENTION", "FeatureExtractor", "generator_fn", "image_folder_resolution",
           "inception_inputs", "compute_metrics", "reference_features", "reference_summary",
           "FeatureSummary", "EvaluationHook",
           "FIDEvaluator", "read_best", "read_metrics_csv"]
