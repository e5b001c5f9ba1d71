"""The train loop shared by every objective: resume, sharded steps, periodic logs, checkpoints.

The loop fetches metrics from the device only every `log_every` steps (and before each
checkpoint), so there is no host synchronisation per step. A non-finite loss stops the run
with its step number before anything is saved, leaving the last good checkpoint intact.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from dg_jax.checkpoint import Checkpointer
from dg_jax.metric_writers import NullWriter, log
from dg_jax.parallel import shard_batch


class NonFiniteLossError(FloatingPointError):
    pass


def _mean_metrics(history):
    stacked = jax.device_get(history)
    return {k: float(np.mean([m[k] for m in stacked])) for k in stacked[0]}


def train_loop(state, train_step: Callable, batch_fn: Callable[[int], dict], *, num_steps: int,
               mesh: Mesh, checkpointer: Optional[Checkpointer] = None,
               checkpoint_every: int = 1000, log_every: int = 100, writer=None,
               name: str = "train"):
    """Runs `train_step` (already jitted) from state.step to num_steps.

    batch_fn(step) returns this process's slice of the global batch for that step as host
    arrays; it must be a pure function of the step so that a resumed run sees the same data.
    """
    writer = writer or NullWriter()
    start = int(jax.device_get(state.step))
    if start >= num_steps:
        log(f"[{name}] already at step {start} >= {num_steps}: nothing to train")
        return state
    log(f"[{name}] training steps {start} -> {num_steps} on {mesh.devices.size} device(s)")
    history, t0, last = [], time.perf_counter(), start
    for step in range(start, num_steps):
        batch = shard_batch(batch_fn(step), mesh)
        state, metrics = train_step(state, batch)
        history.append(metrics)
        done = step + 1
        boundary_ckpt = checkpointer is not None and (done % checkpoint_every == 0
                                                      or done == num_steps)
        if done % log_every == 0 or done == num_steps or boundary_ckpt:
            means = _mean_metrics(history)
            if not np.isfinite(means.get("loss", 0.0)):
                raise NonFiniteLossError(
                    f"[{name}] non-finite loss at step {done} (between steps {done - len(history) + 1}"
                    f" and {done}); last good checkpoint kept in place")
            rate = (done - last) / max(time.perf_counter() - t0, 1e-9)
            text = " ".join(f"{k}={v:.4g}" for k, v in means.items())
            log(f"[{name}] step {done}/{num_steps} {text} ({rate:.1f} steps/s)")
            writer.write_scalars(done, {**means, "steps_per_second": rate})
            history, t0, last = [], time.perf_counter(), done
        if boundary_ckpt:
            checkpointer.save(done, state)
    writer.flush()
    return state
