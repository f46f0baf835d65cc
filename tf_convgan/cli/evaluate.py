"""FID / KID (and IS) of a training run, a SavedModel or an image folder against a dataset.

    python -m tf_convgan.evaluate --model_dir runs/quickstart [--checkpoint best]
    python -m tf_convgan.evaluate --saved_model export/ --dataset fashion_mnist --num_samples 10000
    python -m tf_convgan.evaluate --image_dir samples/ --dataset fashion_mnist --split test

The reference is a dataset (`--dataset fashion_mnist` or a tensorflow-datasets name, `--split`)
or an image folder (`--reference_dir`), at the evaluated images' resolution unless `--resolution`
says otherwise; its features are cached (see tf_convgan.evaluation.reference). Prints the
metrics as one JSON line; `--inception_score` adds the Inception Score of the evaluated images
(the 2015 graph's logits: weights converted from the official GraphDef, downloaded on first use) (also written to `--output_json`). Bad input prints one line naming the
flag and exits with status 2.
"""
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from tf_convgan import data as data_lib  # noqa: E402
from tf_convgan import run_dir  # noqa: E402
from tf_convgan.evaluation import features, inception, reference, streaming  # noqa: E402
from tf_convgan.errors import FlagError, blame, command_status, parse_flags  # noqa: E402
from tf_convgan.run_dir import generators  # noqa: E402

FLAGS = flags.FlagValues()  # own flag set: importable beside run.py's flags
flags.DEFINE_string("model_dir", None, "A training run's directory (EMA generator).",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint", "latest",
                    "With --model_dir: 'latest' (checkpoints/), 'best' (best/, best FID) or a "
                    "checkpoint's name in checkpoints/ (ckpt-2500).", flag_values=FLAGS)
flags.register_validator(
    "checkpoint", lambda value: value in ("latest", "best") or re.fullmatch(r"ckpt-\d+", value),
    "should be latest, best or a checkpoint's name such as ckpt-2500", flag_values=FLAGS)
flags.DEFINE_string("saved_model", None, "A generator SavedModel (serving_default: z -> images).",
                    flag_values=FLAGS)
flags.DEFINE_string("image_dir", None, "A folder of images (recursive).", flag_values=FLAGS)
flags.DEFINE_string("dataset", "fashion_mnist",
                    "Reference dataset: fashion_mnist or a tensorflow-datasets name.",
                    flag_values=FLAGS)
flags.DEFINE_string("split", "train", "Split of --dataset.", flag_values=FLAGS)
flags.DEFINE_string("reference_dir", None, "A folder of reference images instead of --dataset.",
                    flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir / Fashion-MNIST IDX dir.",
                    flag_values=FLAGS)
flags.DEFINE_integer("resolution", None, "Reference resolution (default: the evaluated images').",
                     flag_values=FLAGS)
flags.DEFINE_string("fit", None, "How reference images fit the resolution (data.FIT_MODES; "
                    "default: the source's, 'pad' for Fashion-MNIST).", flag_values=FLAGS)
flags.DEFINE_integer("num_samples", 10000, "Generated images (image folders: at most this many).",
                     flag_values=FLAGS)
flags.DEFINE_integer("num_reference", None, "Reference images (default: --num_samples).",
                     flag_values=FLAGS)
flags.DEFINE_integer("num_classes", None, "Classes of a conditional SavedModel.",
                     flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 50, "Global batch of the Inception network.", flag_values=FLAGS)
flags.DEFINE_integer("kid_subsets", 100, "KID subsets.", flag_values=FLAGS)
flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size.", flag_values=FLAGS)
flags.DEFINE_boolean("precision_recall", False, "Also precision and recall (k=3).",
                     flag_values=FLAGS)
flags.DEFINE_integer("max_feature_rows", 50000,
                     "Feature rows kept per set for KID and precision/recall: they use the first "
                     "min(N, this) images of each set; FID uses all of them (streamed). Refused "
                     "when the rows kept would not fit the available memory.", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Seed of z, of the reference subset and of the KID subsets.",
                     lower_bound=-2 ** 63, upper_bound=2 ** 63 - 1, flag_values=FLAGS)
flags.DEFINE_string("cache_dir", None, "Reference feature cache (default $TF_CONVGAN_FID_CACHE or "
                    "~/.cache/tf_convgan/fid_stats).", flag_values=FLAGS)
