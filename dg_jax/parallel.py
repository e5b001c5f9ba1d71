"""Data parallelism over a device mesh: one 'data' axis over all (global) devices.

Batches are sharded along their leading axis with NamedSharding(mesh, P('data')); parameters
and optimiser state are replicated (P()). jax.jit then compiles one SPMD program and inserts the
gradient all-reduce itself. Multi-host: every process calls the same functions; `shard_batch`
assembles the global array from each process's local slice and `local_rows` reads back this
process's rows of a sharded result. `resolve_distributed` decides from flags and environment
whether (and how) `jax.distributed.initialize` is called; `initialize_distributed` calls it.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import jax
import numpy as np
from jax._src import distributed as _distributed
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dg_jax.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh named 'data' over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_divisible(batch_size: int, mesh: Mesh, field: str) -> None:
    """Raises `ConfigError` naming `field` unless the global batch is a positive multiple of
    the number of devices."""
    n = mesh.devices.size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"{field}={batch_size!r} must be a positive integer (a multiple of the "
                          f"{n} device(s))")
    if batch_size % n:
        raise ConfigError(f"{field}={batch_size} is not divisible by the number of devices "
                          f"({n}); choose a multiple of {n}")


def shard_batch(batch, mesh: Mesh):
    """Host arrays (this process's slice of the global batch) -> global arrays sharded on 'data'."""
    sharding = data_sharding(mesh)
    return jax.tree_util.tree_map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), batch)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))


def process_slice(global_size: int) -> slice:
    """The rows of a global batch that this process feeds."""
    per = global_size // jax.process_count()
    start = jax.process_index() * per
    return slice(start, start + per)


def local_rows(x) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, values) of the rows of a batch-sharded global array that live on this
    process's devices, in increasing row order (replicated copies counted once)."""
    pieces = {}
    for shard in x.addressable_shards:
        rows = shard.index[0] if shard.index else slice(None)
        start, stop, _ = rows.indices(x.shape[0])
        pieces.setdefault(start, (np.arange(start, stop), np.asarray(shard.data)))
    order = sorted(pieces)
    return (np.concatenate([pieces[k][0] for k in order]),
            np.concatenate([pieces[k][1] for k in order]))


def gather(x) -> np.ndarray:
    """The whole global array `x` as a host array on every process (an all-gather when the
    array spans other processes' devices; preceded by a `sync`, so that a process that got here
    first waits for the others at the coordinator rather than inside the collective)."""
    if jax.process_count() > 1 and not x.is_fully_addressable:
        sync("gather")
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


BARRIER_TIMEOUT_ENV = "DG_JAX_BARRIER_TIMEOUT_S"
DEFAULT_BARRIER_TIMEOUT_S = 4 * 3600  # process 0 may evaluate for a long time while others wait
_barrier_count = [0]


def barrier_timeout_s(environ: Optional[Mapping[str, str]] = None) -> float:
    """How long `sync` waits for the other processes: $DG_JAX_BARRIER_TIMEOUT_S, default 4 h."""
    raw = (os.environ if environ is None else environ).get(BARRIER_TIMEOUT_ENV, "")
    if not raw:
        return float(DEFAULT_BARRIER_TIMEOUT_S)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{BARRIER_TIMEOUT_ENV}={raw!r}: give the barrier timeout as a "
                          "positive number of seconds")
    return value


def sync(name: str) -> None:
    """A barrier across processes (no-op with one process).

    It waits at the jax.distributed coordination service (up to `barrier_timeout_s`), not in a
    device collective: a CPU (gloo) collective gives up after 30 s when one process is late,
    which a process that is still compiling or loading data on a busy machine can be. Every
    process calls `sync` the same number of times in the same order (the barrier ids count
    calls, so a name may repeat)."""
    if jax.process_count() <= 1:
        return
    _barrier_count[0] += 1
    barrier_id = f"dg_jax:{_barrier_count[0]}:{name}"
    # the client jax.distributed.initialize connected (no public accessor)
    client = getattr(_distributed.global_state, "client", None)
    if client is None or not hasattr(client, "wait_at_barrier"):
        multihost_utils.sync_global_devices(name)
        return
    client.wait_at_barrier(barrier_id, int(barrier_timeout_s() * 1000))


# ------------------------------------------------------------------------------ multi-host start
DISTRIBUTED_MODES = ("auto", "on", "off")
ENV_PREFIX = "DG_JAX_"
# Variables a Cloud TPU VM / GKE TPU pod sets; with --distributed=auto their presence means
# "let jax.distributed.initialize() find the pod's coordinator, size and rank itself".
TPU_ENV = ("TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES", "TPU_WORKER_ID",
           "TPU_ACCELERATOR_TYPE")


def resolve_distributed(mode: str = "auto", coordinator_address: Optional[str] = None,
                        num_processes: Optional[int] = None, process_id: Optional[int] = None,
                        environ: Optional[Mapping[str, str]] = None) -> Optional[dict]:
    """The keyword arguments for `jax.distributed.initialize`, or None for a single process.

    Explicit values come from the flags, else from DG_JAX_COORDINATOR_ADDRESS,
    DG_JAX_NUM_PROCESSES and DG_JAX_PROCESS_ID; all three must be given together (and then
    num_processes=1 means a single process). Without them, mode 'auto' initialises with JAX's
    own detection on a TPU VM (any of TPU_ENV set) and does nothing elsewhere; 'on' always lets
    JAX detect the cluster (TPU metadata, SLURM, Open MPI, Kubernetes); 'off' never initialises.
    """
    if mode not in DISTRIBUTED_MODES:
        raise ValueError(f"--distributed={mode!r}: choose one of {list(DISTRIBUTED_MODES)}")
    env = os.environ if environ is None else environ

    def pick(value, name, cast):
        if value is not None and value != "":
            return cast(value)
        raw = env.get(ENV_PREFIX + name.upper())
        if raw in (None, ""):
            return None
        try:
            return cast(raw)
        except ValueError as err:
            raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {name}") from err

    explicit = {"coordinator_address": pick(coordinator_address, "coordinator_address", str),
                "num_processes": pick(num_processes, "num_processes", int),
                "process_id": pick(process_id, "process_id", int)}
    given = [k for k, v in explicit.items() if v is not None]
    if mode == "off":
        if given:
            raise ValueError(f"--distributed=off but {given} given (flags or {ENV_PREFIX}* env)")
        return None
    if given:
        missing = [k for k in explicit if explicit[k] is None]
        if missing:
            raise ValueError(f"multi-process launch needs --coordinator_address, --num_processes "
                             f"and --process_id together (or {ENV_PREFIX}* env); missing "
                             f"{['--' + k for k in missing]}")
        n, i = explicit["num_processes"], explicit["process_id"]
        if n < 1:
            raise ValueError(f"--num_processes={n} must be >= 1")
        if not 0 <= i < n:
            raise ValueError(f"--process_id={i} must be in [0, {n}) for --num_processes={n}")
        return None if n == 1 else explicit
    if mode == "on" or any(k in env for k in TPU_ENV):
        return {}
    return None


def initialize_distributed(kwargs: Optional[dict]) -> None:
    """Calls jax.distributed.initialize(**kwargs) (nothing for None); must run before any other
    JAX call. CPU processes talk through gloo collectives."""
    if kwargs is None:
        return
    try:
        if jax.config.jax_cpu_collectives_implementation in (None, "none"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # a jax without the option: CPU multi-process is not available
        pass
    jax.distributed.initialize(**kwargs)


def put_global(array, sharding):
    """A host array that every process holds whole -> a global array with `sharding` (each
    process places only its own rows; works with one process or many)."""
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])
