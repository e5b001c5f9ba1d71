"""The one-call GPU check: GPU-only tests, then the full-size benchmark, into one JSON.

  python -m launch.gpu_check --out DIR                 # on the GPU machine (about 10 minutes)
  python -m launch.gpu_check --out DIR --smoke         # the same on CPU at smoke size (tests)

Stages, in order, each a subprocess under its own time budget (a stage that runs out is killed
and listed under `unfinished`; the next one still runs):
  1. tests: `pytest -m gpu tests/test_gpu.py` (cuDNN fused attention vs einsum in bfloat16,
     bfloat16 vs float32 EDM-G++, DG gradient GPU vs CPU, sharded vs unsharded), with
     JAX_PLATFORMS=cuda,cpu; --smoke runs them on the CPU (DG_JAX_GPU_TESTS_ON_CPU=1).
  2. benchmark: `launch.benchmark` on configs/cifar10_edm_dg.py (EDM CIFAR-10 DDPM++, batch 512,
     18 steps, float32 and bfloat16, with and without DG, compile cold and warm, score and
     discriminator training, Inception); --smoke uses the :smoke config.
Writes DIR/gpu_check.json: the device, library versions, each stage's status, seconds and
figures (the benchmark's whole JSON), and `unfinished`; prints a summary line per stage.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from importlib import metadata

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ("tests", "benchmark")
PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax", "optax",
            "orbax-checkpoint", "chex", "numpy", "ml-collections")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_info(env: dict) -> dict:
    """The accelerator as a fresh JAX process sees it under `env` (this process stays JAX-free,
    so each stage owns the device)."""
    code = ("import json, jax; d = jax.devices()[0]; print(json.dumps({'device': d.device_kind, "
            "'platform': d.platform, 'num_devices': jax.device_count()}))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as err:
        return {"device": None, "error": f"{type(err).__name__}: {err}"}


def run_stage(cmd: list[str], env: dict, budget_s: float, log_path: pathlib.Path) -> dict:
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                timeout=budget_s).returncode
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            rc, status = None, "timeout"
    return {"status": status, "returncode": rc, "seconds": time.perf_counter() - t0,
            "command": " ".join(cmd), "log": str(log_path)}


def junit_summary(path: pathlib.Path) -> dict:
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    summary = {"passed": [], "failed": [], "skipped": []}
    for case in cases:
        name = case.get("name")
        if case.find("failure") is not None or case.find("error") is not None:
            summary["failed"].append(name)
        elif case.find("skipped") is not None:
            summary["skipped"].append(name)
        else:
            summary["passed"].append(name)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and the logs")
    p.add_argument("--smoke", action="store_true", help="CPU, smoke sizes (what CI runs)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"subset of {','.join(STAGES)}")
    p.add_argument("--tests_budget_s", type=float, default=180.0)
    p.add_argument("--benchmark_budget_s", type=float, default=390.0)
    p.add_argument("--tests_filter", default="", help="pytest -k expression for the tests stage")
    p.add_argument("--batch_size", type=int, default=512, help="benchmark batch (full size)")
    args = p.parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        p.error(f"--stages: unknown stage(s) {unknown}; choose from {list(STAGES)}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    if args.smoke:
        env.update(JAX_PLATFORMS="cpu", DG_JAX_GPU_TESTS_ON_CPU="1")
    else:
        env.setdefault("JAX_PLATFORMS", "cuda,cpu")
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "smoke": args.smoke,
              "versions": versions(), **device_info(env), "stages": {}, "unfinished": []}

    if "tests" in stages:
        xml = out / "gpu_tests.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py",
               "-p", "no:cacheprovider", f"--junitxml={xml}"]
        if args.tests_filter:
            cmd += ["-k", args.tests_filter]
        stage = run_stage(cmd, env, args.tests_budget_s, out / "gpu_tests.log")
        stage.update(junit_summary(xml))
        report["stages"]["tests"] = stage
    if "benchmark" in stages:
        bench_dir = out / "benchmark"
        config = "configs/cifar10_edm_dg.py" + (":smoke" if args.smoke else "")
        cmd = [sys.executable, "-m", "launch.benchmark", f"--config={config}",
               f"--workdir={bench_dir}", "--dtypes=float32,bfloat16"]
        cmd += (["--repeats=1", "--inception_batch=8"] if args.smoke
                else [f"--config.sample.batch_size={args.batch_size}"])
        stage = run_stage(cmd, env, args.benchmark_budget_s, out / "benchmark.log")
        result = bench_dir / "benchmark.json"
        if result.is_file():
            stage["result"] = json.loads(result.read_text())
        report["stages"]["benchmark"] = stage

    for name, stage in report["stages"].items():
        if stage["status"] != "ok":
            report["unfinished"].append(f"{name}: {stage['status']} (see {stage['log']})")
        extra = ""
        if name == "tests" and "passed" in stage:
            extra = (f" {len(stage['passed'])} passed, {len(stage['failed'])} failed, "
                     f"{len(stage['skipped'])} skipped")
        print(f"[gpu_check] {name}: {stage['status']} in {stage['seconds']:.0f}s{extra}")
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out / "gpu_check.json")  # never a half-written file
    print(f"[gpu_check] wrote {out / 'gpu_check.json'}")
    return 0 if not report["unfinished"] else 1


if __name__ == "__main__":
    sys.exit(main())
