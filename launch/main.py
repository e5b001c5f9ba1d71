"""Runs a dg_jax experiment from an ml_collections config.

  python -m launch.main --config=configs/toy2d.py --workdir=/tmp/dg_toy2d [--config.x=y ...]

A config may take variants after a colon (--config=configs/cifar10_edm_dg.py:cond,smoke); the
configs and their variants:

%(configs)s

Known user errors (a bad field, path or workdir; a checkpoint or JSON file that cannot be read;
a diverged run) print one line and exit with status 2; --verbose adds the traceback.

Several processes (multi-node GPU, or a local test) run the same command, each with its rank:

  python -m launch.main --config=... --workdir=SHARED_DIR \\
      --coordinator_address=HOST0:1234 --num_processes=2 --process_id=0   # 1 on the other node

(or DG_JAX_COORDINATOR_ADDRESS / DG_JAX_NUM_PROCESSES / DG_JAX_PROCESS_ID in the environment).
Compiled programs are kept in JAX's persistent cache (~/.cache/dg_jax/jax, or
--compilation_cache=DIR / $DG_JAX_COMPILATION_CACHE; 'off' disables), so a rerun or a resumed
run skips most compiling.
On a Cloud TPU VM pod slice JAX finds all three itself (`--distributed=auto` notices the TPU
environment; `--distributed=on` forces JAX's cluster detection, e.g. under SLURM). See
launch/README.md and launch/tpu_vm.sh.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import configs
from dg_jax.cli import COMPILATION_CACHE_HELP, parse_flags_or_exit, run_command
from dg_jax.experiments.registry import get_pipeline

# Everything above is JAX-free: JAX comes in (with dg_jax.parallel, inside main) only once the
# flags are parsed, so --help and flag or config errors are answered without importing it.

__doc__ = __doc__ % {"configs": configs.describe()}  # noqa: A001  (shown by --help)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (path[:variant])", lock_config=True)
flags.DEFINE_string("workdir", None, "where checkpoints, samples and results go")
flags.DEFINE_bool("verbose", False, "print the traceback of known user errors too")
flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                  "jax.distributed.initialize: auto (explicit flags/env, or a TPU VM), on "
                  "(JAX's cluster detection), off (single process)")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process)")
flags.DEFINE_integer("num_processes", None, "number of processes (multi-process)")
flags.DEFINE_integer("process_id", None, "this process's rank in [0, num_processes)")
flags.DEFINE_string("compilation_cache", None, COMPILATION_CACHE_HELP)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # progress lines are printed; keep orbax's INFO quiet

    def run():
        from dg_jax.compile_cache import enable_compilation_cache  # noqa: PLC0415
        from dg_jax.parallel import initialize_distributed, resolve_distributed  # noqa: PLC0415

        enable_compilation_cache(FLAGS.compilation_cache)
        initialize_distributed(resolve_distributed(FLAGS.distributed, FLAGS.coordinator_address,
                                                   FLAGS.num_processes, FLAGS.process_id))
        config = FLAGS.config
        source = config_flags.get_config_filename(FLAGS["config"])
        get_pipeline(config.pipeline)(config, FLAGS.workdir, source=source)

    return run_command(run, verbose=FLAGS.verbose)


if __name__ == "__main__":
    app.run(main, flags_parser=lambda argv: parse_flags_or_exit(FLAGS, argv))
    sys.exit(0)
