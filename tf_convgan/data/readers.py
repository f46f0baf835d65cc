"""File formats and where to find them: numpy ``.npy`` / ``.npz`` files, IDX files and the
Fashion-MNIST directory (``$TF_CONVGAN_FASHION_MNIST_DIR`` and default directories), image
folders and image file checks, and tensorflow-datasets builders (never downloading by
themselves).

A file that is missing raises ``FileNotFoundError``; a file that is there but is not what it
should be raises :class:`~tf_convgan.errors.ConfigError` naming it.

Paths may be URLs (``gs://bucket/data``, ...): those are read through ``tf.io.gfile``.
"""
from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from typing import Optional, Sequence

import numpy as np

from tf_convgan.errors import ConfigError

FASHION_MNIST_ENV_VAR = "TF_CONVGAN_FASHION_MNIST_DIR"
_FASHION_MNIST_DEFAULT_DIRS = (
    os.path.join("..", "shared", "data", "fashion_mnist"),  # relative to the working dir
    "/usr/share/datasets/fashion-mnist",  # Debian package dataset-fashion-mnist
)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path) -> bool:
    """Whether `path` names a file through a filesystem scheme (gs://, s3://, ram://, ...)."""
    return bool(_URL.match(os.fspath(path)))


def isfile(path) -> bool:
    if is_url(path):
        import tensorflow as tf
        return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    return os.path.isfile(path)


def isdir(path) -> bool:
    if is_url(path):
        import tensorflow as tf
        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def open_binary(path):
    """A binary file object for reading, local (open) or a URL (tf.io.gfile.GFile)."""
    if is_url(path):
        import tensorflow as tf
        return tf.io.gfile.GFile(path, "rb")
    return open(path, "rb")


def absolute(path) -> str:
    return os.fspath(path) if is_url(path) else os.path.abspath(path)


class TFDSNotPreparedError(FileNotFoundError):
    """A tensorflow-datasets dataset is not prepared in the searched data_dir."""


