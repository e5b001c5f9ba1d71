"""Metric writers with clu's `write_scalars` interface, usable without TensorFlow.

`clu.metric_writers` imports TensorFlow when imported, so dg_jax writes JSON lines and log
lines itself; TensorBoard summaries go through clu only when asked for, and then need the
optional extra `dg_jax[tf]` (TensorFlow).
"""
from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Mapping

import jax


class JsonlWriter:
    def __init__(self, path: str | pathlib.Path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        row = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MultiWriter:
    def __init__(self, writers):
        self.writers = list(writers)

    def write_scalars(self, step, scalars):
        for w in self.writers:
            w.write_scalars(step, scalars)

    def flush(self):
        for w in self.writers:
            w.flush()

    def close(self):
        for w in self.writers:
            w.close()


class NullWriter:
    def write_scalars(self, step, scalars):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def tensorboard_writer(logdir: str | pathlib.Path):
    try:
        from clu.metric_writers import SummaryWriter  # imports TensorFlow
    except ImportError as err:
        raise ImportError("TensorBoard summaries need TensorFlow: install the optional extra "
                          "with `pip install -e '.[tf]'` (dg_jax[tf]) or set "
                          "--config.tensorboard=False") from err
    return SummaryWriter(str(logdir))


def make_writer(workdir: str | pathlib.Path, name: str, tensorboard: bool = False):
    """Metrics of stage `name` go to workdir/name/metrics.jsonl (and TensorBoard if asked).
    Only process 0 writes; the others get a writer that drops everything."""
    if jax.process_index() != 0:
        return NullWriter()
    writers = [JsonlWriter(pathlib.Path(workdir) / name / "metrics.jsonl")]
    if tensorboard:
        writers.append(tensorboard_writer(pathlib.Path(workdir) / name / "tb"))
    return MultiWriter(writers)


def log(message: str) -> None:
    """A progress line (process 0 only), flushed at once so long jobs show they are alive."""
    if jax.process_index() == 0:
        print(message, file=sys.stdout, flush=True)
