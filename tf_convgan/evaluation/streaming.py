"""Feature statistics gathered batch by batch, in memory that does not grow with the number of
images.

* `GaussianAccumulator`: FID's mean and covariance from running float64 sums (of x - c and of
  the outer products (x - c)(x - c)^T, c the first batch's mean, which keeps the cancellation in
  sum - n mean mean^T small); equal to numpy's mean / np.cov(rowvar=False) to ~1e-12 relative.
* `InceptionScoreAccumulator`: the Inception Score's per-split sums (splits as np.array_split of
  the N images, fixed up front), equal to metrics.inception_score of all the logits.
* `FeatureSummary`: what the metrics need of a set of N images: the Gaussian statistics of all
  N, the IS sums when logits come, and the first min(N, max_rows) feature rows, which KID and
  precision/recall use (the rows rule: they see the first `max_rows` images of the stream).
* `feature_rows_bytes` / `available_memory_bytes`: what keeping rows costs and what there is.
"""
import numpy as np

FEATURE_ROW_BYTES = 4  # float32 rows kept
# KID and precision/recall cast the kept rows of both sets to float64 (8 bytes) beside the float32
# rows (4 bytes): per row of a set of D features, (4 + 8) D bytes, for both sets.
_BYTES_PER_KEPT_VALUE = 2 * (4 + 8)


class GaussianAccumulator:
    """Mean and unbiased covariance of rows added in batches, in float64."""

    def __init__(self, dim):
        self.dim = int(dim)
        self.count = 0
        self.shift = None
        self.sum = np.zeros(self.dim, np.float64)
        self.outer = np.zeros((self.dim, self.dim), np.float64)

    def add(self, rows):
        rows = np.asarray(rows, np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must be [n, {self.dim}], got shape {rows.shape}")
        if not len(rows):
            return
        if self.shift is None:
            self.shift = rows.mean(axis=0)
        centred = rows - self.shift
        self.sum += centred.sum(axis=0)
        self.outer += centred.T @ centred
        self.count += len(rows)

    def statistics(self):
        """(mu [D], sigma [D, D]): the mean, and the covariance with the 1 / (N - 1) of np.cov."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 rows, got {self.count}")
        mean = self.sum / self.count
        sigma = (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return self.shift + mean, (sigma + sigma.T) / 2.0


class InceptionScoreAccumulator:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split, from logits added in order.

    The splits are those of np.array_split over the `num` images. Per split it keeps
    sum_x p(y|x) and sum_x sum_y p log p; since E_x sum_y p(y|x) log p(y) = sum_y p(y) log p(y),
    KL's mean is the second sum / n - sum_y p(y) log p(y)."""

    def __init__(self, num, num_splits):
        base, extra = divmod(int(num), int(num_splits))  # np.array_split's sizes
        self.sizes = np.array([base + 1] * extra + [base] * (num_splits - extra), np.int64)
        self.ends = np.cumsum(self.sizes)
        self.num = num
        self.done = 0
        self.sums = [None] * num_splits
        self.negentropy = np.zeros(num_splits)

    def add(self, logits):
        import scipy.special

        log_p = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=1)
        start = self.done
        for split, (end, size) in enumerate(zip(self.ends, self.sizes)):
            lo, hi = max(end - size, start), min(end, start + len(log_p))
            if lo >= hi:
                continue
            part = log_p[lo - start:hi - start]
            p = np.exp(part)
            total = p.sum(axis=0)
            self.sums[split] = total if self.sums[split] is None else self.sums[split] + total
            self.negentropy[split] += (p * part).sum()
        self.done += len(log_p)

    def score(self):
        if self.done != self.num:
            raise ValueError(f"the Inception Score got {self.done} images of {self.num}")
        scores = []
        for total, negentropy, n in zip(self.sums, self.negentropy, self.sizes):
            p_y = total / n
            scores.append(np.exp(negentropy / n - (p_y * np.log(p_y)).sum()))
        return float(np.mean(scores)), float(np.std(scores))


class FeatureSummary:
    """A set of `num` images as the metrics need it, filled by `add(batch)` in order.

    batch: [b, feature_dim (+ logit columns)] float rows; the first `feature_dim` columns are
    the features, the rest (with `is_splits`) logits. Keeps: the Gaussian statistics of all the
    features (FID), the first min(num, max_rows) feature rows as float32 (`rows`: KID,
    precision/recall), and with `is_splits` the Inception Score's sums."""

    def __init__(self, num, *, feature_dim, max_rows, is_splits=None):
        if max_rows < 2:
            raise ValueError(f"max_rows must be >= 2, got {max_rows}")
        self.num, self.feature_dim = int(num), int(feature_dim)
        self.gaussian = GaussianAccumulator(feature_dim)
        self.rows = np.empty((min(self.num, int(max_rows)), self.feature_dim), np.float32)
        self.inception_score = (InceptionScoreAccumulator(self.num, is_splits)
                                if is_splits else None)
        self.count = 0
        self._stats = None

    @classmethod
    def of_array(cls, features, *, max_rows=None):
        features = np.asarray(features)
        summary = cls(len(features), feature_dim=features.shape[1],
                      max_rows=max(2, max_rows or len(features)))
        summary.add(features)
        return summary

    @classmethod
    def of_statistics(cls, mu, sigma, rows, num):
        """A summary read back (the reference cache): statistics of `num` images and the first
        rows."""
        summary = cls(num, feature_dim=len(mu), max_rows=max(2, len(rows)))
        summary.rows = np.asarray(rows, np.float32)
        summary.count = int(num)
        summary._stats = (np.asarray(mu, np.float64), np.asarray(sigma, np.float64))
        return summary

    def add(self, batch):
        batch = np.asarray(batch)
        features = batch[:, :self.feature_dim]
        self.gaussian.add(features)
        keep = max(0, min(len(batch), len(self.rows) - self.count))
        self.rows[self.count:self.count + keep] = features[:keep]
        if self.inception_score is not None:
            self.inception_score.add(batch[:, self.feature_dim:])
        self.count += len(batch)

    def statistics(self):
        """(mu, sigma) of all the features, float64."""
        if self._stats is None:
            self._stats = self.gaussian.statistics()
        return self._stats


def feature_rows_bytes(rows, feature_dim):
    """Bytes that KID and precision/recall need for `rows` kept rows per set (both sets: the
    float32 rows and their float64 copies)."""
    return int(rows) * int(feature_dim) * _BYTES_PER_KEPT_VALUE


def available_memory_bytes():
    """MemAvailable of /proc/meminfo (Linux), else free physical pages; None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
