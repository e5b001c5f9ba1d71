"""FID / IS / precision-recall / KID, statistics files, preprocessing, the Inception blocks and
sharded feature extraction, each against an independent float64 NumPy/SciPy reference."""
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from dg_jax.convert.inception import map_state_dict
from dg_jax.convert.torch_reader import CheckpointError
from dg_jax.eval import fid as fid_lib
from dg_jax.eval.features import data_mesh, extract_features
from dg_jax.eval.image_ops import inception_preprocess, quantize_to_uint8, resize_bilinear_half_pixel
from dg_jax.eval.precision_recall import precision_recall
from dg_jax.eval.stats_io import StatsFileError, feature_statistics, load_stats, save_stats
from dg_jax.models import inception as inc

REPO = pathlib.Path(__file__).resolve().parents[1]


def _features(seed, n=400, d=16, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


# ---------------------------------------------------------------- FID / IS / KID


def _reference_fid(f1, f2):
    """||mu1-mu2||^2 + Tr S1 + Tr S2 - 2 sum sqrt(eig(S1^1/2 S2 S1^1/2)) via symmetric eigh."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = scipy.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_root = np.sum(np.sqrt(np.clip(ev, 0, None)))
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_root


def test_fid_matches_reference():
    f1, f2 = _features(0), _features(1, shift=0.3)
    got = fid_lib.fid_from_features(f1, f2)
    np.testing.assert_allclose(got, _reference_fid(f1, f2), rtol=1e-6)
    assert got > 0.5


def test_fid_of_set_with_itself_is_zero():
    f = _features(2)
    mu, sigma = feature_statistics(f)
    assert abs(fid_lib.frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes"):
        fid_lib.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_inception_score_uniform_and_one_hot():
    mean, std = fid_lib.inception_score(np.zeros((50, 1008)))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    # Every split holds 5 samples of 5 distinct confident classes: IS -> 5.
    logits = np.full((50, 10), -1e4)
    logits[np.arange(50), np.arange(50) % 5] = 0.0
    mean, _ = fid_lib.inception_score(logits, num_splits=10)
    assert mean == pytest.approx(5.0, rel=1e-9)


def test_kid_matches_bruteforce_unbiased_mmd():
    x, y = _features(3, n=40, d=6), _features(4, n=40, d=6, shift=0.5)
    k = lambda a, b: (a @ b / 6 + 1) ** 3  # noqa: E731
    n = 40
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(n)) / (n * n)
    got = fid_lib.kernel_inception_distance(x, y, num_subsets=1, max_subset_size=n)
    np.testing.assert_allclose(got, kxx + kyy - 2 * kxy, rtol=1e-9)


# ---------------------------------------------------------------- precision / recall


def _reference_pr(real, gen, k=3):
    def radii(a):
        d = ((a[:, None] - a[None]) ** 2).sum(-1)
        return np.sort(d, axis=1)[:, k]

    def frac(q, m, r):
        d = ((q[:, None] - m[None]) ** 2).sum(-1)
        return np.mean(np.any(d <= r[None], axis=1))

    return frac(gen, real, radii(real)), frac(real, gen, radii(gen))


def test_precision_recall_of_set_with_itself_is_one():
    f = _features(5, n=97)
    assert precision_recall(f, f, row_batch=32, col_batch=40) == (1.0, 1.0)


def test_precision_recall_matches_bruteforce_with_ragged_blocks():
    real, gen = _features(6, n=90, d=8), _features(7, n=70, d=8, shift=0.8)
    got = precision_recall(real, gen, row_batch=32, col_batch=25)
    np.testing.assert_allclose(got, _reference_pr(real, gen), atol=1e-12)
    assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0


# ---------------------------------------------------------------- statistics files


def test_stats_round_trip(tmp_path):
    mu, sigma = feature_statistics(_features(8, d=2048, n=20))
    path = tmp_path / "ref.npz"
    save_stats(path, mu, sigma)
    mu2, sigma2 = load_stats(path)
    assert mu2.dtype == np.float64
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)


def test_stats_wrong_width_and_missing_key(tmp_path):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu=np.zeros(2047), sigma=np.eye(2047))
    with pytest.raises(StatsFileError, match=r"wrong\.npz.*'mu'.*2047"):
        load_stats(wrong)
    missing = tmp_path / "missing.npz"
    np.savez(missing, mu=np.zeros(2048))
    with pytest.raises(StatsFileError, match=r"missing\.npz.*missing key 'sigma'"):
        load_stats(missing)


# ---------------------------------------------------------------- preprocessing


def _reference_resize(x, out_h, out_w):
    """torch upsample_bilinear2d (align_corners=False), written per output pixel, NHWC float64."""
    n, in_h, in_w, c = x.shape
    out = np.zeros((n, out_h, out_w, c))

    def src(i, in_size, out_size):
        s = max((i + 0.5) * in_size / out_size - 0.5, 0.0)
        i0 = int(s)
        i1 = i0 + 1 if i0 < in_size - 1 else i0
        return i0, i1, s - i0

    for oy in range(out_h):
        y0, y1, ly = src(oy, in_h, out_h)
        for ox in range(out_w):
            x0, x1, lx = src(ox, in_w, out_w)
            out[:, oy, ox] = ((1 - ly) * ((1 - lx) * x[:, y0, x0] + lx * x[:, y0, x1])
                              + ly * ((1 - lx) * x[:, y1, x0] + lx * x[:, y1, x1]))
    return out


@pytest.mark.parametrize("in_hw,out_hw", [((8, 5), (13, 11)), ((13, 17), (5, 4)),
                                          ((32, 32), (299, 299)), ((512, 300), (299, 299))])
def test_resize_matches_torch_rule(in_hw, out_hw):
    x = np.random.default_rng(9).uniform(size=(2,) + in_hw + (3,))
    got = resize_bilinear_half_pixel(jnp.asarray(x, jnp.float32), out_hw)
    np.testing.assert_allclose(np.asarray(got), _reference_resize(x, *out_hw), atol=2e-6)


def test_preprocess_and_quantize():
    img = np.random.default_rng(10).integers(0, 256, size=(1, 299, 299, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(inception_preprocess(img)), img / 255.0 * 2 - 1,
                               atol=1e-6)
    s = np.array([-1.5, -1.0, -0.3, 0.0, 0.2, 1.0, 2.0], np.float32)
    expected = np.clip(s * 127.5 + 128, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(quantize_to_uint8(s)), expected)
    assert list(expected[[1, 3, 5]]) == [0, 128, 255]


# ---------------------------------------------------------------- Inception blocks vs NumPy


def _np_conv(x, w, stride=1, pad=(0, 0)):
    """torch conv2d, NCHW x, OIHW w, float64."""
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    o, _, kh, kw = w.shape
    oh = (x.shape[2] - kh) // stride + 1
    ow = (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def _np_basic(sd, name, x, stride=1, pad=(0, 0)):
    y = _np_conv(x, sd[f"{name}.conv.weight"], stride, pad)
    g, b = sd[f"{name}.bn.weight"], sd[f"{name}.bn.bias"]
    m, v = sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"]
    m, v, g, b = (t[:, None, None] for t in (m, v, g, b))
    y = (y - m) / np.sqrt(v + 1e-3) * g + b
    return np.maximum(y, 0)


def _np_pool3(x, mode):
    """3x3/1 pad-1 pool: 'avg' excludes padding (count_include_pad=False), 'max' pads -inf."""
    fill = -np.inf if mode == "max" else 0.0
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)
    ones = np.pad(np.ones_like(x), ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, w = x.shape[2:]
    wins = [p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)]
    if mode == "max":
        return np.max(wins, axis=0)
    counts = sum(ones[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3))
    return np.sum(wins, axis=0) / counts


def _random_state_dict(template, seed, gain=1.0):
    """Torch-layout random tensors for every leaf of a Flax template, plus num_batches_tracked
    (kernels ~ N(0, gain^2 / fan_in))."""
    rng = np.random.default_rng(seed)
    sd = {}
    for _collection, tree in template.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            names = tuple(k.key for k in path)
            prefix = ".".join(names[:-1])
            if names[-1] == "kernel" and len(leaf.shape) == 2:  # Dense (in, out) -> (out, in)
                i, o = leaf.shape
                sd[prefix + ".weight"] = rng.normal(size=(o, i)) / np.sqrt(i)
            elif names[-1] == "kernel":
                h, w, i, o = leaf.shape
                sd[prefix + ".weight"] = rng.normal(size=(o, i, h, w)) * gain / np.sqrt(i * h * w)
            elif names[-1] == "scale":
                sd[prefix + ".weight"] = rng.uniform(0.5, 1.5, leaf.shape)
            elif names[-1] == "bias":
                sd[prefix + ".bias"] = rng.normal(size=leaf.shape) * 0.1
            elif names[-1] == "mean":
                sd[prefix + ".running_mean"] = rng.normal(size=leaf.shape) * 0.1
                sd[prefix + ".num_batches_tracked"] = np.array(7)
            else:
                sd[prefix + ".running_var"] = rng.uniform(0.5, 1.5, leaf.shape)
    return sd


def _block_case(module, in_ch, seed):
    x = np.random.default_rng(seed).normal(size=(2, in_ch, 5, 6))
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, 5, 6, in_ch), jnp.float32))
    sd = _random_state_dict(template, seed)
    variables = map_state_dict(template, sd)
    got = module.apply(variables, jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32))
    return x, sd, np.asarray(got).transpose(0, 3, 1, 2)


def test_fid_inception_a_block_matches_numpy():
    x, sd, got = _block_case(inc.FIDInceptionA(pool_features=8), 4, 11)
    ref = np.concatenate([
        _np_basic(sd, "branch1x1", x),
        _np_basic(sd, "branch5x5_2", _np_basic(sd, "branch5x5_1", x), pad=(2, 2)),
        _np_basic(sd, "branch3x3dbl_3", _np_basic(sd, "branch3x3dbl_2",
                  _np_basic(sd, "branch3x3dbl_1", x), pad=(1, 1)), pad=(1, 1)),
        _np_basic(sd, "branch_pool", _np_pool3(x, "avg"))], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_fid_inception_e_blocks_match_numpy(pool):
    x, sd, got = _block_case(inc.FIDInceptionE(pool=pool), 4, 12)
    b3 = _np_basic(sd, "branch3x3_1", x)
    bd = _np_basic(sd, "branch3x3dbl_2", _np_basic(sd, "branch3x3dbl_1", x), pad=(1, 1))
    ref = np.concatenate([
        _np_basic(sd, "branch1x1", x),
        _np_basic(sd, "branch3x3_2a", b3, pad=(0, 1)),
        _np_basic(sd, "branch3x3_2b", b3, pad=(1, 0)),
        _np_basic(sd, "branch3x3dbl_3a", bd, pad=(0, 1)),
        _np_basic(sd, "branch3x3dbl_3b", bd, pad=(1, 0)),
        _np_basic(sd, "branch_pool", _np_pool3(x, pool))], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def _np_maxpool_s2(x):
    """F.max_pool2d(x, 3, stride=2), no padding."""
    h, w = (x.shape[2] - 3) // 2 + 1, (x.shape[3] - 3) // 2 + 1
    return np.max([x[:, :, i:i + 2 * h:2, j:j + 2 * w:2] for i in range(3) for j in range(3)],
                  axis=0)


def _np_a(sd, x, p=""):
    return np.concatenate([
        _np_basic(sd, p + "branch1x1", x),
        _np_basic(sd, p + "branch5x5_2", _np_basic(sd, p + "branch5x5_1", x), pad=(2, 2)),
        _np_basic(sd, p + "branch3x3dbl_3", _np_basic(sd, p + "branch3x3dbl_2",
                  _np_basic(sd, p + "branch3x3dbl_1", x), pad=(1, 1)), pad=(1, 1)),
        _np_basic(sd, p + "branch_pool", _np_pool3(x, "avg"))], axis=1)


def _np_b(sd, x, p=""):
    bd = _np_basic(sd, p + "branch3x3dbl_2", _np_basic(sd, p + "branch3x3dbl_1", x), pad=(1, 1))
    return np.concatenate([_np_basic(sd, p + "branch3x3", x, stride=2),
                           _np_basic(sd, p + "branch3x3dbl_3", bd, stride=2),
                           _np_maxpool_s2(x)], axis=1)


def _np_c(sd, x, p=""):
    b7 = _np_basic(sd, p + "branch7x7_1", x)
    b7 = _np_basic(sd, p + "branch7x7_2", b7, pad=(0, 3))
    b7 = _np_basic(sd, p + "branch7x7_3", b7, pad=(3, 0))
    bd = _np_basic(sd, p + "branch7x7dbl_1", x)
    for i, pad in zip(range(2, 6), [(3, 0), (0, 3), (3, 0), (0, 3)]):
        bd = _np_basic(sd, p + f"branch7x7dbl_{i}", bd, pad=pad)
    return np.concatenate([_np_basic(sd, p + "branch1x1", x), b7, bd,
                           _np_basic(sd, p + "branch_pool", _np_pool3(x, "avg"))], axis=1)


def _np_d(sd, x, p=""):
    b3 = _np_basic(sd, p + "branch3x3_2", _np_basic(sd, p + "branch3x3_1", x), stride=2)
    b7 = _np_basic(sd, p + "branch7x7x3_1", x)
    b7 = _np_basic(sd, p + "branch7x7x3_2", b7, pad=(0, 3))
    b7 = _np_basic(sd, p + "branch7x7x3_3", b7, pad=(3, 0))
    b7 = _np_basic(sd, p + "branch7x7x3_4", b7, stride=2)
    return np.concatenate([b3, b7, _np_maxpool_s2(x)], axis=1)


def _np_e(sd, x, pool, p=""):
    b3 = _np_basic(sd, p + "branch3x3_1", x)
    bd = _np_basic(sd, p + "branch3x3dbl_2", _np_basic(sd, p + "branch3x3dbl_1", x), pad=(1, 1))
    return np.concatenate([
        _np_basic(sd, p + "branch1x1", x),
        _np_basic(sd, p + "branch3x3_2a", b3, pad=(0, 1)),
        _np_basic(sd, p + "branch3x3_2b", b3, pad=(1, 0)),
        _np_basic(sd, p + "branch3x3dbl_3a", bd, pad=(0, 1)),
        _np_basic(sd, p + "branch3x3dbl_3b", bd, pad=(1, 0)),
        _np_basic(sd, p + "branch_pool", _np_pool3(x, pool))], axis=1)


def test_inception_b_c_d_blocks_match_numpy():
    for module, ref_fn, seed in ((inc.InceptionB(), _np_b, 21),
                                 (inc.FIDInceptionC(channels_7x7=8), _np_c, 22),
                                 (inc.InceptionD(), _np_d, 23)):
        x, sd, got = _block_case(module, 4, seed)
        np.testing.assert_allclose(got, ref_fn(sd, x), rtol=1e-4, atol=1e-5,
                                   err_msg=type(module).__name__)


def _np_fid_inception(sd, x):
    """pytorch-fid's FIDInceptionV3 forward in float64 NumPy, NCHW in [-1, 1] -> (pool3, logits),
    written from the PyTorch module tree (torchvision Inception3 names)."""
    x = _np_basic(sd, "Conv2d_1a_3x3", x, stride=2)
    x = _np_basic(sd, "Conv2d_2a_3x3", x)
    x = _np_maxpool_s2(_np_basic(sd, "Conv2d_2b_3x3", x, pad=(1, 1)))
    x = _np_basic(sd, "Conv2d_4a_3x3", _np_basic(sd, "Conv2d_3b_1x1", x))
    x = _np_maxpool_s2(x)
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = _np_a(sd, x, name + ".")
    x = _np_b(sd, x, "Mixed_6a.")
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = _np_c(sd, x, name + ".")
    x = _np_d(sd, x, "Mixed_7a.")
    x = _np_e(sd, _np_e(sd, x, "avg", "Mixed_7b."), "max", "Mixed_7c.")
    pool3 = x.mean(axis=(2, 3))
    return pool3, pool3 @ sd["fc.weight"].T + sd["fc.bias"]


def test_full_fid_inception_matches_numpy_on_image_dependent_weights():
    """The whole network against an independent float64 forward pass. Unlike the fid fixture's
    random weights (whose outputs are the same for every image), these keep the features
    image-dependent, so block order, channel concatenation and pooling are all exercised."""
    model = inc.FIDInceptionV3()
    template = inc.abstract_variables(model)
    sd = _random_state_dict(template, 31, gain=np.sqrt(2.0))
    variables = map_state_dict(template, sd)
    # 139x139 leaves Mixed_7b/7c 3x3 (at 75 they are 1x1, where their
    # average and max pools coincide and would go untested)
    x = np.random.default_rng(32).uniform(-1, 1, size=(2, 3, 139, 139))
    pool3, logits = jax.jit(model.apply)(variables, jnp.asarray(x.transpose(0, 2, 3, 1),
                                                                jnp.float32))
    ref_pool3, ref_logits = _np_fid_inception(sd, x)
    spread = np.abs(ref_pool3[0] - ref_pool3[1]).mean() / np.abs(ref_pool3).mean()
    assert spread > 0.02  # the two images give different features
    np.testing.assert_allclose(np.asarray(pool3), ref_pool3, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=1e-3, atol=1e-4)


def test_mapping_errors_name_tensors():
    module = inc.BasicConv2d(3, (1, 3), padding=(0, 1))
    template = jax.eval_shape(module.init, jax.random.PRNGKey(0),
                              jax.ShapeDtypeStruct((1, 4, 4, 2), jnp.float32))
    sd = _random_state_dict(template, 0)
    sd["conv.weight"] = sd["conv.weight"].transpose(0, 1, 3, 2)
    del sd["bn.running_var"]
    sd["bn.extra"] = np.zeros(3)
    with pytest.raises(CheckpointError) as err:
        map_state_dict(template, sd, source="my.pth")
    msg = str(err.value)
    assert "my.pth" in msg and "bn.running_var" in msg and "bn.extra" in msg
    assert "conv.weight: file (3, 2, 3, 1) vs model (3, 2, 1, 3)" in msg


def test_full_model_variable_tree():
    shapes = inc.abstract_variables()
    n = sum(leaf.size for leaf in jax.tree_util.tree_leaves(shapes))
    assert n == 23_885_392  # pt_inception-2015-12-05: 566 tensors less 94 num_batches_tracked
    assert shapes["params"]["fc"]["kernel"].shape == (2048, 1008)


# ---------------------------------------------------------------- sharded extraction


def _stand_in_features(params, images):
    x = images.astype(jnp.float32) / 255.0
    pooled = jnp.mean(x, axis=(1, 2))
    return pooled @ params["w"], jnp.tanh(pooled).sum(-1)


def test_sharded_extraction_equals_unsharded():
    mesh = data_mesh()
    assert mesh.size == 8
    rng = np.random.default_rng(13)
    params = {"w": jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)}
    batches = [rng.integers(0, 256, size=(n, 6, 6, 3), dtype=np.uint8) for n in (11, 11, 4)]
    feats, extra = extract_features(_stand_in_features, params, batches, mesh=mesh)
    ref_feats, ref_extra = _stand_in_features(params, jnp.asarray(np.concatenate(batches)))
    assert feats.shape == (26, 5) and extra.shape == (26,)
    chex.assert_trees_all_close((feats, extra), (np.asarray(ref_feats), np.asarray(ref_extra)),
                                rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- parity runner


@pytest.mark.slow
def test_fid_parity_runner(shared_fixtures):
    fixtures = shared_fixtures / "fid"
    if not (fixtures / "manifest.json").is_file():
        pytest.skip(f"no FID fixtures at {fixtures}")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "launch.parity", "--fixtures", str(fixtures)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout
