"""What every experiment does before its first stage: the mesh, the config checked against it,
the workdir record, the named rng streams; and the per-stage helpers built from them."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Sequence

import ml_collections

from dg_jax.checkpoint import Checkpointer
from dg_jax.experiments.kit.fit import fit
from dg_jax.metric_writers import make_writer
from dg_jax.parallel import make_mesh
from dg_jax.rng import Streams
from dg_jax.workdir import Stage, Workdir


@dataclasses.dataclass
class Run:
    """One experiment run: config, workdir (path and record), mesh and rng streams."""

    config: ml_collections.ConfigDict
    workdir: pathlib.Path
    wd: Workdir
    mesh: object
    streams: Streams

    def checkpointer(self, name: str) -> Checkpointer:
        return Checkpointer(self.workdir / "checkpoints" / name)

    def writer(self, name: str):
        return make_writer(self.workdir, name, bool(self.config.get("tensorboard", False)))

    def fit(self, name: str, state, step_fn: Callable, batch_fn: Callable, *, num_steps: int,
            checkpoint_every: int, log_every: int, steps_field: str, **kwargs):
        """`kit.fit` with workdir/checkpoints/<name> and workdir/<name>/metrics.jsonl."""
        return fit(state, step_fn, batch_fn, self.checkpointer(name), mesh=self.mesh,
                   num_steps=num_steps, checkpoint_every=checkpoint_every, log_every=log_every,
                   name=name, steps_field=steps_field, writer=self.writer(name), **kwargs)


def setup_run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, experiment: str,
              stages: Sequence[Stage], *, validate: Callable, ignore: Sequence[str] = (),
              source: str = "") -> Run:
    """Builds the mesh of all devices, validates the config against it (`validate(config,
    mesh)`, errors naming the field), and checks the workdir record: another experiment or an
    incompatible change is refused here, before any work. Nothing is written: the caller calls
    `run.wd.open()` once what it must build before writing (networks, data) has been built."""
    workdir = pathlib.Path(workdir)
    mesh = make_mesh()
    validate(config, mesh)
    wd = Workdir(workdir, experiment, config.to_dict(), tuple(stages),
                 ignore=(*ignore, "redo"), source=source, redo=tuple(config.get("redo", ())))
    wd.check()
    return Run(config, workdir, wd, mesh, Streams(config.seed))
