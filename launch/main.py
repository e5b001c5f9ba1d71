"""Runs a dg_jax pipeline from an ml_collections config.

  python -m launch.main --config=configs/toy2d.py --workdir=/tmp/dg_toy2d [--config.x=y ...]

Several processes (multi-node GPU, or a local test) run the same command, each with its rank:

  python -m launch.main --config=... --workdir=SHARED_DIR \\
      --coordinator_address=HOST0:1234 --num_processes=2 --process_id=0   # 1 on the other node

(or DG_JAX_COORDINATOR_ADDRESS / DG_JAX_NUM_PROCESSES / DG_JAX_PROCESS_ID in the environment).
On a Cloud TPU VM pod slice JAX finds all three itself (`--distributed=auto` notices the TPU
environment; `--distributed=on` forces JAX's cluster detection, e.g. under SLURM). See
launch/README.md and launch/tpu_vm.sh.
"""
from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (path[:variant])", lock_config=True)
flags.DEFINE_string("workdir", None, "where checkpoints, samples and results go")
flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                  "jax.distributed.initialize: auto (explicit flags/env, or a TPU VM), on "
                  "(JAX's cluster detection), off (single process)")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process)")
flags.DEFINE_integer("num_processes", None, "number of processes (multi-process)")
flags.DEFINE_integer("process_id", None, "this process's rank in [0, num_processes)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # progress lines are printed; keep orbax's INFO quiet
    from dg_jax.parallel import initialize_distributed, resolve_distributed

    initialize_distributed(resolve_distributed(FLAGS.distributed, FLAGS.coordinator_address,
                                               FLAGS.num_processes, FLAGS.process_id))
    from dg_jax.pipelines.registry import get_pipeline

    config = FLAGS.config
    get_pipeline(config.pipeline)(config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
