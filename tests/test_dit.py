"""DiT: the network, its checkpoint mapping, DiT's CFG rules and the parity cases.

Tiny random DiTs check shapes, jit vs eager, the sin-cos `pos_embed` init, the state-dict
mapping (round trip, error paths, train.py checkpoint dicts written here in torch.save's
format) and a float64 NumPy transcription of the official `models.py`; fake model functions
check `forward_with_cfg` / `forward_with_dg` exactly. The official cases in
../shared/fixtures/parity_dit run when present (skipped otherwise).
"""
import argparse
import collections
import io
import json
import math
import pickle
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.convert.dit import (
    dit_from_arch,
    load_dit,
    param_shapes,
    params_to_state_dict,
    read_dit_state_dict,
    state_dict_to_params,
    torch_key,
)
from dg_jax.convert.matcher import StateDictMismatch
from dg_jax.convert.torch_reader import CheckpointError
from dg_jax.guidance.dit_cfg import (
    dit_cfg_model_fn,
    forward_with_cfg,
    forward_with_dg,
    two_stage_scale,
)
from dg_jax.models.dit import DIT_CONFIGS, DiT, dit_from_name, get_2d_sincos_pos_embed

TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=4,
            mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=5, learn_sigma=True)


def tiny(**overrides):
    return DiT(**{**TINY, **overrides})


def _random_variables(module, seed=0, scale=0.2):
    """Every parameter random (the official init zeroes adaLN and the final layer)."""
    rng = np.random.default_rng(seed)
    shapes = param_shapes(module)
    params = jax.tree_util.tree_map(
        lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), jnp.float32), shapes)
    return {"params": params}


def _inputs(module, batch=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, module.input_size, module.input_size, module.in_channels))
    t = rng.integers(0, 1000, batch)
    y = rng.integers(0, module.num_classes + 1, batch)  # num_classes = the null label
    return jnp.asarray(x, jnp.float32), jnp.asarray(t, jnp.int32), jnp.asarray(y, jnp.int32)


# ----------------------------------------------------------------------------- the network

@pytest.mark.parametrize("patch,learn_sigma", [(2, True), (4, False)])
def test_forward_shapes(patch, learn_sigma):
    module = tiny(patch_size=patch, learn_sigma=learn_sigma)
    x, t, y = _inputs(module)
    variables = _random_variables(module)
    out = jax.jit(module.apply)(variables, x, t, y)
    chex.assert_shape(out, (3, 8, 8, 8 if learn_sigma else 4))
    chex.assert_tree_all_finite(out)
    assert variables["params"]["pos_embed"].shape == (1, (8 // patch) ** 2, 32)


def test_jit_matches_eager():
    module = tiny(depth=1)
    x, t, y = _inputs(module)
    variables = _random_variables(module)
    eager = module.apply(variables, x, t, y)
    jitted = jax.jit(module.apply)(variables, x, t, y)
    assert float(jnp.abs(eager).max()) > 1e-2
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


def _official_sincos(embed_dim, grid_size):
    """The official get_2d_sincos_pos_embed, transcribed line by line (meshgrid w first)."""
    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64)
        omega /= dim / 2.0
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])
    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], 1)


def test_fresh_init_follows_the_official_one():
    module = tiny(patch_size=2)
    x, t, y = _inputs(module)
    params = jax.jit(module.init)(jax.random.PRNGKey(0), x, t, y)["params"]
    np.testing.assert_array_equal(params["pos_embed"][0],
                                  _official_sincos(32, 4).astype(np.float32))
    assert get_2d_sincos_pos_embed(32, 4).dtype == np.float32
    # adaLN-Zero: modulation and output layers start at zero, so the output is zero
    for leaf in ("kernel", "bias"):
        assert not np.any(params["blocks_0"]["adaLN_modulation_1"][leaf])
        assert not np.any(params["final_layer"]["linear"][leaf])
        assert not np.any(params["final_layer"]["adaLN_modulation_1"][leaf])
    assert not np.any(jax.jit(module.apply)({"params": params}, x, t, y))
    assert not np.any(params["blocks_0"]["attn"]["qkv"]["bias"])
    bound = math.sqrt(6.0 / (32 + 96))  # xavier-uniform on the (96, 32) Linear weight
    qkv = np.asarray(params["blocks_0"]["attn"]["qkv"]["kernel"])
    assert np.abs(qkv).max() <= bound and np.abs(qkv).max() > 0.8 * bound
    assert abs(float(np.std(params["y_embedder"]["embedding_table"]["embedding"])) - 0.02) < 0.005
    with pytest.raises(ValueError, match="hidden_size=30"):
        get_2d_sincos_pos_embed(30, 4)


