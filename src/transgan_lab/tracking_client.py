"""The MLflow tracking store as both sides see it: ``platform`` writes runs, ``analysis`` reads them.

One place for what a store is and how it is reached: the ``transgan.`` tag prefix, the slug that
names a study's runs and the files published from them, secret redaction, which URI is meant
(command line, config, ``$MLFLOW_TRACKING_URI``, the default SQLite file), the server's
``/health`` probe, the checks before writing or reading, and the client.
MLflow itself is imported only when a client is made.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

TAG = "transgan."  # prefix of every tag this project writes
_SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+):[^@/\s]+@")


class TrackingUnavailable(Exception):
    """The tracking store cannot be reached or used; the message names the URI and the fix."""


# ------------------------------------------------------------------------------- names


def slug(text: str) -> str:
    """A label as a name in runs and files ('MT-CT + locality' -> 'mt-ct-locality'): the study names its
    runs by it and the published grids carry it, so both sides must agree."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ------------------------------------------------------------------------------- secrets


def _secret_values() -> list[str]:
    """Values of environment variables whose NAME looks secret (*TOKEN*, *SECRET*, *KEY*, *PASSWORD*)."""
    vals = []
    for name, value in os.environ.items():
        # Short or boolean-like values would redact innocent text ("1", "true").
        if _SECRET_NAME.search(name) and len(value) >= 6 and value.lower() not in ("true", "false", "disabled"):
            vals.append(value)
    return sorted(set(vals), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace secret env-var values and URL passwords in ``text`` with ``***``."""
    out = _URL_PASSWORD.sub(r"\1:***@", str(text))
    for value in _secret_values():
        out = out.replace(value, "***")
    return out


# --------------------------------------------------------------------------------- which store


def default_tracking_uri(out_root: str | os.PathLike = "runs") -> str:
    return f"sqlite:///{Path(out_root).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(
    *,
    out_root: str | os.PathLike = "runs",  # output root; the default SQLite file lives here
    cfg_uri: str | None = None,  # tracking.uri from the config
    override: str | None = None,  # --tracking-uri from the command line
) -> str:
    """First of: the command line, the config, $MLFLOW_TRACKING_URI, ``sqlite:///<out>/mlflow.db``."""
    uri = override or cfg_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(out_root)
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("", "file") and not uri.startswith("databricks"):
        raise TrackingUnavailable(
            f"tracking URI {redact(uri)!r} is a plain directory store, which MLflow 3.17 no longer supports; "
            f"use sqlite:///{Path(uri.removeprefix('file://') or '.').resolve() / 'mlflow.db'} or an http(s):// server"
        )
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_root_for(uri: str) -> str | None:
    """Artifact location for new experiments: next to a SQLite file; the server's default otherwise."""
    db = sqlite_path(uri)
    return str(db.parent / "mlartifacts") if db is not None else None


# ---------------------------------------------------------------------------------- reachable


def is_server(uri: str) -> bool:
    return urllib.parse.urlparse(uri).scheme in ("http", "https")


def health(uri: str, *, timeout_s: float = 5.0) -> str | None:
    """None when the tracking server at ``uri`` answers ``/health`` with 200, else why not."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
            return None if r.status == 200 else f"/health answered HTTP {r.status}"
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def require_server(uri: str, *, timeout_s: float = 10.0) -> None:
    """TrackingUnavailable unless the tracking server at ``uri`` answers."""
    problem = health(uri, timeout_s=timeout_s)
    if problem is not None:
        raise TrackingUnavailable(
            f"MLflow tracking server {redact(uri)} is not reachable ({problem}); start it "
            f"(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db`) "
            f"or point --tracking-uri / tracking.uri / MLFLOW_TRACKING_URI at a reachable server"
        )


def check_reachable(uri: str, *, timeout_s: float = 10.0) -> None:
    """Before writing: fail early (before any Ray work) when the store cannot be used; creates a
    SQLite store (folder and schema) once, before any trial process writes to it."""
    if is_server(uri):
        require_server(uri, timeout_s=timeout_s)
        return
    shown = redact(uri)
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingUnavailable(
                f"cannot create the folder of the MLflow store {shown}: {e.strerror}; pick a writable --out"
            ) from None
    try:
        mlflow_client(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any store error is the user's to fix
        raise TrackingUnavailable(f"MLflow store {shown} cannot be used: {redact(str(e)).splitlines()[0]}") from None


def check_readable(uri: str, *, timeout_s: float = 10.0) -> None:
    """Before reading: the store must exist (reading never creates an empty one) and answer."""
    if is_server(uri):
        require_server(uri, timeout_s=timeout_s)
        return
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise TrackingUnavailable(
            f"no run store at {db} (tracking URI {redact(uri)}): nothing has been recorded there yet; run "
            "`make demo` or `transgan-lab sweep digits-tiny` to record runs there, or pass --tracking-uri "
            "(or set MLFLOW_TRACKING_URI) to the store that holds your runs"
        )


# -------------------------------------------------------------------------------------- client


def mlflow_client(uri: str):
    """An ``MlflowClient`` on ``uri`` (no checks: see check_reachable / check_readable)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def tag_filter(tags: Mapping[str, object]) -> str:
    """MLflow search filter matching every ``tag = value``."""
    return " and ".join(f"tags.`{k}` = {_literal(v)}" for k, v in tags.items())


def _literal(value: object) -> str:
    """A filter string literal. MLflow's parser knows no escapes: a value holding ' is written in
    double quotes (checked with MLflow 3.17); one holding both kinds of quote cannot be matched."""
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    return f'"{text}"' if '"' not in text else "'" + text.replace("'", "") + "'"