# --------------------------------------------------------------------------- numpy


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _load_numpy(path: str, name: str):
    """np.load of a .npy or .npz file (no pickles); anything else is a ConfigError naming it."""
    with open_binary(path) as f:
        head = f.read(6)
    if head[:6] != _NPY_MAGIC and head[:4] != _ZIP_MAGIC:
        raise ConfigError(f"`{name}` {path!r} is neither a .npy nor a .npz file (it starts with "
                          f"{head!r}).")
    try:
        if is_url(path):
            with open_binary(path) as f:
                return np.load(io.BytesIO(f.read()), allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError(f"`{name}` {path!r} cannot be read as numpy data: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}.") from None


# --------------------------------------------------------------------------- IDX

_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzip-compressed, detected by content) into numpy.

    Format: 2 zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, then
    that many big-endian uint32 sizes, then the data in row-major order.
    """
    path = os.fspath(path)
    with open_binary(path) as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ConfigError(f"{path!r}: damaged gzip data ({e}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path!r} is not an IDX file (bad magic {raw[:4]!r}).")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise ConfigError(f"{path!r}: invalid IDX header {raw[:4]!r}: {ndim} dimensions (the "
                          f"magic is 2 zero bytes, a type code 0x08-0x0E, then 1 to "
                          f"{_IDX_MAX_DIMS} dimensions).")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{path!r}: truncated IDX header.")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ConfigError(f"{path!r}: IDX header says shape {shape} ({count} values) but the "
                          f"file has {len(raw) - header} data bytes.")
    data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


_IDX_MAX_DIMS = 8  # images and labels have 3 and 1; the format allows 255


_IDX_SPLITS = {"train": "train", "t10k": "t10k", "test": "t10k"}


def _idx_file(directory: str, prefix: str, kind: str, ndim: int) -> Optional[str]:
    for name in (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}-idx{ndim}-ubyte.gz",
                 f"{prefix}-{kind}.idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte.gz"):
        candidate = os.path.join(directory, name)
        if isfile(candidate):
            return candidate
    return None


def _fashion_mnist_help(tried: Sequence[str], prefix: str, extra: str = "") -> str:
    places = "\n".join(f"  - {p}" for p in tried)
    return (
        f"Fashion-MNIST / IDX files '{prefix}-images-idx3-ubyte[.gz]' not found. Looked in:\n"
        f"{places}\n{extra}"
        "To get the data: set the environment variable "
        f"{FASHION_MNIST_ENV_VAR}=/path/to/dir (or gin `idx_source.directory` / "
        "`fashion_mnist_source.directory`), or `apt-get install dataset-fashion-mnist` "
        "(installs /usr/share/datasets/fashion-mnist), or download the four files "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist "
        "into one directory.")


def _find_idx_directory(directory: Optional[str], prefix: str, extra: str = "") -> str:
    if directory is not None:
        candidates = [("`directory`", os.fspath(directory))]
    else:
        candidates = []
        env = os.environ.get(FASHION_MNIST_ENV_VAR)
        if env:
            candidates.append((f"${FASHION_MNIST_ENV_VAR}", env))
        candidates += [("default", d) for d in _FASHION_MNIST_DEFAULT_DIRS]
    tried = []
    for origin, candidate in candidates:
        if _idx_file(candidate, prefix, "images", 3) is not None:
            return candidate
        tried.append(f"{candidate} ({origin}; absolute: {absolute(candidate)})")
    raise FileNotFoundError(_fashion_mnist_help(tried, prefix, extra))


def check_idx_split(split) -> str:
    """`split`; ConfigError unless it is 'train', 't10k' or 'test' (= 't10k')."""
    if split not in _IDX_SPLITS:
        raise ConfigError(f"`split` must be one of {tuple(_IDX_SPLITS)}, got {split!r}.")
    return split


def _load_idx_split(directory: Optional[str], split: str, extra: str = ""):
    """(directory found, file prefix, images, labels or None) of a checked `split`."""
    prefix = _IDX_SPLITS[split]
    found = _find_idx_directory(directory, prefix, extra)
    images = read_idx(_idx_file(found, prefix, "images", 3))
    labels_file = _idx_file(found, prefix, "labels", 1)
    labels = read_idx(labels_file) if labels_file is not None else None
    return found, prefix, images, labels


# --------------------------------------------------------------------------- image folder


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
_PNG_READ = 1 << 20


class _PNGData:
    """The image data of a PNG inflated piece by piece (at most 1 MiB of output at a time):
    its size against the one IHDR announces and, without interlacing, each row's filter byte."""

    def __init__(self, header):
        width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
        self.row = 1 + (width * header[8] * _PNG_CHANNELS[header[9]] + 7) // 8
        self.expected = None if header[12] else self.row * height  # Adam7: that it inflates
        self.limit = self.expected if self.expected is not None else 2 * self.row * height + 1024
        self.inflate, self.done = zlib.decompressobj(), 0

    def feed(self, compressed) -> Optional[str]:
        try:
            data = self.inflate.decompress(compressed, _PNG_READ)
            while data:
                if self.expected is not None:
                    first = (-self.done) % self.row  # where the next row's filter byte is
                    if any(b > 4 for b in data[first::self.row]):
                        return "an invalid row filter in its image data"
                self.done += len(data)
                if self.done > self.limit:
                    return "more image data than its size announces"
                data = self.inflate.decompress(self.inflate.unconsumed_tail, _PNG_READ)
        except zlib.error as e:
            return f"its image data cannot be inflated: {e}"
        return None

    def end(self) -> Optional[str]:
        if not self.inflate.eof:
            return "its image data is incomplete"
        if self.expected is not None and self.done != self.expected:
            return f"its image data holds {self.done} bytes, its size announces {self.expected}"
        return None


def _png_problem(f) -> Optional[str]:
    """What is wrong with the PNG file object `f` (None when nothing is): every chunk's CRC, and
    the image data (_PNGData). This is what a decoder would trip over at the step that first
    reads the file; it costs one pass over the file's bytes."""
    f.seek(len(_PNG_SIGNATURE))
    image = None
    while True:
        start = f.read(8)
        if len(start) < 8:
            return "a damaged PNG (it ends before its IEND chunk)"
        length, kind = int.from_bytes(start[:4], "big"), start[4:]
        crc, remaining, header = zlib.crc32(kind), length, b""
        if kind == b"IDAT" and image is None:
            return "a damaged PNG (image data before its IHDR chunk)"
        while remaining:
            piece = f.read(min(remaining, _PNG_READ))
            if not piece:
                return "a damaged PNG (it ends inside a chunk)"
            crc = zlib.crc32(piece, crc)
            remaining -= len(piece)
            if kind == b"IDAT":
                problem = image.feed(piece)
                if problem:
                    return f"a damaged PNG ({problem})"
            elif kind == b"IHDR":
                header += piece[:13 - len(header)]
        stored = f.read(4)
        if len(stored) < 4 or int.from_bytes(stored, "big") != crc:
            return f"a damaged PNG (the checksum of its {kind.decode('latin-1')!r} chunk is wrong)"
        if kind == b"IHDR":
            if length != 13 or header[9] not in _PNG_CHANNELS or image is not None:
                return "a damaged PNG (its IHDR chunk is malformed)"
            image = _PNGData(header)
        elif kind == b"IEND":
            problem = image.end() if image is not None else "it has no IHDR chunk"
            return f"a damaged PNG ({problem})" if problem else None


