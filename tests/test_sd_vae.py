"""Stable Diffusion's VAE (diffusers AutoencoderKL): shapes, the diffusers-folder loader (safetensors
and .bin, legacy attention names, every error naming its file / tensor / field), the scaling
helpers, and parity against the official outputs in ../shared/fixtures/parity_dit."""
import json
import struct
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy

from conftest import random_params, rel_err
from dg_jax.convert.matcher import StateDictMismatch
from dg_jax.convert.saved import convert_checkpoint, load_converted, load_weights, save_converted
from dg_jax.convert.sd_vae import (
    load_sd_vae,
    params_to_state_dict,
    rename_legacy_attention,
    state_dict_to_params,
)
from dg_jax.errors import CheckpointError, ConfigError, JsonFileError
from dg_jax.models.sd_vae import (
    autoencoder_kl_from_config,
    decode_latents,
    encode_to_latents,
)

TINY = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
        "block_out_channels": [8, 16], "layers_per_block": 1, "act_fn": "silu",
        "latent_channels": 4, "norm_num_groups": 4, "sample_size": 8, "scaling_factor": 0.18215}


# one block (no resampling): the cheapest network that still has every kind of layer but the
# resamplers, for the tests that run it many times
MICRO = dict(block_out_channels=[8], down_block_types=["DownEncoderBlock2D"],
             up_block_types=["UpDecoderBlock2D"], sample_size=4)


def _tiny(**overrides):
    return autoencoder_kl_from_config({**TINY, **overrides})


def _variables(vae, seed=0):
    return {"params": random_params(vae, vae.example_images(), seed=seed)}


def _images(vae, batch=2, size=None, seed=1):
    size = size or vae.sample_size
    return jax.random.uniform(jax.random.PRNGKey(seed), (batch, size, size, vae.in_channels),
                              minval=-1, maxval=1)


def _write_folder(path, config, state_dict, weights="diffusion_pytorch_model.safetensors"):
    path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    if state_dict is not None:
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()},
                                    str(path / weights))
    return path


def _vae_cases(shared_fixtures):
    root = shared_fixtures / "parity_dit"
    if not (root / "manifest.json").is_file():
        pytest.skip(f"no parity manifest at {root}")
    cases = [c for c in json.loads((root / "manifest.json").read_text())["cases"]
             if c["kind"] in ("sd_vae_encode", "sd_vae_decode")]
    if not cases:
        pytest.skip(f"no sd_vae cases in {root / 'manifest.json'}")
    return root, cases


# ------------------------------------------------------------------ the network

def test_shapes_follow_the_config():
    """Each down block but the last halves the resolution; decode inverts encode's shapes."""
    for chans, lc, cin, cout, size in [((8, 16, 16), 4, 3, 3, 16), ((8,), 3, 1, 2, 6),
                                       ((8, 8), 2, 3, 3, 12)]:
        vae = _tiny(block_out_channels=list(chans), latent_channels=lc, in_channels=cin,
                    out_channels=cout, down_block_types=["DownEncoderBlock2D"] * len(chans),
                    up_block_types=["UpDecoderBlock2D"] * len(chans), sample_size=size)
        x = jnp.zeros((2, size, size, cin))
        variables = jax.eval_shape(lambda: vae.init(jax.random.PRNGKey(0), x))
        mean, std = jax.eval_shape(lambda v: vae.apply(v, x, method="encode"), variables)
        h = size // vae.downsampling_factor
        assert mean.shape == std.shape == (2, h, h, lc)
        out = jax.eval_shape(lambda v: vae.apply(v, jnp.zeros(mean.shape), method="decode"),
                             variables)
        assert out.shape == (2, size, size, cout)


