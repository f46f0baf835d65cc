"""Tests for tf_convgan.data.readers: exact IDX reading, the Fashion-MNIST directory (env var,
default directories, the help message), damaged numpy, IDX and image files named, tfds look-ups."""
import gzip
import hashlib
import os
import zlib

import numpy as np
import pytest
import tensorflow as tf

from data_helpers import fake_idx_dir, idx_bytes, scale, take, write_idx
from tf_convgan import data
from tf_convgan.data import readers
from tf_convgan.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FASHION_DIR = os.environ.get(
    "TF_CONVGAN_FASHION_MNIST_DIR",
    os.path.join(REPO, "..", "shared", "data", "fashion_mnist"))
FASHION_TRAIN_IMAGES_MD5 = "f4a8712d7a061bf5bd6d2ca38dc4d50a"


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
    with pytest.raises(ConfigError, match="not an IDX file"):
        data.read_idx(str(tmp_path / "bad"))
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4,), np.uint8))[:-1])
    with pytest.raises(ConfigError, match="data bytes"):
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
    with pytest.raises(ConfigError, match="`split`"):
        data.idx_source(directory=fake, split="valid", resolution=32)


def test_damaged_numpy_and_idx_files_are_named(tmp_path):
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(ConfigError, match=r"^`path` '.*text.npy' is neither a .npy nor a .npz "
                                         r"file \(it starts with b'hello'\)"):
        data.npy_source(path=str(tmp_path / "text.npy"), resolution=4)
    np.save(tmp_path / "cut.npy", np.zeros((4, 4, 4, 3), np.uint8))
    content = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(content[:len(content) // 2])
    with pytest.raises(ConfigError, match=r"^`path` '.*cut.npy' cannot be read as numpy data"):
        data.npy_source(path=str(tmp_path / "cut.npy"), resolution=4)
    write_idx(tmp_path / "images.gz", np.zeros((50, 28, 28), np.uint8), compress=True)
    content = (tmp_path / "images.gz").read_bytes()
    (tmp_path / "images.gz").write_bytes(content[:len(content) // 2])
    with pytest.raises(ConfigError, match=r"^'.*images.gz': damaged gzip data"):
        data.read_idx(str(tmp_path / "images.gz"))


@pytest.mark.parametrize("ndim", [0x99, 0, 9])
def test_an_idx_header_with_an_implausible_dimension_count_is_a_short_message(tmp_path, ndim):
    """A damaged dimension byte (0x99) made a 1.3 KB message with a 153-dimension shape read
    from the image data: now the header is called invalid, with the magic it should have."""
    raw = bytearray(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    raw[3] = ndim
    (tmp_path / "images").write_bytes(bytes(raw))
    with pytest.raises(ConfigError) as error:
        data.read_idx(str(tmp_path / "images"))
    message = str(error.value)
    assert message.startswith(f"'{tmp_path / 'images'}': invalid IDX header "
                              f"{bytes(raw[:4])!r}: {ndim} dimensions (the magic is 2 zero "
                              f"bytes, a type code 0x08-0x0E, then 1 to 8 dimensions)")
    assert len(message) < 300 and "\n" not in message


def test_every_image_format_passes_the_file_check(tmp_path):
    from PIL import Image
    picture = Image.fromarray(np.full((6, 6, 3), 200, np.uint8))
    for name, fmt in (("a.png", "PNG"), ("b.gif", "GIF"), ("c.bmp", "BMP"), ("d.jpg", "JPEG")):
        picture.save(tmp_path / name, format=fmt)
    source = data.image_folder_source(directory=str(tmp_path), resolution=4)
    images, _ = take(source.dataset(seed=0, start=0), 4)
    assert source.num_examples == 4 and images.shape == (4, 4, 4, 3)


def _png_chunk(kind, data):
    return (len(data).to_bytes(4, "big") + kind + data +
            zlib.crc32(kind + data).to_bytes(4, "big"))


def _png_with_body(body):
    """A 6x6 RGB PNG's signature and IHDR, then `body`, then its IEND chunk: the head and the
    end of a PNG, so only reading its middle finds the damage."""
    header = (6).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + body +
            _png_chunk(b"IEND", b""))


_BROKEN_PNG_BODIES = {  # each one tf.io.decode_png refuses (checked by the test)
    "png_garbage_body": b"\x00\x00\x10\x00IDAT" + bytes(range(256)) * 16 + b"\x12\x34\x56\x78",
    "png_bad_checksum": _png_chunk(b"IDAT", zlib.compress(b"\x00" + b"\x80" * 18) * 1)[:-4]
                        + b"\x00\x00\x00\x00",
    "png_data_not_deflate": _png_chunk(b"IDAT", bytes(range(64))),
    "png_data_too_short": _png_chunk(b"IDAT", zlib.compress((b"\x00" + b"\x80" * 18) * 3)),
    "png_bad_row_filter": _png_chunk(b"IDAT", zlib.compress((b"\x09" + b"\x80" * 18) * 6)),
}


@pytest.mark.parametrize("kind", ["text_named_png", "truncated_png", "truncated_gif",
                                  "truncated_bmp", "empty_jpeg", *_BROKEN_PNG_BODIES])
def test_a_broken_image_file_is_named_when_the_source_is_made(tmp_path, kind):
    """Not a TensorFlow error without a file name at whatever step first reads it (a PNG with
    a valid head and end but a damaged middle included: its chunks and data are checked)."""
    from PIL import Image
    picture = Image.fromarray(np.full((6, 6, 3), 200, np.uint8))
    picture.save(tmp_path / "good.png")
    name = {"truncated_gif": "x.gif", "truncated_bmp": "x.bmp", "empty_jpeg": "x.jpg"}.get(
        kind, "x.png")
    if kind == "text_named_png":
        (tmp_path / name).write_text("not an image")
    elif kind == "empty_jpeg":
        (tmp_path / name).write_bytes(b"")
    elif kind in _BROKEN_PNG_BODIES:
        (tmp_path / name).write_bytes(_png_with_body(_BROKEN_PNG_BODIES[kind]))
        with pytest.raises(tf.errors.InvalidArgumentError):  # what a step would have met
            tf.io.decode_png((tmp_path / name).read_bytes())
    else:
        picture.save(tmp_path / name, format=name[2:].upper())
        content = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(content[:len(content) // 2])
    problem = {"text_named_png": "not a PNG, JPEG, GIF or BMP image (it starts with b'not an i')",
               "truncated_png": "a truncated PNG", "truncated_gif": "a truncated GIF",
               "truncated_bmp": "a truncated BMP", "empty_jpeg": "empty"}.get(
                   kind, "a damaged PNG (")
    with pytest.raises(ConfigError) as error:
        data.image_folder_source(directory=str(tmp_path), resolution=4)
    assert str(error.value).startswith(f"image file '{tmp_path / name}' is {problem}")


def test_the_png_check_accepts_every_kind_of_png(tmp_path):
    """No false refusals: grey, grey+alpha, palette, RGB, RGBA, 16-bit, 1-bit and interlaced
    PNGs, and one whose data is split over many IDAT chunks, pass the check and decode."""
    from PIL import Image
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 29, 3), np.uint8)
    grey = Image.fromarray(rgb[..., 0])
    pictures = {"l": grey, "la": grey.convert("LA"), "p": Image.fromarray(rgb).convert("P"),
                "rgb": Image.fromarray(rgb), "rgba": Image.fromarray(rgb).convert("RGBA"),
                "one_bit": Image.fromarray(rgb[..., 0] > 128),
                "i16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)}
    for name, picture in pictures.items():
        picture.save(tmp_path / f"{name}.png")
    Image.fromarray(rgb).save(tmp_path / "interlaced.png", interlace=1)
    raw = b"".join(b"\x00" + bytes(r) for r in rgb.reshape(37, -1))
    packed = zlib.compress(raw)
    (tmp_path / "many_idat.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", (29).to_bytes(4, "big") +
                                         (37).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])) +
        b"".join(_png_chunk(b"IDAT", packed[i:i + 7]) for i in range(0, len(packed), 7)) +
        _png_chunk(b"IEND", b""))
    source = data.image_folder_source(directory=str(tmp_path), resolution=8)
    assert source.num_examples == 9
    images, _ = take(source.dataset(seed=0, start=0), 9)
    assert images.shape == (9, 8, 8, 3)
    np.testing.assert_array_equal(
        tf.io.decode_png((tmp_path / "many_idat.png").read_bytes()).numpy(), rgb)


def test_tfds_unknown_name_and_not_prepared(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ConfigError, match=r"`name`='no_such_dataset_xyz'.*list_builders"):
        data.tfds_source(name="no_such_dataset_xyz", data_dir=str(tmp_path), resolution=8)
    with pytest.raises(FileNotFoundError) as info:
        data.tfds_source(name="mnist", data_dir=str(tmp_path), resolution=8)
    assert isinstance(info.value, data.TFDSNotPreparedError)
    message = str(info.value)
    assert str(tmp_path) in message and "tfds build mnist" in message and "data_dir" in message
