"""Orbax checkpoints of whole train states (with digests checked on restore), automatic resume,
and `write_json`, the one writer of a run's JSON files (process 0, atomic, strict JSON).

Orbax writes each step into a temporary folder and renames it when complete, so a killed job
never leaves a half-written checkpoint that a resume would pick up.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from dg_jax.errors import CheckpointError, NonFiniteError, first_non_finite
from dg_jax.integrity import verify_folder, write_folder_digest
from dg_jax.parallel import sync


def write_json(path: str | pathlib.Path, obj: Any, *, sort_keys: bool = False) -> None:
    """Writes `obj` as JSON to `path` from process 0 only, through a temporary file renamed into
    place, so readers never see a half-written file. NaN and infinities are refused (strict
    JSON): `NonFiniteError` names the file and the first such entry, and nothing is written."""
    found = first_non_finite(obj)
    if found is not None:
        raise NonFiniteError(f"refusing to write {path}: non-finite value {found}")
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, allow_nan=False))
    tmp.replace(path)


class Checkpointer:
    """Saves and restores a train-state pytree under `directory` (latest `max_to_keep` kept).

    Each saved step folder gets a digest of its files (`dg_jax.integrity`), checked before a
    restore: a truncated or altered checkpoint is an error naming the file, never loaded."""

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def step_dir(self, step: int) -> pathlib.Path:
        return self.directory / str(int(step))

    def save(self, step: int, state) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()
        if jax.process_index() == 0:
            write_folder_digest(self.step_dir(step))
        if jax.process_count() > 1:
            sync(f"checkpoint:digest:{self.directory}:{int(step)}")

    def restore(self, template, step: Optional[int] = None):
        """Restores into the structure, dtypes and shardings of `template`, after checking the
        step folder against the digest written with it."""
        step = self.latest_step() if step is None else step
        problem = verify_folder(self.step_dir(step))
        if problem is not None:
            others = [s for s in self.manager.all_steps() if s != step]
            hint = (f"delete {self.step_dir(step)} to resume from step {max(others)}"
                    if others else f"delete {self.directory} to start this stage again")
            raise CheckpointError(f"checkpoint {self.step_dir(step)} cannot be trusted: {problem}; "
                                  f"{hint}, or use a new --workdir")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
        try:
            return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"checkpoint {self.step_dir(step)} does not match this run's "
                                  f"state (another model or config?): {str(err)[:400]}") from err

    def restore_or(self, template):
        """(state, resumed?) — the latest checkpoint if there is one, else `template`."""
        if self.latest_step() is None:
            return template, False
        return self.restore(template), True

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
