"""launch.convert: official checkpoints -> orbax + arch.json -> the same outputs."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from dg_jax.convert.matcher import DEFAULT_HINT, StateDictMismatch, match_state_dict
from dg_jax.convert.saved import (
    Converted,
    convert_checkpoint,
    load_converted,
    load_weights,
    save_converted,
)
from dg_jax.convert.torch_reader import CheckpointError
from dg_jax.errors import ConfigError

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _case(root, kind):
    return next(c for c in json.loads((root / "manifest.json").read_text())["cases"]
                if c["kind"] == kind)


@pytest.mark.slow
def test_edm_pickle_round_trip(shared_fixtures, tmp_path):
    root = shared_fixtures / "parity"
    case = _case(root, "edm_denoiser")
    out = tmp_path / "edm"
    cmd = [sys.executable, "-m", "launch.convert", "--kind=edm",
           f"--checkpoint={root / case['checkpoint']}", f"--output={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = load_converted(out)
    io = np.load(root / case["io"])
    x = jnp.asarray(io["x"].transpose(0, 2, 3, 1))
    labels = io["class_labels"] if io["class_labels"].size else None
    d = loaded.model(loaded.params, x, jnp.asarray(io["sigma"]), labels)
    np.testing.assert_allclose(np.asarray(d).transpose(0, 3, 1, 2), io["denoised"],
                               rtol=case["rtol"], atol=case["atol"])


@pytest.mark.slow
def test_dg_discriminator_round_trip(shared_fixtures, tmp_path):
    root = shared_fixtures / "parity"
    case = _case(root, "dg_discriminator")
    conv = convert_checkpoint("dg_discriminator", {"classifier": root / case["classifier"],
                                                   "checkpoint": root / case["checkpoint"]},
                              case["classifier_arch"], case["arch"])
    save_converted(conv, tmp_path / "disc")
    loaded = load_converted(tmp_path / "disc")
    io = np.load(root / case["io"])
    x = jnp.asarray(io["x"].transpose(0, 2, 3, 1))
    d = loaded.model.prob(loaded.params, x, jnp.asarray(io["t"]))
    np.testing.assert_allclose(d, io["d"], rtol=case["rtol"], atol=case["atol"])
    with pytest.raises(FileExistsError):
        save_converted(conv, tmp_path / "disc")


def test_convert_errors(tmp_path):
    with pytest.raises(ValueError, match="--kind"):
        convert_checkpoint("sdxl", {"checkpoint": "x"})
    with pytest.raises(ValueError, match="--flags"):
        convert_checkpoint("adm_unet", {"checkpoint": "x"})
    with pytest.raises(CheckpointError, match="no arch.json"):
        load_converted(tmp_path)


# ------------------------------------------------------------------- one state-dict matcher

def test_matcher_names_missing_unexpected_and_misshaped_in_one_error():
    expected = {"a.weight": (4, 3), "b.weight": (2,), "c.bias": (5,), "d.scale": (1,)}
    sd = {"a.weight": np.zeros((3, 4), np.float32), "c.bias": np.ones(5, np.float16),
          "d.scale": np.zeros(1, np.int64), "x.extra": np.zeros((2, 2), np.float32),
          "bn.num_batches_tracked": np.zeros((), np.int64)}
    with pytest.raises(StateDictMismatch) as err:
        match_state_dict(sd, expected, what="TinyNet", source="tiny.pt",
                         ignore=lambda k: k.endswith("num_batches_tracked"))
    e, msg = err.value, str(err.value)
    assert isinstance(e, CheckpointError) and isinstance(e, ValueError)
    assert msg.startswith("tiny.pt: state dict does not match TinyNet: missing tensors: ")
    assert "missing tensors: b.weight (2,)" in msg
    assert "unexpected tensors: x.extra (2, 2)" in msg
    assert "mis-shaped tensors: a.weight: file (3, 4) vs model (4, 3)" in msg
    assert "d.scale: file (1,) int64 vs model (1,) floating" in msg
    assert "num_batches_tracked" not in msg and "c.bias" not in msg
    assert "\n" not in msg and msg.endswith(DEFAULT_HINT)
    assert (e.missing, e.unexpected) == (["b.weight"], ["x.extra"])
    assert e.misshaped == [("a.weight", (3, 4), (4, 3))]
    assert e.mistyped == [("d.scale", np.dtype(np.int64))]
    # A matching dict comes back in the expected order, arrays as stored.
    good = {"c.bias": sd["c.bias"], "a.weight": np.zeros((4, 3), np.float32),
            "b.weight": np.zeros(2), "d.scale": np.zeros(1, np.float32)}
    found = match_state_dict(good, expected, what="TinyNet", source="tiny.pt")
    assert list(found) == list(expected) and found["c.bias"].dtype == np.float16


def test_matcher_lists_at_most_limit_names_per_kind():
    expected = {f"w{i}": (1,) for i in range(15)}
    with pytest.raises(StateDictMismatch) as err:
        match_state_dict({}, expected, what="Wide", source="wide.pt", hint="do X")
    msg = str(err.value)
    assert "missing tensors: w0 (1,), w1 (1,)" in msg and "w9 (1,), and 5 more; do X" in msg
    assert "w10" not in msg and len(err.value.missing) == 15


def _assert_three_kinds(load, state, source):
    """`load(state)` fails on a state dict missing one tensor, with one mis-shaped and one
    extra, with one message naming the file and all three, shapes in the file's layout."""
    bent = sorted(k for k, v in state.items() if np.ndim(v) >= 2)[-1]
    gone = sorted(k for k, v in state.items() if np.ndim(v) >= 1 and k != bent)[0]
    broken = {k: v for k, v in state.items() if k != gone}
    want = tuple(state[bent].shape)
    bad = want[:-1] + (want[-1] + 1,)
    broken[bent] = np.zeros(bad, np.float32)
    broken["bogus.extra"] = np.zeros((2, 3), np.float32)
    with pytest.raises(StateDictMismatch) as err:
        load(broken)
    msg = str(err.value)
    assert msg.startswith(f"{source}: state dict does not match ")
    assert f"missing tensors: {gone} {tuple(state[gone].shape)}" in msg
    assert "unexpected tensors: bogus.extra (2, 3)" in msg
    assert f"mis-shaped tensors: {bent}: file {bad} vs model {want}" in msg
    assert err.value.missing == [gone] and err.value.unexpected == ["bogus.extra"]


def test_edm_converter_uses_the_matcher():
    from dg_jax.convert.edm import edm_variable_shapes, map_edm_state_dict, torch_name, torch_shape
    from dg_jax.models.edm_layers import resample_filter_2d
    from dg_jax.models.edm_precond import edm_precond_from_kwargs

    precond = edm_precond_from_kwargs("EDMPrecond", dict(
        img_resolution=8, img_channels=3, label_dim=0, model_type="DhariwalUNet",
        model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0))
    variables = edm_variable_shapes(precond)
    state = {torch_name(p): np.zeros(torch_shape(s.shape), np.float32)
             for p, s in traverse_util.flatten_dict(variables["params"]).items()}
    filt = resample_filter_2d(getattr(precond.model, "resample_filter", (1, 1)))[None, None]
    state.update({torch_name(p): filt for p in traverse_util.flatten_dict(variables["buffers"])})
    params, _ = map_edm_state_dict(state, precond, source="net.pkl")  # the layouts agree
    assert params["enc_8x8_conv"]["weight"].shape == (3, 3, 3, 16)
    _assert_three_kinds(lambda sd: map_edm_state_dict(sd, precond, source="net.pkl"), state,
                        "net.pkl")


def test_adm_converter_uses_the_matcher():
    from dg_jax.convert.adm import param_shapes, state_dict_to_params, torch_key, torch_shape
    from dg_jax.models.adm import EncoderUNetModel

    module = EncoderUNetModel(image_size=8, in_channels=3, model_channels=32, out_channels=4,
                              num_res_blocks=1, attention_resolutions=(2,), channel_mult=(1, 2),
                              num_head_channels=32, pool="attention")
    flat = traverse_util.flatten_dict(param_shapes(module))
    state = {torch_key(p): np.zeros(torch_shape(p, s.shape), np.float32) for p, s in flat.items()}
    assert state["input_blocks.3.1.qkv.weight"].shape == (192, 64, 1)  # Conv1d: (O, I, 1)
    assert state["out.2.positional_embedding"].shape == (64, 17)
    state_dict_to_params(module, state, source="clf.pt")  # the layouts agree
    _assert_three_kinds(lambda sd: state_dict_to_params(module, sd, source="clf.pt"), state,
                        "clf.pt")


