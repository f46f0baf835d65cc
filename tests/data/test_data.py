"""Tests for tf_convgan.data: exact numbers for IDX reading, scaling, fitting, determinism,
resume, batching order, file sources and every error path."""
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

import helpers

from tf_convgan import data
from tf_convgan.data import readers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION_DIR = os.environ.get(
    "TF_CONVGAN_FASHION_MNIST_DIR",
    os.path.join(REPO, "..", "shared", "data", "fashion_mnist"))
FASHION_TRAIN_IMAGES_MD5 = "f4a8712d7a061bf5bd6d2ca38dc4d50a"


# ----------------------------------------------------------------------------- helpers


def scale(x):
    """The documented uint8 -> [-1, 1] map, in float32 like the pipeline."""
    return np.asarray(x, np.float32) / np.float32(127.5) - np.float32(1.0)


def take(ds, n):
    """First n elements of a dataset of tuples, as stacked numpy arrays."""
    images, labels = [], []
    for image, label in ds.take(n):
        images.append(image.numpy())
        labels.append(label.numpy())
    return np.stack(images), np.stack(labels)


def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(">" + "I" * array.ndim,
                                                                *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, compress=False, type_code=0x08):
    raw = idx_bytes(array, type_code)
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if compress else raw)


def fake_idx_dir(directory, n_train=7, n_test=3, compress=True):
    """A Fashion-MNIST-like IDX directory whose image i is filled with value i (train) or
    100 + i (test) and whose label is i % 10."""
    os.makedirs(directory, exist_ok=True)
    ext = ".gz" if compress else ""
    for prefix, n, base in (("train", n_train, 0), ("t10k", n_test, 100)):
        images = np.stack([np.full((28, 28), base + i, np.uint8) for i in range(n)])
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{ext}"),
                  np.arange(n, dtype=np.uint8) % 10, compress)
    return str(directory)


def indexed_source(n, size=2, channels=1):
    """Array source whose label is the example index (so streams are index sequences)."""
    images = (np.arange(n * size * size, dtype=np.int64) % 256).astype(np.uint8)
    return data.array_source(images=images.reshape(n, size, size), labels=np.arange(n),
                             resolution=size, channels=channels, fit="none")


def stream_indices(source, seed, start, n):
    return take(source.dataset(seed=seed, start=start), n)[1]


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_exact(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 7
    labels = np.array([9, 0], np.uint8)
    write_idx(tmp_path / "i", images, compress)
    write_idx(tmp_path / "l", labels, compress)
    got_images = data.read_idx(str(tmp_path / "i"))
    got_labels = data.read_idx(str(tmp_path / "l"))
    assert got_images.dtype == np.uint8 and got_images.shape == (2, 3, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    # Header really is the documented big-endian layout.
    raw = (tmp_path / "i").read_bytes()
    raw = gzip.decompress(raw) if compress else raw
    assert raw[:16] == b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"


def test_read_idx_big_endian_int32_and_errors(tmp_path):
    values = np.array([[1, -2], [70000, 3]], np.int32)
    write_idx(tmp_path / "a", values, type_code=0x0C)
    np.testing.assert_array_equal(data.read_idx(str(tmp_path / "a")), values)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(str(tmp_path / "bad"))
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4,), np.uint8))[:-1])
    with pytest.raises(ValueError, match="data bytes"):
        data.read_idx(str(tmp_path / "short"))


def _require_fashion():
    if not os.path.isfile(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"real Fashion-MNIST not found in {FASHION_DIR} (set "
                    "TF_CONVGAN_FASHION_MNIST_DIR or apt-get install dataset-fashion-mnist)")


