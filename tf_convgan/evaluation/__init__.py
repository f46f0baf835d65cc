"""FID/KID/IS/precision-recall: the Inception network, the metrics, feature extraction and the in-training evaluator."""
