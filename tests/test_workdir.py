"""The workdir record: one experiment per folder, per-stage fields, redo / continue / refuse."""
import json

import pytest

from dg_jax.errors import ConfigError, JsonFileError, WorkdirError
from dg_jax.workdir import Stage, Workdir

STAGES = (
    Stage("train", fields=("seed", "model"), trains="model.num_steps", outputs=("ckpt",)),
    Stage("fakes", fields=("fakes",), provenance=("sampler",), after=("train",),
          outputs=("fakes",)),
    Stage("sample", fields=("sampler", "dg"), after=("train",), outputs=("samples", "r.json")),
)


def config(**changes):
    c = {"seed": 0, "model": {"width": 8, "num_steps": 10, "log_every": 5},
         "fakes": {"n": 4}, "sampler": {"steps": 18, "S_max": float("inf")},
         "dg": {"weight": 2.0}}
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        c[section][name] = value
    return c


def workdir(path, cfg, stages=STAGES, experiment="exp", source="cfg.py"):
    return Workdir(path, experiment, cfg, stages, ignore=("model.log_every",), source=source)


def run(path, cfg, experiment="exp", done=("train", "fakes", "sample")):
    wd = workdir(path, cfg, experiment=experiment)
    plan = dict(wd.open().status)
    for name in done:
        with wd.stage(name):
            for rel in STAGES[[s.name for s in STAGES].index(name)].outputs:
                (path / rel).mkdir(parents=True, exist_ok=True)
    return plan


def test_fresh_then_unchanged_then_ignored_fields(tmp_path):
    assert set(run(tmp_path, config()).values()) == {"new"}
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["experiment"] == "exp" and record["config"]["sampler"]["S_max"] == "inf"
    assert run(tmp_path, config()) == {"train": "done", "fakes": "done", "sample": "done"}
    assert run(tmp_path, config(model__log_every=1))["train"] == "done"


def test_sampling_change_redoes_only_sampling_and_removes_its_outputs(tmp_path):
    run(tmp_path, config())
    (tmp_path / "samples" / "old.npz").write_text("stale")
    wd = workdir(tmp_path, config(dg__weight=1.0))
    plan = wd.check()
    assert plan.status == {"train": "done", "fakes": "done", "sample": "redo"}
    wd.open()
    wd.begin("sample")
    assert not (tmp_path / "samples").exists()
    assert (tmp_path / "ckpt").exists() and (tmp_path / "fakes").exists()


def test_provenance_fields_count_only_while_unfinished(tmp_path):
    run(tmp_path, config())  # fakes finished with sampler.steps 18
    assert run(tmp_path, config(sampler__steps=40), done=())["fakes"] == "done"
    other = tmp_path / "other"
    run(other, config(), done=("train",))
    wd = workdir(other, config())
    wd.open()
    wd.begin("fakes")  # interrupted: recorded unfinished with sampler.steps 18
    assert workdir(other, config(sampler__steps=40)).check()["fakes"] == "redo"


def test_trained_stage_refuses_changes_continues_more_steps_refuses_fewer(tmp_path):
    run(tmp_path, config())
    with pytest.raises(WorkdirError, match=r"'train'.*model\.width: 8 -> 16"):
        workdir(tmp_path, config(model__width=16)).check()
    plan = workdir(tmp_path, config(model__num_steps=20)).check()
    assert plan.status == {"train": "continue", "fakes": "redo", "sample": "redo"}
    with pytest.raises(WorkdirError, match=r"finished 10 steps; model\.num_steps=5"):
        workdir(tmp_path, config(model__num_steps=5)).check()


def test_upstream_change_under_a_trained_stage_is_refused(tmp_path):
    stages = STAGES + (Stage("disc", fields=("disc",), after=("fakes",), trains="disc.steps"),)
    cfg = {**config(), "disc": {"steps": 3}}
    wd = workdir(tmp_path, cfg, stages)
    wd.open()
    for name in ("train", "fakes", "disc"):
        with wd.stage(name):
            pass
    changed = {**config(fakes__n=8), "disc": {"steps": 3}}
    with pytest.raises(WorkdirError, match=r"'disc'.*\['fakes'\].*redo.*--config\.redo=\"\('disc',\)\""):
        workdir(tmp_path, changed, stages).check()


def test_redo_retrains_a_named_trained_stage_after_its_upstream_trains_further(tmp_path):
    stages = STAGES + (Stage("disc", fields=("disc",), after=("fakes",), trains="disc.steps",
                             outputs=("disc_ckpt",)),)
    cfg = {**config(), "disc": {"steps": 3}}
    wd = workdir(tmp_path, cfg, stages)
    wd.open()
    for name in ("train", "fakes", "disc"):
        with wd.stage(name):
            (tmp_path / ("disc_ckpt" if name == "disc" else name)).mkdir(exist_ok=True)
    longer = {**config(model__num_steps=20), "disc": {"steps": 3}}
    with pytest.raises(WorkdirError, match="'disc'"):
        workdir(tmp_path, longer, stages).check()
    wd = Workdir(tmp_path, "exp", longer, stages, ignore=("model.log_every",), source="cfg.py",
                 redo=("disc",))
    plan = wd.open()
    assert plan.status == {"train": "continue", "fakes": "redo", "sample": "new",
                           "disc": "redo"}
    for name in ("train", "fakes", "disc"):
        wd.begin(name)
        if name == "disc":
            assert not (tmp_path / "disc_ckpt").exists()  # retrained from scratch
        wd.finish(name)
    # afterwards (without redo) the stages are done; an unchanged stage named in redo is redone
    assert workdir(tmp_path, longer, stages).check()["disc"] == "done"
    again = Workdir(tmp_path, "exp", longer, stages, ignore=("model.log_every",),
                    redo=("train", "disc"))
    assert again.check().status == {"train": "redo", "fakes": "redo", "sample": "new",
                                    "disc": "redo"}
    with pytest.raises(ConfigError, match=r"redo: \['dics'\] are not stages.*'disc'"):
        Workdir(tmp_path, "exp", longer, stages, redo=("dics",))


def test_other_experiment_old_record_and_foreign_outputs_are_refused(tmp_path):
    run(tmp_path, config())
    with pytest.raises(WorkdirError, match=r"belongs to a 'exp' experiment \(cfg\.py\); this "
                                           r"run is 'other' \(b\.py\)"):
        workdir(tmp_path, config(), experiment="other", source="b.py").check()
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"toy2d": {"seed": 0}}))
    with pytest.raises(WorkdirError, match="older dg_jax"):
        workdir(old, config()).check()
    # a record of the format before named rng streams (no 'format' entry) is refused too
    pre = tmp_path / "pre_streams"
    pre.mkdir()
    (pre / "config.json").write_text(json.dumps({"experiment": "exp", "config": {},
                                                 "stages": {}}))
    with pytest.raises(WorkdirError, match="record format 1, this dg_jax writes 2"):
        workdir(pre, config()).check()
    assert json.loads((tmp_path / "config.json").read_text())["format"] == 2
    foreign = tmp_path / "foreign"
    (foreign / "checkpoints").mkdir(parents=True)
    with pytest.raises(WorkdirError, match="no config.json"):
        workdir(foreign, config()).check()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(JsonFileError, match=r"broken/config.json is not valid JSON"):
        workdir(broken, config()).check()


def test_check_writes_nothing(tmp_path):
    workdir(tmp_path / "new", config()).check()
    assert not (tmp_path / "new").exists()
