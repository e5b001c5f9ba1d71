"""launch/tpu_vm.sh --dry-run: the gcloud commands it would run, checked without a cloud account."""
import pathlib
import shlex
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "launch" / "tpu_vm.sh"


def dry_run(*args):
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})  # no gcloud
    assert out.returncode == 0, out.stderr
    return [shlex.split(line) for line in out.stdout.splitlines() if not line.startswith("#")]


def test_dry_run_prints_create_install_and_run_on_all_workers():
    cmds = dry_run("--name=dg-pod", "--zone=us-central2-b", "--accelerator=v4-32",
                   "--project=my-proj", "--spot", "--",
                   "--config=configs/cifar10_edm_dg.py:smoke", "--workdir=/mnt/shared/run dir",
                   "--config.dg.weight_1st=2.0")
    describe, create, tar, scp, install, launch = cmds
    common = ["--zone=us-central2-b", "--project=my-proj"]
    assert describe == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "dg-pod", *common]
    assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "dg-pod", *common,
                      "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"]
    assert tar[-3:] == ["-C", str(ROOT), "."]
    assert tar[:2] == ["tar", "-czf"] and "--exclude=.git" in tar
    assert scp[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", tar[2]]
    assert "--worker=all" in scp and scp[6] == "dg-pod:~/dg_jax_src.tgz"
    assert install[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "dg-pod"]
    assert "--worker=all" in install
    remote = [a for a in install if a.startswith("--command=")][0]
    assert "pip install" in remote and "jax[tpu]" in remote and "-e ~/dg_jax" in remote
    assert launch[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "dg-pod"]
    assert "--worker=all" in launch
    remote = [a for a in launch if a.startswith("--command=")][0][len("--command="):]
    first, rest = remote.split(" && ")
    assert first == "cd ~/dg_jax"
    assert shlex.split(rest) == ["python3", "-m", "launch.main", "--distributed=on",
                                 "--config=configs/cifar10_edm_dg.py:smoke",
                                 "--workdir=/mnt/shared/run dir", "--config.dg.weight_1st=2.0"]


def test_skip_install_and_other_module():
    cmds = dry_run("--name=v", "--zone=z", "--skip-install", "--module=launch.benchmark", "--",
                   "--config=configs/cifar10_edm_dg.py:smoke", "--workdir=/tmp/b")
    assert [c[4] for c in cmds] == ["describe", "create", "ssh"]
    remote = cmds[-1][-1]
    assert remote.endswith("python3 -m launch.benchmark --config=configs/cifar10_edm_dg.py:smoke"
                           " --workdir=/tmp/b")  # single-process module: no --distributed


@pytest.mark.parametrize("args, message", [
    (["--zone=z", "--", "--workdir=x"], "--name is required"),
    (["--name=v", "--", "--workdir=x"], "--zone is required"),
    (["--name=v", "--zone=z"], "no command flags after --"),
    (["--name=v", "--zone=z", "--acelerator=v4-8", "--", "--workdir=x"],
     "unknown option '--acelerator=v4-8'"),
    (["--name=v", "--zone=z", "--module=launch.main;rm", "--", "--workdir=x"], "--module="),
])
def test_bad_invocations_name_the_flag(args, message):
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
