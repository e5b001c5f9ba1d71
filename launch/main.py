"""Runs a dg_jax pipeline from an ml_collections config.

  python -m launch.main --config=configs/toy2d.py --workdir=/tmp/dg_toy2d [--config.x=y ...]
"""
from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (path[:variant])", lock_config=True)
flags.DEFINE_string("workdir", None, "where checkpoints, samples and results go")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # progress lines are printed; keep orbax's INFO quiet
    from dg_jax.pipelines.registry import get_pipeline

    config = FLAGS.config
    get_pipeline(config.pipeline)(config, FLAGS.workdir)


if __name__ == "__main__":
    app.run(main)
