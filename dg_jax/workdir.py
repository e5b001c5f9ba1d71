"""A workdir belongs to one experiment; each stage records the config fields its outputs depend
on, so a later run redoes what changed, continues what can go on, and refuses what would
invalidate trained checkpoints, naming the fields, before any work.

    stages = (Stage("score", fields=("seed", "data", "score"), trains="score.train.num_steps",
                    outputs=("checkpoints/score",)),
              Stage("sample", fields=("sampler", "dg"), after=("score",),
                    outputs=("samples_dg",)))
    wd = Workdir(path, "dg_images", config.to_dict(), stages, ignore=("tensorboard",))
    plan = wd.check()        # reads only; raises WorkdirError
    wd.open()                # creates the folder, records the experiment
    with wd.stage("score"):  # begun (outputs of a redone stage removed), then finished
        ...

`DIR/config.json` holds {"format", "experiment", "source", "config", "stages": {name: {"fields",
"done"}}}; a record of another `format` is refused.
For each recorded stage `check` compares the fields now in the config with the recorded ones
(dotted names; `ignore` lists the ones that may change freely, e.g. logging intervals):
- nothing changed, and no stage it reads from is redone: kept (`done`) or resumed;
- a stage that trains a checkpoint (`trains` names its step count): a higher step count
  continues training; a lower one than it finished is refused; any other change, here or in a
  stage it reads from, is refused, since the checkpoint would no longer match the config;
- a stage named in `redo` (the config's `redo` field, e.g. `--config.redo="('cfg_dg',)"`) is
  redone from scratch whatever its record says, its outputs and checkpoint removed: the way to
  retrain a cheap downstream stage after training the stage it reads from further;
- any other stage is redone: its `outputs` are removed when it begins (e.g. changing the DG
  weight in a finished workdir redoes only sampling and evaluation).
`provenance` fields are recorded and compared only while the stage is unfinished (a resumed
stage must not mix settings), not once it is done.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import shutil
from typing import Any, Mapping, Sequence

import jax

from dg_jax.checkpoint import write_json
from dg_jax.errors import ConfigError, WorkdirError, read_json
from dg_jax.parallel import sync

RECORD = "config.json"
# the record's format: 2 since 2026-12-02 (named rng streams, one train state): a workdir of an
# earlier format holds outputs drawn from other random streams and checkpoints of other layouts
FORMAT = 2
# files only dg_jax writes: a folder holding them without a record was not made by this version
OUTPUT_MARKERS = ("checkpoints", "results.json")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    fields: tuple[str, ...]            # dotted config prefixes the stage's outputs depend on
    after: tuple[str, ...] = ()        # stages whose outputs it reads
    trains: str | None = None          # its step-count field when it trains a kept checkpoint
    outputs: tuple[str, ...] = ()      # workdir-relative paths removed when it is redone
    provenance: tuple[str, ...] = ()   # compared only while the stage is unfinished


def flatten(tree: Any, prefix: str = "") -> dict:
    """{dotted name: leaf} of nested dicts (lists and tuples are leaves, as JSON lists)."""
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _jsonable(tree: Any) -> Any:
    """The config as strict-JSON data: tuples as lists, inf / nan (e.g. S_max) as strings,
    anything else exotic by its str()."""
    if isinstance(tree, Mapping):
        return {str(k): _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return str(tree)
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    return str(tree)


def _select(flat: dict, prefixes: Sequence[str], ignore: Sequence[str]) -> dict:
    def matches(key, prefix):
        return key == prefix or key.startswith(prefix + ".")

    return {k: v for k, v in flat.items()
            if any(matches(k, p) for p in prefixes) and not any(matches(k, i) for i in ignore)}


def _diff(old: dict, new: dict) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _describe(keys, old, new) -> str:
    return ", ".join(f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in keys)


@dataclasses.dataclass
class Plan:
    """What a run will do with each stage: 'new', 'resume', 'done', 'continue' or 'redo'."""
    status: dict

    def __getitem__(self, name: str) -> str:
        return self.status[name]


class Workdir:
    def __init__(self, path: str | pathlib.Path, experiment: str, config: Mapping,
                 stages: Sequence[Stage], ignore: Sequence[str] = (), source: str = "",
                 redo: Sequence[str] = ()):
        self.path = pathlib.Path(path)
        self.experiment = experiment
        self.source = source
        self.config = _jsonable(config)
        self.flat = flatten(self.config)
        self.stages = {s.name: s for s in stages}
        self.ignore = tuple(ignore)
        unknown = [name for name in redo if name not in self.stages]
        if unknown:
            raise ConfigError(f"redo: {unknown} are not stages of this experiment; its stages "
                              f"are {list(self.stages)}")
        self.redo = tuple(redo)
        self.plan: Plan | None = None
        for s in stages:
            unknown = [a for a in s.after if a not in self.stages]
            if unknown:
                raise ValueError(f"stage {s.name!r} reads from unknown stages {unknown}")

    # ------------------------------------------------------------------------------ reading
    def _record(self) -> dict:
        path = self.path / RECORD
        if not path.exists():
            if self.path.is_dir() and any((self.path / m).exists() for m in OUTPUT_MARKERS):
                raise WorkdirError(f"workdir {self.path} holds dg_jax outputs but no {RECORD}: "
                                   "it was made by another version or damaged; use a new "
                                   "--workdir")
            return {}
        record = read_json(path, "workdir record")
        if not isinstance(record, dict) or "experiment" not in record:
            raise WorkdirError(f"workdir {self.path}: {path} was written by an older dg_jax (no "
                               "'experiment' entry); use a new --workdir")
        if record.get("format", 1) != FORMAT:
            raise WorkdirError(f"workdir {self.path}: {path} has record format "
                               f"{record.get('format', 1)}, this dg_jax writes {FORMAT} (its "
                               "random streams and checkpoint layouts differ, so resuming would "
                               "mix them); use a new --workdir")
        return record

    def _fields(self, stage: Stage, done: bool) -> dict:
        prefixes = stage.fields + (() if done else stage.provenance)
        return _select(self.flat, prefixes, self.ignore)

    def check(self) -> Plan:
        """Decides every stage's status from the record; raises `WorkdirError` (naming the
        fields) for another experiment or a change a trained stage cannot absorb. Reads only."""
        record = self._record()
        if record and record["experiment"] != self.experiment:
            was = f" ({record['source']})" if record.get("source") else ""
            now = f" ({self.source})" if self.source else ""
            raise WorkdirError(f"workdir {self.path} belongs to a {record['experiment']!r} "
                               f"experiment{was}; this run is {self.experiment!r}{now}: use "
                               "another --workdir")
        recorded = record.get("stages", {})
        status: dict[str, str] = {}
        for stage in self.stages.values():
            rec = recorded.get(stage.name)
            if rec is None:
                status[stage.name] = "new"
                continue
            if stage.name in self.redo:
                status[stage.name] = "redo"
                continue
            done = bool(rec.get("done"))
            old = _select(rec.get("fields", {}), stage.fields + (() if done else stage.provenance),
                          self.ignore)
            new = self._fields(stage, done)
            changed = _diff(old, new)
            upstream = [a for a in stage.after if status.get(a) in ("redo", "continue", "new")]
            if not changed and not upstream:
                status[stage.name] = "done" if done else "resume"
                continue
            if stage.trains is None:
                status[stage.name] = "redo"
                continue
            others = [k for k in changed if k != stage.trains]
            if others or upstream:
                why = []
                if others:
                    why.append(_describe(others, old, new))
                if upstream:
                    why.append(f"stage(s) {upstream} it was trained on will be "
                               f"{'/'.join(sorted({status[a] for a in upstream}))}")
                raise WorkdirError(
                    f"workdir {self.path}: stage {stage.name!r} holds a checkpoint trained with "
                    f"other settings ({'; '.join(why)}); use a new --workdir, restore those "
                    f"values, or retrain this stage from scratch with --config.redo=\"('{stage.name}',)\""
                    " (its checkpoint is removed)")
            before, after = old.get(stage.trains), new.get(stage.trains)
            if done and after is not None and before is not None and after < before:
                raise WorkdirError(
                    f"workdir {self.path}: stage {stage.name!r} finished {before} steps; "
                    f"{stage.trains}={after} would not undo them: set {stage.trains}>={before} "
                    "(to train further) or use a new --workdir")
            status[stage.name] = "continue" if done else "resume"
        self.plan = Plan(status)
        self._recorded = record
        return self.plan

    # ------------------------------------------------------------------------------ writing
    def open(self) -> Plan:
        """Checks (if not yet done), creates the folder and records the experiment."""
        plan = self.plan or self.check()
        if jax.process_index() == 0:
            self.path.mkdir(parents=True, exist_ok=True)
        record = dict(self._recorded) if self._recorded else {}
        record.update(format=FORMAT, experiment=self.experiment,
                      source=self.source or record.get("source", ""), config=self.config)
        record.setdefault("stages", {})
        self._write(record)
        return plan

    def _write(self, record: dict) -> None:
        self._recorded = record
        write_json(self.path / RECORD, record)

    def status(self, name: str) -> str:
        if self.plan is None:
            raise RuntimeError("call check() or open() first")
        return self.plan[name]

    def is_done(self, name: str) -> bool:
        return self.status(name) == "done"

    def begin(self, name: str) -> None:
        """Before a stage runs: a redone stage's outputs (and the records of every stage that
        reads from it) are removed; its fields are recorded as unfinished."""
        stage = self.stages[name]
        record = self._recorded
        if self.plan[name] in ("redo", "continue"):
            for dep in self._downstream(name):
                record["stages"].pop(dep, None)
        if self.plan[name] == "redo" and jax.process_index() == 0:
            for rel in stage.outputs:
                _remove(self.path / rel)
        record["stages"][name] = {"fields": self._fields(stage, done=False), "done": False}
        self._write(record)
        _barrier(f"workdir:begin:{name}")

    def start(self, name: str) -> None:
        """`begin` unless the stage finished earlier with the same fields (then it is kept)."""
        if not self.is_done(name):
            self.begin(name)

    @contextlib.contextmanager
    def stage(self, name: str):
        """with wd.stage("sample"): ... — `start` before the block, `finish` after it."""
        self.start(name)
        yield
        self.finish(name)

    def finish(self, name: str) -> None:
        stage = self.stages[name]
        record = self._recorded
        record["stages"][name] = {"fields": self._fields(stage, done=False), "done": True}
        self.plan.status[name] = "done"
        self._write(record)

    def _downstream(self, name: str) -> list[str]:
        out, frontier = [], [name]
        while frontier:
            cur = frontier.pop()
            for s in self.stages.values():
                if cur in s.after and s.name not in out:
                    out.append(s.name)
                    frontier.append(s.name)
        return out


def _remove(path: pathlib.Path) -> None:
    if path.is_dir():
        tmp = path.with_name(path.name + ".removing")
        shutil.rmtree(tmp, ignore_errors=True)
        path.rename(tmp)  # one rename: a reader never sees a half-removed folder
        shutil.rmtree(tmp)
    elif path.exists():
        path.unlink()


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        sync(name)
