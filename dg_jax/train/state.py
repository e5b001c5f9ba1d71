"""The train state: everything that changes during training, saved whole by orbax.

`TrainState` is the one state of every objective (score models, guides, discriminators, and
each network of a GAN); `ema_update` is the one exponential moving average of parameters.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


def ema_update(ema, params, beta):
    """The EMA step, leaf by leaf: ema <- params + beta (ema - params), i.e. torch's
    `params.lerp(ema, beta)` as EDM and StyleGAN2-ADA write it (beta = 0 copies the params)."""
    return jax.tree_util.tree_map(lambda e, p: p + beta * (e - p), ema, params)


@struct.dataclass
class TrainState:
    """step, params, optimiser state, the base rng key and (optionally) an EMA of the params.

    Per-step randomness is `step_key()` = `jax.random.fold_in(rng, step)`, so a resumed run
    draws exactly the numbers an uninterrupted one would. `ema_params` is None when the
    objective keeps no EMA; `rng` is None for a network whose randomness comes from an
    enclosing state (the two networks of a `dg_jax.gan.state.GANState`).
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any
    rng: Any
    ema_params: Any = None

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, rng, *, ema: bool = False,
               **fields) -> "TrainState":
        """Step 0, `tx.init(params)`; with `ema`, the EMA starts as a copy of the params in
        buffers of its own (train steps donate the state, so the two must not alias).
        `fields` fill the extra fields of a subclass."""
        ema_params = jax.tree_util.tree_map(jnp.copy, params) if ema else None
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   rng=None if rng is None else jnp.asarray(rng), ema_params=ema_params,
                   **fields)

    def step_key(self):
        return jax.random.fold_in(self.rng, self.step)

    def apply_gradients(self, grads, tx: optax.GradientTransformation, *, ema_beta=None,
                        **changes) -> "TrainState":
        """One optimiser update (step + 1); with `ema_beta`, then `ema_update` of ema_params
        towards the new params. `changes` replace other fields in the same call."""
        updates, opt_state = tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        ema_params = self.ema_params
        if ema_beta is not None:
            if ema_params is None:
                raise ValueError("this objective keeps an EMA of the parameters but the state "
                                 "has none: create it with TrainState.create(..., ema=True)")
            ema_params = ema_update(ema_params, params, ema_beta)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                            ema_params=ema_params, **changes)


LR_SCHEDULES = ("constant", "cosine")


def make_optimizer(name: str, learning_rate: float, *, weight_decay: float = 0.0,
                   grad_clip: float = 0.0, warmup_steps: int = 0, schedule: str = "constant",
                   decay_steps: int = 0, field: str = "train.optimizer"
                   ) -> optax.GradientTransformation:
    """Adam / AdamW / SGD by name, with optional linear warm-up, global-norm clipping and a
    learning rate that is constant or follows a cosine from `learning_rate` to 0 over
    `decay_steps` (after the warm-up)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r} (next to field '{field}'); "
                         f"choose one of {list(LR_SCHEDULES)}")
    if schedule == "cosine" and decay_steps < 1:
        raise ValueError(f"a cosine schedule needs decay_steps >= 1 (next to field '{field}')")
    # a constant rate stays a float (no schedule count in the optimizer state, as before)
    main = (optax.cosine_decay_schedule(learning_rate, decay_steps) if schedule == "cosine"
            else learning_rate)
    if warmup_steps:
        main = optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps),
                                     optax.constant_schedule(main) if schedule != "cosine"
                                     else main], [warmup_steps])
    schedule = main
    if name == "adam":
        opt = optax.adam(schedule)
    elif name == "adamw":
        opt = optax.adamw(schedule, weight_decay=weight_decay)
    elif name == "sgd":
        opt = optax.sgd(schedule, momentum=0.9)
    else:
        raise ValueError(f"unknown optimizer {name!r} (field '{field}'); "
                         "choose one of ['adam', 'adamw', 'sgd']")
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt) if grad_clip else opt
