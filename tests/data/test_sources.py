"""Tests for tf_convgan.data.sources: determinism and resume of the index stream; array, .npy /
.npz, image folder, tfds and Fashion-MNIST sources; every error path of making a source."""
import os

import numpy as np
import pytest
import tensorflow as tf

from data_helpers import fake_idx_dir, indexed_source, scale, stream_indices, take
from tf_convgan import data
from tf_convgan.data import preprocessing
from tf_convgan.errors import ConfigError


def test_float_array_source_and_labels():
    images = np.linspace(-1, 1, 3 * 4 * 4 * 3, dtype=np.float64).reshape(3, 4, 4, 3)
    source = data.array_source(images=images, labels=[2, 0, 1], resolution=4, fit="none")
    assert source.num_classes == 3 and source.num_examples == 3
    got, labels = take(source.dataset(seed=1, start=0), 3)
    index_of_label = {2: 0, 0: 1, 1: 2}
    np.testing.assert_allclose(got, images[[index_of_label[lbl] for lbl in labels]],
                               atol=1e-7)


def test_stream_is_pure_function_of_seed_and_start():
    source = indexed_source(10)
    full = stream_indices(source, seed=5, start=0, n=45)
    np.testing.assert_array_equal(full, stream_indices(source, seed=5, start=0, n=45))
    for start in (1, 7, 9, 10, 13, 27):  # several cross the epoch boundary at 10, 20, 30
        np.testing.assert_array_equal(stream_indices(source, 5, start, 45 - start),
                                      full[start:])
    # each epoch is a permutation with the documented stateless order
    for epoch in range(4):
        chunk = full[epoch * 10:(epoch + 1) * 10]
        np.testing.assert_array_equal(np.sort(chunk), np.arange(10))
        expected = tf.random.experimental.stateless_shuffle(
            tf.range(10, dtype=tf.int64), seed=[5, epoch]).numpy()
        np.testing.assert_array_equal(chunk, expected)
    assert not np.array_equal(full[:10], full[10:20])  # epochs are reshuffled
    other = stream_indices(source, seed=6, start=0, n=45)
    assert not np.array_equal(full, other)
    # images follow the indices
    images, labels = take(source.dataset(seed=5, start=3), 5)
    flat = (np.arange(40) % 256).reshape(10, 2, 2)
    np.testing.assert_array_equal(images[..., 0], scale(flat[labels]))


def test_resume_far_away_is_cheap_and_exact():
    source = indexed_source(1000)
    start = 123_456_789_012  # epoch 123456789, offset 12: no iteration over skipped data
    got = stream_indices(source, seed=1, start=start, n=5)
    expected = tf.random.experimental.stateless_shuffle(
        tf.range(1000, dtype=tf.int64), seed=[1, 123456789]).numpy()[12:17]
    np.testing.assert_array_equal(got, expected)


def _write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(array))


