"""tf_convgan.gan_stability.torch_pickle: PyTorch checkpoints read as numpy arrays without
PyTorch, and nothing but tensors and containers accepted."""
import os
import zipfile

import numpy as np
import pytest

from gan_stability_reference import REFERENCE_DIR
from tf_convgan.gan_stability import torch_pickle
from tf_convgan.gan_stability.torch_pickle import TorchPickleError
from torch_files import (Call, Global, Tensor, nested_lists_pickle, write_legacy, write_zip,
                         write_zip_pickle)

ZIP_CHECKPOINT = os.path.join(REFERENCE_DIR, "checkpoint_resnet_celeba_style.pt")
LEGACY_CHECKPOINT = os.path.join(REFERENCE_DIR, "checkpoint_resnet_celeba_style_legacy.pt")
needs_checkpoints = pytest.mark.skipif(
    not (os.path.isfile(ZIP_CHECKPOINT) and os.path.isfile(LEGACY_CHECKPOINT)),
    reason=f"GAN_stability checkpoints not found in {REFERENCE_DIR} "
           f"(set TF_CONVGAN_GAN_STABILITY_REFERENCE)")
WRITERS = {"zip": write_zip, "legacy": write_legacy}
BF16 = np.array([1.5, -2.0, 0.15625, 2.0 ** 100], np.float32)  # exact in bfloat16


@needs_checkpoints
def test_oracle_checkpoint_in_both_layouts():
    """Both files of the oracle hold the same tensors; the zip one is what torch.save wrote."""
    new, old = torch_pickle.load(ZIP_CHECKPOINT), torch_pickle.load(LEGACY_CHECKPOINT)
    assert list(new) == ["it", "generator", "discriminator", "g_optimizer", "d_optimizer",
                         "generator_test"]
    assert new["it"] == 2 == old["it"]
    generator = new["generator"]
    assert list(generator)[:3] == ["module.embedding.weight", "module.fc.weight",
                                   "module.fc.bias"]
    assert generator["module.fc.weight"].shape == (512, 17)  # linear [out, in]
    assert generator["module.resnet.2.conv_s.weight"].shape == (16, 32, 1, 1)
    for model in ("generator", "discriminator", "generator_test"):
        assert list(new[model]) == list(old[model])
        for name, value in new[model].items():
            assert value.dtype == np.float32 and np.array_equal(value, old[model][name]), name
    optimizer = new["g_optimizer"]
    group = optimizer["param_groups"][0]
    assert group["params"] == list(range(23)) and group["initial_lr"] == 0.0001
    state = optimizer["state"][1]
    assert set(state) == {"step", "square_avg"} and float(state["step"]) == 3.0
    assert state["square_avg"].shape == (512, 17) and (state["square_avg"] > 0).all()
    last = max(new["d_optimizer"]["state"])
    assert np.array_equal(old["d_optimizer"]["state"][last]["square_avg"],
                          new["d_optimizer"]["state"][last]["square_avg"])


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_dtypes_strides_offsets_and_shared_storages(tmp_path, layout):
    rng = np.random.default_rng(0)
    base = rng.standard_normal(30).astype(np.float32)
    obj = {
        "it": 7, "big": 2 ** 40, "lr": 1e-4, "name": "x", "flags": [True, None, (1, 2)],
        "float16": Tensor.of(rng.standard_normal((2, 3)).astype(np.float16), "a"),
        "float64": Tensor.of(rng.standard_normal(4), "b"),
        "int64": Tensor.of(np.arange(-3, 3, dtype=np.int64).reshape(2, 3), "c"),
        "uint8": Tensor.of(np.arange(250, 256, dtype=np.uint8), "d"),
        "scalar": Tensor.of(np.float32(3.0), "e"),
        # Two views of one storage: a transposed 4x5 block at offset 2, and the storage's tail.
        "transposed": Tensor(base, "shared", offset=2, size=(5, 4), stride=(1, 5)),
        "tail": Tensor(base, "shared", offset=22, size=(8,), stride=(1,)),
        "empty": Tensor(base, "shared", offset=0, size=(0, 3), stride=(3, 1)),
        # bfloat16 (the upper 16 bits of float32), a GPU storage of a 2018 checkpoint, the
        # pre-0.4 rebuild function and a pickled Parameter.
        "bfloat16": Tensor(BF16.view(np.uint32) >> 16, "f", storage_type="BFloat16Storage"),
        "cuda": Tensor.of(np.arange(3, dtype=np.float32), "g"),
        "old": Tensor(np.arange(4, dtype=np.float32), "h", rebuild="_rebuild_tensor"),
        "parameter": Call(Global("torch._utils", "_rebuild_parameter"),
                          (Tensor.of(np.ones(2, np.float32), "i"), True,
                           Call(Global("collections", "OrderedDict"), ()))),
    }
    obj["bfloat16"].storage = obj["bfloat16"].storage.astype(np.uint16)
    obj["cuda"].module = "torch.cuda"
    path = str(tmp_path / "c.pt")
    WRITERS[layout](path, obj)
    loaded = torch_pickle.load(path)
    assert (loaded["it"], loaded["big"], loaded["lr"], loaded["name"]) == (7, 2 ** 40, 1e-4, "x")
    assert loaded["flags"] == [True, None, (1, 2)]
    for key in ("float16", "float64", "int64", "uint8"):
        expected = obj[key].storage.reshape(obj[key].size)
        assert loaded[key].dtype == expected.dtype and np.array_equal(loaded[key], expected)
    assert loaded["scalar"].shape == () and loaded["scalar"] == 3.0
    assert np.array_equal(loaded["transposed"], base[2:22].reshape(4, 5).T)
    assert np.array_equal(loaded["tail"], base[22:])
    assert loaded["empty"].shape == (0, 3)
    assert loaded["bfloat16"].dtype == np.float32 and np.array_equal(loaded["bfloat16"], BF16)
    assert np.array_equal(loaded["cuda"], [0, 1, 2]) and np.array_equal(loaded["old"], range(4))
    assert np.array_equal(loaded["parameter"], [1, 1])


