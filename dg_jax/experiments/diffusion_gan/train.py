"""One GAN run of the experiment (vanilla or Diffusion-GAN), trained or resumed by `kit.fit`.

The jitted step runs over the mesh (batch sharded on 'data', state replicated), logs T, p, r_d
and D's real/fake outputs, and the whole `GANState` (p, T, t_epl included) is checkpointed
under checkpoints/<run>; a restarted run resumes with exactly the augmentation state it had.
"""
from __future__ import annotations

from typing import Callable, Optional

from dg_jax.gan import diffusion_aug as da
from dg_jax.gan.losses import make_gan_train_step
from dg_jax.gan.trainer import diffusion_config, init_state
from dg_jax.metric_writers import log


def train_gan(run, name: str, data_shape: tuple, batch_fn: Callable, enabled: bool, *,
              on_segment: Optional[Callable] = None, segment_every: int = 0):
    """Trains (or resumes) the GAN `name` of `run` (a kit.setup.Run); returns (state, g_apply,
    d_apply). With `segment_every`, `on_segment(state)` is called each time the step reaches a
    multiple of it (e.g. to snapshot samples for a figure)."""
    config = run.config
    t = config.train
    cfg = diffusion_config(config, enabled)
    state, g_apply, d_apply, g_tx, d_tx = init_state(config, data_shape, cfg, config.seed)

    def check_resumed(restored):
        log(f"[{name}] p={float(restored.diffusion.p):.4f} T={int(restored.diffusion.T)}")
        if enabled:
            expect = int(da.compute_T(restored.diffusion.p, cfg.t_min, cfg.t_max))
            if expect != int(restored.diffusion.T):
                raise ValueError(f"checkpoint of {name} holds T={int(restored.diffusion.T)} but "
                                 f"p gives T={expect}")

    step_fn = make_gan_train_step(
        g_apply, d_apply, g_tx, d_tx, z_dim=config.model.z_dim, cfg=cfg, r1_gamma=t.r1_gamma,
        r1_interval=t.r1_interval, ema_kimg=t.ema_kimg, ema_rampup=t.ema_rampup,
        batch_size=t.batch_size)
    state = run.fit(name, state, step_fn, batch_fn, num_steps=t.num_steps,
                    checkpoint_every=t.checkpoint_every, log_every=t.log_every,
                    steps_field="train.num_steps", on_resume=check_resumed,
                    segment_every=segment_every, on_segment=on_segment)
    return state, g_apply, d_apply