def test_image_folder_source(tmp_path):
    root = tmp_path / "images"
    # class "cats": RGB 5x9 and gray 12x6; class "dogs": RGBA 7x7 and nested RGB 3x3
    _write_png(root / "cats" / "b.png", np.full((5, 9, 3), [255, 0, 0], np.uint8))
    _write_png(root / "cats" / "a.PNG", np.full((12, 6, 1), 0, np.uint8))
    _write_png(root / "dogs" / "x" / "deep.png", np.full((3, 3, 3), 255, np.uint8))
    _write_png(root / "dogs" / "c.png", np.concatenate(
        [np.full((7, 7, 3), [0, 255, 0], np.uint8), np.full((7, 7, 1), 9, np.uint8)], -1))
    (root / "dogs" / "notes.txt").write_text("not an image")
    source = data.image_folder_source(directory=str(root), resolution=4,
                                      labels_from_subdirs=True)
    assert source.files == (os.path.join("cats", "a.PNG"), os.path.join("cats", "b.png"),
                            os.path.join("dogs", "c.png"),
                            os.path.join("dogs", "x", "deep.png"))
    assert source.num_examples == 4 and source.num_classes == 2
    images, labels = take(source.dataset(seed=0, start=0), 8)
    assert images.shape == (8, 4, 4, 3)
    expected_colour = {0: [-1, -1, -1], 1: [1, -1, -1], 2: [-1, 1, -1], 3: [1, 1, 1]}
    expected_label = {0: 0, 1: 0, 2: 1, 3: 1}
    perm0 = tf.random.experimental.stateless_shuffle(tf.range(4, dtype=tf.int64),
                                                     seed=[0, 0]).numpy()
    perm1 = tf.random.experimental.stateless_shuffle(tf.range(4, dtype=tf.int64),
                                                     seed=[0, 1]).numpy()
    for image, label, index in zip(images, labels, np.concatenate([perm0, perm1])):
        np.testing.assert_allclose(image, np.broadcast_to(expected_colour[index], (4, 4, 3)),
                                   atol=1e-6)
        assert label == expected_label[index]
    # grayscale output, unlabelled
    gray = data.image_folder_source(directory=str(root), resolution=2, channels=1)
    g_images, g_labels = take(gray.dataset(seed=0, start=0), 4)
    assert g_images.shape == (4, 2, 2, 1) and gray.num_classes is None
    np.testing.assert_array_equal(g_labels, 0)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="directory.*missing"):
        data.image_folder_source(directory=str(tmp_path / "missing"), resolution=8)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match="directory.*empty"):
        data.image_folder_source(directory=str(tmp_path / "empty"), resolution=8)
    _write_png(tmp_path / "loose" / "a.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ConfigError, match="labels_from_subdirs"):
        data.image_folder_source(directory=str(tmp_path / "loose"), resolution=8,
                                 labels_from_subdirs=True)
    _write_png(tmp_path / "big" / "a.png", np.zeros((9, 9, 3), np.uint8))
    source = data.image_folder_source(directory=str(tmp_path / "big"), resolution=8,
                                      fit="pad")
    with pytest.raises(tf.errors.InvalidArgumentError, match="resolution"):
        take(source.dataset(seed=0, start=0), 1)


def test_npy_and_npz_sources(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4) * 3
    labels = np.array([4, 3, 2, 1, 0])
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "d.npz", pics=images, labels=labels)
    reference = data.array_source(images=images, labels=labels, resolution=4, channels=1,
                                  fit="none")
    ref_images, ref_labels = take(reference.dataset(seed=9, start=2), 7)
    from_npy = data.npy_source(path=str(tmp_path / "x.npy"), labels_path=str(tmp_path / "y.npy"),
                               resolution=4, channels=1, fit="none")
    from_npz = data.npy_source(path=str(tmp_path / "d.npz"), images_key="pics",
                               resolution=4, channels=1, fit="none")
    for source in (from_npy, from_npz):
        assert source.num_classes == 5
        got_images, got_labels = take(source.dataset(seed=9, start=2), 7)
        np.testing.assert_array_equal(got_images, ref_images)
        np.testing.assert_array_equal(got_labels, ref_labels)
    # label 4 - i belongs to image i
    np.testing.assert_array_equal(got_images[..., 0], scale(images[4 - got_labels]))
    unlabelled = data.npy_source(path=str(tmp_path / "x.npy"), resolution=4, channels=1,
                                 fit="none")
    assert unlabelled.num_classes is None
    with pytest.raises(ConfigError, match="images_key.*'images'.*labels.*pics"):
        data.npy_source(path=str(tmp_path / "d.npz"), resolution=4)
    with pytest.raises(FileNotFoundError, match="path.*nope.npy"):
        data.npy_source(path=str(tmp_path / "nope.npy"), resolution=4)
    with pytest.raises(FileNotFoundError, match="labels_path"):
        data.npy_source(path=str(tmp_path / "x.npy"), labels_path=str(tmp_path / "no.npy"),
                        resolution=4)