flags.DEFINE_string("weights", None, "FID Inception weights .npz (default "
                    "$TF_CONVGAN_FID_WEIGHTS or ../shared/data/fid_inception/...).",
                    flag_values=FLAGS)
flags.DEFINE_boolean("inception_score", False,
                     "Also the Inception Score of the evaluated images (logits of the 2015 graph "
                     "without the softmax bias, as the original IS code; needs weights converted "
                     "from the official GraphDef, downloaded and converted on first use).",
                     flag_values=FLAGS)
flags.DEFINE_integer("is_splits", 10, "Splits of the Inception Score (mean and std over them).",
                     flag_values=FLAGS)
flags.DEFINE_boolean("jit_compile", False, "Compile feature extraction with XLA.",
                     flag_values=FLAGS)
flags.DEFINE_string("output_json", None, "Also write the metrics to this JSON file.",
                    flag_values=FLAGS)


def _check_flags(f):
    chosen = [n for n in ("model_dir", "saved_model", "image_dir") if getattr(f, n)]
    if len(chosen) != 1:
        raise FlagError("model_dir", "give exactly one of --model_dir, --saved_model, --image_dir"
                        + (f" (got {', '.join('--' + c for c in chosen)})" if chosen else ""))
    for name in ("num_samples", "batch_size", "kid_subsets", "kid_subset_size", "is_splits",
                 "max_feature_rows"):
        if getattr(f, name) < 1:
            raise FlagError(name, f"must be >= 1, got {getattr(f, name)}")
    if f.num_reference is not None and f.num_reference < 2:
        raise FlagError("num_reference", f"must be >= 2, got {f.num_reference}")
    if f.num_samples < 2:
        raise FlagError("num_samples", f"must be >= 2, got {f.num_samples}")
    if f.resolution is not None and f.resolution < 1:
        raise FlagError("resolution", f"must be a positive number of pixels, got {f.resolution}")
    if f.fit is not None and f.fit not in data_lib.FIT_MODES:
        raise FlagError("fit", f"must be one of {', '.join(data_lib.FIT_MODES)}, got {f.fit!r}")
    return chosen[0]


def _reference_source(f, resolution, num_reference):
    """The reference data source, its dataset and split names; checks that it has
    `num_reference` (>= 2) examples."""
    kwargs = {"resolution": resolution}
    if f.fit:
        kwargs["fit"] = f.fit
    flag = "reference_dir" if f.reference_dir else "dataset"
    with blame(flag):
        if f.reference_dir:
            source, dataset, split = data_lib.image_folder_source(
                directory=f.reference_dir, **kwargs), "folder", "all"
        elif f.dataset == "fashion_mnist":
            source, dataset, split = data_lib.fashion_mnist_source(
                split=f.split, directory=f.data_dir, **kwargs), f.dataset, f.split
        else:
            source, dataset, split = data_lib.tfds_source(
                name=f.dataset, split=f.split, data_dir=f.data_dir, **kwargs), f.dataset, f.split
    available = source.num_examples
    if available is not None and available < num_reference:
        if f.num_reference is not None:
            flag = "num_reference"
        images = f"{available} image" + ("s" if available != 1 else "")
        raise FlagError(flag, f"{source.description} has {images} but {num_reference} are "
                              f"needed (--num_reference, default --num_samples; FID needs at "
                              f"least 2)")
    return source, dataset, split


def _size(nbytes):
    return f"{nbytes / 1e9:.3g} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.3g} MB"


def _check_memory(f, num, num_reference):
    """The feature rows kept per set (min(N, --max_feature_rows)); refuses, naming the flag
    that sets them, rows whose KID / precision-recall arrays would not fit the available
    memory (FID's statistics are a fixed 2 x 2048^2 float64 whatever N)."""
    rows = min(max(num, num_reference), f.max_feature_rows)
    needed = streaming.feature_rows_bytes(rows, inception.FEATURE_DIM)
    available = streaming.available_memory_bytes()
    if available is not None and needed > available:
        flag = ("max_feature_rows" if rows == f.max_feature_rows else
                "num_samples" if num >= num_reference else "num_reference")
        raise FlagError(flag, f"{rows} feature rows per set need {_size(needed)} for KID and "
                              f"precision/recall but {_size(available)} of memory is available: "
                              f"lower --max_feature_rows (FID still uses every image)")
    return rows


