"""Read PyTorch checkpoints (`torch.save` files) as numpy arrays, without PyTorch and without
running anything from the file.

A `.pt`/`.pth` file is a pickle whose tensors refer to raw storages. Two layouts exist:
  * zip (PyTorch >= 1.6): an archive with `<name>/data.pkl` (the pickle), `<name>/byteorder`
    and one member `<name>/data/<key>` per storage, holding its raw bytes;
  * legacy (PyTorch < 1.6, e.g. the checkpoints published in 2018-2019): a sequence of pickles
    (the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a dict of system info,
    the object itself, the list of storage keys) followed by each storage as an 8-byte
    little-endian element count and the raw bytes.

A pickle can name any Python callable and call it while loading; this reader resolves only the
globals a state dict needs (tensor rebuilding, storage types, `collections.OrderedDict`) to
functions of its own that build numpy arrays, and refuses every other global with
`TorchPickleError` before it is looked up. Sizes are checked against the file before anything is
read, so a truncated or inconsistent file raises `TorchPickleError` (a ValueError) as well.

    state = load("celebahq-baab46b2.pt")   # nested dicts/lists with numpy arrays for tensors
"""
import io
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
_MAX_PICKLE_BYTES = 1 << 30  # the object pickle of a state dict is small; the data are storages

# Storage type name -> numpy dtype (little-endian). torch.cuda.* storages are read the same way:
# their bytes were copied to the host when the file was written.
_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # numpy has no bfloat16: widened to float32 after reading
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
_REBUILD_FUNCTIONS = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter")


class TorchPickleError(ValueError):
    """A file that is not a PyTorch checkpoint this reader accepts (one-line message)."""


class _StateDict(dict):
    """What `collections.OrderedDict` unpickles to. A state dict carries `_metadata` (per-module
    versions) as an attribute; it is kept in `.metadata` and not needed here."""

    def __setstate__(self, state):
        self.metadata = state


class _Storage:
    """A storage named by the pickle; its bytes are attached once the data are read."""

    def __init__(self, type_name, key, numel):
        self.type_name, self.key, self.numel = type_name, key, numel
        self.dtype = np.dtype(_STORAGE_DTYPES[type_name])
        self.array = None