def test_real_fashion_mnist_idx():
    _require_fashion()
    with gzip.open(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == FASHION_TRAIN_IMAGES_MD5
    images = data.read_idx(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))
    labels = data.read_idx(os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz"))
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,)
    np.testing.assert_array_equal(np.unique(labels), np.arange(10))
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 6000))
    test_images = data.read_idx(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
    assert test_images.shape == (10000, 28, 28)

    source = data.idx_source(directory=FASHION_DIR, split="test", resolution=32, fit="pad")
    assert source.num_examples == 10000 and source.num_classes == 10
    got_images, got_labels = take(source.dataset(seed=3, start=0), 4)
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(10000, dtype=tf.int64), seed=[3, 0]).numpy()[:4]
    test_labels = data.read_idx(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(got_labels, test_labels[perm])
    expected = scale(test_images[perm])
    np.testing.assert_array_equal(got_images[:, 2:30, 2:30, 0], expected)
    np.testing.assert_array_equal(got_images[..., 0], got_images[..., 2])


def test_idx_source_default_dirs_and_env(tmp_path, monkeypatch):
    fake = fake_idx_dir(tmp_path / "fm", compress=False)
    monkeypatch.setenv(data.FASHION_MNIST_ENV_VAR, fake)
    source = data.idx_source(split="t10k", resolution=28, channels=1, fit="none")
    assert source.num_examples == 3 and source.num_classes == 3
    images, labels = take(source.dataset(seed=0, start=0), 3)
    # image i is filled with 100 + i and has label i
    np.testing.assert_array_equal(images[:, 0, 0, 0], scale(100 + labels))

    monkeypatch.setenv(data.FASHION_MNIST_ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.setattr(readers, "_FASHION_MNIST_DEFAULT_DIRS", (str(tmp_path / "default"),))
    with pytest.raises(FileNotFoundError) as info:
        data.idx_source(resolution=32)
    message = str(info.value)
    for expected in (str(tmp_path / "nowhere"), str(tmp_path / "default"),
                     "TF_CONVGAN_FASHION_MNIST_DIR", "idx_source.directory",
                     "apt-get install dataset-fashion-mnist",
                     "github.com/zalandoresearch/fashion-mnist"):
        assert expected in message
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        os.makedirs(tmp_path / "empty_dir")
        data.idx_source(directory=str(tmp_path / "empty_dir"), resolution=32)
    with pytest.raises(ValueError, match="`split`"):
        data.idx_source(directory=fake, split="valid", resolution=32)


# ----------------------------------------------------------------------------- preprocessing


def test_uint8_scaling_is_exact():
    images = np.array([[[0, 255], [127, 128]]], np.uint8)
    source = data.array_source(images=images, resolution=2, channels=1, fit="none")
    image, label = take(source.dataset(seed=0, start=0), 1)
    np.testing.assert_array_equal(
        image[0, ..., 0], np.array([[-1.0, 1.0], [scale(127), scale(128)]],
                                   np.float32))
    assert image.dtype == np.float32 and label.dtype == np.int32 and label[0] == 0
    assert source.num_classes is None


def test_pad_28_to_32():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    out = data.preprocess_image(image, resolution=32, channels=3, fit="pad").numpy()
    assert out.shape == (32, 32, 3)
    expected = scale(image)
    for c in range(3):
        np.testing.assert_array_equal(out[2:30, 2:30, c], expected)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(out[border] == -1.0)
    # odd difference: extra row/column goes to the bottom/right
    odd = data.preprocess_image(np.full((3, 2), 255, np.uint8), resolution=6, channels=1,
                                fit="pad").numpy()[..., 0]
    expected_odd = -np.ones((6, 6), np.float32)
    expected_odd[1:4, 2:4] = 1.0
    np.testing.assert_array_equal(odd, expected_odd)


def test_resize_crop_takes_the_centre():
    wide = np.tile(np.arange(16, dtype=np.uint8) * 10, (8, 1))  # 8x16, column-coded
    out = data.preprocess_image(wide, resolution=8, channels=1, fit="resize_crop").numpy()
    np.testing.assert_array_equal(out[..., 0], scale(wide[:, 4:12]))
    tall = wide.T.copy()  # 16x8
    out = data.preprocess_image(tall, resolution=8, channels=1, fit="resize_crop").numpy()
    np.testing.assert_array_equal(out[..., 0], scale(tall[4:12, :]))
    # with rescaling: 16x32 -> short side 8 -> 8x16 -> centre columns 4:12
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)
    out = data.preprocess_image(big, resolution=8, channels=3, fit="resize_crop").numpy()
    reference = tf.image.resize(scale(big), [8, 16],
                                antialias=True).numpy()[:, 4:12]
    np.testing.assert_allclose(out, np.clip(reference, -1, 1), atol=1e-6)
    # same answer when the image size is only known at run time
    dynamic = tf.function(
        lambda x: data.preprocess_image(x, resolution=8, channels=3, fit="resize_crop"),
        input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    np.testing.assert_allclose(dynamic(big).numpy(), out, atol=1e-6)


def test_resize_and_channel_conversions():
    red = np.zeros((5, 7, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 10  # RGBA: alpha must be dropped
    out = data.preprocess_image(red, resolution=3, channels=3, fit="resize").numpy()
    np.testing.assert_allclose(out[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[..., 1:], -1.0, atol=1e-6)
    assert out.min() >= -1.0 and out.max() <= 1.0
    gray = data.preprocess_image(red, resolution=3, channels=1, fit="resize").numpy()
    np.testing.assert_allclose(gray, 0.299 * 1.0 + 0.701 * -1.0, atol=1e-6)
    tiled = data.preprocess_image(np.full((4, 4, 1), 51, np.uint8), resolution=4,
                                  fit="none").numpy()
    np.testing.assert_array_equal(tiled, np.full((4, 4, 3), scale(51), np.float32))
    floats = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(
        data.preprocess_image(floats, resolution=4, channels=1, fit="none").numpy()[..., 0],
        floats)
    up = data.preprocess_image(np.full((2, 3), 200, np.uint8), resolution=9, channels=1,
                               fit="resize").numpy()
    np.testing.assert_allclose(up, 200 / 127.5 - 1, atol=1e-6)


def test_float_array_source_and_labels():
    images = np.linspace(-1, 1, 3 * 4 * 4 * 3, dtype=np.float64).reshape(3, 4, 4, 3)
    source = data.array_source(images=images, labels=[2, 0, 1], resolution=4, fit="none")
    assert source.num_classes == 3 and source.num_examples == 3
    got, labels = take(source.dataset(seed=1, start=0), 3)
    index_of_label = {2: 0, 0: 1, 1: 2}
    np.testing.assert_allclose(got, images[[index_of_label[lbl] for lbl in labels]],
                               atol=1e-7)


# ----------------------------------------------------------------------------- determinism


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


# ----------------------------------------------------------------------------- pipeline


def test_input_pipeline_shapes_and_order():
    source = indexed_source(11, size=3, channels=3)
    batch, d = 4, 3
    ds = data.make_input_pipeline(source, global_batch_size=batch, d_steps=d, seed=2)
    real_spec, label_spec = ds.element_spec
    assert real_spec.shape.as_list() == [4, 3, 3, 3, 3] and real_spec.dtype == tf.float32
    assert label_spec.shape.as_list() == [4, 3] and label_spec.dtype == tf.int32
    assert ds.options().deterministic is True
    assert (ds.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    stream = stream_indices(source, seed=2, start=0, n=5 * batch * d)
    batches = [(r.numpy(), lbl.numpy()) for r, lbl in ds.take(5)]
    for b, (real, labels) in enumerate(batches):
        for j in range(batch):
            for k in range(d):
                assert labels[j, k] == stream[b * batch * d + j * d + k]
        flat = (np.arange(11 * 9) % 256).reshape(11, 3, 3)
        np.testing.assert_array_equal(real[..., 1], scale(flat[labels]))
    resumed = data.make_input_pipeline(source, global_batch_size=batch, d_steps=d, seed=2,
                                       start_step=2)
    for (real, labels), (real_r, labels_r) in zip(batches[2:], resumed.take(3)):
        np.testing.assert_array_equal(labels, labels_r.numpy())
        np.testing.assert_array_equal(real, real_r.numpy())


def test_input_pipeline_errors():
    source = indexed_source(4)
    with pytest.raises(ValueError, match="global_batch_size"):
        data.make_input_pipeline(source, global_batch_size=0)
    with pytest.raises(ValueError, match="d_steps"):
        data.make_input_pipeline(source, global_batch_size=2, d_steps=0)
    with pytest.raises(ValueError, match="start_step"):
        data.make_input_pipeline(source, global_batch_size=2, start_step=-1)
    with pytest.raises(TypeError, match="source"):
        data.make_input_pipeline(np.zeros(3), global_batch_size=2)
    with pytest.raises(ValueError, match="seed"):
        source.dataset(seed=1.5, start=0)
    with pytest.raises(ValueError, match="start"):
        source.dataset(seed=0, start=-3)


# ----------------------------------------------------------------------------- files


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
    with pytest.raises(ValueError, match="directory.*empty"):
        data.image_folder_source(directory=str(tmp_path / "empty"), resolution=8)
    _write_png(tmp_path / "loose" / "a.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="labels_from_subdirs"):
        data.image_folder_source(directory=str(tmp_path / "loose"), resolution=8,
                                 labels_from_subdirs=True)
    _write_png(tmp_path / "big" / "a.png", np.zeros((9, 9, 3), np.uint8))
    source = data.image_folder_source(directory=str(tmp_path / "big"), resolution=8,
                                      fit="pad")
    with pytest.raises(tf.errors.InvalidArgumentError, match="resolution"):
        take(source.dataset(seed=0, start=0), 1)


def test_every_image_format_passes_the_file_check(tmp_path):
    from PIL import Image
    picture = Image.fromarray(np.full((6, 6, 3), 200, np.uint8))
    for name, fmt in (("a.png", "PNG"), ("b.gif", "GIF"), ("c.bmp", "BMP"), ("d.jpg", "JPEG")):
        picture.save(tmp_path / name, format=fmt)
    source = data.image_folder_source(directory=str(tmp_path), resolution=4)
    images, _ = take(source.dataset(seed=0, start=0), 4)
    assert source.num_examples == 4 and images.shape == (4, 4, 4, 3)


@pytest.mark.parametrize("kind", ["text_named_png", "truncated_png", "truncated_gif",
                                  "truncated_bmp", "empty_jpeg"])
def test_a_broken_image_file_is_named_when_the_source_is_made(tmp_path, kind):
    """Not a TensorFlow error without a file name at whatever step first reads it."""
    from PIL import Image
    picture = Image.fromarray(np.full((6, 6, 3), 200, np.uint8))
    picture.save(tmp_path / "good.png")
    name = {"text_named_png": "x.png", "truncated_png": "x.png", "truncated_gif": "x.gif",
            "truncated_bmp": "x.bmp", "empty_jpeg": "x.jpg"}[kind]
    if kind == "text_named_png":
        (tmp_path / name).write_text("not an image")
    elif kind == "empty_jpeg":
        (tmp_path / name).write_bytes(b"")
    else:
        picture.save(tmp_path / name, format=name[2:].upper())
        content = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(content[:len(content) // 2])
    problem = {"text_named_png": "not a PNG, JPEG, GIF or BMP image (it starts with b'not an i')",
               "truncated_png": "a truncated PNG", "truncated_gif": "a truncated GIF",
               "truncated_bmp": "a truncated BMP", "empty_jpeg": "empty"}[kind]
    with pytest.raises(ValueError) as error:
        data.image_folder_source(directory=str(tmp_path), resolution=4)
    assert str(error.value).startswith(f"image file '{tmp_path / name}' is {problem}")


def test_damaged_numpy_and_idx_files_are_named(tmp_path):
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(ValueError, match=r"^`path` '.*text.npy' is neither a .npy nor a .npz "
                                         r"file \(it starts with b'hello'\)"):
        data.npy_source(path=str(tmp_path / "text.npy"), resolution=4)
    np.save(tmp_path / "cut.npy", np.zeros((4, 4, 4, 3), np.uint8))
    content = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(content[:len(content) // 2])
    with pytest.raises(ValueError, match=r"^`path` '.*cut.npy' cannot be read as numpy data"):
        data.npy_source(path=str(tmp_path / "cut.npy"), resolution=4)
    write_idx(tmp_path / "images.gz", np.zeros((50, 28, 28), np.uint8), compress=True)
    content = (tmp_path / "images.gz").read_bytes()
    (tmp_path / "images.gz").write_bytes(content[:len(content) // 2])
    with pytest.raises(ValueError, match=r"^'.*images.gz': damaged gzip data"):
        data.read_idx(str(tmp_path / "images.gz"))


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
    with pytest.raises(ValueError, match="images_key.*'images'.*labels.*pics"):
        data.npy_source(path=str(tmp_path / "d.npz"), resolution=4)
    with pytest.raises(FileNotFoundError, match="path.*nope.npy"):
        data.npy_source(path=str(tmp_path / "nope.npy"), resolution=4)
    with pytest.raises(FileNotFoundError, match="labels_path"):
        data.npy_source(path=str(tmp_path / "x.npy"), labels_path=str(tmp_path / "no.npy"),
                        resolution=4)


# ----------------------------------------------------------------------------- errors


def test_array_source_errors():
    ok = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"`images`.*\[N, H, W\] or \[N, H, W, C\]"):
        data.array_source(images=np.zeros((3, 4), np.uint8), resolution=4)
    with pytest.raises(ValueError, match=r"`images`.*\[N, H, W\] or \[N, H, W, C\]"):
        data.array_source(images=np.zeros((3, 4, 4, 3, 2), np.uint8), resolution=4)
    with pytest.raises(ValueError, match="`images`.*channels"):
        data.array_source(images=np.zeros((3, 4, 4, 5), np.uint8), resolution=4)
    with pytest.raises(ValueError, match="`images`.*empty"):
        data.array_source(images=np.zeros((0, 4, 4), np.uint8), resolution=4)
    with pytest.raises(ValueError, match=r"float `images`.*\[-1, 1\]"):
        data.array_source(images=np.full((3, 4, 4), 2.0, np.float32), resolution=4)
    with pytest.raises(ValueError, match="`labels` has length 2.*3 examples"):
        data.array_source(images=ok, labels=[0, 1], resolution=4)
    with pytest.raises(ValueError, match="`labels` must be integers"):
        data.array_source(images=ok, labels=[0.5, 1, 2], resolution=4)
    with pytest.raises(ValueError, match="`labels`"):
        data.array_source(images=ok, labels=[0, -1, 2], resolution=4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="`resolution`"):
            data.array_source(images=ok, resolution=bad)
    for bad in (0, 2, 4):
        with pytest.raises(ValueError, match="`channels` must be 1 or 3"):
            data.array_source(images=ok, resolution=4, channels=bad)
    with pytest.raises(ValueError, match="`fit` must be one of.*resize_crop.*pad.*none"):
        data.array_source(images=ok, resolution=4, fit="stretch")
    with pytest.raises(ValueError, match="fit='pad'.*`resolution`=3"):
        data.array_source(images=ok, resolution=3, fit="pad")
    with pytest.raises(ValueError, match="fit='none'.*`resolution`"):
        data.array_source(images=ok, resolution=8, fit="none")
    with pytest.raises(ValueError, match="`image`"):
        data.preprocess_image(np.zeros((2, 2, 2, 2), np.uint8), resolution=2)
    with pytest.raises(TypeError):
        data.array_source(ok, resolution=4)  # keyword-only


# ----------------------------------------------------------------------------- tfds


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


def test_tfds_unknown_name_and_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match=r"`name`='no_such_dataset_xyz'.*list_builders"):
        data.tfds_source(name="no_such_dataset_xyz", data_dir=str(tmp_path), resolution=8)
    with pytest.raises(FileNotFoundError) as info:
        data.tfds_source(name="mnist", data_dir=str(tmp_path), resolution=8)
    assert isinstance(info.value, data.TFDSNotPreparedError)
    message = str(info.value)
    assert str(tmp_path) in message and "tfds build mnist" in message and "data_dir" in message


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
    with pytest.raises(ValueError, match="`label_key` 'attributes'"):
        data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4,
                         label_key="attributes")
    with pytest.raises(ValueError, match="`image_key` 'img'"):
        data.tfds_source(name=name, data_dir=str(tmp_path), resolution=4, image_key="img")
    with pytest.raises(ValueError, match="`split` 'validation'"):
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


def test_input_pipeline_under_mirrored_strategy():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs the 2 logical CPUs set up by conftest.py")
    strategy = helpers.two_cpu_strategy()
    source = indexed_source(9, size=2, channels=1)
    ds = data.make_input_pipeline(source, global_batch_size=4, d_steps=2, seed=7)
    expected = [(r.numpy(), lbl.numpy()) for r, lbl in ds.take(3)]
    dist = strategy.experimental_distribute_dataset(ds)
    for (real, labels), (exp_real, exp_labels) in zip(dist, expected):
        parts = strategy.experimental_local_results(labels)
        assert [p.shape.as_list() for p in parts] == [[2, 2], [2, 2]]
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in parts]), exp_labels)
        real_parts = strategy.experimental_local_results(real)
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in real_parts]),
                                      exp_real)


def test_gin_configuration(tmp_path):
    import gin

    fake = fake_idx_dir(tmp_path / "fm")
    empty_tfds = tmp_path / "tfds"
    empty_tfds.mkdir()
    try:
        gin.parse_config(f"""
            fashion_mnist_source.directory = '{fake}'
            fashion_mnist_source.data_dir = '{empty_tfds}'
            fashion_mnist_source.resolution = 28
            fashion_mnist_source.channels = 1
            fashion_mnist_source.fit = 'none'
            make_input_pipeline.source = @fashion_mnist_source()
            make_input_pipeline.global_batch_size = 2
            make_input_pipeline.d_steps = 3
            make_input_pipeline.seed = 11
        """)
        ds = data.make_input_pipeline()
        real, labels = next(iter(ds))
        assert real.shape == (2, 3, 28, 28, 1) and labels.shape == (2, 3)
        np.testing.assert_array_equal(real.numpy()[:, :, 5, 5, 0], scale(labels.numpy()))
    finally:
        gin.clear_config()
