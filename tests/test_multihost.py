"""Two CPU processes on loopback (jax.distributed + gloo) == one process with as many devices.

The pytest process only launches subprocesses (its own JAX keeps conftest's 8 fake devices):
`python tests/test_multihost.py WORKDIR NUM_PROCESSES PROCESS_ID PORT` runs one worker, which
trains a small image discriminator for a few steps through `train_loop` (each process feeding
its own rows, orbax checkpoints saved and restored across processes), samples EDM Heun with
discriminator guidance on the global mesh, and writes sample shards with
`sample_shards.write_sample_shards`. The test runs that with 2 processes x 2 devices and with
1 process x 4 devices and checks parameters, metrics, samples and shards agree.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from dg_jax.data import shards

GLOBAL_DEVICES = 4
NUM_STEPS = 4
BATCH = 8  # global discriminator batch (real and fake each)
RES = 4
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _gloo_available() -> str:
    """'' when this jax can run multi-process CPU computations, else the reason it cannot."""
    import jax

    if not hasattr(jax.config, "jax_cpu_collectives_implementation"):
        return f"jax {jax.__version__} has no jax_cpu_collectives_implementation option"
    try:
        from jax._src.lib import _jax
    except ImportError:
        from jax._src.lib import xla_extension as _jax
    if not hasattr(_jax, "make_gloo_tcp_collectives"):
        return f"jaxlib {jax.__version__} is built without gloo CPU collectives"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_processes(cmd, num_processes: int, env: dict, timeout: float = 600.0) -> list[str]:
    """Starts cmd(i) for i < num_processes, waits for all, asserts they succeeded; outputs."""
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    procs = [subprocess.Popen(cmd(i), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(num_processes)]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} of {num_processes} failed:\n{out[-4000:]}"
    return outs


def _launch(workdir: pathlib.Path, num_processes: int):
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    env.pop("XLA_FLAGS", None)  # conftest's fake-device count is set by each worker itself
    return _run_processes(lambda i: [sys.executable, __file__, str(workdir), str(num_processes),
                                     str(i), str(port)], num_processes, env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    reason = _gloo_available()
    if reason:
        pytest.skip(f"multi-process CPU needs gloo collectives: {reason}")
    single, multi = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("multi")
    _launch(single, 1)
    _launch(multi, 2)
    return single, multi


def _load(workdir):
    with np.load(workdir / "result.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.slow
def test_two_processes_train_like_one(runs):
    single, multi = (_load(w) for w in runs)
    assert int(multi["process_count"]) == 2 and int(single["process_count"]) == 1
    assert int(multi["device_count"]) == int(single["device_count"]) == GLOBAL_DEVICES
    params = sorted(k for k in single if k.startswith("param/"))
    assert params and params == sorted(k for k in multi if k.startswith("param/"))
    for k in params:
        np.testing.assert_allclose(multi[k], single[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(multi["losses"], single["losses"], rtol=1e-5)
    # the orbax checkpoint written by both processes restores to the trained state
    assert int(multi["restored_step"]) == NUM_STEPS
    assert float(multi["restore_max_diff"]) == 0.0


@pytest.mark.slow
def test_two_processes_sample_like_one(runs):
    single, multi = (_load(w) for w in runs)
    np.testing.assert_allclose(multi["samples"], single["samples"], rtol=1e-4, atol=1e-5)
    assert float(np.max(np.abs(single["samples"]))) > 0.1  # not trivially zero


@pytest.mark.slow
def test_each_process_writes_its_own_shard_parts(runs):
    from dg_jax.data import shards

    single, multi = runs
    for name in ("fake",):
        a_img, a_lab = shards.read_shards(single / name)
        b_img, b_lab = shards.read_shards(multi / name)
        assert a_img.shape == b_img.shape == (12, RES, RES, 1)
        assert np.max(np.abs(a_img.astype(int) - b_img.astype(int))) <= 1
        np.testing.assert_array_equal(a_lab, b_lab)
        manifest = json.loads((multi / name / "manifest.json").read_text())
        assert manifest["num_processes"] == 2 and manifest["num_shards"] == 2
        assert "num_processes" not in json.loads((single / name / "manifest.json").read_text())
        parts = sorted(p.name for p in (multi / name).glob("*.npz"))
        assert parts == [f"samples_{s:06d}.part{p:03d}of002.npz" for s in (0, 1) for p in (0, 1)]
        assert sorted(p.name for p in (single / name).glob("*.npz")) == [
            "samples_000000.npz", "samples_000001.npz"]
    # only process 0 wrote metrics
    assert (multi / "disc" / "metrics.jsonl").is_file()


def _main_on_processes(config: str, workdir: pathlib.Path, num_processes: int,
                       overrides: tuple[str, ...] = ()) -> list[str]:
    """Runs `launch.main --config=CONFIG [overrides]` as `num_processes` CPU processes with 4
    devices in all (coordinator flags when more than one); returns each process's output."""
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(4 // num_processes)}
    env.pop("XLA_FLAGS", None)

    def cmd(i):
        extra = [] if num_processes == 1 else [f"--coordinator_address=127.0.0.1:{port}",
                                               f"--num_processes={num_processes}",
                                               f"--process_id={i}"]
        return [sys.executable, "-m", "launch.main", f"--config={config}",
                f"--workdir={workdir}", *overrides, *extra]

    return _run_processes(cmd, num_processes, env)


@pytest.mark.slow
def test_launch_main_two_processes_matches_one(tmp_path):
    """`launch.main` with the coordinator flags: the toy2d smoke job on 2 processes x 2 devices
    gives the results of 1 process x 4 devices; only process 0 writes results and metrics."""
    reason = _gloo_available()
    if reason:
        pytest.skip(f"multi-process CPU needs gloo collectives: {reason}")
    outs = _main_on_processes("configs/toy2d.py:smoke", tmp_path / "multi", 2)
    assert "[done]" in outs[0] and "[done]" not in outs[1]  # progress lines: process 0 only
    _main_on_processes("configs/toy2d.py:smoke", tmp_path / "single", 1)
    a = json.loads((tmp_path / "single" / "results.json").read_text())
    b = json.loads((tmp_path / "multi" / "results.json").read_text())
    for row in a["rows"]:
        for metric, value in a["rows"][row].items():
            assert b["rows"][row][metric] == pytest.approx(value, rel=1e-4), (row, metric)
    assert (tmp_path / "multi" / "disc" / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_dg_images_two_processes_matches_one(tmp_path):
    """The DG image pipeline's generation, discriminator training and DG sampling stages on
    2 processes x 2 devices: every sample shard is written as
    per-process parts and reads back as the 1 x 4 run's samples (up to one uint8 level of float
    noise). The evaluation stage (process 0 reads the shards back) is left out to keep the
    suite's time down; tests/test_dg_images.py runs it on 8 devices."""
    reason = _gloo_available()
    if reason:
        pytest.skip(f"multi-process CPU needs gloo collectives: {reason}")
    stages = ("--config.stages=('score','generate','disc','sample')",
              "--config.score.source=random")  # score training: covered by the disc stage's loop
    _main_on_processes("configs/digits_dg.py:smoke", tmp_path / "multi", 2, stages)
    _main_on_processes("configs/digits_dg.py:smoke", tmp_path / "single", 1, stages)
    for name in ("fake", "samples_nodg", "samples_dg"):
        assert list((tmp_path / "multi" / name).glob("*.part001of002.npz")), name
        a, la = shards.read_shards(tmp_path / "single" / name)
        b, lb = shards.read_shards(tmp_path / "multi" / name)
        np.testing.assert_array_equal(la, lb)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, name


def _assert_numbers_close(a, b, rel, where=""):
    """Every number in the JSON tree `a` matches `b` (same structure) within `rel`."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_numbers_close(a[k], b[k], rel, f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_numbers_close(x, y, rel, f"{where}[{i}]")
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        assert b == pytest.approx(a, rel=rel, abs=1e-6), where
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/toy25_diffusion_gan.py:smoke",
                                    "configs/digits_guidance.py:smoke"],
                         ids=["diffusion_gan", "guidance_train"])
def test_other_pipelines_two_processes_match_one(tmp_path, config):
    """Diffusion-GAN (adaptive T in the train state) and the guidance pipeline (score model,
    classifier, CG/CFG sweeps over sharded sampling) on 2 processes x 2 devices give the 1 x 4
    results; only process 0 writes them."""
    reason = _gloo_available()
    if reason:
        pytest.skip(f"multi-process CPU needs gloo collectives: {reason}")
    # the guidance job's VLB stage (one more score model, no sharded sampling) is left out
    overrides = (("--config.stages=('score','classifier','sweep')",)
                 if "guidance" in config else ())
    outs = _main_on_processes(config, tmp_path / "multi", 2, overrides)
    assert "[done]" in outs[0] and "[done]" not in outs[1]
    _main_on_processes(config, tmp_path / "single", 1, overrides)
    a = json.loads((tmp_path / "single" / "results.json").read_text())
    b = json.loads((tmp_path / "multi" / "results.json").read_text())
    _assert_numbers_close(a, b, rel=1e-4)


@pytest.mark.slow
def test_a_late_process_waits_at_the_barrier():
    """One process 40 s late (longer than a CPU collective's 30 s timeout, as a process still
    compiling on a busy machine can be) still meets the others at `sync`, then gathers."""
    reason = _gloo_available()
    if reason:
        pytest.skip(f"multi-process CPU needs gloo collectives: {reason}")
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    env.pop("XLA_FLAGS", None)
    outs = _run_processes(lambda i: [sys.executable, __file__, "--late", "2", str(i), str(port),
                                     "40"], 2, env)
    for i, out in enumerate(outs):
        assert f"process {i}: gathered [0.0, 2.0, 4.0, 6.0]" in out, out[-2000:]


def test_flags_and_env_resolve_to_initialize_arguments():
    from dg_jax.parallel import resolve_distributed

    assert resolve_distributed("auto", environ={}) is None
    assert resolve_distributed("auto", "h:1", 2, 1, environ={}) == {
        "coordinator_address": "h:1", "num_processes": 2, "process_id": 1}
    env = {"DG_JAX_COORDINATOR_ADDRESS": "10.0.0.1:8476", "DG_JAX_NUM_PROCESSES": "4",
           "DG_JAX_PROCESS_ID": "3"}
    assert resolve_distributed("auto", environ=env)["process_id"] == 3
    assert resolve_distributed("auto", process_id=0, environ=env)["process_id"] == 0  # flag wins
    assert resolve_distributed("auto", "h:1", 1, 0, environ={}) is None  # one process
    assert resolve_distributed("auto", environ={"TPU_WORKER_HOSTNAMES": "a,b"}) == {}
    assert resolve_distributed("on", environ={}) == {}
    assert resolve_distributed("off", environ={"TPU_WORKER_HOSTNAMES": "a,b"}) is None
    with pytest.raises(ValueError, match="--process_id"):
        resolve_distributed("auto", "h:1", 2, environ={})
    with pytest.raises(ValueError, match="--process_id=2"):
        resolve_distributed("auto", "h:1", 2, 2, environ={})
    with pytest.raises(ValueError, match="DG_JAX_NUM_PROCESSES"):
        resolve_distributed("auto", environ={**env, "DG_JAX_NUM_PROCESSES": "four"})
    with pytest.raises(ValueError, match="--distributed"):
        resolve_distributed("sometimes", environ={})


def test_barrier_timeout_from_env():
    from dg_jax.errors import ConfigError
    from dg_jax.parallel import DEFAULT_BARRIER_TIMEOUT_S, barrier_timeout_s

    assert barrier_timeout_s({}) == DEFAULT_BARRIER_TIMEOUT_S
    assert barrier_timeout_s({"DG_JAX_BARRIER_TIMEOUT_S": "90"}) == 90.0
    for bad in ("0", "-3", "soon"):
        with pytest.raises(ConfigError, match="DG_JAX_BARRIER_TIMEOUT_S"):
            barrier_timeout_s({"DG_JAX_BARRIER_TIMEOUT_S": bad})


def test_shard_parts_read_back_in_row_order(tmp_path):
    from dg_jax.data import shards

    images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
    labels = np.arange(10, dtype=np.int32) % 3
    rows = [np.array([0, 1, 4, 5]), np.array([2, 3])]  # shard 0: rows 0..5, shard 1: 6..9
    for p, r in enumerate(rows):
        shards.write_part(tmp_path, 0, p, 2, images[r], labels[r], r)
    shards.write_part(tmp_path, 1, 1, 2, images[8:], labels[8:], np.array([2, 3]))
    with pytest.raises(shards.ShardError, match=r"samples_000001.part000of002.npz"):
        shards.write_manifest(tmp_path, num_samples=10, shard_size=6, num_processes=2)
    shards.write_part(tmp_path, 1, 0, 2, images[6:8], labels[6:8], np.array([0, 1]))
    shards.write_manifest(tmp_path, num_samples=10, shard_size=6, num_processes=2)
    got, got_labels = shards.read_shards(tmp_path)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(shards.ShardError, match="rows"):
        shards.write_part(tmp_path, 2, 0, 2, images[:2], None, np.array([0]))
    with pytest.raises(shards.ShardError, match="num_processes=2"):
        shards.part_path(tmp_path, 0, 2, 2)


# ---------------------------------------------------------------------------------- the worker
def _worker(workdir: str, num_processes: int, process_id: int, port: int) -> None:
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", GLOBAL_DEVICES // num_processes)
    jax.config.update("jax_default_matmul_precision", "highest")
    from dg_jax.parallel import initialize_distributed, resolve_distributed

    initialize_distributed(resolve_distributed("auto", f"127.0.0.1:{port}", num_processes,
                                               process_id, environ={}))
    import jax.numpy as jnp
    import ml_collections
    from jax.experimental import multihost_utils

    from dg_jax.checkpoint import Checkpointer
    from dg_jax.diffusion.processes import VP
    from dg_jax.experiments.kit.sample_shards import write_sample_shards
    from dg_jax.guidance.discriminator import dg_correction_fn, guide_denoiser
    from dg_jax.metric_writers import make_writer
    from dg_jax.models.mlp import TimeMLP
    from dg_jax.parallel import data_sharding, make_mesh, process_slice, put_global, replicate
    from dg_jax.samplers.edm import edm_sigma_steps, heun_sample
    from dg_jax.train.discriminator import make_train_step
    from dg_jax.train.loop import train_loop
    from dg_jax.train.state import TrainState, make_optimizer

    workdir = pathlib.Path(workdir)
    assert jax.process_count() == num_processes and jax.device_count() == GLOBAL_DEVICES
    mesh = make_mesh()
    model = TimeMLP(width=32, depth=2, time_embed_dim=16)

    def logit_fn(params, x, t, labels=None):
        return model.apply(params, x.reshape(x.shape[0], -1), t)

    params = jax.device_get(model.init(jax.random.PRNGKey(0), jnp.zeros((1, RES * RES)),
                                       jnp.zeros((1,))))  # host copy: the step donates
    tx = make_optimizer("adam", 3e-3)
    state = replicate(TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)
    step = jax.jit(make_train_step(logit_fn, tx, time_sampling="importance"), donate_argnums=0)
    rows = process_slice(BATCH)
    losses = []

    def batch_fn(i):  # the global batch is a pure function of i; each process feeds its rows
        rng = np.random.default_rng([7, i])
        real = rng.normal(0.5, 0.5, (BATCH, RES, RES, 1)).astype(np.float32)
        fake = rng.normal(-0.5, 0.8, (BATCH, RES, RES, 1)).astype(np.float32)
        return {"real": real[rows], "fake": fake[rows]}

    def logged_step(s, batch):
        s, metrics = step(s, batch)
        losses.append(metrics["loss"])
        return s, metrics

    ckpt = Checkpointer(workdir / "checkpoints" / "disc")
    state = train_loop(state, logged_step, batch_fn, num_steps=NUM_STEPS, mesh=mesh,
                       checkpointer=ckpt, checkpoint_every=2, log_every=2,
                       writer=make_writer(workdir, "disc"), name="disc")
    template = replicate(TrainState.create(params, tx, jax.random.PRNGKey(1)), mesh)
    restored = ckpt.restore(template)
    ckpt.close()
    diff = jax.tree_util.tree_map(lambda a, b: jnp.max(jnp.abs(a - b)), restored.params,
                                  state.params)
    restore_max_diff = float(max(jax.tree_util.tree_leaves(diff)))

    # guided EDM Heun on the global mesh (Gaussian data's exact denoiser + the trained DG)
    @jax.jit
    def sample(p, latents, labels):
        corr = dg_correction_fn(lambda x, t, y: logit_fn(p, x, t, y), process=VP())
        denoise = guide_denoiser(lambda x, sigma, y: x * 0.25 / (0.25 + sigma[:, None, None,
                                                                             None] ** 2),
                                 corr, weight=1.0)
        return heun_sample(denoise, latents * 80.0, edm_sigma_steps(6), labels=labels)

    sharding = data_sharding(mesh)
    latents = np.random.default_rng(3).normal(size=(8, RES, RES, 1)).astype(np.float32)
    samples = sample(state.params, put_global(latents, sharding), None)
    samples = multihost_utils.process_allgather(samples, tiled=True)

    config = ml_collections.ConfigDict({"data": {"resolution": RES, "channels": 1,
                                                 "num_classes": 3}})
    write_sample_shards(config, workdir / "fake",
                        lambda lat, lab, _key: sample(state.params, lat, lab), num=12, batch=4,
                        shard_size=8, key=jax.random.PRNGKey(5), mesh=mesh, name="fake")

    if jax.process_index() == 0:
        flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
        out = {"param/" + jax.tree_util.keystr(path): np.asarray(v) for path, v in flat}
        np.savez(workdir / "result.npz", **out, losses=np.asarray(jax.device_get(losses)),
                 samples=np.asarray(samples), restored_step=int(restored.step),
                 restore_max_diff=restore_max_diff, process_count=jax.process_count(),
                 device_count=jax.device_count())


def _late_worker(num_processes: int, process_id: int, port: int, delay_s: float) -> None:
    """Process 1 reaches `sync` `delay_s` late; then every process gathers a sharded array."""
    import time

    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", 1)
    from dg_jax.parallel import (
        data_sharding,
        gather,
        initialize_distributed,
        make_mesh,
        put_global,
        resolve_distributed,
        sync,
    )

    initialize_distributed(resolve_distributed("auto", f"127.0.0.1:{port}", num_processes,
                                               process_id, environ={}))
    if process_id == 1:
        time.sleep(delay_s)
    sync("late")
    rows = np.arange(2 * num_processes, dtype=np.float32)
    x = put_global(rows, data_sharding(make_mesh()))
    got = gather(x * 2)
    np.testing.assert_array_equal(got, rows * 2)
    print(f"process {process_id}: gathered {got.tolist()}")


if __name__ == "__main__":
    if sys.argv[1] == "--late":
        _late_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