def test_array_source_errors():
    ok = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ConfigError, match=r"`images`.*\[N, H, W\] or \[N, H, W, C\]"):
        data.array_source(images=np.zeros((3, 4), np.uint8), resolution=4)
    with pytest.raises(ConfigError, match=r"`images`.*\[N, H, W\] or \[N, H, W, C\]"):
        data.array_source(images=np.zeros((3, 4, 4, 3, 2), np.uint8), resolution=4)
    with pytest.raises(ConfigError, match="`images`.*channels"):
        data.array_source(images=np.zeros((3, 4, 4, 5), np.uint8), resolution=4)
    with pytest.raises(ConfigError, match="`images`.*empty"):
        data.array_source(images=np.zeros((0, 4, 4), np.uint8), resolution=4)
    with pytest.raises(ConfigError, match=r"float `images`.*\[-1, 1\]"):
        data.array_source(images=np.full((3, 4, 4), 2.0, np.float32), resolution=4)
    with pytest.raises(ConfigError, match="`labels` has length 2.*3 examples"):
        data.array_source(images=ok, labels=[0, 1], resolution=4)
    with pytest.raises(ConfigError, match="`labels` must be integers"):
        data.array_source(images=ok, labels=[0.5, 1, 2], resolution=4)
    with pytest.raises(ConfigError, match="`labels`"):
        data.array_source(images=ok, labels=[0, -1, 2], resolution=4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="`resolution`"):
            data.array_source(images=ok, resolution=bad)
    for bad in (0, 2, 4):
        with pytest.raises(ConfigError, match="`channels` must be 1 or 3"):
            data.array_source(images=ok, resolution=4, channels=bad)
    with pytest.raises(ConfigError, match="`fit` must be one of.*resize_crop.*pad.*none"):
        data.array_source(images=ok, resolution=4, fit="stretch")
    with pytest.raises(ConfigError, match="fit='pad'.*`resolution`=3"):
        data.array_source(images=ok, resolution=3, fit="pad")
    with pytest.raises(ConfigError, match="fit='none'.*`resolution`"):
        data.array_source(images=ok, resolution=8, fit="none")
    with pytest.raises(ConfigError, match="`image`"):
        data.preprocess_image(np.zeros((2, 2, 2, 2), np.uint8), resolution=2)
    with pytest.raises(TypeError):
        data.array_source(ok, resolution=4)  # keyword-only


