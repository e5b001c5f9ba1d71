#!/usr/bin/env bash
# Runs one dg_jax command on every worker of a Cloud TPU VM or pod slice.
#
#   launch/tpu_vm.sh --name=dg-pod --zone=us-central2-b --accelerator=v4-32 [options] \
#       -- --config=configs/cifar10_edm_dg.py --workdir=/mnt/shared/cifar10_dg
#
# 1. reuses the TPU VM `--name` if `gcloud ... describe` finds it, else creates it;
# 2. copies this checkout (a tarball without .git) to every worker and installs it with
#    jax[tpu] (`--worker=all`; skipped with --skip-install);
# 3. runs `python3 -m launch.main --distributed=on ARGS...` on all workers at once: JAX reads
#    the pod's coordinator, process count and rank from the TPU metadata. (Another --module
#    gets ARGS only: launch.benchmark is single-process.)
#
# Options: --name, --zone (required); --accelerator (v4-8), --version (tpu-ubuntu2204-base),
# --project, --spot, --module (launch.main; e.g. launch.benchmark), --skip-install,
# --dry-run (print every command, one per line, and run none; no gcloud needed).
# The workdir must be storage all workers share (e.g. a Filestore/NFS mount or GCS FUSE),
# since each process writes its own sample shards and process 0 checks them all.
set -euo pipefail

name="" zone="" accelerator="v4-8" version="tpu-ubuntu2204-base" project="" spot=0
module="launch.main" install=1 dry_run=0
args=()

die() { echo "tpu_vm.sh: $*" >&2; exit 2; }

while (($#)); do
    case "$1" in
        --name=*) name="${1#*=}" ;;
        --zone=*) zone="${1#*=}" ;;
        --accelerator=*) accelerator="${1#*=}" ;;
        --version=*) version="${1#*=}" ;;
        --project=*) project="${1#*=}" ;;
        --module=*) module="${1#*=}" ;;
        --spot) spot=1 ;;
        --skip-install) install=0 ;;
        --dry-run) dry_run=1 ;;
        --) shift; args=("$@"); break ;;
        *) die "unknown option '$1' (put the command's own flags after --)" ;;
    esac
    shift
done
[[ -n "$name" ]] || die "--name is required (the TPU VM to create or reuse)"
[[ -n "$zone" ]] || die "--zone is required (e.g. --zone=us-central2-b)"
[[ "$module" =~ ^[A-Za-z_][A-Za-z0-9_.]*$ ]] || die "--module='$module' is not a module name"
((${#args[@]})) || die "no command flags after -- (e.g. -- --config=configs/X.py --workdir=DIR)"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
common=(--zone="$zone")
[[ -n "$project" ]] && common+=(--project="$project")
tarball="${TMPDIR:-/tmp}/dg_jax_src_${name}.tgz"

# Prints a command (shell-quoted); runs it unless --dry-run.
run() {
    local quoted
    quoted="$(printf '%q ' "$@")"
    echo "${quoted% }"
    ((dry_run)) || "$@"
}

# 1. create or reuse
describe=(gcloud compute tpus tpu-vm describe "$name" "${common[@]}")
create=(gcloud compute tpus tpu-vm create "$name" "${common[@]}"
        --accelerator-type="$accelerator" --version="$version")
((spot)) && create+=(--spot)
if ((dry_run)); then
    echo "# reuse $name when this succeeds:"
    run "${describe[@]}"
    echo "# else create it:"
    run "${create[@]}"
elif "${describe[@]}" >/dev/null 2>&1; then
    echo "# reusing TPU VM $name"
else
    run "${create[@]}"
fi

# 2. install on every worker
if ((install)); then
    run tar -czf "$tarball" --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ \
        -C "$root" .
    run gcloud compute tpus tpu-vm scp "$tarball" "$name:~/dg_jax_src.tgz" "${common[@]}" \
        --worker=all
    run gcloud compute tpus tpu-vm ssh "$name" "${common[@]}" --worker=all \
        --command="mkdir -p ~/dg_jax && tar -xzf ~/dg_jax_src.tgz -C ~/dg_jax && python3 -m pip install -q -U 'jax[tpu]' -e ~/dg_jax"
fi

# 3. the same command on all workers
distributed=""
[[ "$module" == "launch.main" ]] && distributed=" --distributed=on"
remote="cd ~/dg_jax && python3 -m $module$distributed$(printf ' %q' "${args[@]}")"
run gcloud compute tpus tpu-vm ssh "$name" "${common[@]}" --worker=all --command="$remote"
