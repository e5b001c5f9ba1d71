"""The train state: everything that changes during training, saved whole by orbax."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
    """step, params, optimiser state and the base rng key.

    Per-step randomness is `jax.random.fold_in(rng, step)`, so a resumed run draws exactly the
    numbers an uninterrupted one would.
    """

    step: jnp.ndarray
    params: Any
    opt_state: Any
    rng: jnp.ndarray

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, rng) -> "TrainState":
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                   rng=jnp.asarray(rng))

    def step_key(self):
        return jax.random.fold_in(self.rng, self.step)


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