def _tiny_builder_class():
    """A two-split tensorflow-datasets builder with non-square RGB images and no label
    (like lsun), defined without registering it globally."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import registered

    with registered.skip_registration():
        class TfConvganTinyRgb(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "attributes": {"smiling": np.bool_},
                    "label": tfds.features.ClassLabel(num_classes=4),
                }))

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples(12)}

            def _generate_examples(self, n):
                for i in range(n):
                    # 6 x (8 + i) image: left/right thirds 0, centre band 20 * i
                    image = np.zeros((6, 8 + i, 3), np.uint8)
                    w = 8 + i
                    image[:, (w - 6) // 2:(w - 6) // 2 + 6] = 20 * i
                    yield i, {"image": image, "attributes": {"smiling": bool(i % 2)},
                              "label": i % 4}
    return TfConvganTinyRgb


def test_tfds_source_with_locally_prepared_dataset(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    builder = _tiny_builder_class()(data_dir=str(tmp_path))
    builder.download_and_prepare()
    name = builder.name
    # labelled: class label feature; resize_crop keeps the centre band of each image
    source = data.tfds_source(name=name, data_dir=str(tmp_path), resolution=6,
                              fit="resize_crop", shuffle_buffer=5)
    assert source.num_examples == 12 and source.num_classes == 4
    images, labels = take(source.dataset(seed=4, start=0), 30)
    assert images.shape == (30, 6, 6, 3) and labels.dtype == np.int32
    values = np.round((images[:, 0, 0, 0] + 1) * 127.5).astype(int)
    assert np.all(values % 20 == 0)
    index = values // 20
    for image, i in zip(images, index):
        np.testing.assert_array_equal(image, np.full((6, 6, 3), scale(20 * i), np.float32))
    np.testing.assert_array_equal(labels, index % 4)
    assert sorted(index[:12].tolist()) != index[:12].tolist()  # shuffled
    assert set(index.tolist()) <= set(range(12)) and len(set(index.tolist())) >= 10
    # deterministic and resumable
    again, again_labels = take(source.dataset(seed=4, start=0), 30)
    np.testing.assert_array_equal(again, images)
    tail, _ = take(source.dataset(seed=4, start=17), 13)
    np.testing.assert_array_equal(tail, images[17:])
    other, _ = take(source.dataset(seed=5, start=0), 30)
    assert not np.array_equal(other, images)
    # no label feature -> label 0 (like celeb_a / lsun); gray output; batching works
    unlabelled = data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4, channels=1,
                                  label_key="no_such_label")
    assert unlabelled.num_classes is None
    real, lbl = next(iter(data.make_input_pipeline(unlabelled, global_batch_size=3, d_steps=2)))
    assert real.shape == (3, 2, 4, 4, 1) and np.all(lbl.numpy() == 0)
    with pytest.raises(ConfigError, match="`label_key` 'attributes'"):
        data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4,
                         label_key="attributes")
    with pytest.raises(ConfigError, match="`image_key` 'img'"):
        data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4, image_key="img")
    with pytest.raises(ConfigError, match="`split` 'validation'"):
        data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4, split="validation")


def test_fashion_mnist_source_falls_back_to_idx(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    fake = fake_idx_dir(tmp_path / "idx")
    empty_tfds = tmp_path / "tfds"
    empty_tfds.mkdir()
    source = data.fashion_mnist_source(data_dir=str(empty_tfds), directory=fake)
    assert source.description.startswith("idx:")
    assert source.num_examples == 7 and source.num_classes == 7
    images, labels = take(source.dataset(seed=0, start=0), 7)
    assert images.shape == (7, 32, 32, 3)
    np.testing.assert_array_equal(np.sort(labels), np.arange(7))
    np.testing.assert_array_equal(images[:, 2:30, 2:30, :],
                                  np.broadcast_to(scale(labels)[:, None, None, None],
                                                  (7, 28, 28, 3)).astype(np.float32))
    assert np.all(images[:, :2] == -1) and np.all(images[:, :, 30:] == -1)
    with pytest.raises(FileNotFoundError) as info:
        data.fashion_mnist_source(data_dir=str(empty_tfds), directory=str(tmp_path / "none"))
    assert str(tmp_path / "none") in str(info.value)
    assert str(empty_tfds) in str(info.value)
    assert "TF_CONVGAN_FASHION_MNIST_DIR" in str(info.value)


def test_fashion_mnist_source_uses_prepared_tfds(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core import registered
    from tensorflow_datasets.image_classification import mnist

    fake = fake_idx_dir(tmp_path / "idx", n_train=5, n_test=2, compress=False)

    with registered.skip_registration():
        class FashionMNIST(mnist.FashionMNIST):  # same name/version, local files
            def _split_generators(self, dl_manager):
                return [tfds.core.SplitGenerator(name=split, gen_kwargs=dict(
                    num_examples=n, data_path=os.path.join(fake, f"{p}-images-idx3-ubyte"),
                    label_path=os.path.join(fake, f"{p}-labels-idx1-ubyte")))
                    for split, n, p in (("train", 5, "train"), ("test", 2, "t10k"))]

    FashionMNIST(data_dir=str(tmp_path / "tfds")).download_and_prepare()
    source = data.fashion_mnist_source(split="test", data_dir=str(tmp_path / "tfds"),
                                       directory=str(tmp_path / "unused"), channels=1)
    assert source.description.startswith("tfds:fashion_mnist/test")
    assert source.num_examples == 2 and source.num_classes == 2
    images, labels = take(source.dataset(seed=0, start=0), 4)
    np.testing.assert_array_equal(images[:, 2:30, 2:30, 0],
                                  np.broadcast_to(scale(100 + labels)[:, None, None],
                                                  (4, 28, 28)).astype(np.float32))


def test_resolution_channels_and_fit_are_checked_once(tmp_path, monkeypatch):
    """By the public function that takes them; the helpers below it (array sources, the
    preprocessing of every example) trust them."""
    calls = []
    check = preprocessing.check_resolution
    monkeypatch.setattr(preprocessing, "check_resolution",
                        lambda resolution: calls.append(resolution) or check(resolution))
    fake = fake_idx_dir(tmp_path / "fm")
    _write_png(tmp_path / "images" / "a.png", np.zeros((5, 5, 3), np.uint8))
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4), np.uint8))
    empty_tfds = tmp_path / "tfds"
    empty_tfds.mkdir()
    makers = [
        lambda: data.array_source(images=np.zeros((3, 4, 4), np.uint8), resolution=32),
        lambda: data.npy_source(path=str(tmp_path / "x.npy"), resolution=32),
        lambda: data.idx_source(directory=fake, resolution=32),
        lambda: data.fashion_mnist_source(data_dir=str(empty_tfds), directory=fake,
                                          resolution=32),
        lambda: data.image_folder_source(directory=str(tmp_path / "images"), resolution=32),
    ]
    for make in makers:
        calls.clear()
        source = make()
        take(source.dataset(seed=0, start=0), 2)
        assert calls == [32], source.description


class _CountingDataSource:
    """Wraps a random-access data source, counting the records read."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        self.reads += 1
        return self.inner[index]