class _Tensor:
    """A tensor rebuilt from (storage, offset, size, stride); an array once storages are read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise TypeError(f"a tensor's storage must be a storage, got {type(storage).__name__}")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride):
            raise ValueError(f"a tensor of size {self.size} has strides {self.stride}")

    def to_numpy(self, path):
        data = self.storage.array
        if any(s < 0 for s in self.size + self.stride) or self.offset < 0:
            raise TorchPickleError(f"{path}: a tensor has a negative size, stride or offset")
        if int(np.prod(self.size, dtype=np.float64)) > max(data.size, 1):
            raise TorchPickleError(  # an expanded (stride-0) tensor: never in a state dict
                f"{path}: a tensor of shape {self.size} has more elements than its storage "
                f"{self.storage.key!r} ({data.size})")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if 0 not in self.size and last >= data.size:
            raise TorchPickleError(
                f"{path}: a tensor of shape {self.size} reaches element {last} of storage "
                f"{self.storage.key!r}, which has {data.size}")
        if 0 in self.size:
            array = np.zeros(self.size, data.dtype)
        else:
            itemsize = data.dtype.itemsize
            array = np.lib.stride_tricks.as_strided(
                data[self.offset:], shape=self.size,
                strides=[s * itemsize for s in self.stride]).copy()
        if self.storage.type_name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    del requires_grad, backward_hooks
    return data


_REBUILD = {"_rebuild_tensor": _rebuild_tensor, "_rebuild_tensor_v2": _rebuild_tensor_v2,
            "_rebuild_parameter": _rebuild_parameter}


def _storage_type_name(module, name):
    if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
        return name
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of a state dict; every storage is recorded in `storages`."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return _StateDict
        if module == "torch._utils" and name in _REBUILD:
            return _REBUILD[name]
        if _storage_type_name(module, name):
            return f"{module}.{name}"  # a marker: storages are made by persistent_load
        raise TorchPickleError(
            f"{self.path}: refusing to load the pickled global {module}.{name}: a checkpoint may "
            f"only hold tensors, numbers, strings and containers (allowed globals: "
            f"collections.OrderedDict, torch._utils.{{{','.join(_REBUILD_FUNCTIONS)}}}, "
            f"torch[.cuda].<Type>Storage)")

    def persistent_load(self, pid):
        # zip: ('storage', type, key, location, numel); legacy: the same + view_metadata.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise TorchPickleError(f"{self.path}: unexpected persistent id {pid!r:.80}")
        type_marker, key, numel = pid[1], str(pid[2]), pid[4]
        if not (isinstance(type_marker, str) and type_marker.rsplit(".", 1)[-1] in _STORAGE_DTYPES):
            raise TorchPickleError(f"{self.path}: unsupported storage type {type_marker!r:.80}")
        if not isinstance(numel, int) or numel < 0:
            raise TorchPickleError(f"{self.path}: bad storage size {numel!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise TorchPickleError(f"{self.path}: storage views (PyTorch < 0.4) are not supported")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(type_marker.rsplit(".", 1)[-1], key, numel)
        return storage


MAX_NESTING = 64  # containers inside containers (a state dict nests two or three deep)


def _resolve(obj, path, depth=0):
    """Replaces every _Tensor in nested dicts/lists/tuples by its numpy array. Containers nested
    deeper than MAX_NESTING raise TorchPickleError (the unpickler builds any depth without
    recursing; walking it here would exhaust the stack)."""
    if isinstance(obj, _Tensor):
        return obj.to_numpy(path)
    if isinstance(obj, _Storage):
        raise TorchPickleError(f"{path}: a bare storage outside a tensor is not supported")
    if isinstance(obj, (dict, list, tuple)) and depth >= MAX_NESTING:
        raise TorchPickleError(f"{path}: containers nested deeper than {MAX_NESTING} levels: "
                               f"not a PyTorch checkpoint of a state dict")
    if isinstance(obj, dict):
        return {k: _resolve(v, path, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, path, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, path, depth + 1) for v in obj)
    return obj


def _unpickle(data_or_file, path):
    file = io.BytesIO(data_or_file) if isinstance(data_or_file, bytes) else data_or_file
    unpickler = _RestrictedUnpickler(file, path)
    try:
        obj = unpickler.load()
    except TorchPickleError:
        raise
    except EOFError:
        raise TorchPickleError(f"{path}: truncated (the file ends inside a pickle)") from None
    except Exception as e:  # noqa: BLE001  (any malformed pickle: one clear line)
        raise TorchPickleError(f"{path}: not a readable PyTorch checkpoint pickle "
                               f"({type(e).__name__}: {str(e)[:120]})") from None
    return obj, unpickler.storages


def _check_byteorder(path, little_endian):
    if not little_endian:
        raise TorchPickleError(f"{path}: written on a big-endian machine; only little-endian "
                               f"checkpoints are supported")


def _read_zip(path):
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise TorchPickleError(f"{path}: truncated or damaged zip archive ({e})") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        compressed = [i.filename for i in infos.values() if i.compress_type != zipfile.ZIP_STORED]
        if compressed:  # torch.save stores members uncompressed; sizes below are then bounded
            raise TorchPickleError(f"{path}: compressed zip member {compressed[0]!r}: not a "
                                   f"PyTorch checkpoint")
        pickles = [name for name in infos if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise TorchPickleError(f"{path}: a zip archive without exactly one <name>/data.pkl: "
                                   f"not a PyTorch checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        if prefix + "byteorder" in infos:
            _check_byteorder(path, archive.read(prefix + "byteorder").strip() == b"little")
        if infos[pickles[0]].file_size > _MAX_PICKLE_BYTES:
            raise TorchPickleError(f"{path}: data.pkl is implausibly large")
        try:
            obj, storages = _unpickle(archive.read(pickles[0]), path)
            for storage in storages.values():
                name = f"{prefix}data/{storage.key}"
                info = infos.get(name)
                expected = storage.numel * storage.dtype.itemsize
                if info is None or info.file_size != expected:
                    raise TorchPickleError(
                        f"{path}: storage {storage.key!r} should hold {expected} bytes but the "
                        f"archive has {'no member ' + name if info is None else info.file_size}")
                storage.array = np.frombuffer(archive.read(name), storage.dtype)
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
            raise TorchPickleError(f"{path}: truncated or damaged zip archive ({e})") from None
    return _resolve(obj, path)


def _read_legacy(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = []
        for what in ("magic number", "protocol version", "system info"):
            value, storages = _unpickle(f, path)
            if storages:
                raise TorchPickleError(f"{path}: unexpected tensors in the {what}")
            header.append(value)
        magic, protocol, sys_info = header
        if magic != LEGACY_MAGIC:
            raise TorchPickleError(f"{path}: not a PyTorch checkpoint (bad magic number)")
        if protocol != LEGACY_PROTOCOL:
            raise TorchPickleError(f"{path}: unsupported legacy protocol version {protocol!r}")
        if not isinstance(sys_info, dict):
            raise TorchPickleError(f"{path}: malformed system info")
        _check_byteorder(path, sys_info.get("little_endian", True))
        obj, storages = _unpickle(f, path)
        keys, extra = _unpickle(f, path)
        if extra or not isinstance(keys, list):
            raise TorchPickleError(f"{path}: malformed list of storage keys")
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise TorchPickleError(f"{path}: storage key {key!r} is not used by the pickle")
            count = f.read(8)
            if len(count) < 8:
                raise TorchPickleError(f"{path}: truncated (storage {key!r} is missing)")
            (numel,) = struct.unpack("<q", count)
            nbytes = numel * storage.dtype.itemsize
            if numel != storage.numel:
                raise TorchPickleError(f"{path}: storage {key!r} has {numel} elements but the "
                                       f"pickle says {storage.numel}")
            if f.tell() + nbytes > size:
                raise TorchPickleError(f"{path}: truncated (storage {key!r} needs {nbytes} bytes, "
                                       f"{size - f.tell()} remain)")
            storage.array = np.frombuffer(f.read(nbytes), storage.dtype)
        missing = [k for k, s in storages.items() if s.array is None]
        if missing:
            raise TorchPickleError(f"{path}: storages {missing[:3]} have no data")
    return _resolve(obj, path)


def load(path):
    """The object saved in the PyTorch checkpoint `path`, tensors as numpy arrays (dicts for
    OrderedDicts). Raises FileNotFoundError, or TorchPickleError for anything but a plain,
    complete checkpoint of tensors, numbers, strings and containers."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return _read_zip(path)
    if head[:1] == b"\x80":  # a pickle protocol >= 2: the legacy layout starts with the magic
        return _read_legacy(path)
    raise TorchPickleError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor the "
                           f"legacy pickle layout)")