_EXTRACTORS = {}  # (weights, batch_size, jit_compile, logits) -> FeatureExtractor, per process


def _extractor(f):
    key = (f.weights, f.batch_size, f.jit_compile, f.inception_score)
    if key not in _EXTRACTORS:
        with blame("weights"):
            _EXTRACTORS[key] = features.FeatureExtractor(
                weights_path=f.weights, batch_size=f.batch_size, jit_compile=f.jit_compile,
                logits=f.inception_score)
    return _EXTRACTORS[key]


def evaluate(f):
    """Runs the evaluation the flags describe; returns the metrics dict. Every input is checked
    (sources opened, image counts compared) before the Inception network runs."""
    kind = _check_flags(f)
    info = {}
    if kind == "image_dir":
        with blame("image_dir"):
            resolution, count = features.image_folder_resolution(f.image_dir)
            folder = data_lib.image_folder_source(directory=f.image_dir, resolution=resolution)
        num = min(count, f.num_samples)
        if num < 2:
            raise FlagError("image_dir", f"{f.image_dir!r} has 1 image; FID needs at least 2")
    else:
        flag = kind if kind == "saved_model" or f.checkpoint == "latest" else "checkpoint"
        with blame(flag):
            if kind == "model_dir":
                generator, path = generators.load_generator_ema(f.model_dir,
                                                                checkpoint=f.checkpoint)
                info["checkpoint"] = path
            else:
                generator = generators.SavedModelGenerator(f.saved_model,
                                                           num_classes=f.num_classes)
            resolution = generator.resolution
        num = f.num_samples
    if f.inception_score and f.is_splits > num:
        raise FlagError("is_splits", f"{f.is_splits} splits of {num} images: at most one split "
                                     f"per image")
    num_reference = f.num_reference or num
    source, dataset, split = _reference_source(f, f.resolution or resolution, num_reference)

    rows = _check_memory(f, num, num_reference)
    extractor = _extractor(f)
    sink = extractor.summary(num, max_rows=f.max_feature_rows,
                             is_splits=f.is_splits if f.inception_score else None)
    if kind == "image_dir":
        fake = extractor.features_of_source(folder, num, seed=f.seed, description=f.image_dir,
                                            sink=sink)
    else:
        fake = extractor.features_of_generator(
            features.generator_fn(generator), num=num, z_dim=generator.z_dim,
            num_classes=generator.num_classes, seed=f.seed, sink=sink)
    if f.inception_score:
        score, score_std = fake.inception_score.score()
        info.update(inception_score=score, inception_score_std=score_std,
                    is_splits=f.is_splits)
    with blame("num_reference"):
        real = reference.reference_summary(
            source, num_reference, extractor=extractor, max_rows=f.max_feature_rows,
            dataset=dataset, split=split, seed=f.seed, directory=f.cache_dir,
            weights_path=f.weights)
    if rows < max(num, num_reference):
        info["feature_rows"] = rows  # KID / precision-recall saw the first `rows` of each set
    result = reference.compute_metrics(fake, real, kid_subsets=f.kid_subsets,
                                       kid_subset_size=f.kid_subset_size,
                                       precision_recall=f.precision_recall, seed=f.seed)
    result.update(num_samples=num, num_reference=num_reference, reference=source.description,
                  resize=features.RESIZE_CONVENTION, **info)
    return result


_JSON_KEYS = ("fid", "num_samples", "num_reference", "reference", "resize")  # always written


def is_own_output(path):
    """Whether `path` is an --output_json this command wrote (a JSON object with its keys): the
    only existing file that --output_json replaces (run_dir.outputs)."""
    return run_dir.outputs.json_object_with(path, _JSON_KEYS)


def main(argv):
    """`python -m tf_convgan.evaluate` (argv[0] is the program name); returns the exit status
    (2: bad input, one line `error: ...` naming the flag)."""

    def run():
        parse_flags(FLAGS, argv, usage=__doc__)
        if FLAGS.output_json:  # before anything is computed
            run_dir.outputs.check_output_file(FLAGS.output_json, name="--output_json",
                                              own=is_own_output)
        result = evaluate(FLAGS)
        line = json.dumps(result, sort_keys=True)
        print(line, flush=True)
        if FLAGS.output_json:
            with blame("output_json"):
                run_dir.write_text(FLAGS.output_json, line + "\n")

    return command_status(run)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main(sys.argv))
