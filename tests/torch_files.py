"""Writes PyTorch checkpoint files (zip and legacy layouts) without PyTorch, for the tests of the
restricted reader: a small protocol-2 pickle writer whose objects are plain values, `Global`s,
`Call`s (a callable and its arguments: REDUCE) and `PersistentId`s, so that a test can put any
pickled global into a file, the way a malicious file would."""
import io
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage",
                 np.dtype(np.bool_): "BoolStorage"}


class Global:
    def __init__(self, module, name):
        self.module, self.name = module, name


class Call:
    def __init__(self, func, args):
        self.func, self.args = func, tuple(args)


class PersistentId:
    def __init__(self, value):
        self.value = value


class Tensor:
    """A tensor as PyTorch pickles it: a view (offset, size, stride in elements) of a storage,
    a 1-D numpy array named `key`."""

    def __init__(self, storage, key, offset=0, size=None, stride=None, *, storage_type=None,
                 module="torch", rebuild="_rebuild_tensor_v2"):
        self.storage, self.key, self.offset = np.ascontiguousarray(storage).ravel(), key, offset
        # e.g. 'BFloat16Storage' for uint16 bit patterns; module 'torch.cuda' for GPU storages;
        # rebuild '_rebuild_tensor' (PyTorch < 0.4: no requires_grad, no hooks).
        self.storage_type = storage_type or STORAGE_TYPES[self.storage.dtype]
        self.module, self.rebuild = module, rebuild
        self.size = tuple(size) if size is not None else (self.storage.size,)
        if stride is None:
            stride, n = [], 1
            for s in reversed(self.size):
                stride.insert(0, n)
                n *= s
        self.stride = tuple(stride)

    @classmethod
    def of(cls, array, key):
        array = np.asarray(array)
        return cls(array.ravel(), key, 0, array.shape)


def _tensor_object(tensor, legacy):
    storage_type = Global(tensor.module, tensor.storage_type)
    location = "cuda:0" if tensor.module == "torch.cuda" else "cpu"
    pid = ("storage", storage_type, tensor.key, location, int(tensor.storage.size))
    if legacy:
        pid = pid + (None,)
    args = (PersistentId(pid), tensor.offset, tensor.size, tensor.stride)
    if tensor.rebuild == "_rebuild_tensor_v2":
        args += (False, Call(Global("collections", "OrderedDict"), ()))
    return Call(Global("torch._utils", tensor.rebuild), args)


def dumps(obj, *, legacy=False):
    """A protocol-2 pickle of `obj` (Tensors become PyTorch's tensor records)."""
    out = io.BytesIO()

    def write(x):
        if isinstance(x, Tensor):
            write(_tensor_object(x, legacy))
        elif isinstance(x, Global):
            out.write(b"c" + x.module.encode() + b"\n" + x.name.encode() + b"\n")
        elif isinstance(x, Call):
            write(x.func)
            write(x.args)
            out.write(b"R")
        elif isinstance(x, PersistentId):
            write(x.value)
            out.write(b"Q")
        elif x is None:
            out.write(b"N")
        elif x is True or x is False:
            out.write(b"\x88" if x else b"\x89")
        elif isinstance(x, int):
            if -2 ** 31 <= x < 2 ** 31:
                out.write(b"J" + struct.pack("<i", x))
            else:
                data = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
                out.write(b"\x8a" + bytes([len(data)]) + data)
        elif isinstance(x, float):
            out.write(b"G" + struct.pack(">d", x))
        elif isinstance(x, str):
            data = x.encode()
            out.write(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(x, tuple):
            out.write(b"(")
            for item in x:
                write(item)
            out.write(b"t")
        elif isinstance(x, list):
            out.write(b"](")
            for item in x:
                write(item)
            out.write(b"e")
        elif isinstance(x, dict):
            out.write(b"}(")
            for key, value in x.items():
                write(key)
                write(value)
            out.write(b"u")
        else:
            raise TypeError(type(x))

    out.write(b"\x80\x02")
    write(obj)
    out.write(b".")
    return out.getvalue()


def _storages(obj, found):
    if isinstance(obj, Tensor):
        found.setdefault(obj.key, obj.storage)
    elif isinstance(obj, dict):
        for v in obj.values():
            _storages(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _storages(v, found)
    elif isinstance(obj, Call):
        _storages(obj.args, found)
    return found


def write_zip(path, obj, *, name="archive"):
    """PyTorch >= 1.6 layout: <name>/data.pkl, <name>/byteorder, <name>/data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/data.pkl", dumps(obj))
        archive.writestr(f"{name}/byteorder", "little")
        for key, storage in _storages(obj, {}).items():
            archive.writestr(f"{name}/data/{key}", storage.astype(storage.dtype.newbyteorder("<"))
                             .tobytes())
        archive.writestr(f"{name}/version", "3\n")


def write_legacy(path, obj):
    """PyTorch < 1.6 layout: magic, protocol, system info, object, storage keys (pickles),
    then every storage as an int64 element count and its bytes."""
    storages = _storages(obj, {})
    with open(path, "wb") as f:
        f.write(dumps(LEGACY_MAGIC))
        f.write(dumps(1001))
        f.write(dumps({"protocol_version": 1001, "little_endian": True,
                       "type_sizes": {"short": 2, "int": 4, "long": 4}}))
        f.write(dumps(obj, legacy=True))
        f.write(dumps(list(storages)))
        for storage in storages.values():
            f.write(struct.pack("<q", storage.size))
            f.write(storage.tobytes())


def nested_lists_pickle(depth):
    """A protocol-2 pickle of `depth` lists, each inside the one before (written flat: the
    unpickler builds it without recursing)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def write_zip_pickle(path, data_pkl, *, name="archive"):
    """The zip layout around given data.pkl bytes (no storages)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{name}/data.pkl", data_pkl)
        archive.writestr(f"{name}/byteorder", "little")
        archive.writestr(f"{name}/version", "3\n")