def test_input_and_field_errors():
    module = tiny()
    variables = _random_variables(module)
    x, t, y = _inputs(module)
    with pytest.raises(ValueError, match="input_size=8"):
        module.apply(variables, jnp.zeros((1, 16, 16, 4)), t[:1], y[:1])
    with pytest.raises(ValueError, match="in_channels=4"):
        module.apply(variables, jnp.zeros((1, 8, 8, 3)), t[:1], y[:1])
    with pytest.raises(ValueError, match="DiT.attention_impl"):
        tiny(attention_impl="flash").apply(variables, x, t, y)
    with pytest.raises(ValueError, match="DiT.compute_dtype"):
        tiny(compute_dtype="float8").apply(variables, x, t, y)


def test_bfloat16_compute_keeps_float32_params_and_output():
    module = tiny(compute_dtype="bfloat16", attention_impl="xla")
    x, t, y = _inputs(module)
    variables = _random_variables(tiny())
    out = jax.jit(module.apply)(variables, x, t, y)
    ref = jax.jit(tiny().apply)(variables, x, t, y)
    assert out.dtype == jnp.float32
    scale = float(jnp.abs(ref).max())
    assert float(jnp.abs(out - ref).max()) < 0.1 * scale
    shapes = param_shapes(module)
    assert {s.dtype for s in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype(jnp.float32)}


def test_published_configs():
    assert len(DIT_CONFIGS) == 12 and DIT_CONFIGS["DiT-XL/2"] == dict(
        depth=28, hidden_size=1152, patch_size=2, num_heads=16)
    shapes = param_shapes(dit_from_name("DiT-XL/2"))  # eval_shape: nothing allocated
    assert sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes)) == 675_129_632
    s8 = dit_from_name("DiT-S/8", input_size=16, num_classes=10)
    assert (s8.depth, s8.hidden_size, s8.patch_size, s8.num_heads) == (12, 384, 8, 6)
    assert s8.input_size == 16 and s8.num_classes == 10
    with pytest.raises(ValueError, match="DiT-XXL/2"):
        dit_from_name("DiT-XXL/2")
    with pytest.raises(ValueError, match="depth"):
        dit_from_name("DiT-B/4", depth=3)
    assert dit_from_arch({"model": "DiT-L/4", "input_size": 64}) == DiT(
        depth=24, hidden_size=1024, patch_size=4, num_heads=16, input_size=64)
    with pytest.raises(ValueError, match="hidden_sise"):
        dit_from_arch({**TINY, "hidden_sise": 3})


# ----------------------------------------------------------------------------- DiT's CFG

def _fake_model(x, t, y):
    """An output of 2C = 8 channels whose value tells the label: x + y (+ 100 on channel c)."""
    base = x + jnp.asarray(y, x.dtype)[:, None, None, None]
    return jnp.concatenate([base, base + 100.0], axis=-1)


def _fake_inputs(b=2):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((b, 2, 2, 4)), jnp.float32)
    y = jnp.asarray([1, 3][:b])
    return x, y


