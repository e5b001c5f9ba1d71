"""The train loop shared by every objective: resume, sharded steps, periodic logs, checkpoints.

The loop fetches metrics from the device only every `log_every` steps (and before each
checkpoint), so there is no host synchronisation per step. At those points it also checks, in
one device reduction, that every floating-point leaf of the train state is finite: a run can
diverge without a NaN mean loss (a saturated loss over exploding parameters), and a state that
is not finite is never saved. A non-finite metric or state stops the run with the step range
and the first offending name, before anything is saved; the message says which checkpoint (if
any) is left to resume from. A resumed run drops the metric rows it will write again, so
`metrics.jsonl` never holds a step twice.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dg_jax.checkpoint import Checkpointer
from dg_jax.errors import NonFiniteError, WorkdirError
from dg_jax.metric_writers import NullWriter, log
from dg_jax.parallel import shard_batch


class NonFiniteLossError(NonFiniteError):
    """Training produced a non-finite metric or parameter."""


def _mean_metrics(history):
    stacked = jax.device_get(history)
    return {k: float(np.mean([m[k] for m in stacked])) for k in stacked[0]}


@jax.jit
def _finite_flags(state):
    """Per-leaf 'all finite' flags of the floating-point leaves of `state` (one device call)."""
    leaves = [x for x in jax.tree_util.tree_leaves(state)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    if not leaves:
        return jnp.ones((0,), bool)
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])


def _first_bad_leaf(state, flags) -> str:
    paths = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(state)
             if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return paths[int(np.argmin(flags))]


def train_loop(state, train_step: Callable, batch_fn: Callable[[int], dict], *, num_steps: int,
               mesh: Mesh, checkpointer: Optional[Checkpointer] = None,
               checkpoint_every: int = 1000, log_every: int = 100, writer=None,
               name: str = "train", steps_field: str = "num_steps"):
    """Runs `train_step` (already jitted) from state.step to num_steps.

    batch_fn(step) returns this process's slice of the global batch for that step as host
    arrays; it must be a pure function of the step so that a resumed run sees the same data.
    A state already past `num_steps` (a lowered step count) is refused, naming `steps_field`.
    """
    writer = writer or NullWriter()
    start = int(jax.device_get(state.step))
    if start > num_steps:
        raise WorkdirError(f"[{name}] the checkpoint is at step {start}, beyond {steps_field}="
                           f"{num_steps}: lowering a finished step count is not undone; set "
                           f"{steps_field}>={start} or use a new --workdir")
    if hasattr(writer, "truncate_after"):
        writer.truncate_after(start)  # rows past the resumed step are written again below
    if start == num_steps:
        log(f"[{name}] already at step {start} = {steps_field}: nothing to train")
        return state
    log(f"[{name}] training steps {start} -> {num_steps} on {mesh.devices.size} device(s) (the "
        "first step compiles the program)")
    history, t0, last = [], time.perf_counter(), start
    saved = checkpointer.latest_step() if checkpointer is not None else None
    for step in range(start, num_steps):
        batch = shard_batch(batch_fn(step), mesh)
        state, metrics = train_step(state, batch)
        history.append(metrics)
        done = step + 1
        boundary_ckpt = checkpointer is not None and (done % checkpoint_every == 0
                                                      or done == num_steps)
        if done % log_every == 0 or done == num_steps or boundary_ckpt:
            means = _mean_metrics(history)
            bad = [k for k, v in means.items() if not np.isfinite(v)]
            flags = np.asarray(_finite_flags(state))
            if bad or not flags.all():
                what = (f"metric {bad[0]}={means[bad[0]]}" if bad
                        else f"train state leaf {_first_bad_leaf(state, flags)}")
                kept = (f"the last good checkpoint, step {saved}, is kept in "
                        f"{checkpointer.directory}" if saved is not None
                        else "no checkpoint was saved before it")
                raise NonFiniteLossError(
                    f"[{name}] non-finite {what} at step {done} (between steps "
                    f"{done - len(history) + 1} and {done}): the run diverged (lower the "
                    f"learning rate?); {kept}")
            rate = (done - last) / max(time.perf_counter() - t0, 1e-9)
            text = " ".join(f"{k}={v:.4g}" for k, v in means.items())
            log(f"[{name}] step {done}/{num_steps} {text} ({rate:.1f} steps/s)")
            writer.write_scalars(done, {**means, "steps_per_second": rate})
            history, t0, last = [], time.perf_counter(), done
        if boundary_ckpt:
            checkpointer.save(done, state)
            saved = done
    writer.flush()
    return state
