#!/usr/bin/env bash
# Start or stop the cluster's MLflow tracking server on the Ray head node.
#
# Called by cluster.yaml / cluster-gcp.yaml (head_start_ray_commands) and by the loopback
# cluster test (platform/loopback-cluster.yaml.in), so the path a cloud cluster takes is the
# path the test runs.
#
#   cluster_mlflow.sh start --host IP --port PORT --root DIR [--artifacts URI]
#   cluster_mlflow.sh stop  --root DIR
#
# start: stops a server left by an earlier `ray up` (by the PID in DIR/mlflow.pid), then runs
#        `mlflow server` detached, bound to IP only (the head's private address; never 0.0.0.0),
#        with --allowed-hosts naming exactly the addresses clients use, one worker process (the
#        only writer of the SQLite store), backend store DIR/mlflow.db and proxied artifacts in
#        DIR/artifacts (or --artifacts, e.g. s3://bucket/mlflow). DIR should be shared storage
#        (EFS / Filestore / NFS) so runs outlive the cluster. Waits until /health answers.
# stop:  ends the server by the PID in DIR/mlflow.pid.
set -euo pipefail

cmd="${1:-}"; shift || true
host=""; port="5000"; root=""; artifacts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --host) host="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    --artifacts) artifacts="$2"; shift 2 ;;
    *) echo "cluster_mlflow.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
  esac
done
if [ -z "$root" ]; then
  echo "cluster_mlflow.sh: --root DIR is required (where mlflow.db, artifacts/ and mlflow.pid live)" >&2
  exit 2
fi
pidfile="$root/mlflow.pid"

stop_server() {
  if [ -f "$pidfile" ]; then
    pid="$(cat "$pidfile")"
    # Only end it if that PID is still an mlflow server (PIDs are reused).
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
}

case "$cmd" in
  stop)
    stop_server
    ;;
  start)
    if [ -z "$host" ]; then
      echo "cluster_mlflow.sh: --host IP is required (the head's private address, e.g. \$(hostname -I | awk '{print \$1}'))" >&2
      exit 2
    fi
    if [ "$host" = "0.0.0.0" ]; then
      echo "cluster_mlflow.sh: refusing --host 0.0.0.0; bind the head's private address and port-forward (ray attach -p $port)" >&2
      exit 2
    fi
    stop_server
    mkdir -p "$root"
    artifacts="${artifacts:-$root/artifacts}"
    mlflow_bin="$(command -v mlflow || true)"
    if [ -z "$mlflow_bin" ]; then
      echo "cluster_mlflow.sh: no 'mlflow' on PATH; the setup_commands must install the project (pip install -e ~/transgan-lab)" >&2
      exit 2
    fi
    export MLFLOW_DISABLE_TELEMETRY=true
    # setsid + nohup + no inherited terminal: the server outlives the SSH session that started it.
    setsid nohup "$mlflow_bin" server \
      --host "$host" --port "$port" \
      --backend-store-uri "sqlite:///$root/mlflow.db" \
      --artifacts-destination "$artifacts" \
      --allowed-hosts "$host:$port,$host,localhost:$port,localhost,127.0.0.1:$port,127.0.0.1" \
      --workers 1 \
      </dev/null >>"$root/server.log" 2>&1 &
    echo $! >"$pidfile"
    url="http://$host:$port/health"
    for _ in $(seq 1 240); do
      if python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('$url', timeout=2).status == 200 else 1)" 2>/dev/null; then
        echo "MLflow tracking server: http://$host:$port (pid $(cat "$pidfile"), store $root)"
        exit 0
      fi
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "cluster_mlflow.sh: mlflow server exited; last lines of $root/server.log:" >&2
        tail -n 20 "$root/server.log" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "cluster_mlflow.sh: $url did not answer within 120 s; see $root/server.log" >&2
    exit 1
    ;;
  *)
    echo "usage: cluster_mlflow.sh start --host IP --port PORT --root DIR [--artifacts URI] | stop --root DIR" >&2
    exit 2
    ;;
esac
