"""The linter (ruff, configured in pyproject.toml) passes on the whole tree."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_passes():
    try:
        import ruff  # noqa: F401  (installed by the [test] extra)
        cmd = [sys.executable, "-m", "ruff"]
    except ImportError:
        if not shutil.which("ruff"):
            pytest.skip("ruff is not installed: pip install -e '.[test]'")
        cmd = ["ruff"]
    out = subprocess.run([*cmd, "check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
