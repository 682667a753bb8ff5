"""`transgan-lab ui`: the MLflow UI on 127.0.0.1 for a run store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from transgan_lab.platform import procs, validate_args
from transgan_lab.tracking_client import artifact_root_for, check_readable, is_server, redact, resolve_tracking_uri


def cmd_ui(args) -> int:
    """`transgan-lab ui`: the MLflow UI on 127.0.0.1 for the run store (foreground, Ctrl-C stops it)."""
    uri = resolve_tracking_uri(out_root="runs", override=getattr(args, "tracking_uri", None))
    if is_server(uri):
        print(f"{redact(uri)} is already a tracking server: open it in a browser")
        return 0
    check_readable(uri)  # a UI on an empty new store shows nothing: say where the runs are instead
    host, port = args.host, int(args.port)
    allowed = ",".join(
        sorted({f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", host, "localhost", "127.0.0.1"})
    )
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        allowed,
    ]
    root = artifact_root_for(uri)
    if root:
        cmd += ["--default-artifact-root", Path(root).as_uri()]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}
    validate_args.check_port_free(host, port)  # refused (exit 2) before any process starts
    print(f"MLflow UI for {redact(uri)} on http://{host}:{port}  (Ctrl-C stops it)", flush=True)
    server = procs.OwnedProcess(cmd, env=env)  # its own process group, ended with this process
    try:
        code = server.wait()
    except procs.Terminated:
        raise
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
    # The UI runs until stopped; ending by itself means it failed (e.g. another server took the port).
    holder = validate_args.port_holder(port)
    print(
        f"error: the MLflow UI on {host}:{port} exited with code {code}"
        + (f"; the port is held by {holder}" if holder != "another program" else "")
        + "; see its output above, choose another --port or stop that server",
        file=sys.stderr,
    )
    return 1
