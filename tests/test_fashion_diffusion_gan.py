"""configs/fashion_diffusion_gan.py: vanilla GAN vs Diffusion-GAN on limited Fashion-MNIST (its
:smoke variant on the real files, 8 fake devices), and the pieces it added: the DCGAN's
transposed convolution as four 2x2 convolutions, the subset runs, the memorisation check."""
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import fashion_diffusion_gan
from dg_jax.data.images import FASHION_MNIST_DIR
from dg_jax.errors import ConfigError
from dg_jax.experiments.diffusion_gan import fashion
from dg_jax.experiments.diffusion_gan import pipeline as dgan
from dg_jax.gan.models_dcgan import UpConv
from dg_jax.parallel import make_mesh


@pytest.mark.parametrize("jit", [False, True])
def test_upconv_is_flax_conv_transpose(jit):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 3))
    ref = nn.ConvTranspose(4, (4, 4), (2, 2), padding="SAME")
    variables = ref.init(jax.random.PRNGKey(1), x)
    # the same parameter tree (names, shapes, initial values): checkpoints carry over
    mine = UpConv(4).init(jax.random.PRNGKey(1), x)
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, mine)
    variables = jax.tree_util.tree_map(
        lambda a: a + jax.random.normal(jax.random.PRNGKey(2), a.shape), variables)
    f_ref, f_mine = ref.apply, UpConv(4).apply
    if jit:
        f_ref, f_mine = jax.jit(f_ref), jax.jit(f_mine)
    np.testing.assert_allclose(f_mine(variables, x), f_ref(variables, x), atol=1e-5, rtol=1e-5)
    weights = jnp.arange(10 * 12 * 4, dtype=jnp.float32).reshape(1, 10, 12, 4) / 480
    g_ref = jax.grad(lambda v, x: jnp.sum(ref.apply(v, x) * weights), argnums=(0, 1))
    g_mine = jax.grad(lambda v, x: jnp.sum(UpConv(4).apply(v, x) * weights), argnums=(0, 1))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5),
                           g_mine(variables, x), g_ref(variables, x))


def test_run_names_and_validation():
    config = fashion_diffusion_gan.get_config()
    assert fashion.run_names(config) == ("vanilla_500", "diffusion_gan_500", "vanilla_2000",
                                         "diffusion_gan_2000")
    names = [s.name for s in dgan.stages(config)]
    assert names == list(fashion.run_names(config)) + ["evaluate"]
    assert config.model.backbone == "dcgan" and config.data.resolution == 32
    mesh = make_mesh(jax.devices()[:1])
    for field, value, words in [("data.subset_sizes", [], "subset_sizes"),
                                ("data.resolution", 64, "data.resolution=64"),
                                ("eval.curve_every", 0, "eval.curve_every")]:
        bad = fashion_diffusion_gan.get_config()
        section, key = field.split(".")
        bad[section][key] = value
        with pytest.raises(ConfigError, match=words):
            dgan.validate(bad, mesh)


def test_crop_and_nearest_training():
    x = np.zeros((3, 32, 32, 1), np.float32)
    x[:, 2:30, 2:30] = 1.0
    assert fashion.crop_to_eval(x).shape == (3, 28, 28, 1) and fashion.crop_to_eval(x).min() == 1
    assert fashion.crop_to_eval(x[:, 2:30, 2:30]).shape == (3, 28, 28, 1)
    with pytest.raises(ValueError, match="28x28 or 32x32"):
        fashion.crop_to_eval(np.zeros((1, 30, 30, 1)))
    train = np.random.default_rng(0).standard_normal((20, 4, 4, 1))
    samples = train[[7, 3, 11]] + 0.01
    np.testing.assert_array_equal(fashion.nearest_training(samples, train), [7, 3, 11])


def _need_fashion():
    if not pathlib.Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                    "(apt-get install -y dataset-fashion-mnist)")


@pytest.mark.slow
def test_fashion_diffusion_gan_smoke(tmp_path):
    _need_fashion()
    config = fashion_diffusion_gan.get_config("smoke")
    results = dgan.run(config, str(tmp_path))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["real_floor"] == results["real_floor"] > 0
    assert 0 < saved["eval_network"]["test_accuracy"] <= 1
    steps, every = config.train.num_steps, config.eval.curve_every
    for n in config.data.subset_sizes:
        per = saved["subsets"][str(n)]
        assert per["fd_ratio"] == pytest.approx(per["diffusion_gan"]["fd"] / per["vanilla"]["fd"])
        # the training subset's own scores: real images, so far below 40 steps of tiny networks
        mem = per["memorisation"]
        assert 0 < mem["fd"] < min(per["vanilla"]["fd"], per["diffusion_gan"]["fd"])
        assert 0 <= mem["recall"] <= 1 and 0 < mem["precision"] <= 1
        for run in ("vanilla", "diffusion_gan"):
            m = per[run]
            assert {"fd", "precision", "recall", "final_T", "final_p", "r_d_last_quarter"} <= set(m)
            assert [c["step"] for c in m["curve"]] == list(range(every, steps + 1, every))
            traj = m["trajectory"]
            assert traj["step"][-1] == steps and len(traj["T"]) == len(traj["r_d"])
            assert all(-1 <= r <= 1 for r in traj["r_d"])
            assert (tmp_path / f"samples_{run}_{n}.png").is_file()
        # vanilla never moves p; the smoke's tiny ada_kimg and d_target -1 move Diffusion-GAN's
        # T off T_min
        assert per["vanilla"]["final_p"] == 0 and per["vanilla"]["final_T"] == 0
        assert per["diffusion_gan"]["final_T"] > config.diffusion.t_min
        assert (tmp_path / f"nearest_{n}.png").is_file()
    assert (tmp_path / "training.png").is_file()
    # a rerun resumes every stage: the same results, nothing retrained
    again = dgan.run(config, str(tmp_path))
    assert again["subsets"]["100"]["vanilla"]["fd"] == results["subsets"]["100"]["vanilla"]["fd"]