def test_inception_converter_uses_the_matcher():
    import dg_jax.models.inception as inc
    from dg_jax.convert.inception import map_state_dict

    module = inc.BasicConv2d(3, (1, 3), padding=(0, 1))
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, 4, 4, 2), jnp.float32))
    state = {"conv.weight": np.zeros((3, 2, 1, 3), np.float32), "bn.weight": np.ones(3),
             "bn.bias": np.zeros(3), "bn.running_mean": np.zeros(3), "bn.running_var": np.ones(3),
             "bn.num_batches_tracked": np.zeros((), np.int64)}
    out = map_state_dict(template, state, source="fid.pth")  # num_batches_tracked is ignored
    assert out["params"]["conv"]["kernel"].shape == (1, 3, 2, 3)
    _assert_three_kinds(lambda sd: map_state_dict(template, sd, source="fid.pth"), state,
                        "fid.pth")


# ------------------------------------------------------ one "load a checkpoint of kind K"

_CLASSIFIER_FLAGS = {"image_size": 8, "classifier_use_fp16": False, "classifier_width": 32,
                     "classifier_depth": 1, "classifier_attention_resolutions": "",
                     "classifier_use_scale_shift_norm": True, "classifier_resblock_updown": True,
                     "classifier_pool": "adaptive", "out_channels": 4}


def _saved_classifier(folder, dg_time):
    arch = {"kind": "adm_classifier", "flags": _CLASSIFIER_FLAGS, "dg_time": dg_time}
    params = {"params": {"w": np.zeros(2, np.float32)}}  # restored as is, never applied here
    return save_converted(Converted("adm_classifier", arch, None, params), folder)


def test_load_weights_checks_kind_and_arch_naming_the_field(tmp_path):
    folder = _saved_classifier(tmp_path / "noisy", dg_time=False)
    conv = load_weights(folder, "adm_classifier", field="cg.classifier",
                        require={"dg_time": False})
    assert conv.kind == "adm_classifier" and conv.model.time_scale == 1.0
    with pytest.raises(ConfigError, match=r"cg\.classifier=.*noisy holds a 'adm_classifier' "
                                          r"network; a 'edm' one is needed.*--kind=edm"):
        load_weights(folder, "edm", field="cg.classifier")
    with pytest.raises(ConfigError, match=r"cg\.classifier=.*dg_time=False; dg_time=True is "
                                          r"needed.*--kind=adm_classifier`"):
        load_weights(folder, "adm_classifier", field="cg.classifier", require={"dg_time": True})
    official = tmp_path / "classifier.pt"
    official.write_bytes(b"not read: the missing flags are found first")
    with pytest.raises(ConfigError, match=r"cg\.classifier=.*classifier\.pt is an official "
                                          r"adm_classifier file.*no flags.*--integer_time"
                                          r".*--flags"):
        load_weights(official, "adm_classifier", field="cg.classifier",
                     require={"dg_time": False})
    with pytest.raises(CheckpointError, match=r"disc\.classifier=.*nowhere not found"):
        load_weights(tmp_path / "nowhere", "adm_classifier", field="disc.classifier")