def test_forward_with_dg_switches_strictly_above_branch_time():
    x, y = _fake_inputs()
    null = 10
    lt, st, bt = 1.5, 4.0, 500
    for t_val, s in ((501, lt), (999, lt), (500, st), (0, st)):
        t = jnp.full((2,), t_val)
        out = forward_with_dg(_fake_model, x, t, y, lt, st, bt, null_label=null)
        cond, uncond = _fake_model(x, t, y), _fake_model(x, t, jnp.full((2,), null))
        want = uncond[..., :3] + s * (cond[..., :3] - uncond[..., :3])
        np.testing.assert_allclose(out[..., :3], want, rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(out[..., 3:], cond[..., 3:])  # raw conditional rest
    scale = two_stage_scale(lt, st, bt)
    # the official rule reads t[0] only
    np.testing.assert_array_equal(scale(jnp.asarray([501, 0, 0])), [lt, lt, lt])
    np.testing.assert_array_equal(jax.jit(scale)(jnp.asarray([500, 999])), [st, st])


def test_only_three_channels_guided_by_default_and_doubled_batch():
    x, y = _fake_inputs()
    null, s = 10, 3.0
    t = jnp.asarray([7, 7])
    cond, uncond = _fake_model(x, t, y), _fake_model(x, t, jnp.full((2,), null))
    out = forward_with_cfg(_fake_model, x, t, y, s, null_label=null)
    np.testing.assert_array_equal(out[..., 3], cond[..., 3])
    np.testing.assert_allclose(out[..., :3], (uncond + s * (cond - uncond))[..., :3], rtol=1e-6,
                               atol=1e-5)
    every = forward_with_cfg(_fake_model, x, t, y, s, null_label=null, guided_channels=None)
    np.testing.assert_allclose(every[..., :4], (uncond + s * (cond - uncond))[..., :4], rtol=1e-6,
                               atol=1e-5)
    np.testing.assert_array_equal(every[..., 4:], cond[..., 4:])

    # the official doubled batch: x[B:] is ignored, y[B:] = null, guided eps in both halves
    x2 = jnp.concatenate([x, x + 1000.0])
    y2 = jnp.concatenate([y, jnp.full((2,), null)])
    t2 = jnp.concatenate([t, t])
    doubled = forward_with_cfg(_fake_model, x2, t2, y2, s, doubled=True)
    chex.assert_shape(doubled, (4, 2, 2, 8))
    np.testing.assert_array_equal(doubled[:2], out)
    np.testing.assert_array_equal(doubled[2:, ..., :3], out[..., :3])
    np.testing.assert_array_equal(doubled[2:, ..., 3:], uncond[..., 3:])
    guided = jax.jit(dit_cfg_model_fn(_fake_model, two_stage_scale(1.0, s, 500), null))
    np.testing.assert_allclose(guided(x, t, y), out, rtol=1e-6)
    np.testing.assert_array_equal(guided(x, t + 600, y), cond)  # scale 1: the conditional model
    with pytest.raises(ValueError, match="null_label"):
        forward_with_cfg(_fake_model, x, t, y, s)
    with pytest.raises(ValueError, match="even batch"):
        forward_with_cfg(_fake_model, x2[:3], t2[:3], y2[:3], s, doubled=True)
    with pytest.raises(ValueError, match="guided_channels=9"):
        forward_with_cfg(_fake_model, x, t, y, s, null_label=null, guided_channels=9)


# ----------------------------------------------------------------------------- checkpoints

class _Global:
    """A `module.name` global written as such (the torch functions the reader allowlists)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise AssertionError("never called")


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _TorchPickler(pickle._Pickler):
    """Writes what torch.save's pickle holds: tensors as `_rebuild_tensor_v2(storage, ...)`
    with persistent-id storages; everything else (dicts, argparse.Namespace) as pickle does."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, storages):
        super().__init__(file, protocol=2)
        self.storages = storages

    def _save_global_marker(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[_Global] = _save_global_marker

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", "FloatStorage"), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            a = np.ascontiguousarray(obj, np.float32)
            key = str(len(self.storages))
            self.storages[key] = a.tobytes()
            stride = tuple(s // 4 for s in a.strides)
            return (_Global("torch._utils", "_rebuild_tensor_v2"),
                    (_Storage(key, a.size), 0, a.shape, stride, False,
                     collections.OrderedDict()))
        return NotImplemented


def write_torch_file(path, obj):
    """A torch.save zip archive of `obj` (tensors as float32 numpy arrays)."""
    storages: dict = {}
    buf = io.BytesIO()
    _TorchPickler(buf, storages).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buf.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


def test_torch_names_and_round_trip():
    module = tiny()
    variables = _random_variables(module)
    sd = params_to_state_dict(variables)
    assert torch_key(("blocks_1", "adaLN_modulation_1", "kernel")) == \
        "blocks.1.adaLN_modulation.1.weight"
    assert torch_key(("t_embedder", "mlp_2", "bias")) == "t_embedder.mlp.2.bias"
    assert torch_key(("pos_embed",)) == "pos_embed"
    assert sd["x_embedder.proj.weight"].shape == (32, 4, 2, 2)
    assert sd["pos_embed"].shape == (1, 16, 32)
    assert sd["y_embedder.embedding_table.weight"].shape == (6, 32)
    assert sd["blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert sd["blocks.1.mlp.fc1.weight"].shape == (128, 32)
    assert sd["final_layer.linear.weight"].shape == (2 * 2 * 8, 32)
    assert sd["final_layer.adaLN_modulation.1.bias"].shape == (64,)
    assert len(sd) == 8 + 2 * 10 + 4
    back = state_dict_to_params(module, sd)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, jax.device_get(variables))
    # no null row without label dropout
    assert params_to_state_dict(_random_variables(tiny(class_dropout_prob=0.0)))[
        "y_embedder.embedding_table.weight"].shape == (5, 32)


def test_state_dict_errors_name_the_tensors():
    module = tiny()
    sd = params_to_state_dict(_random_variables(module))
    missing = dict(sd)
    del missing["blocks.1.attn.proj.weight"]
    with pytest.raises(StateDictMismatch, match=r"ckpt\.pt.*missing tensors: "
                       r"blocks\.1\.attn\.proj\.weight \(32, 32\)"):
        state_dict_to_params(module, missing, source="ckpt.pt")
    wrong = dict(sd, pos_embed=np.zeros((1, 64, 32), np.float32))
    with pytest.raises(StateDictMismatch, match=r"pos_embed: file \(1, 64, 32\) vs model "
                       r"\(1, 16, 32\)"):
        state_dict_to_params(module, wrong)
    with pytest.raises(StateDictMismatch, match=r"unexpected tensors: blocks\.2\.attn\.qkv\.bias"):
        state_dict_to_params(module, {**sd, "blocks.2.attn.qkv.bias": sd["blocks.1.attn.qkv.bias"]})


def test_trainer_checkpoints_and_released_files(tmp_path):
    module = tiny()
    ema, raw = _random_variables(module, 1), _random_variables(module, 2)
    ema_sd, raw_sd = params_to_state_dict(ema), params_to_state_dict(raw)
    args = argparse.Namespace(model="DiT-XL/2", image_size=256, num_classes=5, lr=1e-4)
    opt = {"state": {0: {"step": np.asarray(3.0, np.float32), "exp_avg": np.ones(3, np.float32)}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0]}]}
    trainer = tmp_path / "0400000.pt"
    write_torch_file(trainer, {"model": raw_sd, "ema": ema_sd, "opt": opt, "args": args})
    released = tmp_path / "DiT-tiny.pt"
    write_torch_file(released, collections.OrderedDict(ema_sd))

    x, t, y = _inputs(module)
    apply = jax.jit(module.apply)
    want_ema = apply(ema, x, t, y)
    for path in (trainer, released):
        got_module, variables = load_dit(path, TINY)
        assert got_module == module
        np.testing.assert_array_equal(apply(variables, x, t, y), want_ema)
    _, variables = load_dit(trainer, TINY, entry="model")
    np.testing.assert_array_equal(apply(variables, x, t, y), apply(raw, x, t, y))

    with pytest.raises(ValueError, match="entry='opt'"):
        read_dit_state_dict(trainer, entry="opt")
    no_ema = tmp_path / "no_ema.pt"
    write_torch_file(no_ema, {"model": raw_sd, "args": args})
    with pytest.raises(CheckpointError, match=r"no_ema\.pt.*'ema'.*\['args', 'model'\]"):
        read_dit_state_dict(no_ema)
    bad = tmp_path / "bad.pt"
    write_torch_file(bad, {"ema": {**ema_sd, "blocks.0.attn.extra": np.zeros(2, np.float32)},
                           "args": args})
    with pytest.raises(StateDictMismatch, match=r"bad\.pt.*unexpected tensors: "
                       r"blocks\.0\.attn\.extra \(2,\)"):
        load_dit(bad, TINY)


# ----------------------------------------------------------------------------- parity

def _ref_dit(sd, arch, x, t, y):
    """The official DiT.forward in float64 NumPy, NCHW, transcribed from models.py + timm."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    p, d, heads = arch["patch_size"], arch["hidden_size"], arch["num_heads"]
    c_out = 2 * arch["in_channels"] if arch["learn_sigma"] else arch["in_channels"]

    def lin(z, name):
        return z @ sd[name + ".weight"].T + sd[name + ".bias"]

    def silu(z):
        return z / (1 + np.exp(-z))

    def ln(z):
        mu = z.mean(-1, keepdims=True)
        return (z - mu) / np.sqrt(((z - mu) ** 2).mean(-1, keepdims=True) + 1e-6)

    def mod(z, shift, scale):
        return z * (1 + scale[:, None]) + shift[:, None]

    n, c, hgt, _ = x.shape
    g = hgt // p
    patches = x.reshape(n, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, g * g, -1)
    h = patches @ sd["x_embedder.proj.weight"].reshape(d, -1).T + sd["x_embedder.proj.bias"]
    h = h + sd["pos_embed"]
    # the frequency table and t * f in float32 as the official code forms them (at t ~ 999 a
    # float64 table moves t * f by ~1e-4, which random weights amplify)
    expo = np.float32(-math.log(10000)) * np.arange(128, dtype=np.float32) / np.float32(128)
    freqs = np.exp(expo.astype(np.float64)).astype(np.float32)
    args = (np.asarray(t, np.float32)[:, None] * freqs[None]).astype(np.float64)
    temb = np.concatenate([np.cos(args), np.sin(args)], -1)
    temb = lin(silu(lin(temb, "t_embedder.mlp.0")), "t_embedder.mlp.2")
    cond = temb + sd["y_embedder.embedding_table.weight"][np.asarray(y)]
    for i in range(arch["depth"]):
        pre = f"blocks.{i}."
        s1, sc1, g1, s2, sc2, g2 = np.split(lin(silu(cond), pre + "adaLN_modulation.1"), 6, 1)
        a = mod(ln(h), s1, sc1)
        qkv = lin(a, pre + "attn.qkv").reshape(n, g * g, 3, heads, d // heads)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)
        logits = q @ k.transpose(0, 1, 3, 2) * (d // heads) ** -0.5
        att = np.exp(logits - logits.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(n, g * g, d)
        h = h + g1[:, None] * lin(o, pre + "attn.proj")
        m = lin(mod(ln(h), s2, sc2), pre + "mlp.fc1")
        m = 0.5 * m * (1 + np.tanh(math.sqrt(2 / math.pi) * (m + 0.044715 * m**3)))
        h = h + g2[:, None] * lin(m, pre + "mlp.fc2")
    shift, scale = np.split(lin(silu(cond), "final_layer.adaLN_modulation.1"), 2, 1)
    out = lin(mod(ln(h), shift, scale), "final_layer.linear")
    out = np.einsum("nhwpqc->nchpwq", out.reshape(n, g, g, p, p, c_out))
    return out.reshape(n, c_out, g * p, g * p)


def _ref_forward_with_dg(sd, arch, x, t, y, lt, st, bt):
    half = x[: len(x) // 2]
    out = _ref_dit(sd, arch, np.concatenate([half, half]), t, y)
    eps, rest = out[:, :3], out[:, 3:]
    cond, uncond = np.split(eps, 2)
    s = lt if t[0] > bt else st
    half_eps = uncond + s * (cond - uncond)
    return np.concatenate([np.concatenate([half_eps, half_eps]), rest], 1)


@pytest.mark.slow
def test_parity_runner_on_other_settings(tmp_path):
    """Cases of the fixture schema with another patch size, depth, class count, image size and
    no learned sigma; the expected values come from the NumPy transcription above. The runner
    reads everything from the case."""
    from dg_jax.parity.runner import run_manifest

    arch = dict(input_size=8, patch_size=4, in_channels=4, hidden_size=48, depth=1,
                num_heads=3, mlp_ratio=2.0, class_dropout_prob=0.1, num_classes=7,
                learn_sigma=False)
    module = DiT(**arch)
    sd = params_to_state_dict(_random_variables(module, 3, scale=0.3))
    write_torch_file(tmp_path / "dit_other.pt", collections.OrderedDict(sd))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 4, 8, 8)).astype(np.float32)
    t, y = np.asarray([0, 499, 500, 999]), np.asarray([0, 7, 3, 6])
    np.savez(tmp_path / "fwd.npz", x=x, t=t, y=y, out=_ref_dit(sd, arch, x, t, y))
    xs = rng.standard_normal((3, 4, 4, 8, 8)).astype(np.float32)
    ts = np.repeat(np.asarray([[301], [300], [12]]), 4, axis=1)
    yc = np.asarray([2, 5, 7, 7])
    outs = np.stack([_ref_forward_with_dg(sd, arch, xs[k], ts[k], yc, 2.0, 3.0, 300)
                     for k in range(3)])
    np.savez(tmp_path / "cfg.npz", x=xs, t=ts, y=yc, out=outs)
    common = dict(checkpoint="dit_other.pt", arch=arch, layout="NCHW", rtol=1e-4, atol=1e-4)
    cases = [dict(name="fwd", kind="dit_forward", io="fwd.npz", **common),
             dict(name="cfg", kind="dit_cfg_forward", io="cfg.npz", LT_cfg=2.0, ST_cfg=3.0,
                  branch_time=300, **common)]
    (tmp_path / "manifest.json").write_text(json.dumps({"cases": cases}))
    results = run_manifest(tmp_path, echo=lambda _: None)
    assert len(results) == 2 and all(r.passed for r in results), [r.line() for r in results]


@pytest.mark.slow
def test_parity_against_official_code(shared_fixtures):
    from dg_jax.parity.runner import run_manifest

    root = shared_fixtures / "parity_dit"
    if not (root / "manifest.json").is_file():
        pytest.skip(f"no DiT parity manifest at {root}")
    for kind in ("dit_forward", "dit_cfg_forward"):
        results = run_manifest(root, only=kind, echo=lambda _: None)
        assert results and all(r.passed for r in results), [r.line() for r in results]


@pytest.mark.slow
def test_convert_save_and_load_the_fixture(shared_fixtures, tmp_path):
    from dg_jax.convert.saved import convert_checkpoint, load_converted, save_converted

    root = shared_fixtures / "parity_dit"
    if not (root / "manifest.json").is_file():
        pytest.skip(f"no DiT parity manifest at {root}")
    case = next(c for c in json.loads((root / "manifest.json").read_text())["cases"]
                if c["kind"] == "dit_forward")
    conv = convert_checkpoint("dit", {"checkpoint": str(root / case["checkpoint"])}, case["arch"])
    save_converted(conv, tmp_path / "dit")
    loaded = load_converted(tmp_path / "dit")
    assert loaded.kind == "dit" and loaded.model == DiT(**case["arch"])
    io_ = np.load(root / case["io"])
    out = loaded.model.apply(loaded.params, jnp.asarray(io_["x"].transpose(0, 2, 3, 1)),
                             jnp.asarray(io_["t"]), jnp.asarray(io_["y"]))
    np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), io_["out"],
                               rtol=case["rtol"], atol=case["atol"])