def _check_image_file(path: str) -> None:
    """Raises ConfigError naming `path` unless it starts like a PNG, JPEG, GIF or BMP image
    (what tf.io.decode_image reads) and, for PNG, GIF and BMP, ends like one: a text file with
    an image's name or a truncated file fails here, before training, not at the step that
    first reads it. (Two small reads per file; a PNG is also read through once, its chunks'
    checksums and its image data checked by _png_problem.)"""
    with open_binary(path) as f:
        head = f.read(26)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read()
    problem = None
    if head.startswith(_PNG_SIGNATURE):
        if b"IEND" not in tail:
            problem = "a truncated PNG (no IEND chunk at its end)"
        else:
            with open_binary(path) as f:
                problem = _png_problem(f)
    elif head.startswith(b"\xff\xd8\xff"):
        pass  # JPEG: decoders accept data after the end marker, so the end says little
    elif head.startswith((b"GIF87a", b"GIF89a")):
        if b"\x3b" not in tail[-16:]:
            problem = "a truncated GIF (no trailer byte at its end)"
    elif head.startswith(b"BM") and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        if declared > size:
            problem = f"a truncated BMP ({size} of {declared} bytes)"
    else:
        problem = (f"not a PNG, JPEG, GIF or BMP image (it starts with {head[:8]!r})"
                   if head else "empty")
    if problem:
        raise ConfigError(f"image file {path!r} is {problem}.")


def _find_image_files(directory: str, extensions: tuple) -> list:
    """The image files under `directory` (recursive) whose names end with one of the lower-case
    `extensions`, as paths relative to `directory` sorted by path components; each is checked
    by _check_image_file. FileNotFoundError without the directory, ConfigError without files."""
    if not isdir(directory):
        raise FileNotFoundError(f"`directory` {directory!r} does not exist or is not a directory.")
    relative = []
    if is_url(directory):
        import tensorflow as tf
        walk = ((root, [d.rstrip("/") for d in dirs], files)
                for root, dirs, files in tf.io.gfile.walk(directory))
    else:
        walk = os.walk(directory)
    for root, dirs, files in walk:
        dirs.sort()
        for name in files:
            if name.lower().endswith(extensions):
                if is_url(directory):
                    inside = root[len(directory.rstrip("/")):].strip("/")
                    relative.append(f"{inside}/{name}" if inside else name)
                else:
                    relative.append(os.path.relpath(os.path.join(root, name), directory))
    relative.sort(key=lambda p: p.split(os.sep))
    if not relative:
        raise ConfigError(f"`directory` {directory!r} contains no image files with extensions "
                          f"{extensions}.")
    for path in relative:
        _check_image_file(os.path.join(directory, path))
    return relative


# --------------------------------------------------------------------------- tfds


def _tfds_builder(name: str, data_dir: Optional[str]):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConfigError(
            f"tfds_source: unknown tensorflow-datasets dataset `name`={name!r} (not a "
            f"registered builder and no prepared copy in data_dir={data_dir!r}): {first_line} "
            "See tfds.list_builders() for the registered names.") from None


def _not_prepared_message(name: str, builder, data_dir: Optional[str]) -> str:
    root = data_dir if data_dir is not None else os.fspath(
        getattr(builder, "data_dir_root", None) or "tfds default ($TFDS_DATA_DIR or "
        "~/tensorflow_datasets)")
    return (
        f"tensorflow-datasets dataset {name!r} is not prepared: searched `data_dir`={root!r} "
        f"(expected {os.fspath(builder.data_dir)!r}) and downloading is off (download=False). "
        f"Prepare it on a machine with internet: `tfds build {name} --data_dir=DIR` (or "
        f"tfds.builder({name!r}, data_dir=DIR).download_and_prepare()) and copy DIR here, then "
        "pass data_dir=DIR (gin `tfds_source.data_dir`); or point data_dir at a prepared copy "
        "(e.g. a GCS bucket); or pass download=True on a machine with internet.")
