"""Checks dg_jax against the official PyTorch code's outputs.

  python -m launch.parity --fixtures ../shared/fixtures/parity
  python -m launch.parity --fixtures ../shared/fixtures/fid

Prints one line per case (PASS/FAIL, max abs and rel error), then `N passed, M failed`; exits
non-zero if any case fails or has an unknown kind. `--only NAME_OR_KIND` runs a subset.
"""
import argparse
import sys

import jax

from dg_jax.cli import COMPILATION_CACHE_HELP
from dg_jax.compile_cache import enable_compilation_cache
from dg_jax.parity.runner import run_manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", required=True, help="folder holding manifest.json")
    parser.add_argument("--only", default=None, help="run only cases with this name or kind")
    parser.add_argument("--compilation_cache", default=None, help=COMPILATION_CACHE_HELP)
    args = parser.parse_args(argv)
    enable_compilation_cache(args.compilation_cache)
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    results = run_manifest(args.fixtures, only=args.only)
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
