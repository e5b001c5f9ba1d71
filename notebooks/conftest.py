"""pytest --nbmake runs every notebook here at smoke size: DG_JAX_NOTEBOOK_SMOKE=1 is set before
the kernels start (they inherit this process's environment)."""
import os

os.environ.setdefault("DG_JAX_NOTEBOOK_SMOKE", "1")