_MARKER_COMMAND = "touch {}"


def _malicious(marker):
    """A pickle that runs a shell command when a full unpickler loads it."""
    return {"generator": {"w": Tensor.of(np.zeros(2, np.float32), "0")},
            "payload": Call(Global(os.system.__module__, "system"),
                            (_MARKER_COMMAND.format(marker),))}


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_any_other_global_is_refused_and_never_called(tmp_path, layout):
    marker = tmp_path / "marker"
    path = str(tmp_path / "evil.pt")
    WRITERS[layout](path, _malicious(marker))
    with pytest.raises(TorchPickleError, match=r"refusing to load the pickled global "
                                               r"(posix|nt)\.system") as info:
        torch_pickle.load(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("global_", [("builtins", "eval"), ("torch", "load"),
                                     ("torch._utils", "_rebuild_qtensor"),
                                     ("collections", "Counter"), ("numpy", "ndarray")])
def test_only_the_state_dict_globals_are_allowed(tmp_path, global_):
    path = str(tmp_path / "c.pt")
    write_zip(path, {"x": Call(Global(*global_), ())})
    with pytest.raises(TorchPickleError, match=f"global {'.'.join(global_)}"):
        torch_pickle.load(path)


@needs_checkpoints
@pytest.mark.parametrize("source", [ZIP_CHECKPOINT, LEGACY_CHECKPOINT])
@pytest.mark.parametrize("fraction", [0.3, 0.999])
def test_truncated_file(tmp_path, source, fraction):
    data = open(source, "rb").read()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(TorchPickleError, match="truncated") as info:
        torch_pickle.load(str(path))
    assert "\n" not in str(info.value)


def test_inconsistent_sizes_are_refused(tmp_path):
    # A tensor reaching past its storage.
    path = str(tmp_path / "a.pt")
    write_legacy(path, {"w": Tensor(np.zeros(4, np.float32), "0", offset=2, size=(3,),
                                    stride=(1,))})
    with pytest.raises(TorchPickleError, match="reaches element 4 of storage '0', which has 4"):
        torch_pickle.load(path)
    # An expanded tensor (more elements than its storage): refused, not materialised.
    write_zip(path, {"w": Tensor(np.zeros(1, np.float32), "0", size=(10 ** 6, 10 ** 6),
                                 stride=(0, 0))})
    with pytest.raises(TorchPickleError, match="more elements than its storage"):
        torch_pickle.load(path)
    # A zip member shorter than the storage the pickle announces.
    write_zip(path, {"w": Tensor.of(np.zeros(4, np.float32), "0")})
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["archive/data/0"] = members["archive/data/0"][:8]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(TorchPickleError, match="storage '0' should hold 16 bytes"):
        torch_pickle.load(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"hello world")
    with pytest.raises(TorchPickleError, match="not a PyTorch checkpoint"):
        torch_pickle.load(str(path))
    with pytest.raises(FileNotFoundError):
        torch_pickle.load(str(tmp_path / "missing.pt"))


def test_containers_nested_100k_deep_are_one_line_not_a_recursion_error(tmp_path):
    """The unpickler builds any depth without recursing; resolving tensors walks it, so depth
    is bounded (a state dict nests two or three levels)."""
    path = str(tmp_path / "deep.pt")
    write_zip_pickle(path, nested_lists_pickle(100_000))
    with pytest.raises(TorchPickleError, match=r"deep.pt: containers nested deeper than 64 "
                                               r"levels") as info:
        torch_pickle.load(path)
    assert "\n" not in str(info.value)
    write_zip_pickle(path, nested_lists_pickle(64))  # as deep as accepted
    value, depth = torch_pickle.load(path), 1
    while value:
        value, depth = value[0], depth + 1
    assert depth == 64
