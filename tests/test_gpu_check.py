"""`python -m launch.gpu_check --smoke`: the GPU check's stages run on CPU and write one JSON."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_writes_one_json(tmp_path):
    # The two quickest GPU-only tests and the float32 + bfloat16 smoke benchmark.
    out = subprocess.run(
        [sys.executable, "-m", "launch.gpu_check", f"--out={tmp_path}", "--smoke",
         "--tests_filter=adm_unet or gradient", "--tests_budget_s=900",
         "--benchmark_budget_s=1500"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=2700)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["platform"] == "cpu" and report["unfinished"] == []
    assert report["versions"]["jax"] and report["versions"]["flax"]
    tests = report["stages"]["tests"]
    assert tests["status"] == "ok" and not tests["failed"]
    assert sorted(tests["passed"]) == ["test_adm_unet_cudnn_attention_equals_einsum_in_bfloat16",
                                       "test_dg_gradient_on_the_gpu_equals_cpu_float32"]
    bench = report["stages"]["benchmark"]["result"]
    assert set(bench["compute_dtypes"]) == {"float32", "bfloat16"}
    assert bench["sampling_dg"]["compile_cold_seconds"] > 0


def test_gpu_check_rejects_unknown_stage(tmp_path):
    out = subprocess.run([sys.executable, "-m", "launch.gpu_check", f"--out={tmp_path}",
                          "--stages=tests,fid"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "unknown stage(s) ['fid']" in out.stderr