def test_optional_parts_follow_their_fields():
    def names(vae):
        shapes = jax.eval_shape(lambda: vae.init(jax.random.PRNGKey(0), vae.example_images()))
        return set(shapes["params"]) | {k for k in shapes["params"]["encoder"]["mid_block"]}

    full = names(_tiny())
    assert {"quant_conv", "post_quant_conv", "attentions_0"} <= full
    bare = names(_tiny(mid_block_add_attention=False, use_quant_conv=False,
                       use_post_quant_conv=False))
    assert not {"quant_conv", "post_quant_conv", "attentions_0"} & bare


@pytest.mark.slow
def test_jit_matches_eager_and_std_is_exp_half_logvar():
    vae = _tiny(**MICRO)
    variables, x = _variables(vae), _images(vae)
    eager = vae.apply(variables, x, method="encode")
    jitted = jax.jit(lambda v, x: vae.apply(v, x, method="encode"))(variables, x)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-5, atol=1e-6)
    mean, logvar = vae.apply(variables, x, method="encode_moments")
    np.testing.assert_allclose(eager[1], np.exp(0.5 * np.asarray(logvar)), rtol=1e-6)
    np.testing.assert_array_equal(eager[0], mean)
    dec_eager = vae.apply(variables, mean, method="decode")
    dec_jit = jax.jit(lambda v, z: vae.apply(v, z, method="decode"))(variables, mean)
    chex.assert_trees_all_close(dec_eager, dec_jit, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_bfloat16_compute_is_close_and_returns_the_input_dtype():
    vae = _tiny()
    variables, x = _variables(vae), _images(vae)
    vae16 = vae.clone(compute_dtype="bfloat16")
    ref = jax.jit(lambda v, x: vae.apply(v, x))(variables, x)
    out = jax.jit(lambda v, x: vae16.apply(v, x))(variables, x)
    assert out.dtype == jnp.float32
    assert rel_err(out, ref) < 0.05
    with pytest.raises(ValueError, match="AutoencoderKL.compute_dtype"):
        vae.clone(compute_dtype="int8").apply(variables, x)


def test_scaling_helpers_apply_the_factor():
    vae = _tiny(scaling_factor=0.5, **MICRO)
    variables, x = _variables(vae), _images(vae)
    mean, std = vae.apply(variables, x, method="encode")
    np.testing.assert_allclose(encode_to_latents(vae, variables, x), mean * 0.5, rtol=1e-6)
    rng = jax.random.PRNGKey(3)
    sampled = encode_to_latents(vae, variables, x, rng, scaling_factor=0.25)
    eps = jax.random.normal(rng, mean.shape, mean.dtype)
    np.testing.assert_allclose(sampled, (mean + std * eps) * 0.25, rtol=1e-5, atol=1e-7)
    z = jax.random.normal(jax.random.PRNGKey(4), mean.shape)
    np.testing.assert_allclose(decode_latents(vae, variables, z),
                               vae.apply(variables, z / 0.5, method="decode"), rtol=1e-6,
                               atol=1e-6)
    shifted = vae.clone(shift_factor=0.1)
    np.testing.assert_allclose(encode_to_latents(shifted, variables, x), (mean - 0.1) * 0.5,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(decode_latents(shifted, variables, z),
                               vae.apply(variables, z / 0.5 + 0.1, method="decode"), rtol=1e-6,
                               atol=1e-6)


# ------------------------------------------------------------------ config fields

@pytest.mark.parametrize("overrides, field", [
    ({"down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"]}, r"down_block_types\[1\]"),
    ({"up_block_types": ["UpDecoderBlock2D"]}, "up_block_types"),
    ({"act_fn": "tanh"}, "act_fn"),
    ({"norm_num_groups": 3}, "norm_num_groups"),
    ({"block_out_channels": []}, "block_out_channels"),
    ({"layers_per_block": 0}, "layers_per_block"),
    ({"latents_mean": [0.0] * 4}, "latents_mean"),
    ({"scaling_factor": 0}, "scaling_factor"),
    ({"mid_block_add_attention": "yes"}, "mid_block_add_attention"),
    ({"_class_name": "AutoencoderTiny"}, "_class_name"),
])
def test_unsupported_config_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        autoencoder_kl_from_config({**TINY, **overrides}, where="vae/config.json")


def test_config_defaults_and_unknown_fields():
    vae = autoencoder_kl_from_config({"_diffusers_version": "0.1", "block_out_channels": [32]})
    assert (vae.layers_per_block, vae.norm_num_groups, vae.latent_channels, vae.sample_size,
            vae.scaling_factor, vae.shift_factor) == (1, 32, 4, 32, 0.18215, 0.0)
    assert autoencoder_kl_from_config({**TINY, "shift_factor": None}).shift_factor == 0.0
    assert autoencoder_kl_from_config({**TINY, "sample_size": [16, 16]}).sample_size == 16
    assert autoencoder_kl_from_config(
        {**TINY, "down_block_types": ["UNetResDownEncoderBlock2D"] * 2}).block_out_channels == (8, 16)
    with pytest.warns(UserWarning, match="norm_type"):
        autoencoder_kl_from_config({**TINY, "norm_type": "spatial"})


# ------------------------------------------------------------------ loader

def test_state_dict_round_trip_is_exact(tmp_path):
    vae = _tiny()
    variables = _variables(vae)
    sd = params_to_state_dict(variables)
    assert "encoder.mid_block.attentions.0.to_out.0.weight" in sd
    assert sd["encoder.down_blocks.0.downsamplers.0.conv.weight"].shape == (8, 8, 3, 3)
    back = state_dict_to_params(vae, sd)
    chex.assert_trees_all_equal(back, variables)
    folder = _write_folder(tmp_path / "vae", TINY, sd)
    loaded_vae, loaded = load_sd_vae(folder)
    assert loaded_vae == vae
    chex.assert_trees_all_equal(loaded, variables)


def test_legacy_attention_names_load_equal_to_new_names(tmp_path):
    vae = _tiny()
    sd = params_to_state_dict(_variables(vae))
    legacy = {}
    for name, value in sd.items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"),
                         ("to_out.0", "proj_attn")):
            name = name.replace(f".attentions.0.{new}.", f".attentions.0.{old}.")
        legacy[name] = value
    assert "decoder.mid_block.attentions.0.proj_attn.bias" in legacy
    assert rename_legacy_attention(legacy).keys() == sd.keys()
    _, new_vars = load_sd_vae(_write_folder(tmp_path / "new", TINY, sd))
    _, old_vars = load_sd_vae(_write_folder(tmp_path / "old", TINY, legacy))
    chex.assert_trees_all_equal(old_vars, new_vars)
    both = {**sd, "encoder.mid_block.attentions.0.query.weight": sd[
        "encoder.mid_block.attentions.0.to_q.weight"]}
    with pytest.raises(StateDictMismatch, match="unexpected tensors: encoder.mid_block.attentions.0.query"):
        state_dict_to_params(vae, both, "both.safetensors")


