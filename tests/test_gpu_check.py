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
    """The two quickest GPU-only tests on CPU, then the benchmark stage with a budget too short
    to finish: it is killed, listed under `unfinished`, and the JSON is still written (the
    benchmark itself runs at smoke size in tests/test_benchmark.py)."""
    out = subprocess.run(
        [sys.executable, "-m", "launch.gpu_check", f"--out={tmp_path}", "--smoke",
         "--tests_filter=adm_unet or gradient", "--tests_budget_s=900",
         "--benchmark_budget_s=3"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=1200)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] and report["platform"] == "cpu"
    assert report["stages"]["benchmark"]["status"] == "timeout"
    assert len(report["unfinished"]) == 1 and report["unfinished"][0].startswith("benchmark")
    assert report["versions"]["jax"] and report["versions"]["flax"]
    tests = report["stages"]["tests"]
    assert tests["status"] == "ok" and not tests["failed"]
    assert sorted(tests["passed"]) == ["test_adm_unet_cudnn_attention_equals_einsum_in_bfloat16",
                                       "test_dg_gradient_on_the_gpu_equals_cpu_float32"]


def test_gpu_check_rejects_unknown_stage(tmp_path):
    out = subprocess.run([sys.executable, "-m", "launch.gpu_check", f"--out={tmp_path}",
                          "--stages=tests,fid"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "unknown stage(s) ['fid']" in out.stderr
