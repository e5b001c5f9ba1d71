"""Diffusion-GAN's losses and train step (official `training/loss.py` + the loop's order).

Per minibatch, as in the official loop:
  1. Gmain: L_G = softplus(-D(y_fake, t)) (non-saturating), y_fake = diffuse(G(z));
  2. Dmain: L_D = softplus(D(y_fake, t)) + softplus(-D(y_real, t)) with a fresh z, the
     updated G and fresh diffusion draws;
  3. Dreg (every r1_interval minibatches, lazy R1): gamma / 2 * |grad_x D(diffuse(x_real), t)|^2
     times the interval (the gradient is taken w.r.t. the real image *before* the diffusion
     step, through it), a separate optimiser step;
  4. EMA of G (`dg_jax.train.state.ema_update`, made with G's update in 1: it depends on the
     new G only); 5. every ada_interval minibatches the adaptive p / T / t_epl update from the
     signs of D's real logits gathered in 2 and 3 (`diffusion_aug.adjust`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dg_jax.gan import diffusion_aug as da
from dg_jax.gan.state import GANState, ema_beta


def r1_penalty(d_apply: Callable, d_params, real, dstate, key, cfg: da.DiffusionConfig):
    """(|grad_x sum D(diffuse(x), t)|^2 per sample, real logits); t and eps fixed per call."""
    k_t, k_eps = jax.random.split(key)
    t = (da.sample_t(k_t, dstate, real.shape[0]) if cfg.enabled
         else jnp.zeros((real.shape[0],), jnp.int32))

    def total(x):
        logits = d_apply(d_params, da.diffuse(x, t, dstate.T, k_eps, cfg), t)
        return jnp.sum(logits), logits

    grads, logits = jax.grad(total, has_aux=True)(real)
    return jnp.sum(jnp.square(grads).reshape(real.shape[0], -1), axis=1), logits


def make_gan_train_step(g_apply: Callable, d_apply: Callable, g_tx, d_tx, *, z_dim: int,
                        cfg: da.DiffusionConfig, r1_gamma: float = 0.0, r1_interval: int = 16,
                        ema_kimg: float = 10.0, ema_rampup: float | None = None,
                        batch_size: int):
    """(state, batch{'real'}) -> (state, metrics). g_apply(params, z) -> x;
    d_apply(params, y, t) -> (B,) logits. `batch_size` is the global batch."""

    def train_step(state: GANState, batch):
        real = batch["real"]
        keys = jax.random.split(state.step_key(), 8)
        dstate = state.diffusion

        # Gmain
        z_g = jax.random.normal(keys[0], (batch_size, z_dim))

        def g_loss(gp):
            y, t = da.augment(g_apply(gp, z_g), dstate, keys[1], cfg)
            logits = d_apply(state.d.params, y, t)
            return jnp.mean(jax.nn.softplus(-logits)), logits

        (loss_g, _), g_grads = jax.value_and_grad(g_loss, has_aux=True)(state.g.params)
        # the EMA of G (step 4) depends on G's new params only, so it is made with the update
        beta = ema_beta(batch_size, state.step.astype(jnp.float32) * batch_size, ema_kimg,
                        ema_rampup)
        g = state.g.apply_gradients(g_grads, g_tx, ema_beta=beta)

        # Dmain
        fake = jax.lax.stop_gradient(g_apply(g.params, jax.random.normal(keys[2], (batch_size, z_dim))))

        def d_loss(dp):
            yf, tf = da.augment(fake, dstate, keys[3], cfg)
            yr, tr = da.augment(real, dstate, keys[4], cfg)
            lf, lr = d_apply(dp, yf, tf), d_apply(dp, yr, tr)
            return jnp.mean(jax.nn.softplus(lf)) + jnp.mean(jax.nn.softplus(-lr)), (lf, lr)

        (loss_d, (logits_fake, logits_real)), d_grads = jax.value_and_grad(
            d_loss, has_aux=True)(state.d.params)
        d = state.d.apply_gradients(d_grads, d_tx)
        dstate = da.record_signs(dstate, logits_real)

        # Dreg: lazy R1 on the real images, through the diffusion step
        r1 = jnp.zeros((), jnp.float32)
        if r1_gamma > 0:
            def reg(args):
                d, ds = args

                def loss(p):
                    pen, logits = r1_penalty(d_apply, p, real, ds, keys[5], cfg)
                    return jnp.mean(pen * (r1_gamma / 2)) * r1_interval, (pen, logits)

                (_, (pen, logits)), grads = jax.value_and_grad(loss, has_aux=True)(d.params)
                return d.apply_gradients(grads, d_tx), da.record_signs(ds, logits), jnp.mean(pen)

            def skip(args):
                return (*args, jnp.zeros((), jnp.float32))

            d, dstate, r1 = jax.lax.cond(state.step % r1_interval == 0, reg, skip, (d, dstate))

        # the adaptive diffusion heuristic (batch_idx counted after this minibatch)
        dstate = da.maybe_adjust(dstate, state.step + 1, keys[6], cfg, batch_size)

        metrics = {"loss": loss_d, "loss_g": loss_g, "d_real": jnp.mean(logits_real),
                   "d_fake": jnp.mean(logits_fake),
                   "sign_real": jnp.mean(jnp.sign(logits_real)), "r_d": dstate.last_rd,
                   "p": dstate.p, "T": dstate.T.astype(jnp.float32), "r1": r1}
        new_state = state.replace(step=state.step + 1, g=g, d=d, diffusion=dstate)
        return new_state, metrics

    return train_step