def _torch_zip(path, state_dict):
    """A torch.save zip archive of float32 tensors (no torch needed), as in test_torch_reader."""
    def glob(module, name):
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def uni(text):
        data = text.encode()
        return b"X" + struct.pack("<I", len(data)) + data

    def num(v):
        return b"J" + struct.pack("<i", v)

    def tup(items):
        return b"(" + b"".join(items) + b"t"

    body, storages = b"", {}
    for i, (name, value) in enumerate(state_dict.items()):
        a = np.ascontiguousarray(value, np.float32)
        strides = [int(s // 4) for s in a.strides]
        pid = tup([uni("storage"), glob("torch", "FloatStorage"), uni(str(i)), uni("cpu"),
                   num(a.size)]) + b"Q"
        body += uni(name) + (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + num(0)
                             + tup([num(s) for s in a.shape]) + tup([num(s) for s in strides])
                             + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"tR")
        storages[str(i)] = a.tobytes()
    pkl = b"\x80\x02" + glob("collections", "OrderedDict") + b")R(" + body + b"u."
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


def test_bin_weights_load_through_the_safe_torch_reader(tmp_path):
    vae = _tiny()
    variables = _variables(vae)
    folder = _write_folder(tmp_path / "vae", TINY, None)
    _torch_zip(folder / "diffusion_pytorch_model.bin", params_to_state_dict(variables))
    _, loaded = load_sd_vae(folder)
    chex.assert_trees_all_equal(loaded, variables)


def test_loader_errors_name_the_file_tensor_or_field(tmp_path):
    vae = _tiny()
    sd = params_to_state_dict(_variables(vae))
    with pytest.raises(CheckpointError, match="not a folder"):
        load_sd_vae(tmp_path / "absent")
    only_config = _write_folder(tmp_path / "no_weights", TINY, None)
    (only_config / "vae.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no_weights has no diffusion_pytorch_model"
                                              r".safetensors.*vae.ckpt"):
        load_sd_vae(only_config)
    with pytest.raises(JsonFileError, match="no_config/config.json not found"):
        load_sd_vae(_write_folder(tmp_path / "no_config", None, sd))
    missing = {k: v for k, v in sd.items() if k != "decoder.conv_out.bias"}
    with pytest.raises(StateDictMismatch, match=r"missing/diffusion_pytorch_model.safetensors: "
                                                r".*missing tensors: decoder.conv_out.bias \(3,\)"):
        load_sd_vae(_write_folder(tmp_path / "missing", TINY, missing))
    wrong = {**sd, "quant_conv.weight": np.zeros((8, 8, 3, 3), np.float32)}
    with pytest.raises(StateDictMismatch, match=r"quant_conv.weight: file \(8, 8, 3, 3\) vs model "
                                                r"\(8, 8, 1, 1\)"):
        load_sd_vae(_write_folder(tmp_path / "wrong", TINY, wrong))
    bad_config = {**TINY, "up_block_types": ["UpDecoderBlock2D", "AttnUpDecoderBlock2D"]}
    with pytest.raises(ConfigError, match=r"bad_config/config.json: up_block_types\[1\]"):
        load_sd_vae(_write_folder(tmp_path / "bad_config", bad_config, sd))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "config.json").write_text(json.dumps(TINY))
    (tmp_path / "garbage" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="garbage/diffusion_pytorch_model.safetensors "
                                              "cannot be read as safetensors"):
        load_sd_vae(tmp_path / "garbage")


def test_convert_save_and_load_weights(tmp_path):
    vae = _tiny()
    variables = _variables(vae)
    folder = _write_folder(tmp_path / "vae", TINY, params_to_state_dict(variables))
    conv = convert_checkpoint("sd_vae", {"checkpoint": str(folder)})
    assert conv.arch == {"kind": "sd_vae", "config": TINY}
    save_converted(conv, tmp_path / "converted")
    loaded = load_converted(tmp_path / "converted")
    assert loaded.model == vae
    chex.assert_trees_all_equal(jax.tree_util.tree_map(np.asarray, loaded.params), variables)
    for path in (folder, tmp_path / "converted"):
        assert load_weights(path, "sd_vae", field="vae_checkpoint").model == vae


# ------------------------------------------------------------------ official outputs

@pytest.mark.slow
def test_parity_fixtures_pass(shared_fixtures):
    from dg_jax.parity.runner import run_case

    root, cases = _vae_cases(shared_fixtures)
    for case in cases:
        result = run_case(case, root)
        assert result.passed, result.line()


def test_fixture_state_dict_round_trips(shared_fixtures):
    root, cases = _vae_cases(shared_fixtures)
    folder = root / cases[0]["checkpoint"]
    sd = safetensors.numpy.load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    _, variables = load_sd_vae(folder)
    back = params_to_state_dict(variables)
    assert back.keys() == sd.keys()
    for name, value in sd.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)