def test_tfds_array_record_source_resumes_without_reading_skipped_records(tmp_path, caplog):
    """Prepared as array_record, a tfds split is read by index with the per-epoch permutation
    stream: the stream at position 10_000 of a 12-record split (833 epochs in) equals the
    uninterrupted stream there, and resuming reads only the records taken plus less than one
    epoch of read-ahead. The same split prepared as tfrecord falls back to skip(start) and says so at resume."""
    pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("array_record")
    builder = _tiny_builder_class()(data_dir=str(tmp_path / "ar"))
    builder.download_and_prepare(file_format="array_record")
    source = data.tfds_source(name=builder.name, data_dir=str(tmp_path / "ar"), resolution=6,
                              fit="resize_crop")
    assert source.random_access and source.num_examples == 12 and source.num_classes == 4
    n, start, count = 12, 10_000, 10

    def indices_of(images):
        values = np.round((images[:, 0, 0, 0] + 1) * 127.5).astype(int)
        assert np.all(values % 20 == 0)
        return values // 20

    # tfds stores the examples in its own order: generated example i (width 8 + i) is record r
    example_of_record = np.array([tf.io.decode_png(source._data_source[r]["image"]).shape[1] - 8
                                  for r in range(n)])
    assert sorted(example_of_record) == list(range(n))

    # the documented stream: record of stream position p = permutation(epoch)[offset]
    def expected(first, k):
        out = []
        for p in range(first, first + k):
            epoch, offset = divmod(p, n)
            out.append(tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=[3, epoch]).numpy()[offset])
        return example_of_record[np.array(out)]

    images, labels = take(source.dataset(seed=3, start=0), 30)
    np.testing.assert_array_equal(indices_of(images), expected(0, 30))
    np.testing.assert_array_equal(labels, expected(0, 30) % 4)
    tail, tail_labels = take(source.dataset(seed=3, start=7), 23)
    np.testing.assert_array_equal(tail, images[7:])
    np.testing.assert_array_equal(tail_labels, labels[7:])

    counting = _CountingDataSource(source._data_source)
    source._data_source = counting
    resumed, resumed_labels = take(source.dataset(seed=3, start=start), count)
    # O(1) in start: the records taken plus the parallel map's read-ahead (< one epoch), not
    # the 10_000 skipped ones
    assert counting.reads < count + n, counting.reads
    np.testing.assert_array_equal(indices_of(resumed), expected(start, count))
    np.testing.assert_array_equal(resumed_labels, expected(start, count) % 4)
    # the same through the batched pipeline: the batch at step s is stream [s*B*d, ...)
    counting.reads = 0
    real, batch_labels = next(iter(data.make_input_pipeline(
        source, global_batch_size=5, d_steps=2, seed=3, start_step=start // 10)))
    assert counting.reads < 10 + n, counting.reads
    np.testing.assert_array_equal(batch_labels.numpy().reshape(-1), expected(start, 10) % 4)
    np.testing.assert_array_equal(indices_of(real.numpy().reshape(-1, 6, 6, 3)),
                                  expected(start, 10))

    # sequential fallback (tfrecord): says at resume how many records it re-reads
    builder = _tiny_builder_class()(data_dir=str(tmp_path / "tfr"))
    builder.download_and_prepare()
    sequential = data.tfds_source(name=builder.name, data_dir=str(tmp_path / "tfr"),
                                  resolution=6, fit="resize_crop")
    assert not sequential.random_access
    with caplog.at_level("WARNING", logger="tf_convgan.data.sources"):
        sequential.dataset(seed=3, start=500)
    assert "resuming at position 500 reads 500 records" in caplog.text
