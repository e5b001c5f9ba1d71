"""Analytic FLOP counts (dg_jax/flops.py) against closed forms."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from dg_jax.flops import count_flops, peak_flops


def test_dense_conv_and_their_gradient():
    dense = nn.Dense(5)
    p = dense.init(jax.random.PRNGKey(0), jnp.zeros((4, 3)))
    assert count_flops(lambda x: dense.apply(p, x), jnp.zeros((4, 3))) == 2 * 4 * 3 * 5
    conv = nn.Conv(16, (3, 3))
    pc = conv.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 4)))
    fwd = 2 * 2 * 8 * 8 * 16 * 9 * 4
    assert count_flops(lambda x: conv.apply(pc, x), jnp.zeros((2, 8, 8, 4))) == fwd
    # the input gradient adds one transposed convolution of the same size
    grad = jax.grad(lambda x: conv.apply(pc, x).sum())
    assert count_flops(grad, jnp.zeros((2, 8, 8, 4))) == 2 * fwd


def test_scan_multiplies_and_cond_takes_the_costlier_branch():
    dense = nn.Dense(3)
    p = dense.init(jax.random.PRNGKey(0), jnp.zeros((4, 3)))
    one = 2 * 4 * 3 * 3

    def body(x, _):
        return dense.apply(p, x), None

    scanned = jax.jit(lambda x: jax.lax.scan(body, x, None, length=7)[0])
    assert count_flops(scanned, jnp.zeros((4, 3))) == 7 * one
    cond = jax.jit(lambda x: jax.lax.cond(x.sum() > 0, lambda y: dense.apply(p, dense.apply(p, y)),
                                          lambda y: y, x))
    assert count_flops(cond, jnp.zeros((4, 3))) == 2 * one


def test_edm_cifar10_ddpmpp_matches_the_published_size():
    """EDM's CIFAR-10 DDPM++ (VP): about 55.7 M parameters and 42.4 GFLOP per image and
    network evaluation, counted from the trace (nothing is run)."""
    from configs import cifar10_edm_dg
    from dg_jax.models.edm_precond import edm_precond_from_kwargs

    arch = cifar10_edm_dg.get_config("").score.arch.to_dict()
    pre = edm_precond_from_kwargs(arch["class_name"], arch["init_kwargs"])
    x, sigma = jnp.zeros((1, 32, 32, 3)), jnp.ones((1,))
    params = jax.eval_shape(lambda: pre.model.init(jax.random.PRNGKey(0), x, sigma, None))
    params = params["params"]
    assert abs(sum(v.size for v in jax.tree_util.tree_leaves(params)) / 1e6 - 55.73) < 0.01
    gflop = count_flops(lambda p, y: pre(p, y, sigma, None), params, x) / 1e9
    assert 42.0 < gflop < 42.8, gflop


def test_peak_table():
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert peak_flops("cpu", "float32") is None
