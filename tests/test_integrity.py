"""Checkpoints, converted checkpoints, shards and result files that cannot mislead: altered
files are detected and named, truncated shards are written again, results are strict JSON,
metric rows are not duplicated by a resume, and divergence stops training."""
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dg_jax.checkpoint import Checkpointer, write_json
from dg_jax.data import shards
from dg_jax.errors import CheckpointError, NonFiniteError, WorkdirError
from dg_jax.metric_writers import JsonlWriter
from dg_jax.parallel import make_mesh
from dg_jax.train.loop import NonFiniteLossError, train_loop
from dg_jax.train.state import TrainState

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def flip_byte(path: pathlib.Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def largest_file(folder: pathlib.Path) -> pathlib.Path:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "dg_jax_sha256.json"]
    return max(files, key=lambda p: p.stat().st_size)


def test_altered_checkpoint_is_named_not_loaded(tmp_path):
    state = {"w": jnp.arange(4096, dtype=jnp.float32)}
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, state)
    ckpt.save(2, {"w": state["w"] + 1})
    np.testing.assert_array_equal(ckpt.restore(state)["w"], state["w"] + 1)
    victim = largest_file(ckpt.step_dir(2))
    flip_byte(victim)
    with pytest.raises(CheckpointError, match=rf"{victim.name}.*altered.*resume from step 1"):
        ckpt.restore(state)
    np.testing.assert_array_equal(ckpt.restore(state, step=1)["w"], state["w"])  # intact
    victim.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        ckpt.restore(state)


def test_altered_converted_checkpoint_is_refused(tmp_path):
    from dg_jax.convert.saved import load_converted
    from launch.convert import main as convert_main

    pkl = FIXTURES / "parity" / "edm_ddpmpp_vp_uncond.pkl"
    if not pkl.is_file():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    assert convert_main(["--kind=edm", f"--checkpoint={pkl}", f"--output={tmp_path / 'edm'}"]) == 0
    load_converted(tmp_path / "edm")
    flip_byte(largest_file(tmp_path / "edm" / "params"))
    with pytest.raises(CheckpointError, match="convert the original file again"):
        load_converted(tmp_path / "edm")


def test_shards_truncated_or_altered(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (12, 4, 4, 3), dtype=np.uint8)
    for i in range(3):
        shards.write_shard(tmp_path, i, images[4 * i:4 * i + 4], np.arange(4))
    assert all(shards.shard_exists(tmp_path, i) for i in range(3))
    path = shards.shard_path(tmp_path, 1)
    path.write_bytes(path.read_bytes()[:-30])  # truncated: counts as absent, so it is redone
    assert not shards.shard_exists(tmp_path, 1)
    shards.write_shard(tmp_path, 1, images[4:8], np.arange(4))
    shards.write_manifest(tmp_path, num_samples=12, shard_size=4)
    np.testing.assert_array_equal(shards.read_shards(tmp_path)[0], images)
    flip_byte(shards.shard_path(tmp_path, 2), offset=200)
    with pytest.raises(shards.ShardError, match=r"samples_000002.npz was altered"):
        shards.read_shards(tmp_path)
    shards.write_shard(tmp_path, 2, images[8:12], np.arange(4))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["num_samples"] = 11  # counts that disagree with the shards
    manifest["sha256"]["samples_000002.npz"] = shards.file_sha256(shards.shard_path(tmp_path, 2))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(shards.ShardError, match=r"samples_000002.npz: 4 images.*give 3"):
        shards.read_shards(tmp_path)


def test_write_json_refuses_non_finite_values(tmp_path):
    with pytest.raises(NonFiniteError, match=r"rows\.dg\.fd = nan"):
        write_json(tmp_path / "r.json", {"rows": {"dg": {"fd": float("nan")}}})
    assert not (tmp_path / "r.json").exists()
    write_json(tmp_path / "r.json", {"fd": 1.5, "path": [None, 2.0]})
    assert json.loads((tmp_path / "r.json").read_text())["fd"] == 1.5


def _linear_state(mesh):
    tx = optax.sgd(0.1)
    params = {"w": jnp.ones((3,))}
    state = TrainState.create(params, tx, jax.random.PRNGKey(0))
    return jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def test_resume_writes_no_duplicate_metric_rows_and_refuses_lower_step_counts(tmp_path):
    mesh = make_mesh()

    def step(state, batch):
        return state.replace(step=state.step + 1), {"loss": jnp.mean(batch["x"])}

    batch_fn = lambda i: {"x": np.full((8, 1), float(i), np.float32)}  # noqa: E731
    writer = JsonlWriter(tmp_path / "m.jsonl")
    ckpt = Checkpointer(tmp_path / "ckpt")
    state = train_loop(_linear_state(mesh), step, batch_fn, num_steps=6, mesh=mesh,
                       checkpointer=ckpt, checkpoint_every=4, log_every=2, writer=writer)
    # a run killed after logging step 6 but before its checkpoint: resume from step 4
    resumed = ckpt.restore(_linear_state(mesh), step=4)
    train_loop(resumed, step, batch_fn, num_steps=8, mesh=mesh, checkpointer=ckpt,
               checkpoint_every=4, log_every=2, writer=writer)
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    with pytest.raises(WorkdirError, match=r"step 6, beyond disc\.num_steps=5"):
        train_loop(state, step, batch_fn, num_steps=5, mesh=mesh, steps_field="disc.num_steps")


def test_divergent_parameters_stop_training_even_with_a_finite_loss(tmp_path):
    mesh = make_mesh()

    def exploding(state, batch):
        params = jax.tree_util.tree_map(lambda w: w * 1e30, state.params)  # inf after 2 steps
        return state.replace(step=state.step + 1, params=params), {"loss": jnp.float32(0.5)}

    ckpt = Checkpointer(tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"leaf \.params\['w'\].*no checkpoint was "
                                                 r"saved before it"):
        train_loop(_linear_state(mesh), exploding, lambda i: {"x": np.zeros((8, 1))},
                   num_steps=6, mesh=mesh, checkpointer=ckpt, checkpoint_every=3, log_every=3)
    assert ckpt.latest_step() is None
