#!/usr/bin/env bash
# Submit the sweep to a running Ray cluster as a Ray Job (`ray job submit`, the modern path: no
# SSH, the code travels as a runtime env, the driver runs on the cluster's head).
#
#   scripts/submit_job.sh [--address URL] [--submission-id ID] [--no-wait] [-- SWEEP ARGS...]
#
#   # a cluster from cluster.yaml: forward its dashboard first (keep it running)
#   ray dashboard cluster.yaml &
#   scripts/submit_job.sh -- --samples 32
#   # a head on this machine
#   ray start --head --dashboard-host=127.0.0.1
#   scripts/submit_job.sh -- --smoke
#
# --address        the dashboard's job server; default $RAY_ADDRESS, else http://127.0.0.1:8265
# --submission-id  job id (default sweep-<UTC time>); `ray job status|logs|stop ID` use it
# --no-wait        return after submitting instead of following the log
# after --          arguments for experiments/sweep_cifar.py (quoting is kept)
#
# Runtime env: working_dir = this checkout (without .git, the venv, caches and run outputs), so the
# cluster runs the experiments/ scripts of this checkout; the transgan_lab package (search spaces
# included) must be installed on the cluster (cluster.yaml's setup_commands, the KubeRay image).
# MLFLOW_TRACKING_URI and TRANSGAN_LAB_STORAGE_PATH are passed on when set here; otherwise the
# cluster's own values (set by cluster.yaml on every node) apply.
# Token auth (Ray >= 2.59): the `ray job` client reads RAY_AUTH_MODE / RAY_AUTH_TOKEN(_PATH) from
# this environment; set them as the cluster was started.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
address="${RAY_ADDRESS:-http://127.0.0.1:8265}"
submission_id="sweep-$(date -u +%Y%m%d-%H%M%S)"
wait_flag=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) address="$2"; shift 2 ;;
    --submission-id) submission_id="$2"; shift 2 ;;
    --no-wait) wait_flag=(--no-wait); shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "submit_job.sh: unknown argument '$1'; put sweep arguments after --  (see --help)" >&2; exit 2 ;;
  esac
done
case "$address" in
  http://*|https://*) ;;
  *) echo "submit_job.sh: --address must be the dashboard URL (http://HOST:8265), got '$address'" >&2; exit 2 ;;
esac
if ! command -v ray >/dev/null; then
  echo "submit_job.sh: no 'ray' on PATH; activate the project's venv (. .venv/bin/activate)" >&2
  exit 2
fi

# The runtime env as JSON, built by Python so every value is quoted correctly.
runtime_env="$(python - "$repo" <<'PY'
import json, os, sys
env_vars = {k: os.environ[k] for k in ("MLFLOW_TRACKING_URI", "TRANSGAN_LAB_STORAGE_PATH") if os.environ.get(k)}
env_vars["RAY_USAGE_STATS_ENABLED"] = "0"
print(json.dumps({
    "working_dir": sys.argv[1],
    "excludes": [".git", ".venv", ".cache", "runs", "mlruns", "mlflow.db", "__pycache__", "*.egg-info", "bench/results"],
    "env_vars": env_vars,
}))
PY
)"

echo "submitting ${submission_id} to ${address}: python experiments/sweep_cifar.py $*"
exec ray job submit \
  --address "$address" \
  --submission-id "$submission_id" \
  --runtime-env-json "$runtime_env" \
  "${wait_flag[@]}" \
  -- python experiments/sweep_cifar.py "$@"
