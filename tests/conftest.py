"""Test set-up: 8 fake CPU devices, configured before JAX initialises its backends."""
import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import chex  # noqa: E402

chex.set_n_cpu_devices(8)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs and multi-process tests "
                            "(deselect with -m 'not slow' for a fast loop)")


@pytest.fixture(scope="session")
def shared_fixtures():
    """`../shared/fixtures` beside the checkout; tests that need it skip (and say so) when absent."""
    path = SHARED / "fixtures"
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path}: parity tests skipped")
    return path
