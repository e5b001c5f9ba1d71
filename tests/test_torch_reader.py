"""Safe torch checkpoint reading: fixtures load, hand-built archives decode exactly, and corrupt
or malicious files fail with a CheckpointError naming the file, without executing anything."""
import pickle
import struct
import zipfile

import numpy as np
import pytest

from dg_jax.convert.torch_reader import (
    CheckpointError,
    StorageType,
    TorchDtype,
    load_edm_pickle,
    load_torch_state_dict,
)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tensor_pickle(storage: bytes, key: str, numel: int, offset: int, size, stride) -> bytes:
    """Protocol-2 opcodes of `_rebuild_tensor_v2(pid-storage, offset, size, stride, False, OD())`."""
    tup = lambda items: b"(" + b"".join(items) + b"t"  # noqa: E731
    pid = tup([_unicode("storage"), _global("torch", storage), _unicode(key), _unicode("cpu"),
               _int(numel)]) + b"Q"
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _int(offset)
            + tup([_int(s) for s in size]) + tup([_int(s) for s in stride]) + b"\x89"
            + _global("collections", "OrderedDict") + b")R" + b"tR")


def _state_dict_pickle(entries) -> bytes:
    body = b"".join(_unicode(name) + tensor for name, tensor in entries)
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."


def _write_zip(path, entries, storages):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _state_dict_pickle(entries))
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


def test_zip_archive_decodes_strides_offsets_and_dtypes(tmp_path):
    base = np.arange(24, dtype=np.float32)
    entries = [
        ("w", _tensor_pickle("FloatStorage", "0", 24, 0, (2, 3, 4), (12, 4, 1))),
        ("wt", _tensor_pickle("FloatStorage", "0", 24, 1, (4, 3), (1, 4))),  # transposed view
        ("h", _tensor_pickle("HalfStorage", "1", 3, 0, (3,), (1,))),
        ("n", _tensor_pickle("LongStorage", "2", 2, 1, (1,), (1,))),
        ("b", _tensor_pickle("BoolStorage", "3", 2, 0, (2,), (1,))),
        ("d", _tensor_pickle("DoubleStorage", "4", 1, 0, (), ())),
    ]
    storages = {"0": base.tobytes(), "1": np.array([1, 2, 3], "<f2").tobytes(),
                "2": np.array([7, -5], "<i8").tobytes(), "3": b"\x01\x00",
                "4": np.array([2.5], "<f8").tobytes()}
    path = tmp_path / "sd.pt"
    _write_zip(path, entries, storages)
    sd = load_torch_state_dict(path)
    assert list(sd) == ["w", "wt", "h", "n", "b", "d"]
    np.testing.assert_array_equal(sd["w"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(sd["wt"], base[1:13].reshape(3, 4).T)
    assert sd["h"].dtype == np.float16 and sd["n"].dtype == np.int64 and sd["b"].dtype == bool
    np.testing.assert_array_equal(sd["n"], [-5])
    np.testing.assert_array_equal(sd["b"], [True, False])
    assert sd["d"].shape == () and sd["d"] == 2.5


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
    path = tmp_path / "short.pt"
    _write_zip(path, [("w", _tensor_pickle("FloatStorage", "0", 4, 2, (4,), (1,)))],
               {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(CheckpointError, match="short.pt"):
        load_torch_state_dict(path)


def test_foreign_global_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "executed"
    payload = b"\x80\x02" + _global("os", "system") + b"(" + _unicode(f"touch {marker}") + b"tR."
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"evil\.pkl.*os\.system"):
        load_edm_pickle(pkl)
    pt = tmp_path / "evil.pt"
    with zipfile.ZipFile(pt, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*os\.system"):
        load_torch_state_dict(pt)
    builtin = tmp_path / "eval.pkl"
    builtin.write_bytes(b"\x80\x02" + _global("builtins", "eval") + b"(" + _unicode("1") + b"tR.")
    with pytest.raises(CheckpointError, match="builtins.eval"):
        load_edm_pickle(builtin)
    assert not marker.exists()


def test_pickle_without_ema_and_garbage_files(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError, match="plain.pkl.*'ema'"):
        load_edm_pickle(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_torch_state_dict(junk)
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_torch_state_dict(tmp_path / "missing.pt")


def test_fixture_state_dicts_load(shared_fixtures):
    files = sorted((shared_fixtures / "parity").glob("*.pt"))
    if not files:
        pytest.skip("no .pt fixtures present")
    for path in files:
        sd = load_torch_state_dict(path)
        assert sd and all(isinstance(v, np.ndarray) for v in sd.values()), path
        assert all(np.all(np.isfinite(v)) for v in sd.values() if v.dtype.kind == "f"), path


def test_fixture_edm_pickles_load(shared_fixtures):
    files = sorted((shared_fixtures / "parity").glob("*.pkl"))
    if not files:
        pytest.skip("no .pkl fixtures present")
    for path in files:
        net = load_edm_pickle(path)
        assert net.class_name.endswith("Precond"), path
        assert net.init_kwargs["model_type"] in ("SongUNet", "DhariwalUNet")
        assert "img_resolution" in net.init_kwargs
        assert any(k.startswith("model.") and k.endswith(".weight") for k in net.state)
        assert all(v.dtype == np.float32 for v in net.state.values())


def test_truncated_copies_fail_cleanly(shared_fixtures, tmp_path):
    root = shared_fixtures / "parity"
    cases = [(p, load_edm_pickle) for p in sorted(root.glob("*.pkl"))[:1]]
    cases += [(p, load_torch_state_dict) for p in sorted(root.glob("*.pt"))[:1]]
    if not cases:
        pytest.skip("no checkpoint fixtures present")
    for src, loader in cases:
        data = src.read_bytes()
        for cut in (len(data) // 3, len(data) - 100):
            dst = tmp_path / f"trunc_{cut}_{src.name}"
            dst.write_bytes(data[:cut])
            with pytest.raises(CheckpointError, match=dst.name):
                loader(dst)


def test_legacy_stream_roundtrip(tmp_path):
    """A legacy (non-zip) torch.save stream: magic, protocol, sys info, pickle, keys, storages."""
    head = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    main = _state_dict_pickle([("w", _tensor_pickle("FloatStorage", "k", 6, 0, (2, 3), (3, 1)))])
    keys = pickle.dumps(["k"], protocol=2)
    data = head + main + keys + struct.pack("<q", 6) + np.arange(6, dtype="<f4").tobytes()
    path = tmp_path / "legacy.pt"
    path.write_bytes(data)
    sd = load_torch_state_dict(path)
    np.testing.assert_array_equal(sd["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    trunc = tmp_path / "legacy_trunc.pt"
    trunc.write_bytes(data[:-8])
    with pytest.raises(CheckpointError, match="legacy_trunc.pt"):
        load_torch_state_dict(trunc)


def test_dtype_stand_ins_are_distinct_and_frozen():
    assert TorchDtype("float16").np_dtype == np.dtype("<f2")
    assert StorageType("HalfStorage").np_dtype == np.dtype("<f2")
    assert StorageType("LongStorage").np_dtype == np.dtype("<i8")
    assert TorchDtype("float32") == TorchDtype("float32") != StorageType("float32")
    assert repr(StorageType("FloatStorage")) == "StorageType(name='FloatStorage')"
    with pytest.raises(AttributeError):
        TorchDtype("float32").name = "int8"
    with pytest.raises(KeyError):
        _ = StorageType("float32").np_dtype  # a dtype name is not a storage class name
