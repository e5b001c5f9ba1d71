"""`fit`: the one resume -> replicate -> jit -> train -> checkpoint -> close sequence of every
training stage (score models, discriminators, classifiers, GANs).

The state is restored from `checkpointer` when it holds a step (an exact resume: per-step
randomness is `fold_in(state.rng, state.step)`), replicated over the mesh, trained by
`dg_jax.train.loop.train_loop` (progress lines, NaN guard over metrics and the whole state,
refusal of a lowered step count, periodic checkpoints), and the checkpointer is closed.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax

from dg_jax.checkpoint import Checkpointer
from dg_jax.metric_writers import log
from dg_jax.parallel import replicate
from dg_jax.train.loop import train_loop


def fit(state, step_fn: Callable, batch_fn: Callable[[int], dict], checkpointer: Checkpointer, *,
        mesh, num_steps: int, checkpoint_every: int, log_every: int, name: str,
        steps_field: str, writer=None, jit: bool = True,
        on_resume: Optional[Callable] = None, segment_every: int = 0,
        on_segment: Optional[Callable] = None):
    """Trains `state` to `num_steps` with `step_fn(state, batch) -> (state, metrics)`.

    `jit`: compile `step_fn` here with the state donated (False when it is already compiled).
    `on_resume(state)` checks a restored state (e.g. that Diffusion-GAN's T matches its p).
    With `segment_every`, `on_segment(state)` runs each time training reaches a multiple of it
    and at the end (snapshots for a figure); segments finished before a resume are skipped.
    Returns the final state; closes `checkpointer` (and `writer`).
    """
    state, resumed = checkpointer.restore_or(state)
    if resumed:
        log(f"[{name}] resumed from step {int(jax.device_get(state.step))} in "
            f"{checkpointer.directory}")
        if on_resume is not None:
            on_resume(state)
    state = replicate(state, mesh)
    step = jax.jit(step_fn, donate_argnums=0) if jit else step_fn
    ends = [num_steps]
    if segment_every:
        ends = list(range(segment_every, num_steps, segment_every)) + ends
    try:
        for end in ends:
            before = int(jax.device_get(state.step))
            if before >= end and end != num_steps:
                continue  # the final call still runs: it refuses a lowered step count
            state = train_loop(state, step, batch_fn, num_steps=end, mesh=mesh,
                               checkpointer=checkpointer, checkpoint_every=checkpoint_every,
                               log_every=log_every, writer=writer, name=name,
                               steps_field=steps_field)
            if on_segment is not None and before < end:
                on_segment(state)
    finally:
        checkpointer.close()
        if writer is not None:
            writer.close()
    return state
