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

    def truncate_after(self, step: int) -> None:
        """Drops rows logged after `step` (a run resumed from the checkpoint at `step` logs
        them again), atomically."""
        if not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        keep = [ln for ln in lines if (_row_step(ln) is not None and _row_step(ln) <= step)]
        if len(keep) == len(lines):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        tmp.replace(self.path)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _row_step(line: str):
    """The row's step, or None for a blank or damaged row (a write cut short by a kill)."""
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class MultiWriter:
    def __init__(self, writers):
        self.writers = list(writers)

    def write_scalars(self, step, scalars):
        for w in self.writers:
            w.write_scalars(step, scalars)

    def truncate_after(self, step):
        for w in self.writers:
            if hasattr(w, "truncate_after"):
                w.truncate_after(step)

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
        # imports TensorFlow, the optional extra [tf]
        from clu.metric_writers import SummaryWriter  # noqa: PLC0415
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


class Progress:
    """Progress of a phase counted in units (images, steps, batches): a line at most every
    `every` seconds, and one at the end, with the rate and the time left. Process 0 prints."""

    def __init__(self, name: str, total, unit: str = "images", every: float = 10.0):
        """`total` may be None when the count is not known in advance (no time left shown)."""
        self.name, self.unit, self.every = name, unit, every
        self.total = None if total is None else int(total)
        self.count = 0
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.count += int(n)
        now = time.perf_counter()
        finished = self.total is not None and self.count >= self.total
        if finished or now - self.last >= self.every:
            self.last = now
            elapsed = now - self.start
            rate = self.count / max(elapsed, 1e-9)
            if self.total is None:
                count, tail = str(self.count), "running"
            else:
                left = (self.total - self.count) / rate if rate > 0 else float("inf")
                count = f"{self.count}/{self.total}"
                tail = "done" if finished else f"~{_duration(left)} left"
            log(f"[{self.name}] {count} {self.unit} ({rate:.1f} {self.unit}/s, "
                f"{_duration(elapsed)} so far, {tail})")


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def relative_change(before: float, after: float) -> str:
    """'32.6% lower', '4.1% higher' or 'unchanged', for printed summaries of a distance."""
    if before == 0:
        return "unchanged" if after == 0 else "higher (from 0)"
    change = (after - before) / abs(before)
    if change == 0:
        return "unchanged"
    pct = 100 * abs(change)
    return f"{pct:.1f}% {'lower' if change < 0 else 'higher'}" if pct >= 1 else (
        f"{pct:.2g}% {'lower' if change < 0 else 'higher'}")
