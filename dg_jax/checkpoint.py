"""Orbax checkpoints of whole train states, automatic resume, the workdir's config guard, and
`write_json`, the one writer of a run's JSON files (process 0, atomic).

Orbax writes each step into a temporary folder and renames it when complete, so a killed job
never leaves a half-written checkpoint that a resume would pick up.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"


def _flatten(d: Any, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def write_json(path: str | pathlib.Path, obj: Any, *, sort_keys: bool = False) -> None:
    """Writes `obj` as JSON to `path` from process 0 only, through a temporary file renamed into
    place, so readers never see a half-written file."""
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys))
    tmp.replace(path)


def guard_config(workdir: str | pathlib.Path, config: dict, section: str,
                 ignore: tuple = ()) -> None:
    """Records `config` for `section` in workdir/config.json, or, when a run already recorded
    one, raises naming every field that differs (a workdir belongs to one configuration).
    Fields in `ignore` (dotted names) may change between runs (e.g. logging intervals).
    """
    path = pathlib.Path(workdir) / CONFIG_FILE
    recorded = json.loads(path.read_text()) if path.exists() else {}
    current = json.loads(json.dumps(config, default=str))
    if section in recorded:
        old, new = _flatten(recorded[section]), _flatten(current)
        keys = sorted(set(old) | set(new))
        diff = [k for k in keys if k not in ignore and old.get(k) != new.get(k)]
        if diff:
            detail = ", ".join(f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
            raise ValueError(f"workdir {workdir} holds a checkpoint from a different config "
                             f"({detail}); use a new --workdir or restore those values")
        return
    recorded[section] = current
    write_json(path, recorded, sort_keys=True)  # one writer: process 0 records it for all


class Checkpointer:
    """Saves and restores a train-state pytree under `directory` (latest `max_to_keep` kept)."""

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state, wait: bool = True) -> None:
        self.manager.save(int(step), args=ocp.args.StandardSave(state), force=True)
        if wait:
            self.manager.wait_until_finished()

    def restore(self, template, step: Optional[int] = None):
        """Restores into the structure, dtypes and shardings of `template`."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def restore_or(self, template):
        """(state, resumed?) — the latest checkpoint if there is one, else `template`."""
        if self.latest_step() is None:
            return template, False
        return self.restore(template), True

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
